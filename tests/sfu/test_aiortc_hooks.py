"""Tests of sfu/aiortc_hooks.py against the pinned aiortc / aioice: fail when the internals we use change."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import AsyncIterator

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtpPacket, wrap_rtx

from sfu.aiortc_hooks import (
    PRIVATE_INSTANCE_NAMES,
    PRIVATE_NAMES,
    ForwardingReceiver,
    ForwardingSender,
    SfuPeerConnection,
    ice_connection,
)
from sfu.config import SfuConfig
from sfu.peer import Peer
from sfu.room import Sfu
from tests.sfu.helpers import RED, ColorTrack, client_pc, join, publish, sfu_config, wait_until

pytestmark = pytest.mark.timeout(60)


def test_pinned_versions() -> None:
    assert importlib.metadata.version("aiortc") == "1.16.0"
    assert importlib.metadata.version("aioice") == "0.13.0"


def test_private_class_attributes_exist() -> None:
    for cls, names in PRIVATE_NAMES.items():
        for name in names:
            assert hasattr(cls, name), f"{cls.__name__}.{name} is gone: update sfu/aiortc_hooks.py"


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


@pytest.fixture
async def connected_pair() -> AsyncIterator[tuple[Peer, SfuPeerConnection]]:
    """An up Peer (server side) answering a client that publishes two video tracks on one BUNDLE."""
    peer = Peer("p", False, SfuConfig(ice_addresses=["127.0.0.1"]), "video/vp8", lambda p, s: None)
    client = client_pc()
    client.addTransceiver(ColorTrack(RED), direction="sendonly")
    client.addTransceiver(ColorTrack(RED), direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    answer, tracks = await peer.answer(client.localDescription.sdp, {"0": "camera", "1": "screen"})
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    assert [t.source for t in tracks] == ["camera", "screen"]
    await wait_until(lambda: all(t.receiver.media_ssrc and t.receiver.rtx_to_media for t in tracks), 10)
    yield peer, client
    await client.close()
    await peer.close()


async def test_receiver_stops_decoder_and_routes_rtx_by_ssrc(
    connected_pair: tuple[Peer, SfuPeerConnection],
) -> None:
    peer, _ = connected_pair
    receivers = [t.receiver for t in peer.pc.getTransceivers()]
    assert all(isinstance(r, ForwardingReceiver) for r in receivers)
    assert all(r.decoder_thread is None for r in receivers)  # type: ignore[attr-defined]
    second: ForwardingReceiver = receivers[1]  # type: ignore[assignment]
    for name in PRIVATE_INSTANCE_NAMES["RTCRtpReceiver"]:
        assert hasattr(second, name)
    rtx_ssrc, media_ssrc = next(iter(second.rtx_to_media.items()))
    rtx_pt, apt = next(iter(second.rtx_apt.items()))
    got: list[RtpPacket] = []
    second.on_rtp = got.append
    original = RtpPacket(payload_type=apt, sequence_number=4242, timestamp=9, ssrc=media_ssrc)
    original.payload = b"\x10ab"
    rtx = wrap_rtx(original, payload_type=rtx_pt, sequence_number=1, ssrc=rtx_ssrc)
    router = second.transport._rtp_router  # type: ignore[attr-defined]
    # both video receivers registered the RTX payload type: stock aiortc can only route RTX by SSRC
    assert len(router.payload_type_table[rtx_pt]) == 2
    assert router.route_rtp(rtx) is second
    del router.ssrc_table[rtx_ssrc]
    assert router.route_rtp(rtx) is None  # what happens without the hook: the retransmission is dropped
    second.route_rtx_by_ssrc()
    await second._handle_rtp_packet(rtx, arrival_time_ms=0)
    assert [(p.ssrc, p.sequence_number, p.payload) for p in got] == [(media_ssrc, 4242, b"\x10ab")]


async def test_sender_is_idle_and_keeps_sr_counters(connected_pair: tuple[Peer, SfuPeerConnection]) -> None:
    down = Peer("p", True, SfuConfig(ice_addresses=["127.0.0.1"]), "video/vp8", lambda p, s: None)
    try:
        sender = down.add_slot("video")
        assert isinstance(sender, ForwardingSender)
        for name in PRIVATE_INSTANCE_NAMES["RTCRtpSender"]:
            assert hasattr(sender, name), name
        for name in PRIVATE_INSTANCE_NAMES["RTCRtpTransceiver"]:
            assert hasattr(down.pc.getTransceivers()[0], name), name
        dtls = sender.transport
        for name in PRIVATE_INSTANCE_NAMES["RTCDtlsTransport"]:
            assert hasattr(dtls, name), name
        assert hasattr(dtls.transport, "_connection")
        conn = ice_connection(dtls)
        for name in PRIVATE_INSTANCE_NAMES["Connection"]:
            assert hasattr(conn, name), name
        sender.note_sent(123 << 32, 777, 1000)
        sender.note_sent(124 << 32, 778, 500)
        assert sender.sr_counters == (124 << 32, 778, 2, 1500)
        assert sender.rtt is None
        kf: list[int] = []
        sender.on_keyframe = lambda: kf.append(1)
        sender._send_keyframe()
        assert kf == [1]
    finally:
        await down.close()


@pytest.mark.parametrize("fast", [True, False])
async def test_packet_wire_fast_and_fallback_paths_deliver(fast: bool) -> None:
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
        else:
            assert wire.slow_sent > 0 and wire.fast_sent == 0
        await asyncio.sleep(0)
    finally:
        for cl in clients:
            await cl.close()
        await sfu.close()
