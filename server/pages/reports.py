"""server.pages.reports: the report pages (operators), a meeting's attendance page and the headcount page.

- `/reports`: meetings of a date range (filter by province, district or commune valid in that range), totals,
  charts (classrooms per day, minutes per province, connection quality per district or commune) and exports.
- `/reports/meetings/{id}`: one meeting's attendance (operators and its presenters), with classrooms
  connected over time and each classroom's intervals, minutes, share, hands, floor, chat, polls and quality.
- `/reports/programs/{id}`, `/reports/units/{id}`: a program's or a unit's figures and learner progress.
- `/reports/monthly`: the monthly summary, printable (print CSS; `?print=1` opens the print dialog).
- `/meetings/{id}/headcount`: an invited classroom enters how many teachers are present (and who);
  presenters and operators see every classroom's figure and the total.
Figures come from `server.api.reports` builders, so pages, API and exports cannot disagree. Charts are
drawn by `web/static/reports.js` with `web/static/charts.js` from JSON embedded in the page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError

from server.api import reports as api
from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Role, UnitLevel
from server.errors import ApiError
from server.i18n import _, localized
from server.inputs import read_form
from server.openapi import int_param, parse_int
from server.reports import build as reports
from server.reports import headcount
from server.schedule import meetings as svc

STAFF = (Role.OPERATOR, Role.TRAINER, Role.LEADER)


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def group_charts(request: web.Request, per_province: dict[str, reports.Totals],
                 per_area: dict[str, reports.Totals]) -> list[dict[str, Any]]:
    """group_charts: bar charts of minutes per province and of median loss per district or commune."""
    return [
        {"id": "chart-province", "type": "bars", "format": "int", "color": "#1463c4",
         "items": [{"label": k, "title": k, "value": round(v.minutes)} for k, v in per_province.items()]},
        {"id": "chart-quality", "type": "bars", "format": "pct", "color": "#dc9a00",
         "items": [{"label": k, "title": k,
                    "value": round(100 * v.median_loss, 2) if v.median_loss is not None else 0,
                    "color": _loss_color(v.median_loss)} for k, v in per_area.items()]},
    ]


def _loss_color(loss: float | None) -> str:
    if loss is None or loss < 0.02:
        return "#178a4a"
    return "#dc9a00" if loss < 0.05 else "#c62828"


def day_chart(per_day: dict[dt.date, reports.Totals]) -> dict[str, Any]:
    """day_chart: classrooms attending per day (attendance over time)."""
    return {"id": "chart-days", "type": "bars", "format": "int", "color": "#178a4a",
            "items": [{"label": f"{d:%d/%m}", "title": f"{d:%d/%m/%Y}", "value": t.attended}
                      for d, t in per_day.items()]}


def _range_values(request: web.Request, filters: reports.Filters) -> dict[str, str]:
    tz = request.app[CONFIG].tz
    last = (filters.end - dt.timedelta(seconds=1)).astimezone(tz).date()
    return {"from": f"{filters.start.astimezone(tz).date()}", "to": f"{last}",
            "unit_id": request.query.get("unit_id", ""), "program_id": request.query.get("program_id", "")}


async def _unit_choices(s: Any, filters: reports.Filters, tz: Any) -> list[Any]:
    places = await reports.Places.load(s)
    start = filters.start.astimezone(tz).date()
    end = (filters.end - dt.timedelta(seconds=1)).astimezone(tz).date()
    out = []
    for province in reports.units_between(places, start, end, UnitLevel.PROVINCE):
        out.append((province, 0))
        for child in reports.units_between(places, start, end, parent_id=province.id):
            out.append((child, 1))
    return out


@aiohttp_jinja2.template("reports.html")
async def reports_page(request: web.Request) -> dict[str, Any]:
    """reports_page: meetings of a date range with totals, charts and exports (operators)."""
    require(request, Role.OPERATOR)
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        facts = await api.build_meetings(s, request)
        filters = api.range_filters(request)
        units = await _unit_choices(s, filters, tz)
        programs = [p for p, _n in await svc.list_programs(s)]
    per_province = reports.by_group(facts, lambda r: r.place.province_name)
    per_area = reports.by_group(facts, lambda r: r.place.area_name or r.place.province_name)
    charts = [day_chart(reports.by_day(facts, tz))] + group_charts(request, per_province, per_area)
    return {"facts": facts, "totals": reports.totals(facts), "values": _range_values(request, filters),
            "units": units, "programs": programs, "charts": charts, "per_province": per_province,
            "per_area": per_area, "query": request.query_string,
            "month": f"{reports.now_of(request.app).astimezone(tz):%Y-%m}"}


@aiohttp_jinja2.template("reports_meeting.html")
async def meeting_report_page(request: web.Request) -> dict[str, Any]:
    """meeting_report_page: one meeting's attendance (operators and its presenters)."""
    ident = require(request, *STAFF)
    tz = request.app[CONFIG].tz
    now = reports.now_of(request.app)
    async with request.app[DB]() as s:
        facts = await reports.meeting_facts(s, ident, int_param(request, "id"), now=now,
                                            live_ids=reports.live_meeting_ids(request.app))
    att = facts.attendance
    timeline = att.timeline()
    chart = {"id": "chart-timeline", "type": "line", "format": "int", "color": "#1463c4",
             "points": [[_ms(t), n] for t, n in timeline],
             "start": _ms(timeline[0][0]) if timeline else _ms(att.starts_at),
             "end": _ms(timeline[-1][0]) if timeline else _ms(att.ends_at),
             "startLabel": timeline[0][0].astimezone(tz).strftime("%H:%M") if timeline else "",
             "endLabel": timeline[-1][0].astimezone(tz).strftime("%H:%M") if timeline else "",
             "minMax": max(1, len(facts.rows))}
    quality = {"id": "chart-quality", "type": "bars", "format": "pct", "color": "#dc9a00",
               "items": [{"label": r.classroom.code, "title": r.classroom.name,
                          "value": round(100 * r.attendee.quality.loss, 2) if r.attendee and
                          r.attendee.quality.loss is not None else 0,
                          "color": _loss_color(r.attendee.quality.loss if r.attendee else None)}
                         for r in facts.rows if r.attended]}
    return {"f": facts, "m": facts.meeting, "totals": reports.totals([facts]), "charts": [chart, quality],
            "now": now}


@aiohttp_jinja2.template("reports_program.html")
async def program_report_page(request: web.Request) -> dict[str, Any]:
    """program_report_page: a program's meetings, provinces and learner progress."""
    require(request, *STAFF)
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        program, facts, progress, _places = await api.build_program(s, request, int_param(request, "id"))
    per_province = reports.by_group(facts, lambda r: r.place.province_name)
    per_area = reports.by_group(facts, lambda r: r.place.area_name or r.place.province_name)
    charts = [day_chart(reports.by_day(facts, tz))] + group_charts(request, per_province, per_area)
    return {"program": program, "facts": facts, "totals": reports.totals(facts), "progress": progress,
            "per_province": per_province, "charts": charts}


@aiohttp_jinja2.template("reports_unit.html")
async def unit_report_page(request: web.Request) -> dict[str, Any]:
    """unit_report_page: a province's, district's or commune's classrooms over a date range."""
    require(request, Role.OPERATOR)
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        unit, facts, per_unit, per_classroom = await api.build_unit(s, request, int_param(request, "id"))
        filters = api.range_filters(request)
    per_area = reports.by_group(facts, lambda r: r.place.area_name or r.place.province_name)
    charts = [day_chart(reports.by_day(facts, tz))] + group_charts(request, per_unit, per_area)
    return {"unit": unit, "facts": facts, "totals": reports.totals(facts), "per_unit": per_unit,
            "per_classroom": per_classroom, "charts": charts, "values": _range_values(request, filters)}


@aiohttp_jinja2.template("reports_monthly.html")
async def monthly_page(request: web.Request) -> dict[str, Any]:
    """monthly_page: the monthly summary, made to be printed."""
    require(request, Role.OPERATOR)
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        m = await api.build_monthly(s, request)
        places = await reports.Places.load(s)
    start, end = m.start.date(), (m.end - dt.timedelta(days=1)).date()
    provinces = reports.units_between(places, start, end, UnitLevel.PROVINCE)
    charts = [day_chart(m.per_day)] + group_charts(request, m.per_province, m.per_area)
    return {"r": m, "t": m.totals, "charts": charts, "provinces": provinces,
            "unit_id": request.query.get("unit_id", ""), "print": request.query.get("print") == "1",
            "generated": reports.now_of(request.app).astimezone(tz), "last_day": m.end - dt.timedelta(days=1)}


# --- headcount ---------------------------------------------------------------------------------------

async def headcount_page(request: web.Request) -> web.StreamResponse:
    """headcount_page: GET shows the form (classroom) or every classroom's figure (staff); POST saves it."""
    ident = require(request, Role.CLASSROOM, *STAFF)
    tz = request.app[CONFIG].tz
    now = reports.now_of(request.app)
    error, status, saved = "", 200, request.query.get("saved") == "1"
    form: dict[str, str] = {}
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        if request.method == "POST":
            post = await read_form(request)
            form = {"count": str(post.get("count", "")).strip(), "names": str(post.get("names", "")),
                    "classroom_id": str(post.get("classroom_id", ""))}
            upload = post.get("names_file")
            csv_text = ""
            if upload is not None and hasattr(upload, "file"):
                raw = upload.file.read(200_000)
                try:
                    csv_text = raw.decode("utf-8-sig")
                except UnicodeDecodeError:
                    error, status = _(request, "The list of names must be a UTF-8 CSV file."), 422
            if not (form["count"].isascii() and form["count"].isdigit()):
                error, status = _(request, "Enter the number of teachers present (0–500)."), 422
            if not error:
                try:
                    data = headcount.HeadcountIn.model_validate({
                        "count": int(form["count"]),
                        "names": [n for n in form["names"].splitlines() if n.strip()],
                        "names_csv": csv_text,
                        "classroom_id": parse_int(form["classroom_id"])})
                    await headcount.save(s, request, ident, meeting, data, now)
                    await s.commit()
                    raise web.HTTPSeeOther(location=f"/meetings/{meeting.id}/headcount?saved=1")
                except ValidationError as exc:
                    err = exc.errors()[0]
                    msg = str(err["msg"]).removeprefix("Value error, ")
                    error, status = localized(request, msg) if " / " in msg else \
                        f"{'.'.join(str(p) for p in err['loc']) or 'count'}: {msg}", 422
                except ApiError as exc:
                    error, status = localized(request, exc.message), exc.status
        summary = await headcount.summary(s, ident, meeting)
        own_figures = None
        if ident.role == Role.CLASSROOM:
            own = await reports.meeting_facts(s, ident, meeting.id, now=now,
                                              live_ids=reports.live_meeting_ids(request.app))
            own_figures = own.rows[0] if own.rows else None
    mine = summary.entries[0] if ident.role == Role.CLASSROOM and summary.entries else None
    if not form and mine is not None:
        form = {"count": "" if mine.count is None else str(mine.count), "names": "\n".join(mine.names)}
    opens, closes = headcount.editable_window(meeting)
    return aiohttp_jinja2.render_template("headcount.html", request, {
        "m": meeting, "summary": summary, "mine": mine, "form": form, "error": error, "saved": saved,
        "own": own_figures, "can_edit": ident.role == Role.CLASSROOM and
        headcount.edit_problem(ident, meeting, None, now) is None,
        "opens": opens.astimezone(tz), "closes": closes.astimezone(tz), "max_count": headcount.MAX_COUNT,
        "max_names": headcount.MAX_NAMES}, status=status)


def loss_class(loss: float | None) -> str:
    """loss_class: the CSS class of a packet-loss figure (good, degraded, poor)."""
    if loss is None:
        return ""
    return "is-ok" if loss < 0.02 else "is-warn" if loss < 0.05 else "is-bad"


def setup(app: web.Application) -> None:
    """setup: add the report and headcount routes and the template filters they use."""
    env = aiohttp_jinja2.get_env(app)
    env.filters["meeting_totals"] = lambda f: reports.totals([f])
    env.filters["loss_class"] = loss_class
    r = app.router
    r.add_get("/reports", reports_page, name="reports")
    r.add_get("/reports/monthly", monthly_page, name="reports-monthly")
    r.add_get(r"/reports/meetings/{id:\d+}", meeting_report_page, name="reports-meeting")
    r.add_get(r"/reports/programs/{id:\d+}", program_report_page, name="reports-program")
    r.add_get(r"/reports/units/{id:\d+}", unit_report_page, name="reports-unit")
    r.add_get(r"/meetings/{id:\d+}/headcount", headcount_page, name="meeting-headcount")
    r.add_post(r"/meetings/{id:\d+}/headcount", headcount_page)
