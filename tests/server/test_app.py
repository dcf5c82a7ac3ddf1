"""Tests of server.app and server.bootstrap: first operator, secrets."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from server.app import FIRST_PASSWORD, create_app
from server.auth import SECRETS, join_link_token, resolve_join_link, verify_password
from server.config import Config, ConfigError, load_config
from server.db.engine import DB
from server.db.models import JoinLink, Meeting, Program, User


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


async def test_secrets_from_the_environment_are_shared_by_nodes_without_a_secrets_file(
        aiohttp_client: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    env = {"TAPHUAN_SECRETS__SESSION_KEY": "s" * 40, "TAPHUAN_SECRETS__LINK_KEY": "0123456789" * 4}
    made = make_config()
    made.data_path.mkdir(parents=True, exist_ok=True)  # (SQLite's file, when the tests run on SQLite)
    apps = []
    for name in ("a", "b"):  # two nodes, each with a data directory of its own, one database
        cfg = load_config(None, env=env, overrides={"data_dir": str(tmp_path / name), "database.url": made.database_url,
                                                    "sfu.ice_addresses": ["127.0.0.1"]})
        apps.append((await aiohttp_client(create_app(cfg))).app)
    a, b = apps
    assert a[SECRETS] == b[SECRETS] and a[SECRETS].link_key == b"0123456789" * 4
    assert not (tmp_path / "a" / "secrets").exists() and not (tmp_path / "b" / "secrets").exists()
    now = dt.datetime.now(dt.UTC)
    async with a[DB]() as s:  # a join link made on node a opens on node b
        program = Program(title="Chương trình")
        s.add(program)
        await s.flush()
        meeting = Meeting(program_id=program.id, title="Chia sẻ khoá", starts_at=now,
                          ends_at=now + dt.timedelta(hours=1))
        s.add(meeting)
        await s.flush()
        link = JoinLink(meeting_id=meeting.id, guest_name="Lớp", expires_at=now + dt.timedelta(hours=1))
        s.add(link)
        await s.commit()
        token = join_link_token(a, link)
    async with b[DB]() as s:
        assert (await resolve_join_link(s, b, token)).id == link.id
    with pytest.raises(ConfigError, match="secrets.session_key: use at least 32 characters"):
        load_config(None, env={"TAPHUAN_SECRETS__SESSION_KEY": "short"})


async def test_favicon(aiohttp_client: Any, make_config: Callable[..., Config]) -> None:
    client = await aiohttp_client(create_app(make_config()))
    resp = await client.get("/favicon.ico")
    assert resp.status == 200 and (await resp.read())[:4] == b"\x00\x00\x01\x00"  # an ICO file, for anyone
    assert "max-age" in resp.headers["Cache-Control"]
