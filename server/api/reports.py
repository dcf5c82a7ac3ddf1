"""server.api.reports: attendance, headcounts, reports and learner progress under /api/v1 (for a Ministry system too).

- `/api/v1/meetings/{id}/headcount`: GET the headcounts (operators and the meeting's presenters: every
  classroom and the total; a classroom: its own); PUT a classroom's headcount (the classroom itself, or an
  operator naming `classroom_id`).
- `/api/v1/reports/meetings/{id}`: one meeting's attendance per classroom (intervals, minutes, share,
  hands, floor, chat, poll answers, connection quality, headcount) and the classrooms connected over time.
- `/api/v1/reports/meetings`: meetings starting in a date range with their totals.
- `/api/v1/reports/programs/{id}`, `/api/v1/reports/units/{id}`, `/api/v1/reports/monthly`: operators (a
  program's report also to its trainers and presenters).
- `/api/v1/reports/progress` (staff) and `/api/v1/reports/progress/me` (a learner's own).
- `/api/v1/reports/export.csv` and `.xlsx`: the same figures as files with Vietnamese headers.

Roles: operators see everything; trainers and leaders their meetings; a classroom only its own figures;
a learner only its own progress; guests nothing (403). Query dates: `from`/`to` as YYYY-MM-DD (local days,
`to` inclusive) or ISO datetimes; `month` as YYYY-MM; `unit_id` a province, district or commune.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import Identity, require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Program, Role, Unit, UnitLevel
from server.openapi import endpoint, id_query, int_param, json_response, one_of, parse_body
from server.people.units import get_unit
from server.reports import build as reports
from server.reports import exports, headcount, presence
from server.schedule import meetings as svc

STAFF = (Role.OPERATOR, Role.TRAINER, Role.LEADER)
READERS = STAFF + (Role.CLASSROOM,)
EXPORTERS = READERS
RANGE_QUERY = (("from", "first day, YYYY-MM-DD (local) or ISO datetime"),
               ("to", "last day included, YYYY-MM-DD (local) or ISO datetime"),
               ("unit_id", "only classrooms under this province, district or commune"),
               ("program_id", "only this program's meetings"))
EXPORT_QUERY = (("report", "meeting | meetings | program | unit | monthly | progress"),
                ("id", "the meeting, program or unit id (report meeting, program, unit)"),
                ("month", "YYYY-MM (report monthly)")) + RANGE_QUERY
EXPORT_SCHEMAS = {"report": one_of("meeting", "meetings", "program", "unit", "monthly", "progress")}


# --- output models -----------------------------------------------------------------------------------

class SpanOut(BaseModel):
    """SpanOut: one interval present (or with the floor) and how it ended."""

    start: dt.datetime
    end: dt.datetime
    minutes: float
    how: str  # leave, drop, closed-at-restart, floor-end, now (still open, live), last-seen


class QualityOut(BaseModel):
    """QualityOut: medians of the quality samples (loss 0..1, bit/s, seconds)."""

    samples: int
    loss: float | None
    up_loss: float | None
    up_bitrate: float | None
    down_bitrate: float | None
    rtt: float | None


class AttendeeOut(BaseModel):
    """AttendeeOut: one classroom's (or person's) attendance in a meeting."""

    key: str
    classroom_id: int | None = None
    classroom_code: str = ""
    user_id: int | None = None
    role: str = ""
    name: str
    province: str = ""
    area: str = ""
    invited: bool = False
    attended: bool
    intervals: list[SpanOut]
    minutes: float
    share: float
    drops: int
    hands: int
    floor_minutes: float
    floor: list[SpanOut]
    chat: int
    poll_answers: int
    quality: QualityOut
    headcount: int | None = None
    headcount_names: list[str] = []


class ReportTotalsOut(BaseModel):
    """ReportTotalsOut: figures summed over classrooms (share and medians over the attending ones)."""

    meetings: int
    hours: float
    invited: int
    attended: int
    classrooms_reached: int
    teachers: int
    minutes: float
    hands: int
    floor_minutes: float
    chat: int
    poll_answers: int
    average_share: float | None
    median_loss: float | None
    median_bitrate: float | None


class TimelinePointOut(BaseModel):
    """TimelinePointOut: how many classrooms were connected at one moment."""

    at: dt.datetime
    classrooms: int


class MeetingReportOut(BaseModel):
    """MeetingReportOut: one meeting's attendance (a classroom gets its own row only)."""

    meeting_id: int
    title: str
    program_id: int
    program_title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    live: bool
    computed_at: dt.datetime
    totals: ReportTotalsOut
    classrooms: list[AttendeeOut]
    others: list[AttendeeOut]
    timeline: list[TimelinePointOut]


class MeetingSummaryOut(BaseModel):
    """MeetingSummaryOut: one meeting with its classroom totals."""

    meeting_id: int
    title: str
    program_id: int
    program_title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    totals: ReportTotalsOut


class GroupOut(BaseModel):
    """GroupOut: totals of one group (a province, district or commune, a program, a day)."""

    name: str
    totals: ReportTotalsOut


class AreaProgressOut(BaseModel):
    """AreaProgressOut: learner progress of one program in one district or commune."""

    program_id: int
    program_title: str
    province: str
    area: str
    learners: int
    average_percent: float
    completed: int
    videos_watched: int
    videos_total: int
    materials_opened: int
    materials_total: int
    quizzes_passed: int
    quizzes_total: int
    average_score: float | None
    packages_completed: int = 0
    packages_passed: int = 0
    packages_total: int = 0
    package_score: float | None = None
    package_hours: float = 0.0


class ProgramReportOut(BaseModel):
    """ProgramReportOut: a program's meetings in the range, totals per province, learner progress."""

    program_id: int
    title: str
    totals: ReportTotalsOut
    meetings: list[MeetingSummaryOut]
    per_province: list[GroupOut]
    progress: list[AreaProgressOut]


class UnitReportOut(BaseModel):
    """UnitReportOut: a unit's classrooms in the range: totals, per unit below it, per classroom, meetings."""

    unit_id: int
    code: str
    name: str
    level: UnitLevel
    totals: ReportTotalsOut
    per_unit: list[GroupOut]
    per_classroom: list[GroupOut]
    meetings: list[MeetingSummaryOut]


class MonthlyOut(BaseModel):
    """MonthlyOut: the monthly summary and its breakdowns."""

    month: str
    unit_id: int | None
    totals: ReportTotalsOut
    recordings_published: int
    forum_answered: int
    forum_asked: int
    active_learners: int
    items_completed: int
    quizzes_passed: int
    per_province: list[GroupOut]
    per_area: list[GroupOut]
    per_program: list[GroupOut]
    per_day: list[GroupOut]
    meetings: list[MeetingSummaryOut]
    progress: list[AreaProgressOut]


class HeadcountEntryOut(BaseModel):
    """HeadcountEntryOut: one classroom's headcount (count null: not entered yet)."""

    classroom_id: int
    code: str
    name: str
    count: int | None
    names: list[str]
    updated_at: dt.datetime | None


class HeadcountSummaryOut(BaseModel):
    """HeadcountSummaryOut: a meeting's headcounts with the total and how many classrooms reported."""

    meeting_id: int
    total: int
    reported: int
    invited: int
    entries: list[HeadcountEntryOut]


# --- conversions -------------------------------------------------------------------------------------

def totals_out(t: reports.Totals) -> ReportTotalsOut:
    """totals_out: Totals as ReportTotalsOut (rounded)."""
    def r(v: float | None, d: int = 2) -> float | None:
        return None if v is None else round(v, d)

    return ReportTotalsOut(meetings=t.meetings, hours=round(t.hours, 2), invited=t.invited, attended=t.attended,
                           classrooms_reached=t.classrooms_reached, teachers=t.teachers, minutes=round(t.minutes, 2),
                           hands=t.hands, floor_minutes=round(t.floor_minutes, 2), chat=t.chat,
                           poll_answers=t.poll_answers, average_share=r(t.average_share, 4),
                           median_loss=r(t.median_loss, 4), median_bitrate=r(t.median_bitrate, 0))


def spans_out(spans: list[presence.Span], tz: Any) -> list[SpanOut]:
    """spans_out: intervals in local time."""
    return [SpanOut(start=s.start.astimezone(tz), end=s.end.astimezone(tz), minutes=round(s.seconds / 60, 2),
                    how=s.how) for s in spans]


def attendee_out(a: presence.Attendee | None, tz: Any, row: reports.ClassroomRow | None = None) -> AttendeeOut:
    """attendee_out: a classroom row or another attendee as AttendeeOut."""
    q = a.quality if a else presence.Quality()
    base: dict[str, Any] = {
        "key": a.key if a else f"classroom:{row.classroom.id}" if row else "", "user_id": a.user_id if a else None,
        "role": a.role if a else "classroom", "name": a.name if a else "", "attended": bool(a and a.seconds > 0),
        "intervals": spans_out(a.spans, tz) if a else [], "minutes": round(a.minutes, 2) if a else 0.0,
        "share": round(a.share, 4) if a else 0.0, "drops": a.drops if a else 0, "hands": a.hands if a else 0,
        "floor_minutes": round(a.floor_seconds / 60, 2) if a else 0.0,
        "floor": spans_out(a.floor_spans, tz) if a else [],
        "chat": a.chat if a else 0, "poll_answers": a.poll_answers if a else 0,
        "quality": QualityOut(samples=q.samples, loss=q.loss, up_loss=q.up_loss, up_bitrate=q.up_bitrate,
                              down_bitrate=q.down_bitrate, rtt=q.rtt)}
    if row is not None:
        base.update(classroom_id=row.classroom.id, classroom_code=row.classroom.code, name=row.classroom.name,
                    province=row.place.province_name, area=row.place.area_name, invited=row.invited,
                    attended=row.attended, headcount=row.headcount.count if row.headcount else None,
                    headcount_names=list(row.headcount.names) if row.headcount else [])
    return AttendeeOut(**base)


def meeting_report_out(f: reports.MeetingFacts, tz: Any, computed_at: dt.datetime) -> MeetingReportOut:
    """meeting_report_out: MeetingFacts as MeetingReportOut."""
    m = f.meeting
    timeline = f.attendance.timeline() if f.rows or f.others else []
    if f.rows and len(f.rows) == 1 and not f.others:  # a classroom's own view: its own connection only
        own = f.rows[0].attendee
        timeline = [(t, int(bool(own and any(s.start <= t < s.end for s in own.spans)))) for t, _ in timeline]
    return MeetingReportOut(
        meeting_id=m.id, title=m.title, program_id=m.program_id, program_title=m.program.title,
        starts_at=m.starts_at.astimezone(tz), ends_at=m.ends_at.astimezone(tz), live=f.attendance.live,
        computed_at=computed_at.astimezone(tz), totals=totals_out(reports.totals([f])),
        classrooms=[attendee_out(r.attendee, tz, r) for r in f.rows],
        others=[attendee_out(a, tz) for a in f.others],
        timeline=[TimelinePointOut(at=t.astimezone(tz), classrooms=n) for t, n in timeline])


def summary_out(f: reports.MeetingFacts, tz: Any) -> MeetingSummaryOut:
    """summary_out: a meeting with its totals."""
    m = f.meeting
    return MeetingSummaryOut(meeting_id=m.id, title=m.title, program_id=m.program_id, program_title=m.program.title,
                             starts_at=m.starts_at.astimezone(tz), ends_at=m.ends_at.astimezone(tz),
                             totals=totals_out(reports.totals([f])))


def groups_out(groups: dict[Any, reports.Totals]) -> list[GroupOut]:
    """groups_out: named totals (dates as YYYY-MM-DD)."""
    return [GroupOut(name=k.isoformat() if isinstance(k, dt.date) else str(k), totals=totals_out(v))
            for k, v in groups.items()]


def progress_out(groups: list[reports.ProgressGroup]) -> list[AreaProgressOut]:
    """progress_out: ProgressGroups as AreaProgressOut."""
    return [AreaProgressOut(program_id=g.program_id, program_title=g.program_title, province=g.province, area=g.area,
                        learners=g.learners, average_percent=round(g.average_percent, 1), completed=g.completed,
                        videos_watched=g.videos_watched, videos_total=g.videos_total,
                        materials_opened=g.materials_opened, materials_total=g.materials_total,
                        quizzes_passed=g.quizzes_passed, quizzes_total=g.quizzes_total,
                        average_score=None if g.average_score is None else round(g.average_score, 1),
                        packages_completed=g.packages_completed, packages_passed=g.packages_passed,
                        packages_total=g.packages_total,
                        package_score=None if g.package_score is None else round(g.package_score, 1),
                        package_hours=round(g.package_seconds / 3600, 2))
            for g in groups]


# --- query parameters --------------------------------------------------------------------------------

def range_filters(request: web.Request, default_days: int | None = 31) -> reports.Filters:
    """range_filters: the from/to/unit_id/program_id query as Filters (default: the last `default_days` days)."""
    tz = request.app[CONFIG].tz
    now = reports.now_of(request.app)
    raw_from, raw_to = request.query.get("from", ""), request.query.get("to", "")
    if raw_to.strip():
        end = svc.parse_bound(raw_to, tz, "to")
        if len(raw_to.strip()) == 10:
            end += dt.timedelta(days=1)  # a day given: up to its end
    else:
        end = dt.datetime.combine(now.astimezone(tz).date() + dt.timedelta(days=1), dt.time(), tzinfo=tz) \
            if default_days is not None else dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    if raw_from.strip():
        start = svc.parse_bound(raw_from, tz, "from")
    elif default_days is not None:
        start = end - dt.timedelta(days=default_days)
    else:
        start = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    if end <= start:
        raise svc.invalid("to", "phải sau ngày bắt đầu", "must be after from")
    return reports.Filters(start=start, end=end, unit_id=id_query(request, "unit_id"),
                           program_id=id_query(request, "program_id"))


async def check_unit(s: AsyncSession, unit_id: int | None) -> Unit | None:
    """check_unit: the unit named by unit_id, or a 422."""
    if unit_id is None:
        return None
    unit = await get_unit(s, unit_id)
    if unit is None:
        raise svc.invalid("unit_id", "không có đơn vị này", "no such unit")
    return unit


def month_param(request: web.Request) -> str:
    """month_param: ?month=YYYY-MM (default: this month in the local timezone), or a 422."""
    tz = request.app[CONFIG].tz
    month = request.query.get("month", "").strip() or f"{reports.now_of(request.app).astimezone(tz):%Y-%m}"
    try:
        reports.month_range(month, tz)
    except ValueError:
        raise svc.invalid("month", "cần dạng YYYY-MM", "must be YYYY-MM") from None
    return month


def _ctx(request: web.Request) -> tuple[Identity, Any, dt.datetime, set[int]]:
    ident = require(request)
    return ident, request.app[CONFIG].tz, reports.now_of(request.app), reports.live_meeting_ids(request.app)


# --- building the reports (shared with the export and the pages) -------------------------------------

async def build_meetings(s: AsyncSession, request: web.Request) -> list[reports.MeetingFacts]:
    """build_meetings: the meetings of the range as the caller may see them."""
    ident, _tz, now, live = _ctx(request)
    filters = range_filters(request)
    await check_unit(s, filters.unit_id)
    facts, _ = await reports.collect(s, await reports.scope(s, ident, filters), now=now, live_ids=live)
    return facts


async def build_program(s: AsyncSession, request: web.Request, program_id: int
                        ) -> tuple[Program, list[reports.MeetingFacts], list[reports.ProgressGroup], reports.Places]:
    """build_program: a program's meetings (as the caller may see them) and its learners' progress."""
    ident, _tz, now, live = _ctx(request)
    allowed = await reports.visible_programs(s, ident)
    if allowed is not None and program_id not in allowed:
        raise svc.not_found()
    program = await svc.get_program(s, program_id)
    filters = range_filters(request, default_days=None)
    await check_unit(s, filters.unit_id)
    from dataclasses import replace
    filters = await reports.scope(s, ident, replace(filters, program_id=program_id))
    facts, places = await reports.collect(s, filters, now=now, live_ids=live)
    progress = await reports.progress_rollup(s, [program_id], places, unit_id=filters.unit_id)
    return program, facts, progress, places


async def build_unit(s: AsyncSession, request: web.Request, unit_id: int
                     ) -> tuple[Unit, list[reports.MeetingFacts], dict[str, reports.Totals],
                                dict[str, reports.Totals]]:
    """build_unit: a unit's meetings, totals per unit just below it (valid in the range) and per classroom."""
    require(request, Role.OPERATOR)
    _ident, tz, now, live = _ctx(request)
    unit = await get_unit(s, unit_id)
    if unit is None:
        raise svc.not_found()
    from dataclasses import replace
    filters = replace(range_filters(request), unit_id=unit_id)
    facts, places = await reports.collect(s, filters, now=now, live_ids=live)
    start, end = filters.start.astimezone(tz).date(), (filters.end - dt.timedelta(seconds=1)).astimezone(tz).date()
    per_unit: dict[str, reports.Totals] = {u.name: reports.Totals() for u in
                                           reports.units_between(places, start, end, parent_id=unit_id)}
    grouped = reports.by_group(facts, lambda r: getattr(reports.child_under(places, unit_id, r.classroom.unit_id),
                                                        "name", "") or unit.name)
    per_unit.update(grouped)
    per_classroom = reports.by_group(facts, lambda r: f"{r.classroom.code} — {r.classroom.name}")
    return unit, facts, dict(sorted(per_unit.items())), per_classroom


async def build_monthly(s: AsyncSession, request: web.Request) -> reports.Monthly:
    """build_monthly: the monthly summary (operators)."""
    require(request, Role.OPERATOR)
    _ident, tz, now, live = _ctx(request)
    unit_id = id_query(request, "unit_id")
    await check_unit(s, unit_id)
    return await reports.monthly(s, month_param(request), tz, now=now, live_ids=live, unit_id=unit_id)


async def build_progress(s: AsyncSession, request: web.Request) -> list[reports.ProgressGroup]:
    """build_progress: learner progress per program and district (staff; trainers their programs)."""
    ident = require(request, *STAFF)
    allowed = await reports.visible_programs(s, ident)
    program_id = id_query(request, "program_id")
    unit_id = id_query(request, "unit_id")
    await check_unit(s, unit_id)
    ids = [program_id] if program_id is not None else await reports.learner_programs(s)
    if allowed is not None:
        ids = [i for i in ids if i in allowed]
    return await reports.progress_rollup(s, ids, await reports.Places.load(s), unit_id=unit_id)


# --- headcount ---------------------------------------------------------------------------------------

def headcount_out(summary: headcount.Summary, tz: Any) -> HeadcountSummaryOut:
    """headcount_out: a headcount Summary as HeadcountSummaryOut."""
    return HeadcountSummaryOut(meeting_id=summary.meeting_id, total=summary.total, reported=summary.reported,
                               invited=summary.invited, entries=[
                                   HeadcountEntryOut(classroom_id=e.classroom_id, code=e.code, name=e.name,
                                                     count=e.count, names=e.names,
                                                     updated_at=e.updated_at.astimezone(tz) if e.updated_at else None)
                                   for e in summary.entries])


@endpoint("GET", r"/api/v1/meetings/{id:\d+}/headcount", name="api-headcount", tag="reports", roles=READERS,
          summary="Headcounts of a meeting's classrooms with the total (a classroom: its own)",
          response=HeadcountSummaryOut)
async def get_headcount(request: web.Request) -> web.Response:
    """get_headcount: the meeting's headcounts as the caller may see them."""
    ident, tz, _now, _live = _ctx(request)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        return json_response(headcount_out(await headcount.summary(s, ident, meeting), tz))


@endpoint("PUT", r"/api/v1/meetings/{id:\d+}/headcount", name="api-headcount-put", tag="reports",
          roles=(Role.CLASSROOM, Role.OPERATOR), body=headcount.HeadcountIn, response=HeadcountSummaryOut,
          summary="Enter a classroom's headcount: teachers present (0–500) and optionally their names",
          errors=(409,))
async def put_headcount(request: web.Request) -> web.Response:
    """put_headcount: store the classroom's headcount (an operator names classroom_id) and answer the summary."""
    ident, tz, now, _live = _ctx(request)
    data = await parse_body(request, headcount.HeadcountIn)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        await headcount.save(s, request, ident, meeting, data, now)
        await s.commit()
        return json_response(headcount_out(await headcount.summary(s, ident, meeting), tz))


# --- reports -----------------------------------------------------------------------------------------

@endpoint("GET", r"/api/v1/reports/meetings/{id:\d+}", name="api-report-meeting", tag="reports", roles=READERS,
          summary="A meeting's attendance per classroom: intervals, minutes, share, hands, floor, chat, polls, "
                  "quality, headcount", response=MeetingReportOut)
async def meeting_report(request: web.Request) -> web.Response:
    """meeting_report: one meeting's attendance, recomputed from its events now."""
    ident, tz, now, live = _ctx(request)
    async with request.app[DB]() as s:
        facts = await reports.meeting_facts(s, ident, int_param(request, "id"), now=now, live_ids=live)
    return json_response(meeting_report_out(facts, tz, now))


@endpoint("GET", "/api/v1/reports/meetings", name="api-report-meetings", tag="reports", roles=READERS,
          summary="Meetings starting in a date range with their attendance totals", query=RANGE_QUERY,
          response=MeetingSummaryOut, response_list=True)
async def meetings_report(request: web.Request) -> web.Response:
    """meetings_report: the meetings of the range (default: the last 31 days)."""
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        facts = await build_meetings(s, request)
    return json_response([summary_out(f, tz) for f in facts])


@endpoint("GET", r"/api/v1/reports/programs/{id:\d+}", name="api-report-program", tag="reports", roles=STAFF,
          summary="A program's meetings, totals per province and learner progress per district",
          query=RANGE_QUERY[:3], response=ProgramReportOut)
async def program_report(request: web.Request) -> web.Response:
    """program_report: one program (default: all its meetings)."""
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        program, facts, progress, _places = await build_program(s, request, int_param(request, "id"))
    return json_response(ProgramReportOut(
        program_id=program.id, title=program.title, totals=totals_out(reports.totals(facts)),
        meetings=[summary_out(f, tz) for f in facts],
        per_province=groups_out(reports.by_group(facts, lambda r: r.place.province_name)),
        progress=progress_out(progress)))


@endpoint("GET", r"/api/v1/reports/units/{id:\d+}", name="api-report-unit", tag="reports", roles=(Role.OPERATOR,),
          summary="A province's, district's or commune's classrooms: totals, per unit below it, per classroom",
          query=RANGE_QUERY[:2], response=UnitReportOut)
async def unit_report(request: web.Request) -> web.Response:
    """unit_report: one unit over the range (default: the last 31 days)."""
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        unit, facts, per_unit, per_classroom = await build_unit(s, request, int_param(request, "id"))
    return json_response(UnitReportOut(unit_id=unit.id, code=unit.code, name=unit.name, level=unit.level,
                                       totals=totals_out(reports.totals(facts)), per_unit=groups_out(per_unit),
                                       per_classroom=groups_out(per_classroom),
                                       meetings=[summary_out(f, tz) for f in facts]))


@endpoint("GET", "/api/v1/reports/monthly", name="api-report-monthly", tag="reports", roles=(Role.OPERATOR,),
          summary="The monthly summary: meetings held, classrooms and teachers reached, hours, recordings, forum, "
                  "learners", query=(("month", "YYYY-MM (default: this month)"), RANGE_QUERY[2]),
          response=MonthlyOut)
async def monthly_report(request: web.Request) -> web.Response:
    """monthly_report: one month, for every unit or the classrooms and learners under one."""
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        m = await build_monthly(s, request)
    return json_response(MonthlyOut(
        month=m.month, unit_id=m.unit.id if m.unit else None, totals=totals_out(m.totals),
        recordings_published=m.recordings_published, forum_answered=m.forum_answered, forum_asked=m.forum_asked,
        active_learners=m.active_learners, items_completed=m.items_completed, quizzes_passed=m.quizzes_passed,
        per_province=groups_out(m.per_province), per_area=groups_out(m.per_area),
        per_program=groups_out(m.per_program), per_day=groups_out(m.per_day),
        meetings=[summary_out(f, tz) for f in m.facts], progress=progress_out(m.progress)))


@endpoint("GET", "/api/v1/reports/progress", name="api-report-progress", tag="reports", roles=STAFF,
          summary="Learner progress (videos, materials, quizzes) per program and district or commune",
          query=(("program_id", "one program (default: every program with learners)"), RANGE_QUERY[2]),
          response=AreaProgressOut, response_list=True)
async def progress_report(request: web.Request) -> web.Response:
    """progress_report: learner progress roll-up (trainers and leaders: their programs)."""
    async with request.app[DB]() as s:
        return json_response(progress_out(await build_progress(s, request)))


@endpoint("GET", "/api/v1/reports/progress/me", name="api-report-progress-me", tag="reports",
          roles=(Role.LEARNER,), summary="The learner's own progress in each program",
          response=AreaProgressOut, response_list=True)
async def my_progress(request: web.Request) -> web.Response:
    """my_progress: the caller's own figures (learners only)."""
    ident = require(request, Role.LEARNER)
    async with request.app[DB]() as s:
        ids = await reports.learner_programs(s, ident.user_id)
        groups = await reports.progress_rollup(s, ids, await reports.Places.load(s), user_id=ident.user_id)
    return json_response(progress_out(groups))


# --- exports -----------------------------------------------------------------------------------------

async def export_tables(request: web.Request) -> tuple[list[exports.Table], str]:
    """export_tables: the tables and file stem of ?report=... (each report keeps its own role rules)."""
    ident, tz, now, live = _ctx(request)
    kind = request.query.get("report") or "meetings"
    range_filters(request)  # from, to, unit_id, program_id and month are checked whichever report reads them
    month_param(request)
    async with request.app[DB]() as s:
        if kind == "meeting":
            meeting_id = id_query(request, "id")
            if meeting_id is None:
                raise svc.invalid("id", "cần mã buổi tập huấn", "a meeting id is required")
            f = await reports.meeting_facts(s, ident, meeting_id, now=now, live_ids=live)
            return exports.meeting_tables(f, tz) + [exports.timeline_table(f.attendance, tz)], f"diem-danh-{meeting_id}"
        if kind == "meetings":
            return [exports.meetings_table(await build_meetings(s, request), tz)], "cac-buoi-tap-huan"
        if kind == "program":
            program_id = id_query(request, "id")
            if program_id is None:
                raise svc.invalid("id", "cần mã chương trình", "a program id is required")
            program, facts, progress, _ = await build_program(s, request, program_id)
            per_province = reports.by_group(facts, lambda r: r.place.province_name)
            return [exports.meetings_table(facts, tz, program.title),
                    exports.group_table(per_province, "Theo tỉnh", "Theo tỉnh/thành phố", "Tỉnh/Thành phố"),
                    exports.progress_table(progress)], f"chuong-trinh-{program_id}"
        if kind == "unit":
            unit_id = id_query(request, "id")
            if unit_id is None:
                raise svc.invalid("id", "cần mã đơn vị", "a unit id is required")
            unit, facts, per_unit, per_classroom = await build_unit(s, request, unit_id)
            return [exports.group_table(per_unit, "Theo đơn vị", f"{unit.name}: theo đơn vị trực thuộc"),
                    exports.group_table(per_classroom, "Theo lớp học", f"{unit.name}: theo lớp học", "Lớp học"),
                    exports.meetings_table(facts, tz)], f"don-vi-{unit.code}"
        if kind == "monthly":
            m = await build_monthly(s, request)
            return exports.monthly_tables(m, tz), f"bao-cao-thang-{m.month}"
        if kind == "progress":
            return [exports.progress_table(await build_progress(s, request))], "tien-do-tu-hoc"
    raise svc.invalid("report", "loại báo cáo không hợp lệ", "unknown report")


async def _export(request: web.Request, fmt: str) -> web.Response:
    tables, stem = await export_tables(request)
    body, content_type = exports.render(tables, fmt)
    return web.Response(body=body, headers={
        "Content-Type": content_type, "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{exports.filename(stem, fmt)}"'})


@endpoint("GET", "/api/v1/reports/export.csv", name="api-report-export-csv", tag="reports", roles=EXPORTERS,
          summary="A report as CSV (UTF-8 with BOM, Vietnamese headers)", query=EXPORT_QUERY,
          content_type="text/csv",
          schemas=EXPORT_SCHEMAS)
async def export_csv(request: web.Request) -> web.Response:
    """export_csv: ?report=meeting|meetings|program|unit|monthly|progress as CSV."""
    return await _export(request, "csv")


@endpoint("GET", "/api/v1/reports/export.xlsx", name="api-report-export-xlsx", tag="reports", roles=EXPORTERS,
          summary="A report as an Excel workbook (one sheet per table, Vietnamese headers)", query=EXPORT_QUERY,
          content_type=exports.XLSX_TYPE,
          schemas=EXPORT_SCHEMAS)
async def export_xlsx(request: web.Request) -> web.Response:
    """export_xlsx: ?report=meeting|meetings|program|unit|monthly|progress as XLSX."""
    return await _export(request, "xlsx")
