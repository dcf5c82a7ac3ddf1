"""server.api.programs: /api/v1/programs (operators write; operators, trainers and leaders read)."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel

from server.api.meetings import MeetingOut, meeting_out
from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Program, Role
from server.openapi import endpoint, int_param, json_response, parse_body
from server.schedule import meetings as svc

READERS = (Role.OPERATOR, Role.TRAINER, Role.LEADER)
WRITERS = (Role.OPERATOR,)


class ProgramOut(BaseModel):
    """ProgramOut: a training program."""

    id: int
    title: str
    description: str
    created_at: dt.datetime
    meeting_count: int


def program_out(request: web.Request, program: Program, count: int) -> ProgramOut:
    """program_out: a Program as ProgramOut (times in the configured timezone)."""
    tz = request.app[CONFIG].tz
    return ProgramOut(id=program.id, title=program.title, description=program.description,
                      created_at=svc.to_local(program.created_at, tz), meeting_count=count)


@endpoint("GET", "/api/v1/programs", name="api-programs", summary="List training programs", roles=READERS,
          response=ProgramOut, response_list=True, tag="programs")
async def list_programs(request: web.Request) -> web.Response:
    """list_programs: every program, newest first."""
    async with request.app[DB]() as s:
        rows = await svc.list_programs(s)
    return json_response([program_out(request, p, n) for p, n in rows])


@endpoint("POST", "/api/v1/programs", name="api-program-create", summary="Create a training program",
          roles=WRITERS, body=svc.ProgramIn, response=ProgramOut, status=201, tag="programs")
async def create_program(request: web.Request) -> web.Response:
    """create_program: add a program."""
    data = await parse_body(request, svc.ProgramIn)
    ident = require(request)
    async with request.app[DB]() as s:
        program = await svc.create_program(s, request, data, actor_id=ident.user_id)
        await s.commit()
    return json_response(program_out(request, program, 0), status=201)


@endpoint("GET", "/api/v1/programs/{id}", name="api-program", summary="Get a training program", roles=READERS,
          response=ProgramOut, tag="programs")
async def get_program(request: web.Request) -> web.Response:
    """get_program: one program."""
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        program = await svc.get_program(s, pid)
        count = await svc.count_meetings(s, pid)
    return json_response(program_out(request, program, count))


@endpoint("PATCH", "/api/v1/programs/{id}", name="api-program-update", summary="Change a training program",
          roles=WRITERS, body=svc.ProgramPatch, response=ProgramOut, tag="programs")
async def update_program(request: web.Request) -> web.Response:
    """update_program: change the given fields of a program."""
    pid = int_param(request, "id")
    data = await parse_body(request, svc.ProgramPatch)
    async with request.app[DB]() as s:
        program = await svc.get_program(s, pid)
        await svc.update_program(s, request, program, data)
        await s.commit()
        count = await svc.count_meetings(s, pid)
    return json_response(program_out(request, program, count))


@endpoint("DELETE", "/api/v1/programs/{id}", name="api-program-delete",
          summary="Delete a training program (refused with 409 while it has meetings)", roles=WRITERS,
          status=204, tag="programs",
          errors=(409,))
async def delete_program(request: web.Request) -> web.Response:
    """delete_program: remove a program without meetings."""
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        program = await svc.get_program(s, pid)
        await svc.delete_program(s, request, program)
        await s.commit()
    return web.Response(status=204)


@endpoint("GET", "/api/v1/programs/{id}/meetings", name="api-program-meetings",
          summary="Meetings of a training program that the caller may see",
          roles=(Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM), response=MeetingOut,
          response_list=True, tag="programs")
async def program_meetings(request: web.Request) -> web.Response:
    """program_meetings: the program's meetings visible to the caller, by start time."""
    ident = require(request)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        await svc.get_program(s, pid)
        rows = await svc.list_meetings(s, ident, program_id=pid)
    return json_response([meeting_out(request, m) for m in rows])
