"""Tests of sfu/hooks/ice.py against the pinned aioice: candidates, receive buffers, ICE consent."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aioice import ice as aioice_ice
from aioice.ice import CONSENT_FAILURES
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from sfu.events import ServerOffer
from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.guard import PRIVATE_INSTANCE_NAMES
from sfu.hooks.ice import ice_connection
from sfu.sfu import Sfu
from tests.sfu.helpers import CAPABILITIES, RED, ColorTrack, client_pc, join, publish, sfu_config, wait_until

pytestmark = pytest.mark.timeout(60)


def candidate_hosts(sdp: str) -> set[str]:
    return {line.split(" ")[4] for line in sdp.split("\r\n") if line.startswith("a=candidate:")}


async def test_ice_gathering_uses_configured_addresses() -> None:
    hooked = SfuPeerConnection(RTCConfiguration(iceServers=[]), ice_addresses=["127.0.0.1"])
    stock = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        for pc in (hooked, stock):
            pc.addTransceiver("audio", direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
        assert candidate_hosts(hooked.localDescription.sdp) == {"127.0.0.1"}
        assert "127.0.0.1" not in candidate_hosts(stock.localDescription.sdp)  # why the hook exists
    finally:
        await hooked.close()
        await stock.close()


async def test_udp_port_range_for_host_candidates() -> None:
    import socket

    from aiortc import RTCConfiguration, VideoStreamTrack

    from sfu.hooks.connection import SfuPeerConnection

    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    # A two-port range whose first port is taken: the other one is used.
    low, high = (port, port + 1) if port < 65535 else (port - 1, port)
    pc = SfuPeerConnection(RTCConfiguration(iceServers=[]), ice_addresses=["127.0.0.1"], udp_ports=(low, high))
    try:
        pc.addTrack(VideoStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        lines = [x for x in pc.localDescription.sdp.splitlines() if x.startswith("a=candidate:")]
        ports = {int(x.split()[5]) for x in lines}
        assert ports and ports <= {low, high} - {port}
    finally:
        await pc.close()
        busy.close()


def rmem_max() -> int:
    """rmem_max is the kernel's cap on SO_RCVBUF (net.core.rmem_max)."""
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


async def test_forwarding_peers_raise_their_media_sockets_receive_buffers() -> None:
    """A keyframe burst arrives at once: the SFU's media sockets get far more than the default buffer."""
    from sfu.hooks.ice import RECEIVE_BUFFER, ice_connection

    cap = rmem_max()  # the kernel grants min(asked, cap), doubled
    pc = SfuPeerConnection(RTCConfiguration(iceServers=[]), ice_addresses=["127.0.0.1"], forwarding=True)
    try:
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        protocols = ice_connection(pc.getTransceivers()[0].receiver.transport)._protocols
        assert protocols
        for protocol in protocols:
            fd = protocol.transport.get_extra_info("socket").fileno()
            with socket.socket(fileno=os.dup(fd)) as sock:
                granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            assert granted == 2 * min(RECEIVE_BUFFER, cap)  # unset, it reads net.core.rmem_default (undoubled)
    finally:
        await pc.close()


async def consent_room(monkeypatch: pytest.MonkeyPatch) -> tuple[Sfu, Any, list[Any]]:
    """consent_room: a trainer publishing to a classroom, consent checks every ~0.3 s both ways."""
    monkeypatch.setattr(aioice_ice, "CONSENT_INTERVAL", 0.3)  # the aiortc clients' aioice
    sfu = Sfu(sfu_config(consent_interval=0.3))
    room = await sfu.room("consent")
    t = await join(room, "t", "trainer", decode=False)
    c = await join(room, "c", "classroom")
    await publish(room, t, video=ColorTrack(RED), audio=False)
    await wait_until(lambda: len(c.slot_frames("presenter-video")) >= 5, 10)
    return sfu, room, [t, c]


async def test_consent_runs_on_the_ticker_and_answers_checks_without_aioice(monkeypatch: pytest.MonkeyPatch) -> None:
    sfu, room, clients = await consent_room(monkeypatch)
    try:
        down = room.participants["c"].down
        (consent,) = down.pc.consents
        conn = consent._conn
        for name in PRIVATE_INSTANCE_NAMES["Connection"]:
            assert hasattr(conn, name)
        for name in PRIVATE_INSTANCE_NAMES["CandidatePair"]:
            assert hasattr(conn._nominated[1], name)
        assert conn.query_consent == consent.start and conn._query_consent_task.done()  # aioice's loop never ran
        await wait_until(lambda: consent.confirmed >= 3 and consent.answered >= 3, 20)
        assert consent.failures < CONSENT_FAILURES and not consent.expired  # a check may be in flight
        assert down.pc.connectionState == "connected"
        frames = len(clients[1].slot_frames("presenter-video"))
        await wait_until(lambda: len(clients[1].slot_frames("presenter-video")) > frames + 5, 10)
    finally:
        for cl in clients:
            await cl.close()
        await sfu.close()


async def test_consent_expires_when_the_peer_stops_answering(monkeypatch: pytest.MonkeyPatch) -> None:
    sfu, room, clients = await consent_room(monkeypatch)
    try:
        t, c = clients
        (consent,) = room.participants["c"].down.pc.consents
        await wait_until(lambda: consent.confirmed >= 1, 20)
        assert c.down is not None
        for protocol in ice_connection(c.down.getTransceivers()[0].sender.transport)._protocols:
            protocol.transport.close()  # the classroom's network is gone: no goodbye, no answers
        await wait_until(lambda: consent.expired, 30)
        assert consent.failures >= 6 and consent.checks > consent.confirmed
        await wait_until(lambda: "c" not in room.participants, 10)  # cleaned up, the others told
        assert "t" in room.participants
    finally:
        for cl in clients:
            await cl.close()
        await sfu.close()


class ThreadPeer:
    """ThreadPeer is a loopback aiortc client on its own event loop and thread: it answers while ours is blocked."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="thread-peer", daemon=True)
        self.thread.start()
        self.pc: SfuPeerConnection | None = None

    async def run(self, coro: Any) -> Any:
        """run awaits `coro` on the peer's loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def _answer(self, sdp: str) -> str:
        pc = self.pc = client_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def join(self, room: Any, pid: str, role: str) -> None:
        """join enters `room` and answers its down offer from the peer's loop."""
        offers: asyncio.Queue[ServerOffer] = asyncio.Queue()

        async def on_event(event: Any) -> None:
            if isinstance(event, ServerOffer):
                offers.put_nowait(event)

        await room.join(pid, role, pid.upper(), CAPABILITIES[role], on_event)
        offer = await asyncio.wait_for(offers.get(), 20)
        await room.answer_down(pid, await self.run(self._answer(offer.sdp)))

    async def close(self) -> None:
        """close closes the peer connection and stops the thread."""
        if self.pc is not None:
            await self.run(self.pc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        await asyncio.to_thread(self.thread.join, 10)
        self.loop.close()


def late_checks(consent: Any, count: int, busy: float) -> None:
    """late_checks: `count` consent checks due back to back, our event loop blocked `busy` seconds after each.

    Each answer arrives while the loop is blocked and waits in the socket; the next check is due before the
    loop could read it (as with a starved loop whose Ticker runs a due job before the socket is read).
    """
    for _ in range(count):
        consent.tick()
        time.sleep(busy)  # the whole event loop stops, on purpose


async def test_consent_holds_while_our_event_loop_is_too_busy_to_read_the_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checks due back to back while our loop is blocked: the answers wait in the socket and count once read.

    The peer runs on its own thread and answers at once; our loop is blocked between our checks (as a starved
    loop whose Ticker runs a due check before the loop reads the socket), eight times 0.4 s, past both the
    six checks and the 6 × 0.3 s after which a silent peer loses consent.
    """
    monkeypatch.setattr(aioice_ice, "CONSENT_INTERVAL", 3600.0)  # the peer's own aioice checks stay out of it
    sfu = Sfu(sfu_config(consent_interval=0.3))
    room = await sfu.room("busy")
    peer = ThreadPeer()
    try:
        await peer.join(room, "c", "classroom")
        down = room.participants["c"].down
        assert down is not None
        (consent,) = down.pc.consents
        await wait_until(lambda: consent.confirmed >= 2, 20)
        checks, confirmed = consent.checks, consent.confirmed
        late_checks(consent, 8, 0.4)
        assert consent.checks >= checks + 8 and not consent.expired
        await wait_until(lambda: consent.confirmed > confirmed and consent.failures == 0, 10)
        await wait_until(lambda: consent.confirmed >= confirmed + 3, 10)  # and the Ticker's checks go on
        assert not consent.expired and "c" in room.participants
        assert down.pc.connectionState == "connected"
    finally:
        await peer.close()
        await sfu.close()


async def test_consent_expires_when_the_peer_stops_answering_while_our_loop_is_blocked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same blocked loop with a peer whose network is gone: consent still expires."""
    monkeypatch.setattr(aioice_ice, "CONSENT_INTERVAL", 3600.0)
    sfu = Sfu(sfu_config(consent_interval=0.3))
    room = await sfu.room("busy-gone")
    peer = ThreadPeer()
    try:
        await peer.join(room, "c", "classroom")
        down = room.participants["c"].down
        assert down is not None and peer.pc is not None
        (consent,) = down.pc.consents
        await wait_until(lambda: consent.confirmed >= 1, 20)

        async def vanish() -> None:
            assert peer.pc is not None
            for protocol in ice_connection(peer.pc.getTransceivers()[0].sender.transport)._protocols:
                protocol.transport.close()  # no goodbye, no answers

        await peer.run(vanish())
        late_checks(consent, 8, 0.4)
        await wait_until(lambda: consent.expired, 10)
        assert consent.failures >= CONSENT_FAILURES
        await wait_until(lambda: "c" not in room.participants, 10)
    finally:
        await peer.close()
        await sfu.close()
