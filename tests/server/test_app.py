"""Tests of server.app and server.bootstrap: migrations from empty, first operator, secrets, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, inspect, select

from server.app import FIRST_PASSWORD, create_app
from server.auth import SECRETS, verify_password
from server.config import CONFIG, Config
from server.db.engine import DB, ENGINE
from server.db.models import Base, User


async def test_migrations_create_every_table(client: TestClient[Any, Any]) -> None:
    async with client.app[ENGINE].connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_first_operator_once(aiohttp_client: Any, make_config: Callable[..., Config]) -> None:
    config = make_config()
    first = await aiohttp_client(create_app(config))
    password = first.app[FIRST_PASSWORD]
    async with first.app[DB]() as s:
        admin = (await s.scalars(select(User))).one()
    assert admin.username == "admin" and admin.role == "operator"
    assert verify_password(admin.password_hash, password)
    key = first.app[SECRETS].session_key
    await first.close()

    second = await aiohttp_client(create_app(config))
    assert FIRST_PASSWORD not in second.app
    assert second.app[SECRETS].session_key == key  # secrets persist in the data directory
    async with second.app[DB]() as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 1
    assert oct((config.data_path / "secrets" / "link.key").stat().st_mode & 0o777) == "0o600"


async def test_html_error_page_for_browsers(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/no-such-page", headers={"Accept": "text/html"})
    assert resp.status == 404
    assert "text/html" in resp.headers["Content-Type"]
    assert "404" in await resp.text()


async def test_body_size_limit_is_json_413(client: TestClient[Any, Any]) -> None:
    big = b"x" * (client.app[CONFIG].limits.max_body_bytes + 10)
    resp = await client.post("/api/v1/openapi.json", data=big, headers={"Content-Type": "application/json"})
    assert resp.status in (403, 405, 413)  # refused before reading; never 500
    body = await resp.json()
    assert "error" in body


async def test_security_headers(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"
