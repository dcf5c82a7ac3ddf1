"""Tests of server.api.enrolment: enrolling learners, assigning trainers, refusals."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server.db.engine import DB
from server.db.models import AuditEntry, Role
from tests.server.learning_helpers import World, make_world


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


async def test_a_wrong_key_is_refused_and_the_enrolment_stays(world: World) -> None:
    """PUT with a misspelt key ("user_id") once read as "nobody": it emptied the program's learners."""
    pid = world.program_id
    before = await (await world.operator.get(f"/api/v1/programs/{pid}/learners")).json()
    assert [p["id"] for p in before] == [world.learner.user.id]
    for method in (world.operator.put, world.operator.post):
        r = await method(f"/api/v1/programs/{pid}/learners", json={"user_id": [world.learner.user.id]})
        assert r.status == 422, await r.text()
        body = await r.json()
        assert body["error"]["field"] == "user_id" and "Extra inputs" in body["error"]["message"]
    r = await world.operator.put(f"/api/v1/programs/{pid}/trainers", json={"user_ids": [], "names": ["x"]})
    assert r.status == 422
    assert await (await world.operator.get(f"/api/v1/programs/{pid}/learners")).json() == before
    assert len(await (await world.operator.get(f"/api/v1/programs/{pid}/trainers")).json()) == 1
