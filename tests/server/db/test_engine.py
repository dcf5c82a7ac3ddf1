"""Tests of server.db.engine (on SQLite and PostgreSQL): the migrations at start, on a fresh database, to every
head, idempotent; the SQLite pragmas; the schema the migrations make is the models' schema; sessions keep objects
after commit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.db.engine import ENGINE, alembic_config, make_engine, make_sessionmaker, migrate, migrate_reporting
from server.db.models import Base, Classroom, Role, Setting, Unit, UnitLevel, User
from server.people.accounts import search_users
from server.people.classrooms import find_classrooms


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


def _downgrade_to_base(conn: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.downgrade(cfg, "base")


@pytest.mark.both_databases
async def test_every_migration_goes_down_and_up_again(engine: AsyncEngine) -> None:
    await migrate(engine)
    async with engine.begin() as conn:
        await conn.run_sync(_downgrade_to_base)
    async with engine.connect() as conn:
        assert await conn.run_sync(lambda c: set(inspect(c).get_table_names())) <= {"alembic_version"}
    assert await _versions(engine) == set()
    done = await migrate_reporting(engine)  # and up again, saying which steps it ran
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert done.before == [] and set(done.after) == heads
    assert len(done.applied) == len(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
    assert done.applied[0].startswith(" -> 0001") or "0001" in done.applied[0]
    assert (await migrate_reporting(engine)).applied == []


@pytest.mark.both_databases
async def test_case_insensitive_search_folds_vietnamese_letters_on_both_engines(
        db: async_sessionmaker[AsyncSession]) -> None:
    # SQLite's own lower() and LIKE fold ASCII letters only: "TRẦN" would not find "Trần" there, while PostgreSQL
    # (a UTF-8 locale) finds it
    async with db() as s:
        province = Unit(code="14", name="Sơn La", level=UnitLevel.PROVINCE)
        s.add(province)
        await s.flush()
        s.add_all([User(username="tran.lan", display_name="Trần Thị Lan", role=Role.TRAINER),
                   User(username="an", display_name="ĐỖ VĂN AN", role=Role.LEARNER),
                   Classroom(code="LH-MB", name="Điểm cầu Mường Bú", unit_id=province.id)])
        await s.commit()
        assert [u.username for u in await search_users(s, "TRẦN")] == ["tran.lan"]
        assert [u.username for u in await search_users(s, "đỗ văn")] == ["an"]
        rooms, total = await find_classrooms(s, q="MƯỜNG BÚ")
        assert total == 1 and [r.classroom.code for r in rooms] == ["LH-MB"]


@pytest.mark.both_databases
async def test_nodes_starting_together_migrate_one_after_the_other(engine: AsyncEngine) -> None:
    others = [make_engine(engine.url.render_as_string(hide_password=False)) for _ in range(2)]
    try:
        await asyncio.gather(migrate(engine), *(migrate(e) for e in others))
    finally:
        for e in others:
            await e.dispose()
    assert await _versions(engine) == set(ScriptDirectory.from_config(alembic_config()).get_heads())
