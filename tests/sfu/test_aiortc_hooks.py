"""Tests of sfu/aiortc_hooks.py against the pinned aiortc / aioice: fail when the internals we use change."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pylibsrtp
import pytest
from aioice import ice as aioice_ice
from aioice.ice import CONSENT_FAILURES
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpByePacket,
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
    unpack_remb_fci,
    wrap_rtx,
)
from pylibsrtp._binding import lib as _lib

from sfu.aiortc_hooks import (
    IP_MTU_DISCOVER,
    IP_PMTUDISC_PROBE,
    MEDIA_DEMUX,
    PRIVATE_INSTANCE_NAMES,
    PRIVATE_NAMES,
    PYLIBSRTP_NAMES,
    CompiledDemux,
    CompiledEstimator,
    ForwardingReceiver,
    ForwardingSender,
    MediaDemux,
    PacketWire,
    SfuPeerConnection,
    dont_fragment,
    ice_connection,
    install_fast_rtcp_routing,
)
from sfu.config import SfuConfig
from sfu.events import ServerOffer
from sfu.peer import Peer
from sfu.rtp import URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID
from sfu.sfu import Sfu
from sfu.stats import SlidingMin, WindowRate
from tests.sfu.helpers import CAPABILITIES, RED, ColorTrack, client_pc, join, publish, sfu_config, wait_until

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


async def test_handle_plain_parses_like_rtp_packet(connected_pair: tuple[Peer, SfuPeerConnection]) -> None:
    """handle_plain (no RtpPacket) hands on_fields what RtpPacket.parse + handle_rtp would, and keeps the stats."""
    peer, _ = connected_pair
    transport = peer.pc.getTransceivers()[0].receiver.transport
    rx = ForwardingReceiver("video", transport)  # not in the router: only what the test feeds
    rx.clock_rates = {96: 90000, 97: 90000}
    rx.rtx_apt = {97: 96}
    rx.rtx_to_media = {777: 555}
    rx.abs_send_time_id, rx.audio_level_id = 3, 5
    ext_map = HeaderExtensionsMap()
    ext_map.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=1, uri=URI_MID),
        RTCRtpHeaderExtensionParameters(id=3, uri=URI_ABS_SEND_TIME),
        RTCRtpHeaderExtensionParameters(id=5, uri=URI_AUDIO_LEVEL),
    ]))
    got: list[tuple[Any, ...]] = []
    rx.on_fields = lambda *fields: got.append(fields[:7])

    def packet(seq: int, *, marker: int = 0, padding: int = 0, level: tuple[bool, int] | None = None,
               mid: str | None = None, pt: int = 96, ssrc: int = 555, payload: bytes = b"\x10abc") -> bytes:
        p = RtpPacket(payload_type=pt, sequence_number=seq, timestamp=seq * 3000, ssrc=ssrc, marker=marker,
                      payload=payload)
        p.padding_size = padding
        p.extensions.abs_send_time = 0x123456 + seq
        p.extensions.audio_level = level
        p.extensions.mid = mid
        return p.serialize(ext_map)

    now = time.time()
    rx.handle_plain(packet(10, mid="0"), now)
    rx.handle_plain(packet(11, marker=1, padding=4, level=(True, 42)), now)
    rx.handle_plain(packet(12, level=(False, 9)), now)
    assert got == [
        (555, 10, 30000, 0, b"\x10abc", 0, 0x7F),
        (555, 11, 33000, 1, b"\x10abc", 4, 0x80 | 42),
        (555, 12, 36000, 0, b"\x10abc", 0, 9),
    ]
    assert rx._remb_bytes == len(b"\x10abc")  # the marker packet fed one sample for its frame, then restarted
    stats = rx.streams[555]
    assert (stats.packets_received, stats.max_seq) == (3, 12)
    rx.handle_plain(packet(15), now)  # gap: 13 and 14 missing
    assert rx.nack is not None and rx.nack.missing == {13, 14}
    assert stats.packets_lost == 2
    original = RtpPacket(payload_type=96, sequence_number=13, timestamp=39000, ssrc=555, payload=b"\x10r")
    rtx = wrap_rtx(original, payload_type=97, sequence_number=1, ssrc=777).serialize()
    rx.handle_plain(rtx, now)  # RTX: unwrapped through RtpPacket, same sink
    assert got[-1] == (555, 13, 39000, 0, b"\x10r", 0, 0x7F)
    assert rx.nack.missing == {14}
    rx.handle_plain(packet(16, pt=111, ssrc=999), now)  # new SSRC, unknown payload type: dropped
    rx.handle_plain(b"\x90" + packet(17)[1:14], now)  # truncated extension block: dropped
    assert len(got) == 5


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


def test_libsrtp_is_what_the_compiled_path_calls() -> None:
    """check_libsrtp passes on the pinned pylibsrtp, and refuses a function of another type or one that does not
    give the known answer (the compiled path is then off, with a warning)."""
    from pylibsrtp._binding import ffi

    from sfu.aiortc_hooks import COMPILED_PATH, check_libsrtp, protect_address
    from sfu.consumer import CompiledSlot

    assert check_libsrtp() is None
    assert COMPILED_PATH == (CompiledSlot is not None)
    other_type = SimpleNamespace(**{name: getattr(_lib, name) for name in PYLIBSRTP_NAMES})
    other_type.srtp_protect = ffi.cast("int(*)(void *, void *, long *)", protect_address())
    problem = check_libsrtp(lib=other_type)
    assert problem is not None and "srtp_protect is int(*)(void *, void *, long *)" in problem
    missing = SimpleNamespace(**{name: getattr(_lib, name) for name in PYLIBSRTP_NAMES if name != "srtp_unprotect"})
    assert "srtp_unprotect is missing" in (check_libsrtp(lib=missing) or "")
    wrong_function = check_libsrtp(address=lambda: protect_address("srtp_protect_rtcp"))
    assert wrong_function is not None and "known-answer" in wrong_function


def rmem_max() -> int:
    """rmem_max is the kernel's cap on SO_RCVBUF (net.core.rmem_max)."""
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


async def test_forwarding_peers_raise_their_media_sockets_receive_buffers() -> None:
    """A keyframe burst arrives at once: the SFU's media sockets get far more than the default buffer."""
    from sfu.aiortc_hooks import RECEIVE_BUFFER, ice_connection

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


async def test_sender_rtt_from_report_block() -> None:
    down = Peer("p", True, SfuConfig(ice_addresses=["127.0.0.1"]), "video/vp8", lambda p, s: None)
    try:
        sender = down.add_slot("video")
        assert isinstance(sender, ForwardingSender)
        seen: list[object] = []
        sender.on_rtcp = seen.append
        sender.on_report = lambda *block: seen.append(block)
        sender.lsr, sender.lsr_time = 0x03040506, time.time() - 0.30
        rr = RtcpRrPacket(ssrc=9, reports=[RtcpReceiverInfo(
            ssrc=sender._ssrc, fraction_lost=3, packets_lost=7, highest_sequence=1, jitter=90,
            lsr=0x03040506, dlsr=int(0.25 * 65536))])
        await sender._handle_rtcp_packet(rr)
        assert sender.rtt is not None and 0.04 < sender.rtt < 0.2
        assert seen == [(3, 7, 90)]  # the block about this sender, not the packet
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


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_packet_wire_fast_path_on_both_event_loops(loop: str) -> None:
    """The fast path finds the pair's socket on asyncio's transport and duplicates uvloop's descriptor."""
    import uvloop

    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.SelectorEventLoop
    with asyncio.Runner(loop_factory=factory) as runner:
        wire, dup = runner.run(packet_wire_delivers(True))
    if loop == "uvloop":
        assert dup is not None and dup.fileno() == -1  # our duplicate, closed with the peer
    else:
        assert dup is None  # asyncio's transport socket itself
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
    demux: MediaDemux | None = getattr(dtls, MEDIA_DEMUX)
    if CompiledDemux is not None:  # the sockets' callbacks are C demultiplexers in front of the Python path
        assert demux is not None and len(demux.demuxes) == len(conn._protocols)
        assert all(type(p.datagram_received.__self__) is CompiledDemux for p in conn._protocols)
    else:
        assert demux is None
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


async def test_receiver_sends_remb_from_a_cheaper_rate_counter(
    connected_pair: tuple[Peer, SfuPeerConnection],
) -> None:
    peer, client = connected_pair
    receiver: ForwardingReceiver = peer.pc.getTransceivers()[0].receiver  # type: ignore[assignment]
    assert receiver.remb is not None
    if CompiledEstimator is not None:  # compiled: aiortc's estimator in C (sfu/_remb.c, tests/sfu/test_remb.py)
        assert isinstance(receiver.remb, CompiledEstimator)
    plain = ForwardingReceiver("video", receiver.transport).remb  # without it: aiortc's, with cheaper parts
    assert isinstance(plain.incoming_bitrate, WindowRate)  # aiortc's estimator reads it by this public name
    assert isinstance(plain.estimator.update_min_frame_period.__self__, SlidingMin)
    assert receiver.abs_send_time_id > 0  # the publisher negotiated abs-send-time
    seen: list[RtcpPsfbPacket] = []
    sender = client.getTransceivers()[0].sender
    original = sender._handle_rtcp_packet

    async def spy(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            seen.append(packet)
        await original(packet)

    sender._handle_rtcp_packet = spy  # type: ignore[method-assign]
    await wait_until(lambda: receiver.remb_sent > 0 and seen, 15)
    bitrate, ssrcs = unpack_remb_fci(seen[-1].fci)
    assert bitrate > 0 and receiver.media_ssrc in ssrcs


async def test_malformed_srtp_and_srtcp_are_dropped_and_media_keeps_flowing(
    connected_pair: tuple[Peer, SfuPeerConnection],
) -> None:
    peer, _ = connected_pair
    receiver: ForwardingReceiver = peer.pc.getTransceivers()[0].receiver  # type: ignore[assignment]
    conn: Any = ice_connection(receiver.transport)
    protocol = conn._protocols[0]
    media = receiver.media_ssrc
    assert media is not None
    junk = [
        b"\x80\xc8\x00\x06" + bytes(30),  # SRTCP-looking: fails authentication
        b"\x80\xc9\x00\x01" + bytes(4),  # too short for SRTCP
        b"\x80\x60\x00\x01" + bytes(4) + media.to_bytes(4, "big") + bytes(100),  # SRTP for our SSRC: bad tag
        b"\x80\x60" + bytes(10),  # unknown SSRC: aiortc's path drops it
    ]
    before = receiver.streams[media].packets_received
    for data in junk:
        protocol.datagram_received(data, ("127.0.0.1", 9))  # no exception reaches the event loop
    await wait_until(lambda: receiver.streams[media].packets_received > before + 10, 10)
    assert peer.pc.connectionState == "connected"


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
