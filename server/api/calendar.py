"""server.api.calendar: /api/v1/calendar (events per role, the secret iCalendar feed) and /api/v1/notifications.

`GET /api/v1/calendar/feed/{token}.ics` is public: the token in the URL is the credential (a wrong or
replaced token answers 404). Every other route needs a login; the feed URL belongs to an account and lists all
its meetings, so a join-link login (a guest's, or a classroom's scoped to one meeting) may neither read nor
replace it (403 `link-login`).
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel

from server.auth import Identity, require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import MeetingKind, MeetingStatus
from server.errors import ApiError
from server.i18n import language
from server.openapi import TEXT, endpoint, int_param, json_response, one_of
from server.people.accounts import refuse_link_login
from server.schedule import calendar as cal
from server.schedule import meetings as svc
from server.schedule import notifications

MAX_RANGE = dt.timedelta(days=200)


class EventOut(BaseModel):
    """EventOut: a meeting on the caller's calendar."""

    id: int
    title: str
    program_title: str
    kind: MeetingKind
    status: MeetingStatus
    starts_at: dt.datetime
    ends_at: dt.datetime
    url: str


class FeedOut(BaseModel):
    """FeedOut: the caller's secret iCalendar URL (webcal:// form for one-click subscription)."""

    url: str
    webcal_url: str


class NotificationOut(BaseModel):
    """NotificationOut: a schedule change told to the caller or the caller's classroom."""

    id: int
    meeting_id: int | None
    kind: str
    text: str
    created_at: dt.datetime
    read: bool


class ReadOut(BaseModel):
    """ReadOut: how many notifications were marked read."""

    marked: int


def base_url(request: web.Request) -> str:
    """base_url: the public URL of the server (config `server.public_url`, else this request's origin)."""
    public = request.app[CONFIG].server.public_url
    return public.rstrip("/") if public else str(request.url.origin())


def feed_url(request: web.Request, token: str) -> FeedOut:
    """feed_url: the feed URLs of a token."""
    url = f"{base_url(request)}/api/v1/calendar/feed/{token}.ics"
    return FeedOut(url=url, webcal_url="webcal://" + url.split("://", 1)[1])


def feed_owner(request: web.Request) -> Identity:
    """feed_owner: the caller, when it may see and replace its account's feed URL (an account's own login or
    token); else 403."""
    ident = require(request)
    refuse_link_login(ident)
    if ident.user_id is None:
        raise ApiError(403, "forbidden", "Cần một tài khoản. / An account is needed.")
    return ident


@endpoint("GET", "/api/v1/calendar", name="api-calendar", summary="Meetings on the caller's calendar",
          response=EventOut, response_list=True, tag="calendar",
          query=(("from", "Start date or ISO 8601 time (default: today)"),
                 ("to", "End date or time, at most 200 days after from (default: from + 31 days)")))
async def calendar_events(request: web.Request) -> web.Response:
    """calendar_events: the meetings the caller sees on a calendar between ?from= and ?to=."""
    ident = require(request)
    tz = request.app[CONFIG].tz
    start = (svc.parse_bound(request.query["from"], tz, "from") if request.query.get("from")
             else dt.datetime.combine(svc.utcnow().astimezone(tz).date(), dt.time(), tzinfo=tz))
    end = (svc.parse_bound(request.query["to"], tz, "to") if request.query.get("to")
           else start + dt.timedelta(days=31))
    if end <= start or end - start > MAX_RANGE:
        raise svc.invalid("to", "khoảng thời gian phải dương và tối đa 200 ngày",
                          "the range must be positive and at most 200 days")
    async with request.app[DB]() as s:
        rows = await cal.meetings_between(s, ident, start, end)
    return json_response([EventOut(id=m.id, title=m.title, program_title=m.program.title, kind=m.kind,
                                   status=m.status, starts_at=m.starts_at.astimezone(tz),
                                   ends_at=m.ends_at.astimezone(tz), url=f"/meetings/{m.id}") for m in rows])


@endpoint("GET", "/api/v1/calendar/feed", name="api-calendar-feed-url",
          summary="The caller's secret iCalendar feed URL (made on first use)", response=FeedOut, tag="calendar")
async def get_feed_url(request: web.Request) -> web.Response:
    """get_feed_url: the caller's feed URL."""
    ident = feed_owner(request)
    async with request.app[DB]() as s:
        token = await cal.feed_token(s, ident.user_id or 0)
        await s.commit()
    return json_response(feed_url(request, token))


@endpoint("POST", "/api/v1/calendar/feed", name="api-calendar-feed-regenerate",
          summary="Replace the caller's feed URL (the old one stops working)", response=FeedOut, tag="calendar")
async def regenerate_feed_url(request: web.Request) -> web.Response:
    """regenerate_feed_url: a new secret token for the caller."""
    ident = feed_owner(request)
    async with request.app[DB]() as s:
        token = await cal.feed_token(s, ident.user_id or 0, regenerate=True)
        await s.commit()
    return json_response(feed_url(request, token))


@endpoint("GET", "/api/v1/calendar/feed/{token}", name="api-calendar-feed", public=True,
          summary="iCalendar feed of the account owning the token (the URL ends in .ics; 404 for a wrong token)",
          content_type="text/calendar", tag="calendar",
          schemas={"token": TEXT})
async def feed(request: web.Request) -> web.Response:
    """feed: the .ics document of the token's account (no login cookie needed)."""
    token = request.match_info["token"].removesuffix(".ics")
    config = request.app[CONFIG]
    async with request.app[DB]() as s:
        user = await cal.feed_user(s, token)
        if user is None:
            raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
        body = await cal.feed_for(s, user, config.tz, base_url(request), cal.uid_host(config.server.public_url))
    return web.Response(body=body, content_type="text/calendar", charset="utf-8", headers={
        "Cache-Control": "private, max-age=300", "Content-Disposition": 'inline; filename="taphuan.ics"',
        "Referrer-Policy": "no-referrer"})


@endpoint("GET", "/api/v1/notifications", name="api-notifications",
          summary="Schedule-change notifications of the caller and the caller's classroom, newest first",
          response=NotificationOut, response_list=True, tag="calendar", query=(("unread", "1: only unread ones"),),
          schemas={"unread": one_of("1", "0")})
async def list_notifications(request: web.Request) -> web.Response:
    """list_notifications: the caller's notifications (text in the caller's language)."""
    ident = require(request)
    lang = language(request)
    tz = request.app[CONFIG].tz
    unread = request.query.get("unread", "").strip()
    if unread not in ("", "0", "1"):
        raise ApiError(422, "invalid", "unread: 1 hoặc 0 / unread: 1 or 0", field="unread")
    async with request.app[DB]() as s:
        rows = await notifications.list_for(s, ident, unread_only=unread == "1")
    return json_response([NotificationOut(id=n.id, meeting_id=n.meeting_id, kind=n.kind,
                                          text=notifications.text_in(n, lang), created_at=n.created_at.astimezone(tz),
                                          read=n.read_at is not None) for n in rows])


@endpoint("POST", "/api/v1/notifications/{id}/read", name="api-notification-read",
          summary="Mark one notification read (404 when it is not the caller's)", response=ReadOut, tag="calendar")
async def read_notification(request: web.Request) -> web.Response:
    """read_notification: mark one notification of the caller read."""
    ident = require(request)
    nid = int_param(request, "id")
    async with request.app[DB]() as s:
        mine = {n.id: n for n in await notifications.list_for(s, ident, limit=1000)}
        if nid not in mine:
            raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
        marked = await notifications.mark_read(s, ident, nid)
        await s.commit()
    return json_response(ReadOut(marked=marked))


@endpoint("POST", "/api/v1/notifications/read", name="api-notifications-read",
          summary="Mark every notification of the caller read", response=ReadOut, tag="calendar")
async def read_all_notifications(request: web.Request) -> web.Response:
    """read_all_notifications: mark all the caller's notifications read."""
    ident = require(request)
    async with request.app[DB]() as s:
        marked = await notifications.mark_read(s, ident)
        await s.commit()
    return json_response(ReadOut(marked=marked))
