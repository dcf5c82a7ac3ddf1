"""server.api.meetings: /api/v1/meetings.

Operators create, change, delete, publish, unpublish and cancel; trainers and leaders read the
meetings they present; classrooms read the published meetings they are invited to; others get 403.
Times are ISO 8601 with an offset (answers use the configured timezone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from server import keys
from server import meetings as svc
from server.auth import require
from server.db.models import Meeting, MeetingKind, MeetingStatus, Role
from server.openapi import endpoint, int_param, json_response, parse_body

READERS = (Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM)
WRITERS = (Role.OPERATOR,)


class PersonOut(BaseModel):
    """PersonOut: a presenter of a meeting."""

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


class MeetingOut(BaseModel):
    """MeetingOut: a meeting with its presenters and invitees."""

    id: int
    program_id: int
    program_title: str
    title: str
    description: str
    kind: MeetingKind
    status: MeetingStatus
    starts_at: dt.datetime
    ends_at: dt.datetime
    presenters: list[PersonOut]
    classrooms: list[ClassroomRef]
    provinces: list[UnitRef]
    video_codec: str
    record: bool
    created_at: dt.datetime


def meeting_out(request: web.Request, m: Meeting) -> MeetingOut:
    """meeting_out: a loaded Meeting as MeetingOut (times in the configured timezone)."""
    tz = request.app[keys.CONFIG].tz
    return MeetingOut(
        id=m.id, program_id=m.program_id, program_title=m.program.title, title=m.title,
        description=m.description, kind=m.kind, status=m.status,
        starts_at=svc.to_local(m.starts_at, tz), ends_at=svc.to_local(m.ends_at, tz),
        presenters=[PersonOut(id=u.id, username=u.username, display_name=u.display_name, role=u.role)
                    for u in m.presenters],
        classrooms=[ClassroomRef(id=c.id, code=c.code, name=c.name) for c in m.classrooms],
        provinces=[UnitRef(id=u.id, code=u.code, name=u.name) for u in m.provinces],
        video_codec=m.video_codec, record=m.record, created_at=svc.to_local(m.created_at, tz))


@endpoint("GET", "/api/v1/meetings", name="api-meetings", summary="List the meetings the caller may see",
          roles=READERS, response=MeetingOut, response_list=True, tag="meetings",
          query=(("from", "Only meetings ending after this date or ISO 8601 time (local when no offset)"),
                 ("to", "Only meetings starting before this date or ISO 8601 time"),
                 ("status", "draft, published or cancelled")))
async def list_meetings(request: web.Request) -> web.Response:
    """list_meetings: meetings visible to the caller, filtered by ?from=&to=&status=, by start time."""
    ident = require(request)
    tz = request.app[keys.CONFIG].tz
    start = svc.parse_bound(request.query["from"], tz, "from") if request.query.get("from") else None
    end = svc.parse_bound(request.query["to"], tz, "to") if request.query.get("to") else None
    status = None
    if request.query.get("status"):
        try:
            status = MeetingStatus(request.query["status"])
        except ValueError:
            raise svc.invalid("status", "phải là draft, published hoặc cancelled",
                              "must be draft, published or cancelled") from None
    async with request.app[keys.DB]() as s:
        rows = await svc.list_meetings(s, ident, start=start, end=end, status=status)
    return json_response([meeting_out(request, m) for m in rows])


@endpoint("POST", "/api/v1/meetings", name="api-meeting-create", summary="Create a meeting (as a draft)",
          roles=WRITERS, body=svc.MeetingIn, response=MeetingOut, status=201, tag="meetings")
async def create_meeting(request: web.Request) -> web.Response:
    """create_meeting: add a draft meeting."""
    ident = require(request)
    data = await parse_body(request, svc.MeetingIn)
    async with request.app[keys.DB]() as s:
        meeting = await svc.create_meeting(s, request, data, actor_id=ident.user_id)
        await s.commit()
        meeting = await svc.get_meeting(s, ident, meeting.id)
    return json_response(meeting_out(request, meeting), status=201)


@endpoint("GET", "/api/v1/meetings/{id}", name="api-meeting", summary="Get a meeting", roles=READERS,
          response=MeetingOut, tag="meetings")
async def get_meeting(request: web.Request) -> web.Response:
    """get_meeting: one meeting the caller may see (404 otherwise)."""
    ident = require(request)
    async with request.app[keys.DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
    return json_response(meeting_out(request, meeting))


@endpoint("PATCH", "/api/v1/meetings/{id}", name="api-meeting-update",
          summary="Change a meeting (omitted fields stay)", roles=WRITERS, body=svc.MeetingPatch,
          response=MeetingOut, tag="meetings")
async def update_meeting(request: web.Request) -> web.Response:
    """update_meeting: change the given fields; the result is validated as a whole."""
    ident = require(request)
    mid = int_param(request, "id")
    patch = await parse_body(request, svc.MeetingPatch)
    async with request.app[keys.DB]() as s:
        meeting = await svc.get_meeting(s, ident, mid)
        merged = svc.meeting_fields(meeting)
        merged.update(patch.model_dump(exclude_unset=True, exclude_none=True))
        await svc.update_meeting(s, request, meeting, svc.validate(svc.MeetingIn, merged))
        await s.commit()
        s.expunge_all()
        meeting = await svc.get_meeting(s, ident, mid)
    return json_response(meeting_out(request, meeting))


@endpoint("DELETE", "/api/v1/meetings/{id}", name="api-meeting-delete",
          summary="Delete a draft or cancelled meeting (409 when published)", roles=WRITERS, status=204,
          tag="meetings")
async def delete_meeting(request: web.Request) -> web.Response:
    """delete_meeting: remove a meeting that is not published."""
    ident = require(request)
    async with request.app[keys.DB]() as s:
        meeting = await svc.get_meeting(s, ident, int_param(request, "id"))
        await svc.delete_meeting(s, request, meeting)
        await s.commit()
    return web.Response(status=204)


Change = Callable[[AsyncSession, web.Request | None, Meeting], Awaitable[Meeting]]


async def _change(request: web.Request, change: Change) -> web.Response:
    ident = require(request)
    mid = int_param(request, "id")
    async with request.app[keys.DB]() as s:
        meeting = await svc.get_meeting(s, ident, mid)
        await change(s, request, meeting)
        await s.commit()
    return json_response(meeting_out(request, meeting))


@endpoint("POST", "/api/v1/meetings/{id}/publish", name="api-meeting-publish",
          summary="Publish a meeting (invitees see it)", roles=WRITERS, response=MeetingOut, tag="meetings")
async def publish_meeting(request: web.Request) -> web.Response:
    """publish_meeting: draft or cancelled → published."""
    return await _change(request, svc.publish_meeting)


@endpoint("POST", "/api/v1/meetings/{id}/unpublish", name="api-meeting-unpublish",
          summary="Take a meeting back to draft", roles=WRITERS, response=MeetingOut, tag="meetings")
async def unpublish_meeting(request: web.Request) -> web.Response:
    """unpublish_meeting: published or cancelled → draft."""
    return await _change(request, svc.unpublish_meeting)


@endpoint("POST", "/api/v1/meetings/{id}/cancel", name="api-meeting-cancel", summary="Cancel a meeting",
          roles=WRITERS, response=MeetingOut, tag="meetings")
async def cancel_meeting(request: web.Request) -> web.Response:
    """cancel_meeting: draft or published → cancelled."""
    return await _change(request, svc.cancel_meeting)

