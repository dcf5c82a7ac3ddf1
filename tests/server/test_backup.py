"""Tests of server.backup (on SQLite and PostgreSQL): one consistent snapshot of the rows while the database is
being written, in the engine-neutral form `taphuan restore` reads, with the files beside it."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.backup import ROWS, backup, decode, encode, read_rows
from server.config import CONFIG
from server.db.engine import DB, ENGINE
from server.db.models import AuditEntry, Setting


@pytest.mark.both_databases
async def test_backup_while_writing(client: TestClient[Any, Any], tmp_path: Path) -> None:
    app = client.app
    cfg = app[CONFIG]
    (cfg.data_path / "uploads" / "ab").mkdir(parents=True)
    (cfg.data_path / "uploads" / "ab" / "file.pdf").write_bytes(b"%PDF-1.4 test")
    (cfg.data_path / "recordings" / "live.webm.part").write_bytes(b"partial")
    stop = asyncio.Event()

    async def writer() -> int:
        n = 0
        while not stop.is_set():
            async with app[DB]() as s:  # two tables in one transaction: a snapshot has both rows or neither
                s.add(Setting(key=f"k{n}", value="v" * 100))
                s.add(AuditEntry(action="backup.test", target=f"k{n}"))
                await s.commit()
            n += 1
            await asyncio.sleep(0)
        return n

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)
    out = await backup(cfg, tmp_path / "backups", progress=False)
    stop.set()
    written = await task
    assert written > 0
    manifest = json.loads((out / "manifest.json").read_text())
    tables: dict[str, list[list[Any]]] = {}
    header: dict[str, list[str]] = {}
    for name, columns, rows in read_rows(out / ROWS):
        tables.setdefault(name, []).extend(rows)
        header[name] = columns
    copied = [row[0] for row in tables["settings"] if row[0].startswith("k")]
    assert 0 < len(copied) <= written
    target = header["audit_log"].index("target")
    assert sorted(row[target] for row in tables["audit_log"]) == sorted(copied)  # one moment of both tables
    assert manifest["tables"]["settings"] == len(tables["settings"])  # the manifest counts what was written
    assert manifest["dialect"] == app[ENGINE].dialect.name
    assert len(tables["users"]) == 1  # the first operator
    assert manifest["revisions"] and all(isinstance(r, str) for r in manifest["revisions"])
    assert (out / "uploads" / "ab" / "file.pdf").read_bytes() == b"%PDF-1.4 test"
    assert not (out / "recordings" / "live.webm.part").exists()
    assert (out / "secrets" / "session.key").exists()
    with gzip.open(out / ROWS, "rt", encoding="utf-8") as f:
        assert json.loads(f.readline())["table"]  # a header line first


def test_values_survive_the_engine_neutral_form() -> None:
    values = [None, True, 3, 2.5, "Điểm cầu", dt.datetime(2025, 9, 15, 1, 0, tzinfo=dt.UTC), dt.date(2025, 7, 1),
              b"\x00\xff", ["Rõ", "Chưa"], {"names": ["An"], "n": 1}]
    assert [decode(json.loads(json.dumps(encode(v)))) for v in values] == values
