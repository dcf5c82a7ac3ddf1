"""Tests of server.live.service: the SFU's settings from config.yaml, the table of connections and its lookups,
the sockets' quota per login and address, closing every connection, logins revoked elsewhere, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from server.auth import Identity
from server.bus import BUS
from server.config import Config
from server.db.models import Role
from server.live.service import LIVE, Live, SocketQuota, sfu_config
from sfu.config import SfuConfig
from tests.live_client import LiveClient
from tests.server.livetest import connect

Factory = Callable[..., Awaitable[Any]]


def test_sfu_config_from_yaml(make_config: Callable[..., Config]) -> None:
    cfg = make_config(**{"sfu.max_participants_per_room": 3, "sfu.max_participants": 7, "sfu.grid_slots": 4,
                         "sfu.announce_address": "203.0.113.5", "limits.max_sdp_bytes": 4096,
                         "sfu.udp_ports": "40000-40099", "sfu.compiled_fanout": False})
    sc = sfu_config(cfg)
    assert (sc.max_participants_per_room, sc.max_participants, sc.grid_slots) == (3, 7, 4)
    assert sc.announce_address == "203.0.113.5" and sc.max_sdp_bytes == 4096
    assert sc.ice_addresses == ["127.0.0.1"]
    assert sc.udp_ports == (40000, 40099)
    assert sc.compiled_fanout is False


def test_every_sfu_setting_of_config_yaml_reaches_the_sfu(make_config: Callable[..., Config]) -> None:
    cfg = make_config(**{"sfu.room_grace_seconds": 12.5, "sfu.resume_seconds": 90.0,
                         "sfu.keyframe_min_interval": 0.75, "sfu.video_codec": "H264",
                         "sfu.publish_bitrate": 1_500_000, "sfu.receive_wait_ms": 2.5,
                         "sfu.receive_wait_above": 500})
    sc = sfu_config(cfg)
    assert (sc.receive_wait, sc.receive_wait_above) == (0.0025, 500)
    assert (sc.room_grace_seconds, sc.resume_seconds, sc.keyframe_min_interval, sc.video_codec) == (
        12.5, 90.0, 0.75, "H264")
    assert sc.publish_bitrate == 1_500_000
    both = set(type(cfg.sfu).model_fields) & {f.name for f in dataclasses.fields(SfuConfig)}
    assert len(both) >= 10  # e.g. stun_urls and turn are for browsers only
    for name in both - {"udp_ports", "announce_address"}:  # converted: tested above
        assert getattr(sc, name) == getattr(cfg.sfu, name), name
    assert sc.announce_address is None  # "" in config.yaml: none


@dataclass(eq=False)
class FakeConnection:
    """FakeConnection: what Live reads of a server.live.connection.Connection, its close() and wait_closed()."""

    ident: Identity
    meeting_id: int | None = None
    participant_id: str | None = None
    closed: list[str] = field(default_factory=list)
    fails: bool = False

    async def close(self, reason: str) -> None:
        await asyncio.sleep(0)
        self.closed.append(reason)
        if self.fails:
            raise ConnectionResetError("socket already gone")

    async def wait_closed(self) -> None:
        await asyncio.sleep(0)


def _ident(login: str, user_id: int | None, role: Role = Role.CLASSROOM) -> Identity:
    return Identity(login_id=login, role=role, csrf_token="c", user_id=user_id)


@pytest.fixture
async def live(config: Config) -> AsyncIterator[Live]:
    """live: a Live of its own (its SFU closed after the test)."""
    value = Live(config)
    yield value
    await value.sfu.close()


async def test_lookups(live: Live) -> None:
    a = FakeConnection(_ident("la", 1), meeting_id=7, participant_id="p-a")
    a2 = FakeConnection(_ident("la2", 1), meeting_id=7, participant_id="p-a2")  # the same account, another PC
    waiting = FakeConnection(_ident("lb", 2), meeting_id=7)  # in the lobby: not joined
    other = FakeConnection(_ident("lc", 3), meeting_id=8, participant_id="p-c")
    idle = FakeConnection(_ident("la", 1))  # the first login's second tab, in no room
    live.connections.update({a, a2, waiting, other, idle})  # type: ignore[arg-type]
    assert set(live.in_meeting(7)) == {a, a2}
    assert live.in_meeting(9) == []
    assert live.by_participant(7, "p-a2") is a2
    assert live.by_participant(8, "p-a") is None  # participant ids are per meeting
    assert set(live.by_login({"la"})) == {a, idle}
    assert set(live.by_login({"lb", "lc", "nobody"})) == {waiting, other}
    assert set(live.by_user_in_meeting(1, 7)) == {a, a2}
    assert live.by_user_in_meeting(2, 7) == []  # waiting in the lobby is not being in the meeting
    assert live.by_user_in_meeting(1, 8) == []


async def test_close_all_tells_everyone_even_when_one_fails(live: Live) -> None:
    conns = [FakeConnection(_ident(f"l{i}", i), fails=(i == 1)) for i in range(3)]
    live.connections.update(conns)  # type: ignore[arg-type]
    await live.close_all("server-shutdown")
    assert [c.closed for c in conns] == [["server-shutdown"]] * 3


async def test_a_login_revoked_elsewhere_closes_its_connections(app: Any, login_as: Factory,
                                                               clients: list[LiveClient]) -> None:
    trainer = await login_as(Role.TRAINER)
    other = await login_as(Role.TRAINER)
    tabs = [await connect(trainer, clients) for _ in range(2)]
    bystander = await connect(other, clients)
    login_id = next(c.ident.login_id for c in app[LIVE].connections if c.ident.user_id == trainer.user.id)
    await app[BUS].publish("logins", {"type": "something-else", "login_ids": [login_id]})  # not for the live side
    await app[BUS].publish("logins", {"type": "login-revoked", "login_ids": [login_id], "reason": "password-changed"})
    for tab in tabs:
        closed = await tab.wait(lambda m: m.get("type") == "closed")
        assert closed["reason"] == "password-changed"
    assert [m for m in bystander.messages if m.get("type") == "closed"] == []
    assert (await bystander.request("ping"))["type"] == "pong"


async def test_shutdown_tells_everyone(login_as: Factory, make_meeting: Factory,
                                       clients: list[LiveClient]) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    lc = await connect(op, clients)
    await lc.join(meeting.id)
    await op.client.server.close()  # runs on_shutdown and cleanup: SIGTERM's path
    closed = await lc.wait(lambda m: m.get("type") == "closed")
    assert closed["reason"] == "server-shutdown"


async def test_socket_quota_per_login_and_address_and_the_cool_down() -> None:
    now = [100.0]
    quota = SocketQuota(per_login=2, per_ip=3, cooldown=30.0, clock=lambda: now[0])
    assert await quota.take("a", "10.0.0.1") is None
    assert await quota.take("a", "10.0.0.1") is None
    refusal = await quota.take("a", "10.0.0.2")  # the login's third socket, from anywhere
    assert refusal is not None and (refusal.reason, refusal.label) == ("too-many-connections", "login")
    assert await quota.take("b", "10.0.0.1") is None
    refusal = await quota.take("c", "10.0.0.1")  # the address's fourth socket, whoever opens it
    assert refusal is not None and (refusal.reason, refusal.label) == ("too-many-connections", "ip")
    assert "3" in refusal.message
    await quota.give_back("a", "10.0.0.1")
    assert await quota.take("c", "10.0.0.1") is None  # a socket given back makes room
    await quota.cool_down("b")
    refusal = await quota.take("b", "10.0.0.9")
    assert refusal is not None and (refusal.reason, refusal.label) == ("flooding", "cooldown")
    assert "30 s" in refusal.message
    now[0] += 30.5
    assert await quota.take("b", "10.0.0.9") is None
    assert quota.cooling == {}
    for login, ip in (("a", "10.0.0.1"), ("b", "10.0.0.1"), ("c", "10.0.0.1"), ("b", "10.0.0.9")):
        await quota.give_back(login, ip)
    assert not quota.by_login and not quota.by_ip  # nothing kept for logins and addresses gone


def test_the_quota_comes_from_config_yaml(make_config: Callable[..., Config]) -> None:
    cfg = make_config(**{"limits.ws_connections_per_login": 2, "limits.ws_connections_per_ip": 9,
                         "limits.ws_flood_cooldown_seconds": 5.0})
    quota = Live(cfg).quota
    assert (quota.per_login, quota.per_ip, quota.cooldown) == (2, 9, 5.0)
