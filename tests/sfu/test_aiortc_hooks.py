"""Tests of sfu/aiortc_hooks.py against the pinned aiortc / aioice: fail when the internals we use change."""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pylibsrtp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    wrap_rtx,
)
from pylibsrtp._binding import lib as _lib

from sfu.aiortc_hooks import (
    PRIVATE_INSTANCE_NAMES,
    PRIVATE_NAMES,
    PYLIBSRTP_NAMES,
    ForwardingReceiver,
    ForwardingSender,
    SfuPeerConnection,
    ice_connection,
    install_fast_rtcp_routing,
    run_now,
    sender_reports,
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


async def test_sender_is_idle_and_reports_through_the_wire() -> None:
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
        for name in PRIVATE_INSTANCE_NAMES["RtpRouter"]:
            assert hasattr(dtls._rtp_router, name), name  # type: ignore[attr-defined]
        assert hasattr(dtls.transport, "_connection")
        conn = ice_connection(dtls)
        for name in PRIVATE_INSTANCE_NAMES["Connection"]:
            assert hasattr(conn, name), name
        assert sender.rtt is None
        kf: list[int] = []
        sender.on_keyframe = lambda: kf.append(1)
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))
        assert kf == [1]
    finally:
        await down.close()


def test_pylibsrtp_internals_exist() -> None:
    session = pylibsrtp.Session()
    for name in PRIVATE_INSTANCE_NAMES["pylibsrtp.Session"]:
        assert hasattr(session, name), name
    for name in PYLIBSRTP_NAMES:
        assert hasattr(_lib, name), name
    assert importlib.metadata.version("pylibsrtp") == "1.0.0"


def sr_sender(ssrc: int, info: tuple[int, int, int, int] | None, cname: str = "c") -> ForwardingSender:
    sender = ForwardingSender.__new__(ForwardingSender)  # only the attributes sender_reports reads
    sender.sr_info = (lambda: info) if info is not None else None
    sender.context = SimpleNamespace(ssrc=ssrc, cname=cname)  # type: ignore[assignment]
    sender.lsr, sender.lsr_time = -1, 0.0
    return sender


def test_sender_reports_are_one_compound_packet_and_give_rtt() -> None:
    a = sr_sender(0x1111, (0x0102030405060708, 90000, 10, 12000), "peer-cname")
    b = sr_sender(0x2222, (0x1112131415161718, 48000, 3, 300), "peer-cname")
    idle = sr_sender(0x3333, (0, 0, 0, 0))
    unready = sr_sender(0x4444, None)
    data = sender_reports([a, idle, b, unready], now=1000.0)
    packets = RtcpPacket.parse(data)
    assert [type(p) for p in packets] == [RtcpSrPacket, RtcpSrPacket, RtcpSdesPacket, RtcpSdesPacket]
    sr_a, sr_b, sdes_a, sdes_b = packets
    assert isinstance(sr_a, RtcpSrPacket) and isinstance(sr_b, RtcpSrPacket)
    assert isinstance(sdes_a, RtcpSdesPacket) and isinstance(sdes_b, RtcpSdesPacket)
    assert (sr_a.ssrc, sr_a.sender_info.ntp_timestamp, sr_a.sender_info.rtp_timestamp) == (
        0x1111, 0x0102030405060708, 90000)
    assert (sr_a.sender_info.packet_count, sr_a.sender_info.octet_count) == (10, 12000)
    assert sr_b.ssrc == 0x2222 and sr_b.sender_info.packet_count == 3
    assert [(c.ssrc, c.items) for p in (sdes_a, sdes_b) for c in p.chunks] == [
        (0x1111, [(1, b"peer-cname")]), (0x2222, [(1, b"peer-cname")])]
    assert a.lsr == 0x03040506 and a.lsr_time == 1000.0 and idle.lsr == -1
    assert sender_reports([idle, unready], now=1.0) == b""


async def test_sender_rtt_from_report_block() -> None:
    down = Peer("p", True, SfuConfig(ice_addresses=["127.0.0.1"]), "video/vp8", lambda p, s: None)
    try:
        sender = down.add_slot("video")
        assert isinstance(sender, ForwardingSender)
        seen: list[object] = []
        sender.on_rtcp = seen.append
        sender.lsr, sender.lsr_time = 0x03040506, time.time() - 0.30
        rr = RtcpRrPacket(ssrc=9, reports=[RtcpReceiverInfo(
            ssrc=sender._ssrc, fraction_lost=0, packets_lost=0, highest_sequence=1, jitter=0,
            lsr=0x03040506, dlsr=int(0.25 * 65536))])
        await sender._handle_rtcp_packet(rr)
        assert sender.rtt is not None and 0.04 < sender.rtt < 0.2
        assert seen == [rr]
    finally:
        await down.close()


def test_fast_rtcp_routing_matches_aiortc() -> None:
    dtls: Any = SimpleNamespace(_rtp_router=RtpRouter())
    stock = RtpRouter()
    for router in (dtls._rtp_router, stock):
        router.ssrc_table.update({10: "recv-a", 11: "recv-b"})
        router.senders.update({20: "send-a", 21: "send-b"})
    install_fast_rtcp_routing(dtls)
    fb = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=21)
    packets: list[Any] = [
        RtcpSrPacket(ssrc=10, sender_info=RtcpSenderInfo(ntp_timestamp=0, rtp_timestamp=0, packet_count=0,
                                                         octet_count=0),
                     reports=[RtcpReceiverInfo(ssrc=20, fraction_lost=0, packets_lost=0, highest_sequence=0,
                                               jitter=0, lsr=0, dlsr=0)]),
        RtcpRrPacket(ssrc=1, reports=[RtcpReceiverInfo(ssrc=s, fraction_lost=0, packets_lost=0, highest_sequence=0,
                                                       jitter=0, lsr=0, dlsr=0) for s in (20, 21, 99)]),
        fb,
        RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=20),
        RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=pack_remb_fci(100000, [20, 21])),
        RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=1, media_ssrc=0, fci=b"junk"),
        RtcpByePacket(sources=[11, 12]),
        RtcpSdesPacket(chunks=[]),
    ]
    for packet in packets:
        assert dtls._rtp_router.route_rtcp(packet) == stock.route_rtcp(packet), packet


async def test_receiver_reports_loss_and_nacks_gaps(connected_pair: tuple[Peer, SfuPeerConnection]) -> None:
    peer, client = connected_pair
    receiver: ForwardingReceiver = peer.pc.getTransceivers()[0].receiver  # type: ignore[assignment]
    streams = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    assert streams is receiver.streams  # aiortc's RR loop reads our statistics
    media = receiver.media_ssrc
    assert media is not None
    await wait_until(lambda: media in receiver.streams and receiver.streams[media].packets_received > 5, 10)
    # drop one video packet in three on the client's side of the wire: the receiver must NACK the gaps and
    # its receiver reports must tell the publisher about the loss
    dtls: Any = client.getTransceivers()[0].sender.transport
    original = dtls._send_rtp
    count = [0]

    async def lossy(data: bytes) -> None:
        if not is_rtcp(data) and RtpPacket.parse(data).ssrc == media:
            count[0] += 1
            if count[0] % 3 == 0:
                return
        await original(data)

    dtls._send_rtp = lossy
    await wait_until(lambda: receiver.nacks_sent >= 3, 10)
    assert receiver.nack is not None
    sender = client.getTransceivers()[0].sender

    async def reported_loss() -> int:
        report = await sender.getStats()
        return max((s.packetsLost for s in report.values() if s.type == "remote-inbound-rtp"), default=0)

    deadline = time.monotonic() + 10
    while await reported_loss() <= 0:
        assert time.monotonic() < deadline, "no receiver report with loss reached the publisher"
        await asyncio.sleep(0.2)
    dtls._send_rtp = original


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


async def test_udp_port_range_for_host_candidates() -> None:
    import socket

    from aiortc import RTCConfiguration, VideoStreamTrack

    from sfu.aiortc_hooks import SfuPeerConnection

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


async def test_media_skips_aioice_queue(connected_pair: tuple[Peer, SfuPeerConnection]) -> None:
    peer, client = connected_pair
    receiver: ForwardingReceiver = peer.pc.getTransceivers()[0].receiver  # type: ignore[assignment]
    dtls: Any = receiver.transport
    for name in PRIVATE_INSTANCE_NAMES["RTCDtlsTransport"]:
        assert hasattr(dtls, name), name
    conn: Any = ice_connection(dtls)
    for name in PRIVATE_INSTANCE_NAMES["Connection"]:
        assert hasattr(conn, name), name
    assert "data_received" in vars(conn)  # our synchronous delivery, on this instance only
    assert conn._protocols
    for protocol in conn._protocols:
        for name in PRIVATE_INSTANCE_NAMES["StunProtocol"]:
            assert hasattr(protocol, name), name
        assert "datagram_received" in vars(protocol)  # media skips the STUN parse attempt
    media = receiver.media_ssrc
    await wait_until(lambda: media in receiver.streams and receiver.streams[media].packets_received > 20, 10)
    # every media packet came the direct way (none through the queue and aiortc's DTLS task)
    assert receiver.direct_packets == sum(s.packets_received for s in receiver.streams.values())
    assert "data_received" not in vars(ice_connection(client.getTransceivers()[0].sender.transport))
    assert peer.pc.connectionState == "connected"  # STUN consent and DTLS still take aioice's path


async def test_rtcp_skips_aioice_queue(connected_pair: tuple[Peer, SfuPeerConnection]) -> None:
    peer, _ = connected_pair
    receiver: ForwardingReceiver = peer.pc.getTransceivers()[0].receiver  # type: ignore[assignment]
    media = receiver.media_ssrc
    lsr: dict[int, int] = receiver._RTCRtpReceiver__lsr  # type: ignore[attr-defined]
    # the publisher's sender reports arrive about once a second; they are handled in the datagram callback
    await wait_until(lambda: receiver.direct_rtcp > 0 and media in lsr, 10)
    dtls: Any = receiver.transport
    assert dtls._RTCDtlsTransport__rx_packets > 0


def test_aiortc_receiver_rtcp_handler_does_not_suspend() -> None:
    """aiortc's RTCRtpReceiver._handle_rtcp_packet finishes in one step (so ForwardingReceiver runs it inline)."""
    dtls: Any = SimpleNamespace(_stats_id="t", state="connected")
    receiver = ForwardingReceiver("audio", dtls)
    sr = RtcpSrPacket(ssrc=77, sender_info=RtcpSenderInfo(
        ntp_timestamp=0x0102030405060708, rtp_timestamp=0, packet_count=1, octet_count=1))
    receiver.handle_rtcp(sr)
    assert receiver._RTCRtpReceiver__lsr[77] == 0x03040506  # type: ignore[attr-defined]
    assert not receiver._rtcp_tasks  # nothing was left to finish in a task


async def test_run_now_finishes_a_suspending_coroutine_in_a_task() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("quick")

    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def slow() -> None:
        done.append(await gate)

    async def failing() -> None:
        try:
            await gate2
        except KeyError:
            done.append("caught")

    gate2: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    tasks: set[asyncio.Future[None]] = set()
    run_now(quick(), tasks)
    assert done == ["quick"] and not tasks  # ran to its end at once
    run_now(slow(), tasks)
    run_now(failing(), tasks)
    assert len(tasks) == 2
    gate.set_result("slow")
    gate2.set_exception(KeyError("x"))
    await wait_until(lambda: not tasks, 5)
    assert done == ["quick", "slow", "caught"]
