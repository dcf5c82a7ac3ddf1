"""Tests of server.storage with real storage faults: a read-only directory, a file where a directory is expected, a
write-locked SQLite database (another connection holding BEGIN EXCLUSIVE)."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from server.config import CONFIG
from server.db.engine import DB, ENGINE, make_engine
from server.storage import (
    BUSY_MESSAGE,
    STORAGE_MESSAGE,
    StartupError,
    check_data_dir,
    data_dir_state,
    database_state,
    probe_dir,
    storage_error,
)
from tests.server.storagetest import read_only, write_locked


def test_a_read_only_data_directory_is_one_line_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    check_data_dir(data)  # creates it and its sub-directories
    assert sorted(p.name for p in data.iterdir()) == ["media", "recordings", "uploads"]
    assert probe_dir(data) is None and data_dir_state(data) == "ok"
    assert list(data.glob(".taphuan-write-test-*")) == []  # the probe leaves nothing
    with read_only(data / "uploads"):
        assert probe_dir(data / "uploads") is not None
        assert data_dir_state(data).startswith(f"{data / 'uploads'}: ")
        with pytest.raises(StartupError) as info:
            check_data_dir(data)
    assert str(info.value).startswith(f"data directory {data / 'uploads'}: cannot write in it (")
    assert "\n" not in str(info.value)


def test_a_file_where_the_data_directory_should_be(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(StartupError, match=rf"^data directory {tmp_path / 'data'}: cannot create it \("):
        check_data_dir(tmp_path / "data")
    (tmp_path / "data").unlink()
    check_data_dir(tmp_path / "data")
    (tmp_path / "data" / "media").rmdir()
    (tmp_path / "data" / "media").write_text("")
    assert data_dir_state(tmp_path / "data").startswith(f"{tmp_path / 'data' / 'media'}: ")


async def test_database_state_tells_a_locked_database(client: TestClient[Any, Any]) -> None:
    engine, config = client.app[ENGINE], client.app[CONFIG]
    assert await database_state(engine, config.database.busy_timeout) == "ok"
    with write_locked(config.data_path / "taphuan.sqlite3"):
        start = time.monotonic()
        assert await database_state(engine, config.database.busy_timeout) == "locked"
        assert time.monotonic() - start < 20  # not the requests' busy timeout, and surely not forever
    assert await database_state(engine, config.database.busy_timeout) == "ok"  # and the connection's timeout is back
    async with engine.connect() as conn:
        timeout = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
    assert timeout == int(config.database.busy_timeout * 1000)


def test_which_errors_are_storage_errors() -> None:
    assert storage_error(OSError(errno.EROFS, "Read-only file system")) == (503, "storage", STORAGE_MESSAGE)
    assert storage_error(PermissionError(errno.EACCES, "Permission denied")) == (503, "storage", STORAGE_MESSAGE)
    assert storage_error(OSError(errno.ENOSPC, "No space left on device")) == (503, "storage", STORAGE_MESSAGE)
    assert storage_error(NotADirectoryError(errno.ENOTDIR, "Not a directory")) == (503, "storage", STORAGE_MESSAGE)
    assert storage_error(FileNotFoundError(errno.ENOENT, "No such file")) is None  # a bug, not the storage
    assert storage_error(ValueError("x")) is None
    locked = OperationalError("INSERT …", {}, Exception("database is locked"))
    assert storage_error(locked) == (503, "busy", BUSY_MESSAGE)
    read_only_db = OperationalError("INSERT …", {}, Exception("attempt to write a readonly database"))
    assert storage_error(read_only_db) == (503, "storage", STORAGE_MESSAGE)
    assert storage_error(OperationalError("SELECT", {}, Exception("no such table: x"))) is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_database_state_tells_a_locked_postgresql_database(client: TestClient[Any, Any]) -> None:
    engine, config = client.app[ENGINE], client.app[CONFIG]
    assert await database_state(engine, config.database.busy_timeout) == "ok"
    holder = make_engine(config.database_url)  # another node, in the middle of a migration
    try:
        async with holder.connect() as conn:
            await conn.execute(text("SELECT version_num FROM alembic_version FOR UPDATE"))
            start = time.monotonic()
            assert await database_state(engine, config.database.busy_timeout) == "locked"
            assert time.monotonic() - start < 20  # the probe's own bound, not forever
            async with client.app[DB]() as s:  # a request's write waits `busy_timeout`, then is "busy"
                with pytest.raises(DBAPIError) as refused:
                    await s.execute(text("UPDATE alembic_version SET version_num = version_num"))
                assert storage_error(refused.value) == (503, "busy", BUSY_MESSAGE)
            await conn.rollback()
    finally:
        await holder.dispose()
    assert await database_state(engine, config.database.busy_timeout) == "ok"
