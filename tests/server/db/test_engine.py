"""Tests of server.db.engine: the migrations at start."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import inspect

from server.db.engine import ENGINE
from server.db.models import Base


async def test_migrations_create_every_table(client: TestClient[Any, Any]) -> None:
    async with client.app[ENGINE].connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables

