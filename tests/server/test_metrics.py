"""Tests of server.metrics: one registry per application, exported at /metrics."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from server.db.models import Role
from server.metrics import Metrics
from tests.live_client import page_origin


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
    origin = page_origin(str(who.client.make_url("/ws")))
    sockets = [await who.client.ws_connect("/ws", headers={"Origin": origin}) for _ in range(2)]
    assert await _gauge(client) == 2
    for ws in sockets:
        await ws.close()
    for _ in range(100):  # the server notices the close a moment later
        if await _gauge(client) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _gauge(client) == 0


async def _sample(client: TestClient[Any, Any], name: str, **labels: str) -> float:
    """_sample: one sample of the app's /metrics, 0 when absent."""
    text = await (await client.get("/metrics")).text()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{wanted}}}" if labels else name
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_logins_and_http_requests_are_counted(client: TestClient[Any, Any],
                                                     make_user: Callable[..., Awaitable[Any]]) -> None:
    from tests.server.test_auth import api_login

    await make_user(Role.TRAINER, username="an", password="good-password")
    not_found = await _sample(client, "taphuan_http_requests_total", status="404")
    assert (await api_login(client, "an", "nope-nope")).status == 401
    assert (await api_login(client, "an", "good-password")).status == 200
    assert (await client.get("/no-such-page")).status == 404
    assert await _sample(client, "taphuan_logins_total", result="failed") == 1
    assert await _sample(client, "taphuan_logins_total", result="ok") == 1
    assert await _sample(client, "taphuan_http_requests_total", status="401") >= 1
    assert await _sample(client, "taphuan_http_requests_total", status="404") == not_found + 1


async def test_live_rooms_and_participants_are_read_from_the_sfu(client: TestClient[Any, Any]) -> None:
    from server.live.service import LIVE
    from sfu.participant import Capabilities

    assert await _sample(client, "taphuan_rooms") == 0
    room = await client.app[LIVE].sfu.room("42")

    async def on_event(event: Any) -> None:
        pass

    await room.join("p-1", "guest", "Khách", Capabilities(), on_event)
    assert await _sample(client, "taphuan_rooms") == 1
    assert await _sample(client, "taphuan_participants") == 1
    await room.leave("p-1")
    assert await _sample(client, "taphuan_participants") == 0
