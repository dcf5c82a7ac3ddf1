"""Fixtures of the database tests: an engine on a fresh database (SQLite, or PostgreSQL in a `both_databases`
test's [postgresql] run), and sessions on it once migrated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.db.engine import make_engine, make_sessionmaker, migrate
from tests.pgserver import PgServer


@pytest.fixture
async def engine(tmp_path: Path, request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[AsyncEngine]:
    """engine: an engine on a fresh, empty database, nothing migrated yet."""
    if database_url:  # [postgresql]: an empty database of its own, not the migrated copy
        server: PgServer = request.getfixturevalue("postgres")
        url = server.new_database()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}"
    eng = make_engine(url)
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """db: sessions on the fresh database, migrated (no first-run data: no operator, no units)."""
    await migrate(engine)
    return make_sessionmaker(engine)
