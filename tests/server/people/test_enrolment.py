"""Tests of server.people.enrolment and its API and page: trainers, learners, CSV of usernames, access rules."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import FormData, web
from sqlalchemy import select

from server.auth import Identity
from server.db.engine import DB
from server.db.models import AuditEntry, Program, Role
from server.errors import ApiError
from server.people.enrolment import parse_usernames_csv, program_access, program_for
from tests.server.learning_helpers import World, classroom_login, make_world

HTML = {"Accept": "text/html"}


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom)


async def test_operator_enrols_and_removes_learners(app: web.Application, world: World, make_user: Any) -> None:
    pid = world.program_id
    a = await make_user(Role.LEARNER, username="hv.an")
    b = await make_user(Role.LEARNER, username="hv.binh")
    r = await world.operator.post(f"/api/v1/programs/{pid}/learners", json={"user_ids": [a.id],
                                                                          "usernames": ["HV.BINH"]})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["added"] == 2 and {p["username"] for p in body["people"]} == {"hv.an", "hv.binh",
                                                                              world.learner.user.username}
    r = await world.operator.put(f"/api/v1/programs/{pid}/learners", json={"user_ids": [a.id]})
    body = await r.json()
    assert (body["added"], body["removed"]) == (0, 2) and [p["id"] for p in body["people"]] == [a.id]
    assert (await world.operator.delete(f"/api/v1/programs/{pid}/learners/{a.id}")).status == 204
    assert (await world.operator.delete(f"/api/v1/programs/{pid}/learners/{a.id}")).status == 404
    assert await (await world.operator.get(f"/api/v1/programs/{pid}/learners")).json() == []
    async with app[DB]() as s:
        n = len((await s.scalars(select(AuditEntry).where(AuditEntry.action == "program.learners"))).all())
    assert n == 3
    _ = b


async def test_only_learner_accounts_are_enrolled_and_only_trainers_assigned(world: World, make_user: Any) -> None:
    pid = world.program_id
    r = await world.operator.post(f"/api/v1/programs/{pid}/learners", json={"user_ids": [world.trainer.user.id]})
    assert r.status == 422 and "learner" in (await r.json())["error"]["message"]
    r = await world.operator.post(f"/api/v1/programs/{pid}/learners", json={"usernames": ["nobody"]})
    assert r.status == 422 and "nobody" in (await r.json())["error"]["message"]
    leader = await make_user(Role.LEADER)
    r = await world.operator.put(f"/api/v1/programs/{pid}/trainers", json={"user_ids": [world.trainer.user.id,
                                                                                     leader.id]})
    assert r.status == 200 and len((await r.json())["people"]) == 2
    r = await world.operator.put(f"/api/v1/programs/{pid}/trainers", json={"user_ids": [world.learner.user.id]})
    assert r.status == 422
    assert len(await (await world.learner.get(f"/api/v1/programs/{pid}/trainers")).json()) == 2


async def test_refusals(world: World, login_as: Any) -> None:
    pid = world.program_id
    for who in (world.trainer, world.learner, await login_as(Role.LEADER), await login_as(Role.CLASSROOM)):
        for method, url in (("post", f"/api/v1/programs/{pid}/learners"), ("put", f"/api/v1/programs/{pid}/learners"),
                            ("put", f"/api/v1/programs/{pid}/trainers")):
            r = await getattr(who, method)(url, json={"user_ids": []})
            assert r.status == 403, (who.user.role, url)
            assert (await r.json())["error"]["code"] == "forbidden"
    assert (await world.trainer.get(f"/api/v1/programs/{pid}/learners")).status == 200  # its own program
    assert (await world.learner.get(f"/api/v1/programs/{pid}/learners")).status == 403
    assert (await world.outsider.get(f"/api/v1/programs/{pid}/trainers")).status == 403
    assert (await world.operator.get("/api/v1/programs/9999/learners")).status == 404


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


async def test_people_page(world: World, make_user: Any) -> None:
    pid = world.program_id
    a = await make_user(Role.LEARNER, username="hv.csv1", display_name="Trần Thị Csv")
    html = await (await world.operator.get(f"/study/{pid}/people", headers=HTML)).text()
    assert "Giảng viên và học viên" in html and world.learner.user.display_name in html
    r = await world.operator.post(f"/study/{pid}/people", headers=HTML, allow_redirects=False, data=[
        ("csrf_token", world.operator.csrf), ("action", "save"), ("trainer_ids", str(world.trainer.user.id)),
        ("learner_ids", str(world.learner.user.id)), ("learner_ids", str(a.id))])
    assert r.status == 303 and r.headers["Location"].endswith("notice=people-saved")
    learners = await (await world.operator.get(f"/api/v1/programs/{pid}/learners")).json()
    assert {p["id"] for p in learners} == {world.learner.user.id, a.id}
    await make_user(Role.LEARNER, username="hv.csv2")
    form = FormData()
    form.add_field("action", "csv")
    form.add_field("file", b"username\nhv.csv2\n", filename="ds.csv", content_type="text/csv")
    r = await world.operator.client.post(f"/study/{pid}/people?csrf_token={world.operator.csrf}", data=form,
                                         headers=HTML, allow_redirects=False)
    assert r.status == 303, await r.text()
    learners = await (await world.operator.get(f"/api/v1/programs/{pid}/learners")).json()
    assert "hv.csv2" in {p["username"] for p in learners} and len(learners) == 3
    form = FormData()
    form.add_field("action", "csv")
    form.add_field("file", b"hv.khong-co\n", filename="ds.csv", content_type="text/csv")
    r = await world.operator.client.post(f"/study/{pid}/people?csrf_token={world.operator.csrf}", data=form,
                                         headers=HTML)
    assert r.status == 422 and "hv.khong-co" in await r.text()
    assert (await world.trainer.get(f"/study/{pid}/people", headers=HTML)).status == 403


async def test_program_for_gives_the_program_with_the_access(app: web.Application, world: World) -> None:
    learner = Identity(login_id="x", role=Role.LEARNER, csrf_token="", user_id=world.learner.user.id)
    async with app[DB]() as s:
        program, access = await program_for(s, learner, world.program_id)
        assert program.id == world.program_id and access.learner and not access.manage
        for pid, manage, status in ((world.program_id, True, 403), (999_999, False, 404)):
            with pytest.raises(ApiError) as info:
                await program_for(s, learner, pid, manage=manage)
            assert info.value.status == status
