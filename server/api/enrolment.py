"""server.api.enrolment: /api/v1 a program's trainers and enrolled learners, and the caller's programs.

Operators enrol learners (by id or username) and assign trainers; trainers of the program may list its
learners. Every change is audited.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.auth import require
from server.db.engine import DB
from server.db.models import Role, User
from server.errors import ApiError
from server.inputs import Id
from server.openapi import endpoint, int_param, json_response, parse_body
from server.people import enrolment as svc

OPERATOR = (Role.OPERATOR,)


class MemberOut(BaseModel):
    """MemberOut: an account in a program's lists."""

    id: int
    username: str
    display_name: str
    role: Role
    email: str


class PeopleIn(BaseModel):
    """PeopleIn: accounts by id and/or username."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    user_ids: list[Id] = Field(default_factory=list, max_length=20000)
    usernames: list[str] = Field(default_factory=list, max_length=20000)


class EnrolOut(BaseModel):
    """EnrolOut: what a change did and the list it left."""

    added: int
    removed: int
    people: list[MemberOut]


class MyProgramOut(BaseModel):
    """MyProgramOut: a program the caller belongs to, and whether the caller manages it."""

    id: int
    title: str
    description: str
    manage: bool
    learner: bool


def person_out(u: User) -> MemberOut:
    """person_out: a User as MemberOut."""
    return MemberOut(id=u.id, username=u.username, display_name=u.display_name, role=u.role, email=u.email)


@endpoint("GET", "/api/v1/programs/{id}/learners", name="api-program-learners",
          summary="Enrolled learners of a program (operators, trainers of the program)", response=MemberOut,
          response_list=True, tag="programs")
async def list_learners(request: web.Request) -> web.Response:
    """list_learners: the program's learners."""
    ident = require(request)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        await svc.require_access(s, ident, pid, manage=True)
        people = await svc.learners(s, pid)
    return json_response([person_out(u) for u in people])


@endpoint("POST", "/api/v1/programs/{id}/learners", name="api-program-learners-add",
          summary="Enrol learners (accounts of role learner, by id or username)", roles=OPERATOR, body=PeopleIn,
          response=EnrolOut, tag="programs")
async def add_learners(request: web.Request) -> web.Response:
    """add_learners: enrol more learners (those enrolled stay)."""
    ident = require(request)
    pid = int_param(request, "id")
    data = await parse_body(request, PeopleIn)
    async with request.app[DB]() as s:
        await svc.require_access(s, ident, pid, manage=True)
        users = await svc.resolve_users(s, "user_ids", (Role.LEARNER,), data.user_ids, data.usernames)
        added = await svc.add_learners(s, request, pid, users)
        await s.commit()
        people = await svc.learners(s, pid)
    return json_response(EnrolOut(added=added, removed=0, people=[person_out(u) for u in people]))


@endpoint("PUT", "/api/v1/programs/{id}/learners", name="api-program-learners-set",
          summary="Set the enrolled learners exactly", roles=OPERATOR, body=PeopleIn, response=EnrolOut,
          tag="programs")
async def set_learners(request: web.Request) -> web.Response:
    """set_learners: replace the program's learners."""
    ident = require(request)
    pid = int_param(request, "id")
    data = await parse_body(request, PeopleIn)
    async with request.app[DB]() as s:
        await svc.require_access(s, ident, pid, manage=True)
        users = await svc.resolve_users(s, "user_ids", (Role.LEARNER,), data.user_ids, data.usernames)
        added, removed = await svc.set_learners(s, request, pid, users)
        await s.commit()
        people = await svc.learners(s, pid)
    return json_response(EnrolOut(added=added, removed=removed, people=[person_out(u) for u in people]))


@endpoint("DELETE", "/api/v1/programs/{id}/learners/{user_id}", name="api-program-learner-remove",
          summary="Un-enrol one learner", roles=OPERATOR, status=204, tag="programs")
async def remove_learner(request: web.Request) -> web.Response:
    """remove_learner: un-enrol a learner (404 when not enrolled)."""
    ident = require(request)
    pid = int_param(request, "id")
    uid = int_param(request, "user_id")
    async with request.app[DB]() as s:
        await svc.require_access(s, ident, pid, manage=True)
        if not await svc.remove_learner(s, request, pid, uid):
            raise ApiError(404, "not-found", "Học viên không có trong chương trình. / Not enrolled.")
        await s.commit()
    return web.Response(status=204)


@endpoint("GET", "/api/v1/programs/{id}/trainers", name="api-program-trainers",
          summary="Trainers assigned to a program", response=MemberOut, response_list=True, tag="programs")
async def list_trainers(request: web.Request) -> web.Response:
    """list_trainers: the program's trainers (anyone who belongs to the program)."""
    ident = require(request)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        await svc.require_access(s, ident, pid)
        people = await svc.trainers(s, pid)
    return json_response([person_out(u) for u in people])


@endpoint("PUT", "/api/v1/programs/{id}/trainers", name="api-program-trainers-set",
          summary="Set the trainers of a program (accounts of role trainer or leader)", roles=OPERATOR,
          body=PeopleIn, response=EnrolOut, tag="programs")
async def set_trainers(request: web.Request) -> web.Response:
    """set_trainers: replace the program's trainers."""
    ident = require(request)
    pid = int_param(request, "id")
    data = await parse_body(request, PeopleIn)
    async with request.app[DB]() as s:
        await svc.require_access(s, ident, pid, manage=True)
        users = await svc.resolve_users(s, "user_ids", (Role.TRAINER, Role.LEADER), data.user_ids, data.usernames)
        added, removed = await svc.set_trainers(s, request, pid, users)
        await s.commit()
        people = await svc.trainers(s, pid)
    return json_response(EnrolOut(added=added, removed=removed, people=[person_out(u) for u in people]))


@endpoint("GET", "/api/v1/me/programs", name="api-my-programs",
          summary="Programs the caller learns in, trains, or is invited to", response=MyProgramOut,
          response_list=True, tag="programs")
async def my_programs(request: web.Request) -> web.Response:
    """my_programs: the caller's programs, newest first."""
    ident = require(request)
    async with request.app[DB]() as s:
        programs = await svc.my_programs(s, ident)
    manage = ident.role in (Role.OPERATOR, Role.TRAINER, Role.LEADER)
    return json_response([MyProgramOut(id=p.id, title=p.title, description=p.description, manage=manage,
                                       learner=ident.role == Role.LEARNER) for p in programs])
