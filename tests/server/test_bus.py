"""Tests of server.bus: the in-process bus and the Redis bus (against a real redis-server)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from server.bus import Bus, MemoryBus, RedisBus


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redis_url: a real redis-server on loopback for this module."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server is required (scripts/test.sh installs it)"
    port = _free_port()
    folder: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                import time

                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        b: Bus = MemoryBus()
    else:
        rb = RedisBus(request.getfixturevalue("redis_url"))
        await rb.ping()
        b = rb
    yield b
    await b.close()


@pytest.mark.redis
async def test_publish_reaches_every_subscriber_in_order(bus: Bus) -> None:
    a = await bus.subscribe("room:1")
    b = await bus.subscribe("room:1")
    other = await bus.subscribe("room:2")
    await asyncio.sleep(0.05)  # Redis: let the subscriptions settle
    for i in range(5):
        await bus.publish("room:1", {"type": "n", "i": i})
    for sub in (a, b):
        got = [await asyncio.wait_for(sub.get(), 5) for _ in range(5)]
        assert [m["i"] for m in got] == [0, 1, 2, 3, 4]
    await bus.publish("room:2", {"type": "only-2"})
    assert (await asyncio.wait_for(other.get(), 5))["type"] == "only-2"
    for sub in (a, b, other):
        await sub.close()


@pytest.mark.redis
async def test_closed_subscription_gets_nothing(bus: Bus) -> None:
    a = await bus.subscribe("c")
    keep = await bus.subscribe("c")
    await asyncio.sleep(0.05)
    await a.close()
    await bus.publish("c", {"x": 1})
    assert (await asyncio.wait_for(keep.get(), 5)) == {"x": 1}
    await keep.close()


async def test_memory_bus_slow_subscriber_drops_oldest() -> None:
    bus = MemoryBus(queue_size=3)
    sub = await bus.subscribe("c")
    for i in range(5):
        await bus.publish("c", {"i": i})
    assert [(await sub.get())["i"] for _ in range(3)] == [2, 3, 4]
