"""server.storage: whether the server can write its data: the data directory, the database, free disk.

Used at start (`check_data_dir`, `StartupError`: one line naming the path instead of a traceback), by /healthz
(`data_dir_state`, `database_state`, `free_bytes`) and by the error middleware (`storage_error`: a request that
failed on storage gets a 503 saying so, not a generic 500; a locked database answers within
`database.busy_timeout` with `busy`).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

DATA_SUBDIRS = ("media", "recordings", "uploads")
# OSError numbers that mean "the storage refuses to be written", not a bug of ours (a missing file is one)
STORAGE_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.EIO,
                            errno.ENOTDIR})
PROBE_BUSY_MS = 500  # how long /healthz waits for the database's write lock before it says "locked"

BUSY_MESSAGE = ("Cơ sở dữ liệu đang bận; hãy thử lại sau ít giây. / "
                "The database is busy: try again in a few seconds.")
STORAGE_MESSAGE = ("Máy chủ không ghi được dữ liệu (ổ đĩa chỉ đọc, đầy hoặc hỏng); quản trị viên máy chủ cần "
                   "kiểm tra. / The server cannot write its data (read-only, full or failing storage): its "
                   "administrator must check it.")


class StartupError(Exception):
    """StartupError: the server cannot start; str() is one line naming what and where (printed by `taphuan`)."""


def probe_dir(path: Path) -> str | None:
    """probe_dir: None when a file can be created, written and removed in `path`, else why not (one line)."""
    probe = path / f".taphuan-write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
        probe.unlink()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_data_dir(data_path: Path) -> None:
    """check_data_dir: create the data directory and its sub-directories and check each can be written; raises
    StartupError naming the first path that cannot."""
    for path in (data_path, *(data_path / sub for sub in DATA_SUBDIRS)):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"data directory {path}: cannot create it ({exc.strerror or exc})") from None
        reason = probe_dir(path)
        if reason is not None:
            raise StartupError(f"data directory {path}: cannot write in it ({reason})")


def data_dir_state(data_path: Path) -> str:
    """data_dir_state: "ok" when the data directory and its sub-directories can be written, else why not."""
    for path in (data_path, *(data_path / sub for sub in DATA_SUBDIRS)):
        reason = probe_dir(path)
        if reason is not None:
            return f"{path}: {reason}"
    return "ok"


def free_bytes(path: Path) -> int:
    """free_bytes: bytes free for unprivileged writes on the file system of `path` (0 when it cannot be read)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def _database_problem(exc: BaseException) -> str | None:
    """_database_problem: "locked" or "read-only" for a database error that means so, else None."""
    if not isinstance(exc, sa_exc.DBAPIError):
        return None
    message = str(exc.orig if exc.orig is not None else exc).lower()
    if "database is locked" in message or "lock timeout" in message or "could not obtain lock" in message:
        return "locked"
    if "readonly database" in message or "read-only" in message or "read only" in message:
        return "read-only"
    return None


async def database_state(engine: AsyncEngine, busy_timeout: float) -> str:
    """database_state: "ok" when a write would go through now (an update that changes nothing, rolled back),
    "locked" when another connection holds the write lock, "read-only", or the error (one line).

    SQLite waits at most PROBE_BUSY_MS here for the lock (the connection's own timeout is restored after), and
    PostgreSQL for its row (e.g. while another node migrates).
    """
    sqlite = engine.dialect.name == "sqlite"
    try:
        async with engine.connect() as conn:
            if sqlite:
                await conn.exec_driver_sql(f"PRAGMA busy_timeout = {PROBE_BUSY_MS}")
                await conn.commit()
            try:
                if engine.dialect.name == "postgresql":  # this transaction only
                    await conn.exec_driver_sql(f"SET LOCAL lock_timeout = {PROBE_BUSY_MS}")
                await conn.execute(text("UPDATE alembic_version SET version_num = version_num"))
            finally:
                await conn.rollback()
                if sqlite:
                    await conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                    await conn.commit()
    except Exception as exc:  # any failure is the answer
        return _database_problem(exc) or " ".join(str(exc).split())[:200]
    return "ok"


def storage_error(exc: BaseException) -> tuple[int, str, str] | None:
    """storage_error: (status, code, message) for a request that failed on storage, or None for another error.

    A locked database is `busy` (retry soon); a read-only one, or a data directory that refuses a file, is `storage`
    (the administrator must act). Both 503.
    """
    problem = _database_problem(exc)
    if problem == "locked":
        return 503, "busy", BUSY_MESSAGE
    if problem == "read-only":
        return 503, "storage", STORAGE_MESSAGE
    if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
        return 503, "storage", STORAGE_MESSAGE
    return None
