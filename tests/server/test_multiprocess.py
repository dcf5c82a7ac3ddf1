"""Two server instances sharing one database and a real Redis bus (config `bus.kind: redis`): a logout on one
instance closes the live connection held by the other, as with several processes or machines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from server.app import create_app
from server.auth import COOKIE, create_login
from server.bus import BUS, RedisBus
from server.config import Config
from server.db.engine import DB
from server.db.models import Role
from tests.conftest import _FakeRequest
from tests.live_client import LiveClient
from tests.server.test_bus import redis_url  # noqa: F401  (fixture: a real redis-server)

pytestmark = pytest.mark.redis


async def test_logout_on_one_instance_closes_the_socket_on_another(
        make_config: Callable[..., Config], aiohttp_client: Any, redis_url: str,  # noqa: F811
        clients: list[LiveClient]) -> None:
    config = make_config(**{"bus.kind": "redis", "bus.redis_url": redis_url})
    first = await aiohttp_client(create_app(config))
    second = await aiohttp_client(create_app(config))
    assert isinstance(first.app[BUS], RedisBus) and isinstance(second.app[BUS], RedisBus)

    async with first.app[DB]() as s:
        from server.auth import hash_password
        from server.db.models import User

        user = User(username="op-multi", display_name="Điều hành", role=Role.OPERATOR,
                    password_hash=hash_password("pw-12345678"))
        s.add(user)
        await s.flush()
        login = await create_login(s, _FakeRequest(first.app), user=user, hours=1)  # type: ignore[arg-type]
        await s.commit()
    for cl in (first, second):
        cl.session.cookie_jar.update_cookies({COOKIE: login.id}, response_url=cl.make_url("/"))

    # The live connection is on the second instance.
    lc = LiveClient(second.session, str(second.make_url("/ws")))
    clients.append(lc)
    await lc.connect()
    assert (await lc.request("ping"))["type"] == "pong"

    # Logging out through the first instance ends it on the second, which is told why.
    resp = await first.post("/api/v1/logout", headers={"X-CSRF-Token": login.csrf_token})
    assert resp.status == 200, await resp.text()
    closed = await lc.wait(lambda m: m.get("type") == "closed", within=15)
    assert closed["reason"] == "logout"
    # And the second instance refuses the revoked cookie too (shared database).
    me = await second.get("/api/v1/me")
    assert me.status == 401
