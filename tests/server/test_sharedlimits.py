"""Tests of server.sharedlimits: two nodes (create_app twice, two ports) sharing one real redis-server and one
real PostgreSQL: the login limits and the WebSocket caps add up across both, a login made on one is valid on the
other and a logout on one ends it on the other; a dead node's sockets stop counting after their lease; a flood's
cool-down holds on every node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.auth import COOKIE, hash_password
from server.config import Config
from server.db.engine import DB
from server.db.models import Role, User
from server.ratelimit import LOGIN_LIMITER
from server.sharedlimits import RedisLoginLimiter, RedisSocketQuota
from tests.live_client import LiveClient
from tests.pgserver import PgServer
from tests.server.test_auth import api_login
from tests.server.test_bus import redis_url  # noqa: F401  (fixture: a real redis-server)

pytestmark = pytest.mark.redis
Client = TestClient[Any, Any]


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:  # noqa: F811
    """redis: a client of the module's redis-server, emptied first (each test counts from nothing)."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def nodes(make_config: Callable[..., Config], aiohttp_client: Any, redis_url: str,  # noqa: F811
                postgres: PgServer, redis: Any) -> tuple[Client, Client]:
    """nodes: two apps on their own ports, one database, one Redis, one data directory."""
    config = make_config(**{"bus.kind": "redis", "bus.redis_url": redis_url,
                            "database.url": postgres.migrated_database(), "limits.ws_connections_per_login": 2})
    first: Client = await aiohttp_client(create_app(config))
    second: Client = await aiohttp_client(create_app(config))
    assert first.port != second.port
    async with first.app[DB]() as s:
        s.add(User(username="gv.lan", display_name="Cô Lan", role=Role.TRAINER,
                   password_hash=hash_password("mat-khau-dung")))
        await s.commit()
    return first, second


async def test_login_failures_add_up_across_nodes(nodes: tuple[Client, Client]) -> None:
    first, second = nodes
    assert isinstance(first.app[LOGIN_LIMITER], RedisLoginLimiter)
    for node in (first, second, first, second, first):  # 5 failures (the limit), spread over both
        assert (await api_login(node, "gv.lan", "doan-mo")).status == 401
    for node in (first, second):  # each node alone saw at most 3: only a shared count refuses
        refused = await api_login(node, "gv.lan", "mat-khau-dung")
        assert refused.status == 429, await refused.text()
        assert 50 <= int(refused.headers["Retry-After"]) <= 60


async def test_a_login_on_one_node_is_valid_on_the_other_until_logged_out_there(nodes: tuple[Client, Client]) -> None:
    first, second = nodes
    resp = await api_login(first, "gv.lan", "mat-khau-dung")
    assert resp.status == 200, await resp.text()
    cookie = first.session.cookie_jar.filter_cookies(first.make_url("/"))[COOKIE].value
    second.session.cookie_jar.update_cookies({COOKIE: cookie}, response_url=second.make_url("/"))
    me = await second.get("/api/v1/me")
    assert me.status == 200 and (await me.json())["username"] == "gv.lan"
    csrf = (await resp.json())["csrf_token"]
    out = await first.post("/api/v1/logout", headers={"X-CSRF-Token": csrf})
    assert out.status == 200, await out.text()
    assert (await second.get("/api/v1/me")).status == 401


async def test_websocket_caps_add_up_across_nodes(nodes: tuple[Client, Client], clients: list[LiveClient],
                                                  redis: Any) -> None:
    first, second = nodes
    assert (await api_login(first, "gv.lan", "mat-khau-dung")).status == 200
    cookie = first.session.cookie_jar.filter_cookies(first.make_url("/"))[COOKIE].value
    second.session.cookie_jar.update_cookies({COOKIE: cookie}, response_url=second.make_url("/"))

    async def open_on(node: Client) -> LiveClient:
        lc = LiveClient(node.session, str(node.make_url("/ws")))
        clients.append(lc)
        return await lc.connect()

    on_first = await open_on(first)
    on_second = await open_on(second)
    for lc in (on_first, on_second):
        assert (await lc.request("ping"))["type"] == "pong"
    third = await open_on(first)  # the login's third socket: each node holds one, together two (the cap)
    closed = await third.wait(lambda m: m.get("type") == "closed")
    assert closed["reason"] == "too-many-connections" and "2" in closed["message"]
    await on_second.close()  # a socket closed on one node makes room on the other
    for _ in range(100):
        if await redis.zcard(f"taphuan:limits:ws-login:{cookie}") < 2:
            break
        await asyncio.sleep(0.05)
    assert (await (await open_on(first)).request("ping"))["type"] == "pong"


async def test_a_dead_nodes_sockets_stop_counting_after_their_lease_and_cool_downs_are_shared(redis: Any) -> None:
    alive = RedisSocketQuota(redis, per_login=1, per_ip=10, cooldown=30.0, lease=1.0)
    dying = RedisSocketQuota(redis, per_login=1, per_ip=10, cooldown=30.0, lease=1.0)
    renewed = RedisSocketQuota(redis, per_login=1, per_ip=10, cooldown=30.0, lease=1.0)
    assert await dying.take("login-a", "10.0.0.1") is None
    assert await renewed.take("login-b", "10.0.0.2") is None
    refusal = await alive.take("login-a", "10.0.0.3")
    assert refusal is not None and refusal.label == "login"
    for _ in range(6):  # 1.5 s: `dying` renews nothing (it died), `renewed` renews as shared_ctx does
        await asyncio.sleep(0.25)
        await renewed.renew()
    assert await alive.take("login-a", "10.0.0.3") is None  # the dead node's socket expired
    refusal = await alive.take("login-b", "10.0.0.3")
    assert refusal is not None and refusal.label == "login"  # the live node's socket still counts
    await renewed.give_back("login-b", "10.0.0.2")
    assert await alive.take("login-b", "10.0.0.3") is None

    await dying.cool_down("login-c")  # a flood closed login-c's socket on one node: every node refuses it
    refusal = await alive.take("login-c", "10.0.0.4")
    assert refusal is not None and refusal.reason == "flooding" and "30" in refusal.message


async def test_the_login_limiter_rules_over_redis(redis: Any) -> None:
    one = RedisLoginLimiter(redis, per_pair=3, per_ip=4)
    other = RedisLoginLimiter(redis, per_pair=3, per_ip=4)
    assert await one.retry_after("user:an", "203.0.113.1") == 0 and await one.delay("user:an") == 0
    for limiter in (one, other, one):
        await limiter.failed("user:an", "203.0.113.1")
    assert 59 <= await other.retry_after("user:an", "203.0.113.1") <= 60  # the pair is refused
    assert await other.retry_after("user:an", "203.0.113.2") == 0  # the account from elsewhere is not
    await one.failed("user:binh", "203.0.113.1")  # the address's 4th failure: refused for every account
    assert await other.retry_after("user:chi", "203.0.113.1") > 0
    assert await one.retry_after("user:chi", "2001:db8::1") == 0
    delays = []
    for i in range(30):  # one account from many addresses: slowed down, bounded, never refused
        await other.failed("user:dung", f"192.0.2.{i}")
        delays.append(await one.delay("user:dung"))
    assert delays == sorted(delays) and delays[0] > 0 and max(delays) == one.max_delay
    assert await one.retry_after("user:dung", "198.51.100.99") == 0
    await other.succeeded("user:an", "203.0.113.1")  # forgets that pair; the address keeps its failures
    assert await one.retry_after("user:an", "203.0.113.1") > 0
    assert await one.delay("user:an") > 0
    ttl = await redis.pttl("taphuan:limits:account:user:an")
    assert 0 < ttl <= 60_000  # every key expires by itself
