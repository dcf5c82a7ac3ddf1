"""Fixtures of the database tests: an engine on a fresh SQLite file, and sessions on it once migrated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.db.engine import make_engine, make_sessionmaker, migrate


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """engine: an engine on a fresh SQLite file, nothing migrated yet."""
    eng = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.sqlite3'}")
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """db: sessions on the fresh file, migrated (no first-run data: no operator, no units)."""
    await migrate(engine)
    return make_sessionmaker(engine)
