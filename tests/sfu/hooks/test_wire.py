"""Tests of sfu/hooks/wire.py: PacketWire's fast and fallback paths, and don't-fragment."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from sfu.hooks.reader import SocketTransport
from sfu.hooks.wire import IP_MTU_DISCOVER, IP_PMTUDISC_PROBE, PacketWire, dont_fragment
from sfu.sfu import Sfu
from tests.sfu.helpers import RED, ColorTrack, join, publish, sfu_config, wait_until

pytestmark = pytest.mark.timeout(60)


def test_dont_fragment_sets_df_on_ipv4_sockets_only() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as v4, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as v6:
        assert v4.getsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER) != IP_PMTUDISC_PROBE
        assert dont_fragment(v4)
        assert v4.getsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER) == IP_PMTUDISC_PROBE
        assert not dont_fragment(v6)
        v4.bind(("127.0.0.1", 0))
        v4.sendto(b"x" * 1200, v4.getsockname())  # still sends (the loopback MTU is far larger)
        assert v4.recv(2000) == b"x" * 1200


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_packet_wire_fast_path_on_both_event_loops(loop: str) -> None:
    """The fast path sends on the socket of the pair's SocketTransport (sfu.hooks.reader) on both loops."""
    import uvloop

    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.SelectorEventLoop
    with asyncio.Runner(loop_factory=factory) as runner:
        wire, dup = runner.run(packet_wire_delivers(True))
    assert dup is None  # the transport's own socket: no duplicate of ours
    assert isinstance(wire._udp, SocketTransport) and wire._sock is wire._udp.socket
    assert wire._sock.fileno() == -1  # closed with the peer
    assert wire._dup is None


@pytest.mark.parametrize("fast", [True, False])
async def test_packet_wire_fast_and_fallback_paths_deliver(fast: bool) -> None:
    await packet_wire_delivers(fast)


async def packet_wire_delivers(fast: bool) -> tuple[PacketWire, Any]:
    """packet_wire_delivers: a trainer's video reaches a classroom; returns its wire and socket duplicate."""
    sfu = Sfu(sfu_config(fast_path=fast))
    clients = []
    try:
        room = await sfu.room("w")
        t = await join(room, "t", "trainer", decode=False)
        c = await join(room, "c", "classroom")
        clients = [t, c]
        await publish(room, t, video=ColorTrack(RED), audio=False)
        await wait_until(lambda: len(c.slot_frames("presenter-video")) >= 10, 10)
        wire = room.participants["c"].consumers["presenter-video"].wire
        assert wire is not None
        if fast:
            assert wire.fast_sent > 0 and wire.slow_sent == 0
            # the pair's socket sets DF (no IP-ID hashing per send, no fragments)
            assert wire._sock.getsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER) == IP_PMTUDISC_PROBE
        else:
            assert wire.slow_sent > 0 and wire.fast_sent == 0
        dup = wire._dup
        await asyncio.sleep(0)
    finally:
        for cl in clients:
            await cl.close()
        await sfu.close()
    return wire, dup
