"""Tests of server.live.connection: dispatch, limits and unreadable messages, over a real WebSocket."""

from __future__ import annotations

import asyncio

from server.config import Config
from server.db.models import Role
from tests.live_client import LiveClient
from tests.server.livetest import Factory, connect


async def test_unreadable_and_unknown_messages_get_errors_and_the_connection_survives(
        login_as: Factory, clients: list[LiveClient], config: Config) -> None:
    lc = await connect(await login_as(Role.OPERATOR), clients)
    assert (await lc.request("give-floor", participant_id=None))["error"]["code"] == "not-joined"
    assert (await lc.request("dance"))["error"]["code"] == "unknown-type"
    for raw, code in (('{"nope": 1}', "unknown-type"), ("{not json", "bad-message"), ("[1, 2]", "bad-message"),
                      ('{"type": "ping", "id": {"x": 1}}', "bad-message")):
        start = len(lc.messages)
        await lc.ws.send_str(raw)  # type: ignore[union-attr]
        reply = await lc.wait(lambda m: m.get("type") == "error", start=start)
        assert reply["error"]["code"] == code, raw
        assert reply["id"] is None
    big = "x" * (config.limits.ws_message_bytes + 10)
    await lc.send({"type": "ping", "pad": big})
    too_large = await lc.wait(lambda m: m.get("error", {}).get("code") == "too-large")
    assert too_large["type"] == "error"
    assert (await lc.request("ping"))["type"] == "pong"  # still serving


async def test_rate_limit(login_as: Factory, clients: list[LiveClient], config: Config) -> None:
    op = await login_as(Role.OPERATOR)
    lc = await connect(op, clients)
    for _ in range(config.limits.ws_burst + 20):
        await lc.send({"type": "ping"})
    await lc.wait(lambda m: m.get("error", {}).get("code") == "rate-limited")
    await asyncio.sleep(1.5)  # tokens come back
    assert (await lc.request("ping"))["type"] == "pong"
