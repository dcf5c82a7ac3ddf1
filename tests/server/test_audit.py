"""Tests of server.audit: who (the login, or the given actor), from where, what, with the caller's commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server import audit
from server.app import create_app
from server.config import Config
from server.db.engine import DB
from server.db.models import AuditEntry, Role, utcnow

Factory = Callable[..., Awaitable[Any]]


async def _audited(request: web.Request) -> web.Response:
    """A handler that records one action, and commits it only when asked."""
    async with request.app[DB]() as s:
        actor = request.query.get("actor")
        entry = audit.record(s, request, "meeting.update", "meeting:7", actor_id=int(actor) if actor else None,
                             fields=["title"], sequence=2)
        assert entry in s.new  # added, not yet written
        if request.query.get("commit"):
            await s.commit()
    return web.json_response({})


@pytest.fixture
def app(config: Config) -> web.Application:
    """app: the application with the test handler at /test/audited."""
    application = create_app(config)
    application.router.add_get("/test/audited", _audited)
    return application


async def _entries(app: web.Application) -> list[AuditEntry]:
    async with app[DB]() as s:
        return list((await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all())


async def test_the_logged_in_account_and_its_address_are_recorded(app: web.Application, login_as: Factory) -> None:
    trainer = await login_as(Role.TRAINER)
    assert (await trainer.get("/test/audited")).status == 200
    assert await _entries(app) == []  # nothing is written without the caller's commit
    before = utcnow()
    assert (await trainer.get("/test/audited?commit=1")).status == 200
    [entry] = await _entries(app)
    assert (entry.actor_id, entry.action, entry.target, entry.ip) == (trainer.user.id, "meeting.update",
                                                                       "meeting:7", "127.0.0.1")
    assert entry.details == {"fields": ["title"], "sequence": 2}
    assert before - dt.timedelta(seconds=1) <= entry.at <= utcnow()
    await trainer.get("/test/audited?commit=1", headers={"X-Forwarded-For": "203.0.113.9"})
    assert (await _entries(app))[-1].ip == "127.0.0.1"  # a forged header is not believed (no trusted proxy)


async def test_the_actor_without_a_login_or_without_a_request(app: web.Application, client: TestClient[Any, Any],
                                                              login_as: Factory) -> None:
    operator = await login_as(Role.OPERATOR)
    await client.get("/test/audited?commit=1")  # anonymous: nobody
    await client.get(f"/test/audited?commit=1&actor={operator.user.id}")  # given: e.g. a join link's creator
    async with app[DB]() as s:  # the CLI, a background task: no request, no address
        audit.record(s, None, "recording.retention", "recording:3", actor_id=None, deleted=3)
        await s.commit()
    entries = await _entries(app)
    assert [(e.actor_id, e.ip) for e in entries] == [(None, "127.0.0.1"), (operator.user.id, "127.0.0.1"), (None, "")]
    assert entries[-1].details == {"deleted": 3}
