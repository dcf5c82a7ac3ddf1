"""Tests of server.learning.materials: what an upload stores (by hash, once per content) and audits."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server import files
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import AuditEntry
from tests.server.learning_helpers import PDF, World, make_world, stored_files, upload


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom)


async def test_trainer_uploads_a_pdf_stored_by_hash(app: web.Application, world: World) -> None:
    r = await upload(world.trainer, world.program_id, title="Bài giảng 1", meeting_id=str(world.meeting_id))
    assert r.status == 201, await r.text()
    body = await r.json()
    digest = hashlib.sha256(PDF).hexdigest()
    assert body["mime"] == "application/pdf" and body["kind"] == "document" and body["sha256"] == digest
    assert body["size"] == len(PDF) and body["title"] == "Bài giảng 1" and body["meeting_id"] == world.meeting_id
    assert stored_files(app) == [digest]
    assert (files.uploads_root(app[CONFIG]) / digest[:2] / digest).read_bytes() == PDF
    async with app[DB]() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "material.upload"))
    assert entry is not None and entry.actor_id == world.trainer.user.id and entry.details["sha256"] == digest


async def test_same_content_twice_is_stored_once(app: web.Application, world: World) -> None:
    a = await (await upload(world.trainer, world.program_id, filename="a.pdf")).json()
    b = await (await upload(world.operator, world.program_id, filename="copy-of-a.pdf")).json()
    assert a["id"] != b["id"] and a["sha256"] == b["sha256"]
    assert stored_files(app) == [a["sha256"]]
    # deleting one material keeps the file the other one still uses
    r = await world.trainer.delete(f"/api/v1/materials/{a['id']}")
    assert r.status == 204
    r = await world.learner.get(f"/api/v1/materials/{b['id']}/file")
    assert r.status == 200 and await r.read() == PDF
