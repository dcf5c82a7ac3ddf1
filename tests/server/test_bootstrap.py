"""Tests of server.bootstrap: the first operator and the reference units on the very first run only."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.auth import verify_password
from server.bootstrap import FIRST_OPERATOR, bootstrap
from server.db.models import Role, Setting, Unit, UnitLevel, User
from server.people.importer import DATA_DIR, REFERENCE_FILES
from tests.server.db.conftest import db, engine  # noqa: F401  (fixtures: a fresh migrated database)

DB = async_sessionmaker[AsyncSession]


async def _count(db: DB, table: type) -> int:  # noqa: F811
    async with db() as s:
        return int(await s.scalar(select(func.count()).select_from(table)) or 0)


async def test_first_run_makes_the_operator_and_the_units_once(db: DB) -> None:  # noqa: F811
    password = await bootstrap(db)
    assert password
    async with db() as s:
        admin = (await s.scalars(select(User))).one()
        assert (admin.username, admin.role, admin.display_name) == (FIRST_OPERATOR, Role.OPERATOR, "Quản trị viên")
        assert verify_password(admin.password_hash, password)
        shipped = sum(len((DATA_DIR / name).read_text().splitlines()) - 1 for name in REFERENCE_FILES)
        assert await s.scalar(select(func.count()).select_from(Unit)) == shipped
        assert (await s.get(Setting, "bootstrapped")) is not None
    units = await _count(db, Unit)

    assert await bootstrap(db) is None  # the next start: nothing again, no password shown
    assert (await _count(db, User), await _count(db, Unit)) == (1, units)


async def test_an_operator_who_deleted_admin_does_not_get_it_back(db: DB) -> None:  # noqa: F811
    assert await bootstrap(db)
    async with db() as s:
        s.add(User(username="op.lan", display_name="Lan", role=Role.OPERATOR))
        await s.execute(delete(User).where(User.username == FIRST_OPERATOR))
        await s.commit()
    assert await bootstrap(db) is None
    async with db() as s:
        assert list((await s.scalars(select(User.username))).all()) == ["op.lan"]


async def test_accounts_made_before_the_first_start_mean_no_admin(db: DB) -> None:  # noqa: F811
    async with db() as s:  # e.g. `taphuan user add` run before the first `taphuan serve`
        s.add(User(username="op.lan", display_name="Lan", role=Role.OPERATOR))
        await s.commit()
    assert await bootstrap(db) is None
    assert await _count(db, User) == 1
    assert await _count(db, Unit) > 0  # the reference units still come
    assert await bootstrap(db) is None


async def test_units_already_there_are_left_alone(db: DB) -> None:  # noqa: F811
    async with db() as s:
        s.add(Unit(code="99", name="Tỉnh riêng", level=UnitLevel.PROVINCE))
        await s.commit()
    assert await bootstrap(db)
    assert await _count(db, Unit) == 1


@pytest.mark.both_databases
async def test_nodes_starting_together_make_one_operator(db: DB) -> None:  # noqa: F811
    passwords = await asyncio.gather(*(bootstrap(db) for _ in range(3)))
    assert len([p for p in passwords if p]) == 1  # shown by the node that made it, once
    async with db() as s:
        assert [u.username for u in (await s.scalars(select(User))).all()] == [FIRST_OPERATOR]
