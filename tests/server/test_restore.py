"""Tests of server.restore and `taphuan restore` (on SQLite and PostgreSQL): a backup → restore round trip gives
the same rows and files; a non-empty database is refused unless --force; a backup of an unknown schema revision
is refused; a SQLite backup restores into PostgreSQL (moving to several nodes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import inspect, select

from server.app import create_app
from server.auth import hash_password
from server.backup import backup, dump, revisions
from server.cli import main
from server.config import CONFIG, Config
from server.db.engine import DB, make_engine
from server.db.models import AttendanceEvent, AuditEntry, Headcount, Poll, Role, User
from tests.pgserver import PgServer


async def _fill(app: web.Application, make_meeting: Any, make_classroom: Any) -> None:
    """_fill: rows with what differs between engines: aware datetimes, JSON lists and dicts, enums, Vietnamese."""
    room = await make_classroom(name="Điểm cầu Mường Bú")
    meeting = await make_meeting(classrooms=[room])
    async with app[DB]() as s:
        s.add(User(username="gv.hoa", display_name="Cô Hoà", role=Role.TRAINER,
                   password_hash=hash_password("mật-khẩu-1")))
        s.add(Poll(meeting_id=meeting.id, question="Rõ chưa?", choices=["Rõ", "Chưa rõ"]))
        s.add(Headcount(meeting_id=meeting.id, classroom_id=room, count=21, names=["An", "Bình"]))
        s.add(AttendanceEvent(meeting_id=meeting.id, kind="join", participant="p1", role="classroom",
                              at=dt.datetime(2025, 9, 15, 1, 2, 3, 456000, tzinfo=dt.UTC), data={"layer": 2}))
        s.add(AuditEntry(action="meeting.create", target=f"meeting:{meeting.id}", details={"tiêu đề": "Bài 1"}))
        await s.commit()
    files = app[CONFIG].data_path / "uploads" / "ab"
    files.mkdir(parents=True)
    (files / "bài-giảng.pdf").write_bytes(b"%PDF-1.4 bai giang")


async def _rows(url: str) -> bytes:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            out = io.BytesIO()
            await conn.run_sync(dump, out)
            return out.getvalue()
    finally:
        await engine.dispose()


def _empty_url(database_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if database_url:
        server: PgServer = request.getfixturevalue("postgres")
        return server.new_database()
    return f"sqlite+aiosqlite:///{tmp_path / 'restored' / 'taphuan.sqlite3'}"


def _config_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "restore.yaml"
    path.write_text(json.dumps({"data_dir": str(tmp_path / "restored"), "database": {"url": url}}))
    return path


@pytest.mark.both_databases
async def test_backup_then_restore_gives_the_same_rows_and_files(
        client: TestClient[Any, Any], make_meeting: Any, make_classroom: Any, database_url: str,
        request: pytest.FixtureRequest, tmp_path: Path, make_config: Any, aiohttp_client: Any,
        capsys: pytest.CaptureFixture[str]) -> None:
    app = client.app
    await _fill(app, make_meeting, make_classroom)
    out = await backup(app[CONFIG], tmp_path / "backups", progress=False)
    url = _empty_url(database_url, request, tmp_path)
    config = _config_file(tmp_path, url)

    assert await asyncio.to_thread(main, ["--config", str(config), "restore", str(out)]) == 0
    said = capsys.readouterr().out
    assert "rows in" in said and "Restored" in said
    assert await _rows(url) == await _rows(app[CONFIG].database_url)
    restored = tmp_path / "restored"
    assert (restored / "uploads" / "ab" / "bài-giảng.pdf").read_bytes() == b"%PDF-1.4 bai giang"
    secrets = app[CONFIG].data_path / "secrets"
    assert (restored / "secrets" / "link.key").read_bytes() == (secrets / "link.key").read_bytes()

    # the restored database works: a node on it logs the trainer in, and new rows get new ids (PostgreSQL's
    # sequences were moved past the restored ids)
    node: TestClient[Any, Any] = await aiohttp_client(create_app(make_config(data_dir=str(restored),
                                                                             **{"database.url": url})))
    resp = await node.post("/api/v1/login", json={"username": "gv.hoa", "password": "mật-khẩu-1"},
                           headers={"X-CSRF-Token": "x"}, cookies={"taphuan_csrf": "x"})
    assert resp.status == 200, await resp.text()
    async with node.app[DB]() as s:
        poll = (await s.scalars(select(Poll))).one()
        assert poll.choices == ["Rõ", "Chưa rõ"]
        event = (await s.scalars(select(AttendanceEvent))).one()
        assert event.at == dt.datetime(2025, 9, 15, 1, 2, 3, 456000, tzinfo=dt.UTC) and event.data == {"layer": 2}
        s.add(User(username="hv.moi", display_name="Học viên mới", role=Role.LEARNER))
        await s.commit()

    # a second restore is refused: the database is not empty any more; --force replaces all of it
    assert await asyncio.to_thread(main, ["--config", str(config), "restore", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err
    await node.close()
    assert await asyncio.to_thread(main, ["--config", str(config), "restore", "--force", str(out)]) == 0
    assert await _rows(url) == await _rows(app[CONFIG].database_url)


@pytest.mark.both_databases
async def test_a_backup_of_an_unknown_revision_is_refused(
        client: TestClient[Any, Any], database_url: str, request: pytest.FixtureRequest, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = await backup(client.app[CONFIG], tmp_path / "backups", progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["revisions"] = ["9999_from_the_future"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    url = _empty_url(database_url, request, tmp_path)
    assert await asyncio.to_thread(main, ["--config", str(_config_file(tmp_path, url)), "restore", str(out)]) == 1
    assert "9999_from_the_future" in capsys.readouterr().err
    if database_url:  # nothing was made
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                assert await conn.run_sync(lambda c: inspect(c).get_table_names()) == []
        finally:
            await engine.dispose()
    else:
        assert not (tmp_path / "restored" / "taphuan.sqlite3").exists()
    assert await asyncio.to_thread(main, ["--config", str(_config_file(tmp_path, url)), "restore", str(tmp_path)]) == 1
    assert "not a Taphuan backup" in capsys.readouterr().err


async def test_a_sqlite_backup_restores_into_postgresql(
        client: TestClient[Any, Any], make_meeting: Any, make_classroom: Any, postgres: PgServer,
        tmp_path: Path, config: Config) -> None:
    from server.restore import restore

    await _fill(client.app, make_meeting, make_classroom)
    out = await backup(config, tmp_path / "backups", progress=False)
    assert json.loads((out / "manifest.json").read_text())["dialect"] == "sqlite"
    url = postgres.new_database()
    target = config.model_copy(update={"data_dir": str(tmp_path / "pg-node"),
                                       "database": config.database.model_copy(update={"url": url})})
    counts = await restore(target, out, progress=False)
    assert counts["polls"] == 1 and counts["users"] == 2
    assert await _rows(url) == await _rows(config.database_url)
    with gzip.open(out / "database.jsonl.gz", "rt", encoding="utf-8") as f:
        assert "Điểm cầu Mường Bú" in f.read()  # kept readable, not escaped


@pytest.mark.both_databases
async def test_a_backup_of_an_older_revision_is_restored_and_brought_up_to_date(
        client: TestClient[Any, Any], make_meeting: Any, database_url: str, request: pytest.FixtureRequest,
        tmp_path: Path) -> None:
    from server.db.models import Recording
    from server.restore import restore

    meeting = await make_meeting()
    async with client.app[DB]() as s:
        s.add(Recording(meeting_id=meeting.id, program_id=meeting.program_id, title="Buổi 1", directory="1-x"))
        await s.commit()
    out = await backup(client.app[CONFIG], tmp_path / "backups", progress=False)
    # as a version before 0018_broadcast wrote it: no recordings.hls_state nor hls_progress
    manifest = json.loads((out / "manifest.json").read_text())
    assert "0018_broadcast" in manifest["revisions"]
    manifest["revisions"] = sorted({*manifest["revisions"], "0015_recording_parts"} - {"0018_broadcast"})
    (out / "manifest.json").write_text(json.dumps(manifest))
    lines = gzip.decompress((out / "database.jsonl.gz").read_bytes()).decode().splitlines()
    rewritten, drops = [], []
    for line in lines:
        item = json.loads(line)
        if isinstance(item, dict):
            drops = sorted((item["columns"].index(c) for c in ("hls_state", "hls_progress")), reverse=True) \
                if item["table"] == "recordings" else []
            for i in drops:
                del item["columns"][i]
        else:
            for i in drops:
                del item[i]
        rewritten.append(json.dumps(item, ensure_ascii=False))
    (out / "database.jsonl.gz").write_bytes(gzip.compress("\n".join(rewritten).encode() + b"\n"))

    url = _empty_url(database_url, request, tmp_path)
    target = client.app[CONFIG].model_copy(update={
        "data_dir": str(tmp_path / "restored"),
        "database": client.app[CONFIG].database.model_copy(update={"url": url})})
    await restore(target, out, progress=False)
    engine = make_engine(target.database_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(select(Recording.title, Recording.part, Recording.hls_state))).all() == \
                [("Buổi 1", 1, "")]
            assert "0018_broadcast" in await conn.run_sync(revisions)
    finally:
        await engine.dispose()
