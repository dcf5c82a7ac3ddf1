"""server.pages.calendar: the calendar (month and week views), deadlines, schedule import and notifications.

- `/calendar?view=month|week&date=YYYY-MM-DD`: the meetings the user may see (`server.schedule.calendar`), today
  highlighted, with previous/next/today navigation; on a phone the month becomes a list of days. The
  "Subscribe" box shows the user's secret iCalendar URL and replaces it on request (POST /calendar/feed).
- `/deadlines?state=due|overdue|received`: regional-meeting documents: operators see every meeting,
  presenters and classrooms their own (with an upload link to the meeting page).
- `/meetings/import`: operators upload a term's schedule as CSV (drafts, all or nothing, errors by row).
- POST `/notifications/read`: mark the user's schedule notifications read (home page banner).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.api.calendar import feed_owner, feed_url
from server.api.uploads import IMPORT_MAX_BYTES, read_upload
from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Role
from server.i18n import _, language
from server.inputs import read_form
from server.openapi import parse_int
from server.people.importer import ImportFailed
from server.schedule import calendar as cal
from server.schedule import deadlines, notifications
from server.schedule import importer as schedule_import
from server.schedule import meetings as svc
from server.schedule import rules as schedule

WEEKDAY_SHORT = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
NOTICES = {"feed-new": "A new subscription link was made; the old one no longer works.",
           "read": "Notifications marked as read."}


@aiohttp_jinja2.template("calendar.html")
async def calendar_page(request: web.Request) -> dict[str, Any]:
    """calendar_page: the month or week around ?date= (today by default) for the user's role."""
    ident = require(request)
    tz = request.app[CONFIG].tz
    today = schedule.today_in(tz)
    view: cal.View = "week" if request.query.get("view") == "week" else "month"
    anchor = cal.parse_anchor(request.query.get("date"), today)
    async with request.app[DB]() as s:
        built = await cal.build_view(s, ident, view, anchor, today, tz)
        feed = None
        if ident.user_id is not None and not ident.link_scoped:  # a join-link login sees its meeting only
            feed = feed_url(request, await cal.feed_token(s, ident.user_id))
            await s.commit()
    code = request.query.get("notice", "")
    return {"cal": built, "feed": feed, "weekday_names": WEEKDAY_SHORT, "month_names": MONTH_NAMES,
            "notice": _(request, NOTICES[code]) if code in NOTICES else "", "now": svc.utcnow()}


async def regenerate_feed(request: web.Request) -> web.StreamResponse:
    """regenerate_feed: POST /calendar/feed: a new secret feed URL (the old one answers 404 from now on); not for
    a join-link login."""
    ident = feed_owner(request)
    async with request.app[DB]() as s:
        await cal.feed_token(s, ident.user_id or 0, regenerate=True)
        await s.commit()
    raise web.HTTPSeeOther("/calendar?notice=feed-new#subscribe")


@aiohttp_jinja2.template("deadlines.html")
async def deadlines_page(request: web.Request) -> dict[str, Any]:
    """deadlines_page: due, overdue and received documents of the regional meetings the user may see."""
    ident = require(request, *svc.MEETING_READERS)
    tz = request.app[CONFIG].tz
    today = schedule.today_in(tz)
    state = request.query.get("state", "")
    state = state if state in ("due", "overdue", "received") else ""
    async with request.app[DB]() as s:
        every = await deadlines.dashboard(s, ident, today, tz)
    counts = {k: sum(1 for r in every for d in r.deadlines if d.state == k) for k in ("due", "overdue", "received")}
    rows = [r for r in every if not state or any(d.state == state for d in r.deadlines)]
    lang = language(request)
    return {"rows": rows, "state": state, "counts": counts, "today": today,
            "doc_labels": {k: v[0] if lang == "vi" else v[1] for k, v in deadlines.KIND_LABELS.items()}}


def _import_context(**extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"columns": schedule_import.COLUMNS, "required": schedule_import.REQUIRED,
                               "max_mb": IMPORT_MAX_BYTES // (1024 * 1024), "errors": [], "created": None}
    context.update(extra)
    return context


async def import_page(request: web.Request) -> web.StreamResponse:
    """import_page: GET the schedule import form; POST (multipart, ?csrf_token=) imports and shows the result."""
    ident = require(request, Role.OPERATOR)
    if request.method == "GET":
        return aiohttp_jinja2.render_template("meetings_import.html", request, _import_context())
    data, _name = await read_upload(request)
    try:
        result = await schedule_import.run_import(request.app[DB], request, data, request.app[CONFIG].tz,
                                                  actor_id=ident.user_id)
    except ImportFailed as exc:
        lang = language(request)
        return aiohttp_jinja2.render_template("meetings_import.html", request, _import_context(
            errors=[e.text(lang) for e in exc.errors]), status=422)
    async with request.app[DB]() as s:
        meetings = [await svc.get_meeting(s, ident, mid) for mid in result.meeting_ids]
    return aiohttp_jinja2.render_template("meetings_import.html", request, _import_context(
        created=meetings, now=svc.utcnow()))


async def import_sample(request: web.Request) -> web.Response:
    """import_sample: an example schedule CSV."""
    require(request, Role.OPERATOR)
    return web.Response(body=("\ufeff" + schedule_import.SAMPLE).encode(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="taphuan-lich-mau.csv"'})


async def read_notifications(request: web.Request) -> web.StreamResponse:
    """read_notifications: POST /notifications/read (optional form field `id`): mark as read, back home."""
    ident = require(request)
    form = await read_form(request)
    raw = str(form.get("id", ""))
    async with request.app[DB]() as s:
        await notifications.mark_read(s, ident, parse_int(raw))
        await s.commit()
    raise web.HTTPSeeOther("/")


def setup(app: web.Application) -> None:
    """setup: add the calendar, deadlines, schedule import and notification routes, and the jinja helpers."""
    env = aiohttp_jinja2.get_env(app)
    env.globals["notification_text"] = notifications.text_in
    env.globals["iso_date"] = dt.date.isoformat
    r = app.router
    r.add_get("/calendar", calendar_page, name="calendar")
    r.add_post("/calendar/feed", regenerate_feed, name="calendar-feed")
    r.add_get("/deadlines", deadlines_page, name="deadlines")
    resource = r.add_resource("/meetings/import", name="meetings-csv")
    resource.add_route("GET", import_page)
    resource.add_route("POST", import_page)
    r.add_get("/meetings/import/sample.csv", import_sample, name="meetings-csv-sample")
    r.add_post("/notifications/read", read_notifications, name="notifications-read")
