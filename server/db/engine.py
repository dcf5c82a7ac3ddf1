"""server.db.engine: the async engine, session factory and start-up migrations.

The engine is created by `server.app` inside a cleanup context and stored under `DB` (an AppKey defined here); request
handlers open an `AsyncSession` per unit of work with `async with db() as s:`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def make_engine(url: str, echo: bool = False, busy_timeout: float = 5.0) -> AsyncEngine:
    """make_engine: an async engine; SQLite gets WAL, foreign keys, a Unicode lower() and a busy timeout
    (`busy_timeout` seconds: how long a write waits for another connection's write lock before it fails as
    "database is locked"); PostgreSQL gets that bound as its lock_timeout."""
    kwargs: dict[str, Any] = {"echo": echo}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": busy_timeout}
    elif url.startswith("postgresql+asyncpg"):
        # the same bound on PostgreSQL: a statement waiting longer for a lock fails ("lock timeout": 503 busy)
        kwargs["connect_args"] = {"server_settings": {"lock_timeout": str(int(busy_timeout * 1000))}}
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # SQLite's lower() (thus LIKE and ilike) folds ASCII only: "TRẦN" would not find "Trần"; Python's
            # folds every letter, as PostgreSQL's does in a UTF-8 locale
            dbapi_conn.create_function("lower", 1, _lower, deterministic=True)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """make_sessionmaker: sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config() -> AlembicConfig:
    """alembic_config: an Alembic config pointing at our migrations (no alembic.ini needed)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


MIGRATION_LOCK = 0x746170687561  # PostgreSQL advisory lock id ("taphua") held while a node migrates


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # nodes starting together migrate one after the other (the others then find every head applied); the
        # lock ends with the transaction. SQLite's write lock does the same there.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "heads")


@contextlib.asynccontextmanager
async def _sqlite_migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """_sqlite_migration_lock: processes sharing one SQLite file migrate one after the other (SQLite takes no
    lock for schema changes outside a transaction): an exclusive flock on `<file>.migrate-lock` beside it."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        fd = os.open(f"{database}.migrate-lock", os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:  # a read-only directory: no lock, and the migration reports what it cannot do
        yield
        return
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


async def migrate(engine: AsyncEngine) -> None:
    """migrate: apply every Alembic migration up to every head (idempotent; branches from parallel work are fine;
    nodes or processes starting together migrate one after the other)."""
    async with _sqlite_migration_lock(engine), engine.begin() as conn:
        await conn.run_sync(_upgrade)


@dataclass
class Migration:
    """Migration: what `migrate_reporting` did: the revisions before and after, the steps applied (one line each,
    "<from> -> <to>, <message>")."""

    before: list[str]
    after: list[str]
    applied: list[str]


class _Steps(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Running upgrade "):
            self.lines.append(message[len("Running upgrade "):])


async def migrate_reporting(engine: AsyncEngine) -> Migration:
    """migrate_reporting: `migrate`, saying what it did (for `taphuan migrate`)."""

    def versions(conn: Connection) -> list[str]:
        if not inspect(conn).has_table("alembic_version"):
            return []
        return sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())

    steps = _Steps()
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.addHandler(steps)
    logger.setLevel(logging.INFO)
    try:
        async with _sqlite_migration_lock(engine), engine.begin() as conn:
            before = await conn.run_sync(versions)
            await conn.run_sync(_upgrade)
            after = await conn.run_sync(versions)
    finally:
        logger.removeHandler(steps)
        logger.setLevel(level)
    return Migration(before=before, after=after, applied=steps.lines)

ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine")
DB: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("db")


async def update_row(sessionmaker: async_sessionmaker[AsyncSession], model: type[Any], key: Any, **values: Any) -> None:
    """update_row: set `values` on the `model` row with primary key `key` and commit (nothing when it is gone)."""
    async with sessionmaker() as s:
        row = await s.get(model, key)
        if row is not None:
            for name, value in values.items():
                setattr(row, name, value)
            await s.commit()
