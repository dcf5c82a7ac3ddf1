"""Fixtures of the people tests: a session on a migrated database with the reference provinces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.engine import make_engine, make_sessionmaker, migrate
from server.people.importer import seed_reference_units

UNITS_CSV = """code,name,level,parent_code,valid_from,valid_to
116,Huyện Mường La,district,14,,2025-06-30
04033,Xã Mường Bú,commune,116,,2025-06-30
04100,Xã Mường La,commune,14,2025-07-01,
"""


@pytest.fixture
async def s(tmp_path: Path, database_url: str) -> AsyncIterator[AsyncSession]:
    """s: a session on a migrated, seeded database (SQLite; PostgreSQL in a `both_databases` test's run)."""
    engine = make_engine(database_url or f"sqlite+aiosqlite:///{tmp_path / 'units.sqlite3'}")
    await migrate(engine)
    async with make_sessionmaker(engine)() as session:
        await seed_reference_units(session)
        await session.commit()
        yield session
    await engine.dispose()
