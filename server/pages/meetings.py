"""server.pages.meetings: pages for programs and meetings.

Operators list, create, edit and delete programs and meetings and change a meeting's status; trainers
and leaders see the meetings they present; classrooms the published meetings they are invited to.
Every write goes through `server.schedule.meetings` (validation, audit, the scheduling rules of
`server.schedule.rules`): a refused publication or edit shows the reason on the page (the other meeting and
what is shared, or the 10-day rule with a box for the override reason). Regional meetings show their
document deadlines with an upload form. Also registers the jinja filters `localtime`, `localdate`,
`meeting_time` and `status_label` / `kind_label` globals.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web
from multidict import MultiDictProxy
from pydantic import ValidationError

from server import formats
from server.auth import Identity, require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Meeting, MeetingKind, MeetingStatus, Role
from server.errors import ApiError
from server.i18n import _, language, localized
from server.inputs import read_form
from server.openapi import int_param, parse_int
from server.people.accounts import find_user
from server.schedule import deadlines
from server.schedule import meetings as svc
from server.schedule import rules as schedule

NOTICES = {
    "program-created": "The program was created.",
    "program-saved": "The program was saved.",
    "program-deleted": "The program was deleted.",
    "meeting-created": "The meeting was created as a draft.",
    "meeting-saved": "The meeting was saved.",
    "meeting-deleted": "The meeting was deleted.",
    "meeting-publish": "The meeting was published.",
    "meeting-unpublish": "The meeting is a draft again.",
    "meeting-cancel": "The meeting was cancelled.",
    "document-added": "The document was received.",
}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
STATUS_LABELS = {"draft": "Draft", "published": "Published", "cancelled": "Cancelled"}
KIND_LABELS = {"lecture": "Lecture", "regional": "Regional meeting"}


def notice(request: web.Request) -> str:
    """notice: the translated message named by ?notice= (only known codes), or ""."""
    text = NOTICES.get(request.query.get("notice", ""))
    return _(request, text) if text else ""


def field_message(request: web.Request, exc: ApiError) -> str:
    """field_message: an error's message without the field name, in the page's language."""
    field = str(exc.extra.get("field", ""))
    text = exc.message[len(field) + 2:] if field and exc.message.startswith(f"{field}: ") else exc.message
    return localized(request, text)


def _page_error(request: web.Request, exc: ApiError) -> dict[str, str]:
    return {str(exc.extra.get("field", "form")): field_message(request, exc)}


# --- programs -------------------------------------------------------------------------------------

@aiohttp_jinja2.template("programs.html")
async def programs_page(request: web.Request) -> dict[str, Any]:
    """programs_page: every program with its number of meetings."""
    require(request, Role.OPERATOR)
    async with request.app[DB]() as s:
        rows = await svc.list_programs(s)
    return {"rows": rows, "notice": notice(request)}


async def program_form(request: web.Request) -> web.StreamResponse:
    """program_form: create (/programs/new) or edit (/programs/{id}/edit) a program."""
    ident = require(request, Role.OPERATOR)
    editing = "id" in request.match_info
    async with request.app[DB]() as s:
        program = await svc.get_program(s, int_param(request, "id")) if editing else None
        values = {"title": program.title if program else "", "description": program.description if program else ""}
        errors: dict[str, str] = {}
        if request.method == "POST":
            form = await read_form(request)
            values = {"title": str(form.get("title", "")), "description": str(form.get("description", ""))}
            try:
                if program is None:
                    data = svc.ProgramIn.model_validate(values)
                    program = await svc.create_program(s, request, data, actor_id=ident.user_id)
                    code = "program-created"
                else:
                    patch = svc.ProgramPatch.model_validate(values)
                    await svc.update_program(s, request, program, patch)
                    code = "program-saved"
                await s.commit()
                raise web.HTTPSeeOther(f"/programs/{program.id}?notice={code}")
            except ApiError as exc:
                errors = _page_error(request, exc)
            except ValidationError as exc:
                name = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "title"
                errors = {name: _(request, "Enter a title (at most 300 characters).") if name == "title"
                          else _(request, "The description is too long.")}
    return aiohttp_jinja2.render_template("programs_form.html", request, {
        "program": program, "values": values, "errors": errors}, status=422 if errors else 200)


async def program_delete(request: web.Request) -> web.StreamResponse:
    """program_delete: confirm (GET), then delete (POST) a program without meetings."""
    require(request, Role.OPERATOR)
    pid = int_param(request, "id")
    error = ""
    async with request.app[DB]() as s:
        program = await svc.get_program(s, pid)
        count = await svc.count_meetings(s, pid)
        if request.method == "POST":
            try:
                await svc.delete_program(s, request, program)
                await s.commit()
                raise web.HTTPSeeOther("/programs?notice=program-deleted")
            except ApiError as exc:
                error = field_message(request, exc)
    return aiohttp_jinja2.render_template("programs_delete.html", request, {
        "program": program, "count": count, "error": error}, status=409 if error else 200)


@aiohttp_jinja2.template("programs_detail.html")
async def program_page(request: web.Request) -> dict[str, Any]:
    """program_page: a program and its meetings."""
    ident = require(request, Role.OPERATOR)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        program = await svc.get_program(s, pid)
        rows = await svc.list_meetings(s, ident, program_id=pid)
    return {"program": program, "meetings": rows, "notice": notice(request), "now": svc.utcnow()}


# --- meetings -------------------------------------------------------------------------------------

@aiohttp_jinja2.template("meetings.html")
async def meetings_page(request: web.Request) -> dict[str, Any]:
    """meetings_page: the meetings the user may see: upcoming (default), past or all, by status."""
    ident = require(request, *svc.MEETING_READERS)
    scope = request.query.get("scope", "upcoming")
    scope = scope if scope in ("upcoming", "past", "all") else "upcoming"
    status_value = request.query.get("status", "")
    status = MeetingStatus(status_value) if status_value in STATUS_LABELS else None
    now = svc.utcnow()
    async with request.app[DB]() as s:
        rows = await svc.list_meetings(s, ident, status=status, start=now if scope == "upcoming" else None,
                                       end=now if scope == "past" else None)
    if scope == "past":
        rows = [m for m in rows if m.ends_at <= now]
        rows.reverse()
    return {"meetings": rows, "scope": scope, "status": status_value if status else "",
            "notice": notice(request), "now": now}


def _form_values(meeting: Meeting | None, tz: ZoneInfo, program_id: int | None) -> dict[str, Any]:
    if meeting is None:
        day = (svc.utcnow().astimezone(tz) + dt.timedelta(days=14)).date()
        return {"program_id": program_id, "title": "", "description": "", "kind": "lecture",
                "date": day.isoformat(), "start_time": "08:00", "end_time": "10:00", "presenter_ids": set(),
                "classroom_ids": set(), "province_ids": set(), "video_codec": "VP8", "record": True}
    start, end = meeting.starts_at.astimezone(tz), meeting.ends_at.astimezone(tz)
    return {"program_id": meeting.program_id, "title": meeting.title, "description": meeting.description,
            "kind": meeting.kind.value, "date": start.date().isoformat(), "start_time": start.strftime("%H:%M"),
            "end_time": end.strftime("%H:%M"), "presenter_ids": {u.id for u in meeting.presenters},
            "classroom_ids": {c.id for c in meeting.classrooms}, "province_ids": {u.id for u in meeting.provinces},
            "video_codec": meeting.video_codec, "record": meeting.record}


def _ids(form: MultiDictProxy[Any], name: str) -> set[int]:
    return {i for i in (parse_int(v) for v in form.getall(name, [])) if i is not None}


def _posted_values(form: MultiDictProxy[Any]) -> dict[str, Any]:
    kind = str(form.get("kind", "lecture"))
    return {"program_id": parse_int(form.get("program_id")), "title": str(form.get("title", "")),
            "description": str(form.get("description", "")), "kind": kind, "date": str(form.get("date", "")),
            "start_time": str(form.get("start_time", "")), "end_time": str(form.get("end_time", "")),
            "presenter_ids": _ids(form, "presenter_ids"), "classroom_ids": _ids(form, "classroom_ids"),
            "province_ids": _ids(form, "province_ids") if kind == "regional" else set(),
            "video_codec": str(form.get("video_codec", "VP8")), "record": form.get("record") is not None}


def meeting_input(values: dict[str, Any], tz: ZoneInfo) -> svc.MeetingIn:
    """meeting_input: the posted form values (date, start and end time in `tz`) as a validated MeetingIn."""
    if values["program_id"] is None:
        raise svc.invalid("program_id", "hãy chọn một chương trình", "choose a program")
    if not values["date"] or not values["start_time"]:
        raise svc.invalid("starts_at", "hãy nhập ngày và giờ bắt đầu", "enter the date and start time")
    if not values["end_time"]:
        raise svc.invalid("ends_at", "hãy nhập giờ kết thúc", "enter the end time")
    starts = svc.parse_local(f"{values['date']}T{values['start_time']}", tz, "starts_at")
    ends = svc.parse_local(f"{values['date']}T{values['end_time']}", tz, "ends_at")
    data = {k: values[k] for k in ("program_id", "title", "description", "kind", "video_codec", "record")}
    data.update(starts_at=starts, ends_at=ends, presenter_ids=sorted(values["presenter_ids"]),
                classroom_ids=sorted(values["classroom_ids"]), province_ids=sorted(values["province_ids"]))
    return svc.validate(svc.MeetingIn, data)


async def meeting_form(request: web.Request) -> web.StreamResponse:
    """meeting_form: create (/meetings/new?program_id=) or edit (/meetings/{id}/edit) a meeting."""
    ident = require(request, Role.OPERATOR)
    tz = request.app[CONFIG].tz
    editing = "id" in request.match_info
    errors: dict[str, str] = {}
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id")) if editing else None
        values = _form_values(meeting, tz, parse_int(request.query.get("program_id")))
        if request.method == "POST":
            form = await read_form(request)
            values = _posted_values(form)
            try:
                data = meeting_input(values, tz)
                if meeting is None:
                    meeting = await svc.create_meeting(s, request, data, actor_id=ident.user_id)
                    code = "meeting-created"
                else:
                    await svc.update_meeting(s, request, meeting, data, actor_id=ident.user_id,
                                             override_reason=str(form.get("override_reason", "")))
                    code = "meeting-saved"
                await s.commit()
                raise web.HTTPSeeOther(f"/meetings/{meeting.id}?notice={code}")
            except ApiError as exc:  # the rules refuse before anything is changed
                errors = _page_error(request, exc)
                values["override_reason"] = str(form.get("override_reason", ""))
        programs = [p for p, _n in await svc.list_programs(s)]
        presenters = await svc.presenter_choices(s)
        classrooms = await svc.classroom_choices(s)
        provinces = await svc.province_choices(s, formats.today(request.app[CONFIG].tz))
    return aiohttp_jinja2.render_template("meetings_form.html", request, {
        "meeting": meeting, "values": values, "errors": errors, "programs": programs,
        "presenters": presenters, "classrooms": classrooms, "provinces": provinces,
        "kinds": list(MeetingKind)}, status=422 if errors else 200)


async def detail_context(s: Any, request: web.Request, ident: Identity, meeting: Meeting,
                         error: str = "", error_code: str = "") -> dict[str, Any]:
    """detail_context: what meetings_detail.html needs: rules, override, conflicts and deadlines."""
    tz = request.app[CONFIG].tz
    now = svc.utcnow()
    override_by = await find_user(s, meeting.publish_override_by)
    reasons = await svc.override_history(s, meeting.id)
    conflicts = await svc.draft_conflicts(s, meeting) if ident.role == Role.OPERATOR else []
    row = await deadlines.for_meeting(s, meeting, schedule.today_in(tz, now), tz)
    return {"m": meeting, "notice": notice(request), "error": error, "error_code": error_code,
            "joinable": svc.is_joinable(meeting, now), "live": svc.is_live(meeting, now), "now": now,
            "notice_ok": schedule.notice_ok(meeting.starts_at, now, tz),
            "last_publish_day": schedule.last_publish_day(meeting.starts_at, tz),
            "earliest_day": schedule.earliest_start_day(now, tz), "override_by": override_by,
            "override_history": reasons,
            "conflicts": [c.text(tz, language(request)) for c in conflicts], "deadlines": row,
            "can_upload": deadlines.can_upload(ident, meeting),
            "doc_labels": {k: v[0] if language(request) == "vi" else v[1] for k, v in deadlines.KIND_LABELS.items()},
            "max_upload_mb": request.app[CONFIG].limits.max_upload_bytes // (1024 * 1024)}


async def meeting_page(request: web.Request) -> web.StreamResponse:
    """meeting_page: one meeting: time (local), status, presenters, invitees, rules, deadlines, actions."""
    ident = require(request, *svc.MEETING_READERS)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        context = await detail_context(s, request, ident, meeting)
    return aiohttp_jinja2.render_template("meetings_detail.html", request, context)


async def meeting_status(request: web.Request) -> web.StreamResponse:
    """meeting_status: POST /meetings/{id}/publish|unpublish|cancel (form buttons; publish may carry a reason)."""
    ident = require(request, Role.OPERATOR)
    action = request.match_info["action"]
    form = await read_form(request)
    mid = int_param(request, "id")
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, mid)
        try:
            if action == "publish":
                await svc.change_status(s, request, meeting, MeetingStatus.PUBLISHED, actor_id=ident.user_id,
                                        override_reason=str(form.get("override_reason", "")))
            else:
                await {"unpublish": svc.unpublish_meeting, "cancel": svc.cancel_meeting}[action](s, request, meeting)
            await s.commit()
        except ApiError as exc:
            if exc.status >= 500:
                raise
            await s.rollback()
            s.expunge_all()
            meeting = await svc.get_meeting(s, ident, mid)
            context = await detail_context(s, request, ident, meeting, field_message(request, exc), exc.code)
            context["notice"] = ""
            context["reason"] = str(form.get("override_reason", ""))
            return aiohttp_jinja2.render_template("meetings_detail.html", request, context, status=exc.status)
    raise web.HTTPSeeOther(f"/meetings/{meeting.id}?notice=meeting-{action}")


async def document_upload(request: web.Request) -> web.StreamResponse:
    """document_upload: POST /meetings/{id}/documents (multipart with ?csrf_token=): attach a deadline document."""
    ident = require(request)
    mid = int_param(request, "id")
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, mid)
        try:
            await deadlines.upload_document(s, request, ident, meeting)
            await s.commit()
        except ApiError as exc:
            if exc.status >= 500:
                raise
            await s.rollback()
            s.expunge_all()
            meeting = await svc.get_meeting(s, ident, mid)
            context = await detail_context(s, request, ident, meeting, field_message(request, exc), exc.code)
            context["notice"] = ""
            return aiohttp_jinja2.render_template("meetings_detail.html", request, context, status=exc.status)
    raise web.HTTPSeeOther(f"/meetings/{mid}?notice=document-added#documents")


async def document_download(request: web.Request) -> web.StreamResponse:
    """document_download: GET /meetings/{id}/documents/{doc}: the file, for whoever may see the meeting."""
    ident = require(request, *svc.MEETING_READERS)
    async with request.app[DB]() as s:
        doc = await deadlines.get_document(s, ident, int_param(request, "id"),
                                           int_param(request, "doc"))
    return deadlines.download(request, doc)


async def meeting_delete(request: web.Request) -> web.StreamResponse:
    """meeting_delete: confirm (GET), then delete (POST) a meeting that is not published."""
    ident = require(request, Role.OPERATOR)
    error = ""
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        if request.method == "POST":
            program_id = meeting.program_id
            try:
                await svc.delete_meeting(s, request, meeting)
                await s.commit()
                raise web.HTTPSeeOther(f"/programs/{program_id}?notice=meeting-deleted")
            except ApiError as exc:
                error = field_message(request, exc)
    return aiohttp_jinja2.render_template("meetings_delete.html", request, {"m": meeting, "error": error},
                                          status=409 if error else 200)


# --- template helpers -----------------------------------------------------------------------------

def _filters(app: web.Application, env: jinja2.Environment) -> None:
    tz = app[CONFIG].tz

    def localtime(value: dt.datetime | None, fmt: str = "%d/%m/%Y %H:%M") -> str:
        return value.astimezone(tz).strftime(fmt) if value else ""

    @jinja2.pass_context
    def meeting_time(ctx: Any, m: Meeting) -> str:
        lang, start, end = ctx["lang"], m.starts_at.astimezone(tz), m.ends_at.astimezone(tz)
        day = ctx["_"](WEEKDAYS[start.weekday()])
        if end.date() != start.date():
            return f"{day}, {formats.datetime(start, lang, tz)} – {formats.datetime(end, lang, tz)}"
        return f"{day}, {formats.date(start, lang, tz)} · {formats.time(start, lang, tz)}–{formats.time(end, lang, tz)}"

    @jinja2.pass_context
    def status_label(ctx: Any, status: MeetingStatus | str) -> str:
        return str(ctx["_"](STATUS_LABELS.get(str(status), str(status))))

    @jinja2.pass_context
    def kind_label(ctx: Any, kind: MeetingKind | str) -> str:
        return str(ctx["_"](KIND_LABELS.get(str(kind), str(kind))))

    env.filters["localtime"] = localtime
    env.filters["localdate"] = lambda v: localtime(v, "%d/%m/%Y")
    env.filters["meeting_time"] = meeting_time
    env.filters["status_label"] = status_label
    env.filters["kind_label"] = kind_label
    env.globals["is_joinable"] = svc.is_joinable
    env.globals["is_live"] = svc.is_live


def can_enter_live(ident: Identity | None, meeting: Meeting) -> bool:
    """can_enter_live: show the "Enter the live room" link (staff until it ended; classrooms when joinable)."""
    if ident is None or meeting.ended_at is not None:
        return False
    if ident.role in (Role.OPERATOR, Role.TRAINER, Role.LEADER):
        return meeting.status != MeetingStatus.CANCELLED
    return svc.is_joinable(meeting)


def setup(app: web.Application) -> None:
    """setup: add the program and meeting pages and the template filters."""
    _filters(app, aiohttp_jinja2.get_env(app))
    aiohttp_jinja2.get_env(app).globals["can_enter_live"] = can_enter_live
    r = app.router
    r.add_get("/programs", programs_page, name="programs")
    r.add_get(r"/programs/{id:\d+}", program_page, name="program")
    r.add_get("/meetings", meetings_page, name="meetings")
    r.add_get(r"/meetings/{id:\d+}", meeting_page, name="meeting")
    r.add_post(r"/meetings/{id:\d+}/{action:publish|unpublish|cancel}", meeting_status, name="meeting-status")
    r.add_post(r"/meetings/{id:\d+}/documents", document_upload, name="meeting-document-upload")
    r.add_get(r"/meetings/{id:\d+}/documents/{doc:\d+}", document_download, name="meeting-document")
    for path, handler, name in (("/programs/new", program_form, "program-new"),
                                (r"/programs/{id:\d+}/edit", program_form, "program-edit"),
                                (r"/programs/{id:\d+}/delete", program_delete, "program-delete"),
                                ("/meetings/new", meeting_form, "meeting-new"),
                                (r"/meetings/{id:\d+}/edit", meeting_form, "meeting-edit"),
                                (r"/meetings/{id:\d+}/delete", meeting_delete, "meeting-delete")):
        resource = r.add_resource(path, name=name)
        resource.add_route("GET", handler)
        resource.add_route("POST", handler)
