"""Tests of server.metrics: one registry per application, exported at /metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from server.db.models import Role
from server.metrics import Metrics


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # a second set in one process: no "duplicated timeseries" from a global registry
    a.ws_connections.inc(3)
    a.logins.labels(result="ok").inc()
    assert a.registry.get_sample_value("taphuan_ws_connections") == 3
    assert a.registry.get_sample_value("taphuan_logins_total", {"result": "ok"}) == 1
    assert b.registry.get_sample_value("taphuan_ws_connections") == 0
    assert b.registry.get_sample_value("taphuan_logins_total", {"result": "ok"}) is None


async def _gauge(client: TestClient[Any, Any]) -> float:
    text = await (await client.get("/metrics")).text()
    match = re.search(r"^taphuan_ws_connections (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


async def test_open_websockets_are_counted_at_metrics(client: TestClient[Any, Any],
                                                      login_as: Callable[..., Awaitable[Any]]) -> None:
    who = await login_as(Role.TRAINER)
    assert await _gauge(client) == 0
    sockets = [await who.client.ws_connect("/ws") for _ in range(2)]
    assert await _gauge(client) == 2
    for ws in sockets:
        await ws.close()
    for _ in range(100):  # the server notices the close a moment later
        if await _gauge(client) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _gauge(client) == 0
