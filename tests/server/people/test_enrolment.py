"""Tests of server.people.enrolment: who may read or manage a program, the CSV of usernames."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from server.auth import Identity
from server.db.engine import DB
from server.db.models import Program, Role
from server.errors import ApiError
from server.people.enrolment import parse_usernames_csv, program_access, program_for
from tests.server.learning_helpers import World, classroom_login, make_world


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom)


async def test_access_rules(app: web.Application, world: World, login_as: Any, make_classroom: Any) -> None:
    def ident(who: Any, **kw: Any) -> Identity:
        u = who.user
        return Identity(login_id="x", role=u.role, csrf_token="", user_id=u.id, classroom_id=u.classroom_id, **kw)

    room = await classroom_login(login_as, world.classroom_id)
    async with app[DB]() as s:
        pid = world.program_id
        assert (await program_access(s, ident(world.operator), pid)).manage
        t = await program_access(s, ident(world.trainer), pid)
        assert t.read and t.manage and not t.learner
        learner = await program_access(s, ident(world.learner), pid)
        assert learner.read and learner.learner and not learner.manage
        assert not (await program_access(s, ident(world.outsider), pid)).read
        assert (await program_access(s, ident(room), pid)).read
        assert not (await program_access(s, ident(room, meeting_id=world.meeting_id + 1000), pid)).read
        assert not (await program_access(s, None, pid)).read
        other = Program(title="Khác")
        s.add(other)
        await s.commit()
        assert not (await program_access(s, ident(world.learner), other.id)).read
    mine = await (await world.learner.get("/api/v1/me/programs")).json()
    assert [p["id"] for p in mine] == [world.program_id]
    assert await (await world.outsider.get("/api/v1/me/programs")).json() == []
    assert len(await (await world.operator.get("/api/v1/me/programs")).json()) == 2


def test_parse_usernames_csv() -> None:
    data = "\ufeffusername,name\nhv.an,An\n\n# comment\nhv.binh\n".encode()
    assert parse_usernames_csv(data) == ["hv.an", "hv.binh"]
    from server.errors import ApiError

    for bad in (b"", b"username\n", b"\xff\xfe\x00"):
        with pytest.raises(ApiError):
            parse_usernames_csv(bad)


async def test_program_for_gives_the_program_with_the_access(app: web.Application, world: World) -> None:
    learner = Identity(login_id="x", role=Role.LEARNER, csrf_token="", user_id=world.learner.user.id)
    async with app[DB]() as s:
        program, access = await program_for(s, learner, world.program_id)
        assert program.id == world.program_id and access.learner and not access.manage
        for pid, manage, status in ((world.program_id, True, 403), (999_999, False, 404)):
            with pytest.raises(ApiError) as info:
                await program_for(s, learner, pid, manage=manage)
            assert info.value.status == status
