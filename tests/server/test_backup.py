"""Tests of server.backup: a consistent copy while the database is being written."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from server.backup import backup_sync
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Setting


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
            async with app[DB]() as s:
                s.add(Setting(key=f"k{n}", value="v" * 100))
                await s.commit()
            n += 1
            await asyncio.sleep(0)
        return n

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)
    out = await asyncio.to_thread(backup_sync, cfg, tmp_path / "backups", False)
    stop.set()
    written = await task
    assert written > 0
    db = sqlite3.connect(out / "taphuan.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copied = db.execute("SELECT count(*) FROM settings WHERE key LIKE 'k%'").fetchone()[0]
    assert 0 < copied <= written
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 1  # the first operator
    assert (out / "uploads" / "ab" / "file.pdf").read_bytes() == b"%PDF-1.4 test"
    assert not (out / "recordings" / "live.webm.part").exists()
    assert (out / "secrets" / "session.key").exists()
