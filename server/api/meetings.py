"""server.api.meetings: /api/v1/meetings.

Operators create, change, delete, publish, unpublish and cancel; trainers and leaders read the
meetings they present; classrooms read the published meetings they are invited to; others get 403.
Times are ISO 8601 with an offset (answers use the configured timezone).

Scheduling rules (`server.schedule.rules`): publishing, and editing a published meeting, answer 409 `too-soon`
(less than 10 days' notice: send `override_reason`), `ended` or `overlap` (the message names the other
meeting and what is shared; `error.conflicts` lists them). Drafts are never refused for overlaps: their
`conflicts` are warnings. Operators import a term's schedule from CSV (`/api/v1/meetings/import`);
regional meetings carry documents with deadlines (`/api/v1/meetings/{id}/documents`, `/api/v1/deadlines`).
A presenter of a meeting or an operator ends it for everyone (`/end`) or moves its end later (`/extend`, by the same
overlap rules; 409 `overlap`): see docs/protocol.md, Ending a meeting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from server.api.uploads import import_error_response, read_upload
from server.auth import Identity, require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Meeting, MeetingDocument, MeetingKind, MeetingStatus, Role
from server.errors import ApiError
from server.live import ending as live_ending
from server.openapi import Upload, endpoint, int_param, json_response, one_of, parse_body
from server.people.importer import ImportFailed
from server.schedule import deadlines
from server.schedule import ending as schedule_ending
from server.schedule import importer as schedule_import
from server.schedule import meetings as svc
from server.schedule import rules as schedule

READERS = svc.MEETING_READERS
WRITERS = (Role.OPERATOR,)


class PresenterOut(BaseModel):
    """PresenterOut: a presenter of a meeting."""

    id: int
    username: str
    display_name: str
    role: Role


class ClassroomRef(BaseModel):
    """ClassroomRef: an invited classroom."""

    id: int
    code: str
    name: str


class UnitRef(BaseModel):
    """UnitRef: a province taking part in a regional meeting."""

    id: int
    code: str
    name: str


class SharedOut(BaseModel):
    """SharedOut: what two overlapping meetings share (province, leader, trainer or classroom)."""

    kind: str
    id: int
    name: str


class ConflictOut(BaseModel):
    """ConflictOut: another published meeting overlapping this one in time and sharing something."""

    meeting_id: int
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    shared: list[SharedOut]
    message: str


class OverrideOut(BaseModel):
    """OverrideOut: one written reason for publishing (`publish`) or changing (`update`) a meeting inside the
    10-day window, its author and time."""

    action: str
    reason: str
    by: int | None
    by_name: str
    at: dt.datetime


class MeetingOut(BaseModel):
    """MeetingOut: a meeting with its presenters and invitees (`conflicts`: warnings for a draft)."""

    id: int
    program_id: int
    program_title: str
    title: str
    description: str
    kind: MeetingKind
    status: MeetingStatus
    starts_at: dt.datetime
    ends_at: dt.datetime
    presenters: list[PresenterOut]
    classrooms: list[ClassroomRef]
    provinces: list[UnitRef]
    video_codec: str
    record: bool
    created_at: dt.datetime
    sequence: int = 0
    publish_override_reason: str = ""
    publish_override_by: int | None = None
    publish_override_at: dt.datetime | None = None
    last_publish_day: dt.date
    conflicts: list[ConflictOut] = []
    override_history: list[OverrideOut] = []  # one meeting's answers only (not the lists)
    ended_at: dt.datetime | None = None  # ended for everyone (server.schedule.ending): the real end


def conflicts_out(request: web.Request, found: list[schedule.Conflict]) -> list[ConflictOut]:
    """conflicts_out: conflicts as ConflictOut (times local; message in both languages)."""
    tz = request.app[CONFIG].tz
    return [ConflictOut(meeting_id=c.meeting_id, title=c.title, starts_at=c.starts_at.astimezone(tz),
                        ends_at=c.ends_at.astimezone(tz),
                        shared=[SharedOut(kind=x.kind, id=x.id, name=x.name) for x in c.shared],
                        message=f"{c.text(tz, 'vi')} / {c.text(tz, 'en')}") for c in found]


async def meeting_out_checked(request: web.Request, s: AsyncSession, ident: Identity, m: Meeting) -> MeetingOut:
    """meeting_out_checked: MeetingOut with every 10-day override reason and, for operators, the conflicts a draft
    would meet when published."""
    out = meeting_out(request, m)
    tz = request.app[CONFIG].tz
    out.override_history = [OverrideOut(action=r.action, reason=r.reason, by=r.by,
                                        by_name=(u.display_name or u.username) if u else "",
                                        at=svc.to_local(r.at, tz))
                            for r, u in await svc.override_history(s, m.id)]
    if ident.role == Role.OPERATOR and m.status != MeetingStatus.PUBLISHED:
        out.conflicts = conflicts_out(request, await svc.draft_conflicts(s, m))
    return out


def meeting_out(request: web.Request, m: Meeting) -> MeetingOut:
    """meeting_out: a loaded Meeting as MeetingOut (times in the configured timezone)."""
    tz = request.app[CONFIG].tz
    at = m.publish_override_at
    return MeetingOut(
        id=m.id, program_id=m.program_id, program_title=m.program.title, title=m.title,
        description=m.description, kind=m.kind, status=m.status,
        starts_at=svc.to_local(m.starts_at, tz), ends_at=svc.to_local(m.ends_at, tz),
        presenters=[PresenterOut(id=u.id, username=u.username, display_name=u.display_name, role=u.role)
                    for u in m.presenters],
        classrooms=[ClassroomRef(id=c.id, code=c.code, name=c.name) for c in m.classrooms],
        provinces=[UnitRef(id=u.id, code=u.code, name=u.name) for u in m.provinces],
        video_codec=m.video_codec, record=m.record, created_at=svc.to_local(m.created_at, tz),
        sequence=m.sequence or 0, publish_override_reason=m.publish_override_reason or "",
        publish_override_by=m.publish_override_by, publish_override_at=svc.to_local(at, tz) if at else None,
        last_publish_day=schedule.last_publish_day(m.starts_at, tz),
        ended_at=svc.to_local(m.ended_at, tz) if m.ended_at else None)


@endpoint("GET", "/api/v1/meetings", name="api-meetings", summary="List the meetings the caller may see",
          roles=READERS, response=MeetingOut, response_list=True, tag="meetings",
          query=(("from", "Only meetings ending after this date or ISO 8601 time (local when no offset)"),
                 ("to", "Only meetings starting before this date or ISO 8601 time"),
                 ("status", "draft, published or cancelled")),
          schemas={"status": one_of(*(s.value for s in MeetingStatus))})
async def list_meetings(request: web.Request) -> web.Response:
    """list_meetings: meetings visible to the caller, filtered by ?from=&to=&status=, by start time."""
    ident = require(request)
    tz = request.app[CONFIG].tz
    start = svc.parse_bound(request.query["from"], tz, "from") if request.query.get("from") else None
    end = svc.parse_bound(request.query["to"], tz, "to") if request.query.get("to") else None
    status = None
    if request.query.get("status"):
        try:
            status = MeetingStatus(request.query["status"])
        except ValueError:
            raise svc.invalid("status", "phải là draft, published hoặc cancelled",
                              "must be draft, published or cancelled") from None
    async with request.app[DB]() as s:
        rows = await svc.list_meetings(s, ident, start=start, end=end, status=status)
    return json_response([meeting_out(request, m) for m in rows])


@endpoint("POST", "/api/v1/meetings", name="api-meeting-create", summary="Create a meeting (as a draft)",
          roles=WRITERS, body=svc.MeetingIn, response=MeetingOut, status=201, tag="meetings")
async def create_meeting(request: web.Request) -> web.Response:
    """create_meeting: add a draft meeting."""
    ident = require(request)
    data = await parse_body(request, svc.MeetingIn)
    async with request.app[DB]() as s:
        meeting = await svc.create_meeting(s, request, data, actor_id=ident.user_id)
        await s.commit()
        meeting = await svc.get_meeting(s, ident, meeting.id)
        out = await meeting_out_checked(request, s, ident, meeting)
    return json_response(out, status=201)


@endpoint("GET", r"/api/v1/meetings/{id:\d+}", name="api-meeting", summary="Get a meeting", roles=READERS,
          response=MeetingOut, tag="meetings")
async def get_meeting(request: web.Request) -> web.Response:
    """get_meeting: one meeting the caller may see (404 otherwise)."""
    ident = require(request)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        out = await meeting_out_checked(request, s, ident, meeting)
    return json_response(out)


@endpoint("PATCH", r"/api/v1/meetings/{id:\d+}", name="api-meeting-update",
          summary="Change a meeting (omitted fields stay; a published one is re-checked and its invitees told)",
          roles=WRITERS, body=svc.MeetingPatch,
          response=MeetingOut, tag="meetings",
          errors=(409,))
async def update_meeting(request: web.Request) -> web.Response:
    """update_meeting: change the given fields; the result is validated as a whole."""
    ident = require(request)
    mid = int_param(request, "id")
    patch = await parse_body(request, svc.MeetingPatch)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, mid)
        merged = svc.meeting_fields(meeting)
        changes = patch.model_dump(exclude_unset=True, exclude_none=True)
        reason = changes.pop("override_reason", None)
        merged.update(changes)
        await svc.update_meeting(s, request, meeting, svc.validate(svc.MeetingIn, merged), override_reason=reason,
                                 actor_id=ident.user_id)
        await s.commit()
        s.expunge_all()
        meeting = await svc.get_meeting(s, ident, mid)
        out = await meeting_out_checked(request, s, ident, meeting)
    return json_response(out)


@endpoint("DELETE", r"/api/v1/meetings/{id:\d+}", name="api-meeting-delete",
          summary="Delete a draft or cancelled meeting (409 when published)", roles=WRITERS, status=204,
          tag="meetings",
          errors=(409,))
async def delete_meeting(request: web.Request) -> web.Response:
    """delete_meeting: remove a meeting that is not published."""
    ident = require(request)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        await svc.delete_meeting(s, request, meeting)
        await s.commit()
    return web.Response(status=204)


Change = Callable[[AsyncSession, web.Request | None, Meeting], Awaitable[Meeting]]


async def _change(request: web.Request, change: Change) -> web.Response:
    ident = require(request)
    mid = int_param(request, "id")
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, mid)
        await change(s, request, meeting)
        await s.commit()
    return json_response(meeting_out(request, meeting))


@endpoint("POST", "/api/v1/meetings/{id}/publish", name="api-meeting-publish",
          summary="Publish a meeting (invitees see it); body optional: {override_reason} for less than 10 days' notice",
          roles=WRITERS, body=svc.PublishIn, response=MeetingOut, tag="meetings",
          body_optional=True, errors=(409,))
async def publish_meeting(request: web.Request) -> web.Response:
    """publish_meeting: draft or cancelled → published (409 too-soon / ended / overlap)."""
    reason = None
    if request.can_read_body and request.content_type == "application/json":
        raw = await request.read()
        if raw.strip():
            reason = (await parse_body(request, svc.PublishIn)).override_reason

    async def publish(s: AsyncSession, req: web.Request | None, m: Meeting) -> Meeting:
        return await svc.publish_meeting(s, req, m, override_reason=reason)

    return await _change(request, publish)


@endpoint("POST", "/api/v1/meetings/{id}/unpublish", name="api-meeting-unpublish",
          summary="Take a meeting back to draft", roles=WRITERS, response=MeetingOut, tag="meetings",
          errors=(409,))
async def unpublish_meeting(request: web.Request) -> web.Response:
    """unpublish_meeting: published or cancelled → draft."""
    return await _change(request, svc.unpublish_meeting)


@endpoint("POST", "/api/v1/meetings/{id}/cancel", name="api-meeting-cancel", summary="Cancel a meeting",
          roles=WRITERS, response=MeetingOut, tag="meetings",
          errors=(409,))
async def cancel_meeting(request: web.Request) -> web.Response:
    """cancel_meeting: draft or published → cancelled."""
    return await _change(request, svc.cancel_meeting)


# --- ending and extending a live meeting (server.live.ending) ------------------------------------

LIVE_MODERATORS = (Role.OPERATOR, Role.TRAINER, Role.LEADER)


class ExtendIn(BaseModel):
    """ExtendIn: how many minutes later the meeting ends (from its scheduled end, or from now when that passed)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    minutes: int = Field(ge=1, le=schedule_ending.MAX_EXTENSION_MINUTES)


@endpoint("POST", "/api/v1/meetings/{id}/end", name="api-meeting-end",
          summary="End the meeting for everyone: its room and lobby are told and closed, its recording finalized "
                  "(an ended meeting stays ended; ending it again changes nothing)",
          roles=LIVE_MODERATORS, response=MeetingOut, tag="meetings", errors=(409,))
async def end_meeting(request: web.Request) -> web.Response:
    """end_meeting: a presenter of the meeting or an operator ends it for everyone (404 for other presenters; 409
    `not-started` earlier than 30 minutes before its start)."""
    ident = require(request)
    mid = int_param(request, "id")
    async with request.app[DB]() as s:
        await svc.get_meeting(s, ident, mid)  # 404 unless the caller sees it (a trainer: the meetings they present)
    await live_ending.end_meeting(request.app, mid, ident, "ended")
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, mid)
    return json_response(meeting_out(request, meeting))


@endpoint("POST", "/api/v1/meetings/{id}/extend", name="api-meeting-extend",
          summary="Move a meeting's end later by {minutes} (from now when its end has passed), by the same overlap "
                  "rules as scheduling", roles=LIVE_MODERATORS, body=ExtendIn, response=MeetingOut, tag="meetings",
          errors=(409,))
async def extend_meeting(request: web.Request) -> web.Response:
    """extend_meeting: 409 `overlap` (another booking of its presenters or classrooms), `ended` or `cancelled`."""
    ident = require(request)
    mid = int_param(request, "id")
    body = await parse_body(request, ExtendIn)
    async with request.app[DB]() as s:
        await svc.get_meeting(s, ident, mid)
    await live_ending.extend_meeting(request.app, mid, body.minutes, ident)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, mid)
    return json_response(meeting_out(request, meeting))


@endpoint("GET", "/api/v1/meetings/{id}/conflicts", name="api-meeting-conflicts",
          summary="The published meetings this one overlaps (what blocks publishing it)", roles=WRITERS,
          response=ConflictOut, response_list=True, tag="meetings")
async def meeting_conflicts(request: web.Request) -> web.Response:
    """meeting_conflicts: the conflicts of a meeting with the other published meetings."""
    ident = require(request)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        found = await schedule.find_conflicts(s, schedule.Plan.of(meeting))
    return json_response(conflicts_out(request, found))


# --- schedule import ------------------------------------------------------------------------------

class ScheduleImportOut(BaseModel):
    """ScheduleImportOut: rows read and the draft meetings created."""

    rows: int
    created: int
    meeting_ids: list[int]


@endpoint("POST", "/api/v1/meetings/import", name="api-meetings-csv",
          summary="Import a term's meetings from CSV as drafts "
                  "(program,title,kind,date,start,end,presenters,classrooms,provinces); all or nothing",
          roles=WRITERS, response=ScheduleImportOut, tag="meetings",
          upload=Upload(csv=True))
async def import_meetings(request: web.Request) -> web.Response:
    """import_meetings: CSV body or multipart `file`; 422 lists every row error and writes nothing."""
    ident = require(request)
    data, _name = await read_upload(request)
    try:
        result = await schedule_import.run_import(request.app[DB], request, data, request.app[CONFIG].tz,
                                                  actor_id=ident.user_id)
    except ImportFailed as exc:
        return import_error_response(request, exc)
    return json_response(ScheduleImportOut(rows=result.rows, created=len(result.meeting_ids),
                                           meeting_ids=result.meeting_ids))


# --- regional-meeting documents and deadlines -----------------------------------------------------

class DocumentOut(BaseModel):
    """DocumentOut: a file attached to a regional meeting."""

    id: int
    meeting_id: int
    kind: str
    filename: str
    size: int
    content_type: str
    sha256: str
    uploaded_at: dt.datetime
    uploaded_by: int | None
    url: str


class DeadlineOut(BaseModel):
    """DeadlineOut: one expected document: due day (local), state, when it arrived and whether late."""

    kind: str
    due: dt.date
    state: Literal["due", "overdue", "received"]
    received_at: dt.datetime | None
    late: bool
    days_left: int


class MeetingDeadlinesOut(BaseModel):
    """MeetingDeadlinesOut: a published regional meeting with its deadlines and documents."""

    meeting_id: int
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    provinces: list[UnitRef]
    deadlines: list[DeadlineOut]
    documents: list[DocumentOut]
    can_upload: bool


def document_out(request: web.Request, d: MeetingDocument) -> DocumentOut:
    """document_out: a MeetingDocument with its download URL."""
    tz = request.app[CONFIG].tz
    return DocumentOut(id=d.id, meeting_id=d.meeting_id, kind=d.kind, filename=d.filename, size=d.size,
                       content_type=d.content_type, sha256=d.sha256, uploaded_at=d.uploaded_at.astimezone(tz),
                       uploaded_by=d.uploaded_by, url=f"/api/v1/meetings/{d.meeting_id}/documents/{d.id}/file")


def deadlines_out(request: web.Request, ident: Identity, row: deadlines.MeetingDeadlines) -> MeetingDeadlinesOut:
    """deadlines_out: a MeetingDeadlines for the API."""
    tz = request.app[CONFIG].tz
    m = row.meeting
    return MeetingDeadlinesOut(
        meeting_id=m.id, title=m.title, starts_at=m.starts_at.astimezone(tz), ends_at=m.ends_at.astimezone(tz),
        provinces=[UnitRef(id=u.id, code=u.code, name=u.name) for u in m.provinces],
        deadlines=[DeadlineOut(kind=d.kind, due=d.due, state=d.state,
                               received_at=d.received_at.astimezone(tz) if d.received_at else None, late=d.late,
                               days_left=d.days_left) for d in row.deadlines],
        documents=[document_out(request, d) for d in row.documents], can_upload=deadlines.can_upload(ident, m))


@endpoint("GET", "/api/v1/deadlines", name="api-deadlines",
          summary="Regional-meeting deadlines the caller may see (plan and joint report 15 days before, "
                  "result report 15 days after)", roles=READERS, response=MeetingDeadlinesOut, response_list=True,
          tag="deadlines", query=(("state", "due, overdue or received"),
                                  ("today", "Compute the states as on this local date (YYYY-MM-DD)")),
          schemas={"state": one_of("due", "overdue", "received")})
async def list_deadlines(request: web.Request) -> web.Response:
    """list_deadlines: the dashboard rows (operators: all; presenters and classrooms: their meetings)."""
    ident = require(request)
    tz = request.app[CONFIG].tz
    state = request.query.get("state") or None
    if state not in (None, "due", "overdue", "received"):
        raise svc.invalid("state", "phải là due, overdue hoặc received", "must be due, overdue or received")
    today = schedule.today_in(tz)
    if request.query.get("today"):
        try:
            today = dt.date.fromisoformat(request.query["today"])
        except ValueError:
            raise svc.invalid("today", "ngày không hợp lệ", "not a valid date") from None
    async with request.app[DB]() as s:
        rows = await deadlines.dashboard(s, ident, today, tz, state)  # type: ignore[arg-type]
    return json_response([deadlines_out(request, ident, r) for r in rows])


@endpoint("GET", "/api/v1/meetings/{id}/documents", name="api-meeting-documents",
          summary="The documents and deadlines of a published regional meeting", roles=READERS,
          response=MeetingDeadlinesOut, tag="deadlines")
async def meeting_documents(request: web.Request) -> web.Response:
    """meeting_documents: deadlines and files of one regional meeting (404 for other meetings)."""
    ident = require(request)
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        row = await deadlines.for_meeting(s, meeting, schedule.today_in(tz), tz)
    if row is None:
        raise ApiError(404, "not-regional", "Chỉ hội nghị vùng đã công bố mới có hạn nộp tài liệu. / "
                                            "Only published regional meetings have document deadlines.")
    return json_response(deadlines_out(request, ident, row))


@endpoint("POST", "/api/v1/meetings/{id}/documents", name="api-meeting-document-upload",
          summary="Upload a plan, joint report or result report (multipart: kind, file; PDF/DOCX/XLSX/ODT/ODS)",
          roles=READERS, response=DocumentOut, status=201, tag="deadlines",
          query=(("kind", "plan, joint_report or result_report (or a form field before the file)"),),
          schemas={"kind": one_of("plan", "joint_report", "result_report")},
          upload=Upload(fields=(("kind", "plan, joint_report or result_report"),)))
async def upload_document(request: web.Request) -> web.Response:
    """upload_document: attach a document (operators, the meeting's presenters, its invited classrooms)."""
    ident = require(request)
    async with request.app[DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        doc = await deadlines.upload_document(s, request, ident, meeting)
        await s.commit()
    return json_response(document_out(request, doc), status=201)


@endpoint("GET", "/api/v1/meetings/{id}/documents/{doc}/file", name="api-meeting-document-file",
          summary="Download a document of a meeting the caller may see", roles=READERS,
          content_type="application/octet-stream", tag="deadlines",
          partial=True, errors=(410, 416))
async def document_file(request: web.Request) -> web.StreamResponse:
    """document_file: the stored file, as an attachment."""
    ident = require(request)
    async with request.app[DB]() as s:
        doc = await deadlines.get_document(s, ident, int_param(request, "id"), int_param(request, "doc"))
    return deadlines.download(request, doc)
