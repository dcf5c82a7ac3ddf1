"""Tests of what several nodes leave behind when one dies: the node set in Redis is pruned (server.live.nodeset),
and a starting node recovers only the recordings of the meetings it owns or whose node is dead
(server.live.recordings with server.live.cluster). Real redis-server, real PostgreSQL, one data directory."""

from __future__ import annotations

import time
from typing import Any

import pytest

from server.live.cluster import Cluster, draining_key, heartbeat_key
from server.live.nodeset import NODES_KEY, SEEN_KEY
from tests.server.live.test_cluster import redis  # noqa: F401  (fixture: a client of the module's redis-server)
from tests.server.test_bus import redis_url  # noqa: F401  (fixture: a real redis-server)

pytestmark = pytest.mark.redis
DAY_MS = 24 * 3600 * 1000


async def test_a_node_without_a_heartbeat_for_a_day_is_forgotten_by_the_next_heartbeat(
        redis: Any) -> None:  # noqa: F811
    now = int(time.time() * 1000)
    await redis.sadd(NODES_KEY, "old", "recent", "unseen", "alive")
    await redis.hset(SEEN_KEY, mapping={"old": now - DAY_MS - 60_000, "recent": now - 3_600_000,
                                        "alive": now - 2 * DAY_MS})
    await redis.set(heartbeat_key("alive"), '{"url": "http://b", "rooms": 0, "participants": 0, "cpu": 0, '
                                            '"draining": false}', px=60_000)
    await redis.set(draining_key("old"), "1")
    cluster = Cluster(redis, "a", "http://a", 6.0)

    await cluster.heartbeat([], 0)

    members = {m.decode() for m in await redis.smembers(NODES_KEY)}
    assert members == {"a", "recent", "unseen", "alive"}  # `old`'s heartbeat has been gone for over a day
    assert await redis.hget(SEEN_KEY, "old") is None and await redis.exists(draining_key("old")) == 0
    seen = {k.decode(): int(v) for k, v in (await redis.hgetall(SEEN_KEY)).items()}
    assert seen["a"] >= now and seen["unseen"] >= now  # a dead node without a time starts its day now
    assert seen["recent"] == now - 3_600_000 and seen["alive"] == now - 2 * DAY_MS  # kept: dead < a day, alive
    assert {n.node_id for n in await cluster.nodes()} == {"a", "alive"}

    await redis.hset(SEEN_KEY, "recent", now - DAY_MS - 1)  # a day later
    await cluster.heartbeat([], 0)
    assert {m.decode() for m in await redis.smembers(NODES_KEY)} == {"a", "unseen", "alive"}
