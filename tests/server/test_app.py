"""Tests of server.app and server.bootstrap: first operator, secrets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from server.app import FIRST_PASSWORD, create_app
from server.auth import SECRETS, verify_password
from server.config import Config
from server.db.engine import DB
from server.db.models import User


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


async def test_favicon(aiohttp_client: Any, make_config: Callable[..., Config]) -> None:
    client = await aiohttp_client(create_app(make_config()))
    resp = await client.get("/favicon.ico")
    assert resp.status == 200 and (await resp.read())[:4] == b"\x00\x00\x01\x00"  # an ICO file, for anyone
    assert "max-age" in resp.headers["Cache-Control"]
