"""Tests of server.db.engine (on SQLite and PostgreSQL): the migrations at start, on a fresh database, to every
head, idempotent; the SQLite pragmas; the schema the migrations make is the models' schema; sessions keep objects
after commit."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.db.engine import ENGINE, alembic_config, make_sessionmaker, migrate
from server.db.models import Base, Role, Setting, User


@pytest.mark.both_databases
async def test_migrations_create_every_table(client: TestClient[Any, Any]) -> None:
    async with client.app[ENGINE].connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def _versions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())


@pytest.mark.both_databases
async def test_fresh_file_migrates_to_every_head_and_again_is_a_no_op(engine: AsyncEngine) -> None:
    await migrate(engine)
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert heads and await _versions(engine) == heads
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    db = make_sessionmaker(engine)
    async with db() as s:
        s.add(Setting(key="kept", value="yes"))
        await s.commit()
    await migrate(engine)  # every start migrates: the second time changes nothing
    assert await _versions(engine) == heads
    async with db() as s:
        assert (await s.get(Setting, "kept")) is not None


def _schema_differences(conn: Connection) -> list[Any]:
    # SQLite's reflection cannot read ON DELETE of a column added by ALTER TABLE: foreign keys are compared below
    diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    return [d for d in diff if not (isinstance(d, tuple) and d[0] in ("add_fk", "remove_fk"))]


def _foreign_keys(conn: Connection) -> set[tuple[str, str, str, str, str]]:
    found = set()
    for table in Base.metadata.tables:
        if conn.dialect.name == "sqlite":
            for row in conn.execute(text(f"PRAGMA foreign_key_list({table})")):
                found.add((table, row._mapping["from"], row.table, row.to, row.on_delete))
            continue
        for fk in inspect(conn).get_foreign_keys(table):
            for col, ref in zip(fk["constrained_columns"], fk["referred_columns"], strict=True):
                found.add((table, col, fk["referred_table"], ref, fk["options"].get("ondelete") or "NO ACTION"))
    return found


@pytest.mark.both_databases
async def test_the_migrated_schema_is_the_models_schema(engine: AsyncEngine) -> None:
    await migrate(engine)
    async with engine.connect() as conn:
        assert await conn.run_sync(_schema_differences) == []
        found = await conn.run_sync(_foreign_keys)
    expected = {(t.name, fk.parent.name, fk.column.table.name, fk.column.name, fk.ondelete or "NO ACTION")
                for t in Base.metadata.tables.values() for fk in t.foreign_keys}
    assert found == expected


async def test_sqlite_gets_foreign_keys_wal_and_a_busy_timeout(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        pragmas = {name: (await conn.execute(text(f"PRAGMA {name}"))).scalar()
                   for name in ("foreign_keys", "journal_mode", "synchronous", "busy_timeout")}
    assert pragmas == {"foreign_keys": 1, "journal_mode": "wal", "synchronous": 1, "busy_timeout": 5000}  # 5 s default


@pytest.mark.both_databases
async def test_objects_stay_usable_after_commit(engine: AsyncEngine) -> None:
    await migrate(engine)
    async with make_sessionmaker(engine)() as s:
        user = User(username="gv.hoa", display_name="Cô Hoa", role=Role.TRAINER)
        s.add(user)
        await s.commit()
        # expired attributes would need a query here, which an async session cannot do implicitly
        assert (user.id, user.username, user.disabled) == (1, "gv.hoa", False)
