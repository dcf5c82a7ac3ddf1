"""Tests of server.api.programs: CRUD with its audit, validation, no deleting a program that has meetings."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.server.api.test_meetings import API, audit_actions, create, world

__all__ = ["world"]  # a fixture, used by name


async def test_program_crud_and_audit(app: web.Application, world: dict[str, Any]) -> None:
    op, pid = world["op"], world["program"]["id"]
    assert world["program"]["title"] == "Chương trình A"
    assert world["program"]["meeting_count"] == 0
    assert world["program"]["created_at"].endswith("+07:00")

    r = await op.get(f"{API}/programs")
    assert r.status == 200
    assert [p["id"] for p in await r.json()] == [pid]

    r = await op.patch(f"{API}/programs/{pid}", json={"description": "Mới"})
    assert r.status == 200
    body = await r.json()
    assert (body["title"], body["description"]) == ("Chương trình A", "Mới")

    r = await op.get(f"{API}/programs/{pid}")
    assert (await r.json())["description"] == "Mới"

    r = await op.delete(f"{API}/programs/{pid}")
    assert r.status == 204
    r = await op.get(f"{API}/programs/{pid}")
    assert r.status == 404
    assert (await r.json())["error"]["code"] == "not-found"
    assert await audit_actions(app) == ["program.create", "program.update", "program.delete"]


async def test_program_validation(world: dict[str, Any]) -> None:
    op = world["op"]
    for body in ({"title": "   "}, {"title": "x" * 301}, {"description": "no title"}):
        r = await op.post(f"{API}/programs", json=body)
        assert r.status == 422, body
        err = (await r.json())["error"]
        assert err["code"] == "invalid" and err["field"] == "title"
    r = await op.post(f"{API}/programs", data="title=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415


async def test_program_with_meetings_cannot_be_deleted(world: dict[str, Any]) -> None:
    await create(world)
    r = await world["op"].delete(f"{API}/programs/{world['program']['id']}")
    assert r.status == 409
    assert (await r.json())["error"]["code"] == "program-has-meetings"
    r = await world["op"].get(f"{API}/programs/{world['program']['id']}")
    assert (await r.json())["meeting_count"] == 1
