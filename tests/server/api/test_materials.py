"""Tests of server.api.materials: upload limit and refusals, types and kinds by content, who may upload, read,
change and delete, downloads with Range."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server import files
from server.config import CONFIG, Config
from server.db.engine import DB
from server.db.models import AuditEntry, Role
from tests.server.learning_helpers import PDF, World, classroom_login, make_world, stored_files, upload

ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 4000


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(**{"limits.max_upload_bytes": 64 * 1024})


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom)


async def test_over_the_limit_is_413_naming_the_limit(app: web.Application, world: World) -> None:
    big = b"%PDF-1.4\n" + b"x" * (64 * 1024 + 10)
    r = await upload(world.trainer, world.program_id, big)
    assert r.status == 413
    body = await r.json()
    assert body["error"]["code"] == "too-large"
    assert "64 KB" in body["error"]["message"] and "tối đa" in body["error"]["message"]
    assert body["error"]["limit_bytes"] == 64 * 1024
    assert stored_files(app) == []
    assert list((files.uploads_root(app[CONFIG]) / "tmp").iterdir()) == []


async def test_renamed_executable_is_refused_with_415(app: web.Application, world: World) -> None:
    for data, name in ((ELF, "slides.pdf"), (b"MZ\x90\x00" + b"\x00" * 2000, "video.mp4"),
                       (b"<html><script>alert(1)</script></html>" * 10, "notes.pdf")):
        r = await upload(world.trainer, world.program_id, data, filename=name)
        assert r.status == 415, name
        body = await r.json()
        assert body["error"]["code"] == "unsupported-media-type"
    assert "executable" in body["error"]["message"] or "Not accepted" in body["error"]["message"]
    assert stored_files(app) == []
    r = await world.trainer.get(f"/api/v1/programs/{world.program_id}/materials")
    assert await r.json() == []


async def test_types_kinds_and_file_names_follow_the_content(world: World) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("ppt/presentation.xml", "<p/>")
    r = await upload(world.trainer, world.program_id, buf.getvalue(), filename="bai giang.zip")
    body = await r.json()
    assert r.status == 201 and body["mime"] == files.PPTX and body["kind"] == "slides"
    assert body["filename"] == "bai giang.pptx"
    mp4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 3000
    body = await (await upload(world.trainer, world.program_id, mp4, filename="video.bin")).json()
    assert body["kind"] == "video" and body["mime"] == "video/mp4" and body["filename"] == "video.mp4"
    body = await (await upload(world.trainer, world.program_id, PDF, filename="trinh-chieu.pdf", kind="slides")).json()
    assert body["kind"] == "slides"
    r = await upload(world.trainer, world.program_id, PDF, kind="video")
    assert r.status == 422


async def test_bad_uploads_are_clear_4xx(world: World) -> None:
    r = await world.trainer.post(f"/api/v1/programs/{world.program_id}/materials", json={"title": "x"})
    assert r.status == 415
    from aiohttp import FormData

    form = FormData()
    form.add_field("title", "no file")
    form.add_field("x", b"1", filename="x.txt")
    r = await world.trainer.post(f"/api/v1/programs/{world.program_id}/materials", data=form)
    assert r.status == 400 and (await r.json())["error"]["code"] == "no-file"
    r = await upload(world.trainer, world.program_id, meeting_id="abc")
    assert r.status == 422
    r = await upload(world.trainer, 99999)
    assert r.status == 404


async def test_who_may_upload(world: World, login_as: Any) -> None:
    other_trainer = await login_as(Role.TRAINER)
    for who in (world.learner, world.outsider, other_trainer, await login_as(Role.LEADER)):
        r = await upload(who, world.program_id)
        assert r.status == 403, who.user.role
        assert (await r.json())["error"]["code"] == "forbidden"
    r = await upload(world.operator, world.program_id)
    assert r.status == 201


async def test_downloads_need_access_to_the_program(app: web.Application, world: World, login_as: Any,
                                                    make_classroom: Any, client: Any) -> None:
    mid = (await (await upload(world.trainer, world.program_id)).json())["id"]
    url = f"/api/v1/materials/{mid}/file"
    r = await world.outsider.get(url)
    assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    r = await (await login_as(Role.TRAINER)).get(url)
    assert r.status == 403
    r = await (await classroom_login(login_as, await make_classroom())).get(url)
    assert r.status == 403
    r = await client.get(url)
    assert r.status == 401
    r = await world.learner.get(url)
    assert r.status == 200 and await r.read() == PDF
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["Content-Disposition"].startswith("inline;")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    r = await world.learner.get(url + "?download=1")
    assert r.headers["Content-Disposition"].startswith("attachment;") and "bai-giang.pdf" in r.headers[
        "Content-Disposition"]
    for who in (world.trainer, world.operator, await classroom_login(login_as, world.classroom_id)):
        assert (await who.get(url)).status == 200
    r = await world.outsider.get(f"/api/v1/materials/{mid}")
    assert r.status == 403
    r = await world.outsider.get(f"/api/v1/programs/{world.program_id}/materials")
    assert r.status == 403


async def test_range_requests_give_206(world: World) -> None:
    mid = (await (await upload(world.trainer, world.program_id)).json())["id"]
    r = await world.learner.get(f"/api/v1/materials/{mid}/file", headers={"Range": "bytes=0-99"})
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 0-99/{len(PDF)}"
    assert await r.read() == PDF[:100]
    r = await world.learner.get(f"/api/v1/materials/{mid}/file", headers={"Range": "bytes=100-"})
    assert r.status == 206 and await r.read() == PDF[100:]


async def test_change_and_delete_are_for_trainers(app: web.Application, world: World) -> None:
    mid = (await (await upload(world.trainer, world.program_id)).json())["id"]
    r = await world.learner.patch(f"/api/v1/materials/{mid}", json={"title": "Hacked"})
    assert r.status == 403
    r = await world.trainer.patch(f"/api/v1/materials/{mid}", json={"title": "Bài giảng đã sửa"})
    assert r.status == 200 and (await r.json())["title"] == "Bài giảng đã sửa"
    assert (await world.learner.delete(f"/api/v1/materials/{mid}")).status == 403
    assert (await world.operator.delete(f"/api/v1/materials/{mid}")).status == 204
    assert (await world.learner.get(f"/api/v1/materials/{mid}")).status == 404
    async with app[DB]() as s:
        actions = set((await s.scalars(select(AuditEntry.action))).all())
    assert {"material.upload", "material.update", "material.delete"} <= actions
