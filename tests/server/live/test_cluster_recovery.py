"""Tests of what several nodes leave behind when one dies: the node set in Redis is pruned (server.live.nodeset),
and a starting node recovers only the recordings of the meetings it owns or whose node is dead
(server.live.recordings with server.live.cluster). Real redis-server, real PostgreSQL, one data directory."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from server.app import create_app
from server.config import Config
from server.db.engine import DB
from server.db.models import Meeting, Program, Recording, RecordingState
from server.live.cluster import CLUSTER, Cluster, draining_key, heartbeat_key
from server.live.nodeset import NODES_KEY, SEEN_KEY
from server.live.recording_claims import claim, recording_key
from server.live.recordings import RECORDERS, OpenPart
from tests.server.live.test_cluster import (  # noqa: F401  (fixtures: nodes on one Redis, database, data dir)
    node_config,
    ports,
    redis,
)
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


async def test_a_starting_node_leaves_the_recordings_a_living_node_holds_and_recovers_a_dead_nodes(
        aiohttp_client: Any, node_config: Callable[..., Config], redis: Any) -> None:  # noqa: F811
    b = await aiohttp_client(create_app(node_config("b")))
    root = b.app[RECORDERS].root
    now = dt.datetime.now(dt.UTC)
    async with b.app[DB]() as s:
        program = Program(title="Chương trình")
        s.add(program)
        await s.flush()
        meeting = Meeting(program_id=program.id, title="Buổi tập huấn", starts_at=now,
                          ends_at=now + dt.timedelta(hours=1))
        s.add(meeting)
        await s.flush()
        rows = {state: Recording(meeting_id=meeting.id, program_id=program.id, title="Buổi tập huấn",
                                 directory=f"{meeting.id}-{state.value}", state=state)
                for state in (RecordingState.RECORDING, RecordingState.PROCESSING, RecordingState.READY)}
        s.add_all(rows.values())
        await s.commit()
        ids = {state: row.id for state, row in rows.items()}
    kept = root / rows[RecordingState.READY].directory / "program-video"  # segments kept for a continuation
    kept.mkdir(parents=True)
    (kept / "00000.mkv").write_bytes(b"segment")
    recorders = b.app[RECORDERS]
    for rid in ids.values():  # node b records, finalizes and keeps these (its renewal claims what it holds)
        recorders.open_parts[rid] = OpenPart(meeting.id, 0.0, 0.0)
    assert await claim(b.app[CLUSTER], ids.values()) == set()  # (what its renewal does every third of the lease)

    async def states() -> dict[RecordingState, tuple[RecordingState, bool]]:
        async with b.app[DB]() as s:
            found = {r.id: r for r in await s.scalars(select(Recording))}
        return {state: (found[rid].state, found[rid].recovered) for state, rid in ids.items()}

    a = await aiohttp_client(create_app(node_config("a")))  # node a starts while node b lives: hands off
    assert a.app[CLUSTER] is not None
    assert await states() == {RecordingState.RECORDING: (RecordingState.RECORDING, False),
                              RecordingState.PROCESSING: (RecordingState.PROCESSING, False),
                              RecordingState.READY: (RecordingState.READY, False)}
    assert (kept / "00000.mkv").exists()
    await a.close()

    recorders.open_parts.clear()
    await b.close()  # node b is gone (its heartbeat with it)
    assert await redis.exists(heartbeat_key("b")) == 0

    again = await aiohttp_client(create_app(node_config("a")))  # node a starts again: b's are its own now
    assert await states() == {RecordingState.RECORDING: (RecordingState.PROCESSING, True),
                              RecordingState.PROCESSING: (RecordingState.PROCESSING, False),
                              RecordingState.READY: (RecordingState.READY, False)}
    assert not kept.exists()  # swept
    assert [await redis.get(recording_key(ids[state])) for state in (RecordingState.RECORDING,
                                                                     RecordingState.PROCESSING)] == [b"a", b"a"]
    assert again.app[CLUSTER] is not None
