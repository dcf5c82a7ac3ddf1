"""Tests of server.live.service: the SFU's settings from config.yaml, shutdown."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.config import Config
from server.db.models import Role
from tests.live_client import LiveClient
from tests.server.livetest import connect

Factory = Callable[..., Awaitable[Any]]


def test_sfu_config_from_yaml(make_config: Callable[..., Config]) -> None:
    from server.live.service import sfu_config

    cfg = make_config(**{"sfu.max_participants_per_room": 3, "sfu.max_participants": 7, "sfu.grid_slots": 4,
                         "sfu.announce_address": "203.0.113.5", "limits.max_sdp_bytes": 4096,
                         "sfu.udp_ports": "40000-40099", "sfu.compiled_fanout": False})
    sc = sfu_config(cfg)
    assert (sc.max_participants_per_room, sc.max_participants, sc.grid_slots) == (3, 7, 4)
    assert sc.announce_address == "203.0.113.5" and sc.max_sdp_bytes == 4096
    assert sc.ice_addresses == ["127.0.0.1"]
    assert sc.udp_ports == (40000, 40099)
    assert sc.compiled_fanout is False


async def test_shutdown_tells_everyone(login_as: Factory, make_meeting: Factory,
                                       clients: list[LiveClient]) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    lc = await connect(op, clients)
    await lc.join(meeting.id)
    await op.client.server.close()  # runs on_shutdown and cleanup: SIGTERM's path
    closed = await lc.wait(lambda m: m.get("type") == "closed")
    assert closed["reason"] == "server-shutdown"

