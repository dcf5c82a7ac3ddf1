"""Tests of sfu/hooks/receiver.py: ForwardingReceiver against the pinned aiortc."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    HeaderExtensionsMap,
    RtcpPsfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
    wrap_rtx,
)

from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.guard import PRIVATE_INSTANCE_NAMES, CompiledEstimator
from sfu.hooks.receiver import ForwardingReceiver
from sfu.peer import Peer
from sfu.rtp import URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID
from sfu.stats import SlidingMin, WindowRate
from tests.sfu.helpers import drop_every, wait_until

pytestmark = pytest.mark.timeout(60)


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
    # a packet not received yet (a retransmission of one already here is dropped: test_handle_plain...)
    assert second.nack is not None
    seq = 4242 if second.nack.max_seq is None else (second.nack.max_seq + 1) & 0xFFFF
    original = RtpPacket(payload_type=apt, sequence_number=seq, timestamp=9, ssrc=media_ssrc)
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
    assert [(p.ssrc, p.sequence_number, p.payload) for p in got] == [(media_ssrc, seq, b"\x10ab")]


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
    # copies of packets already here are counted but not forwarded: a second answer to the NACK, padding made
    # of an old packet (Chromium probes with them), a repeat on the network
    forwarded = len(got)
    rx.handle_plain(rtx, now)
    rx.handle_plain(wrap_rtx(RtpPacket(payload_type=96, sequence_number=11, timestamp=33000, ssrc=555,
                                       payload=b"\x10abc"), payload_type=97, sequence_number=2, ssrc=777).serialize(),
                    now)
    rx.handle_plain(packet(12), now)
    assert len(got) == forwarded and rx.duplicates == 3
    assert rx.streams[777].packets_received == 3  # still in the RTX stream's statistics
    rx.handle_plain(packet(16, pt=111, ssrc=999), now)  # new SSRC, unknown payload type: dropped
    rx.handle_plain(b"\x90" + packet(17)[1:14], now)  # truncated extension block: dropped
    assert len(got) == 5
    rx.handle_plain(packet(14), now)  # the gap's last packet, late: wanted
    assert got[-1][1] == 14 and rx.nack.missing == set()


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
    stop_dropping = drop_every(client, media, 3)
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
    stop_dropping()


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
    # the connection's Uplink decided it: on a calm loopback, at least the configured floor (sfu.uplink)
    assert receiver.uplink is peer.pc.uplink and receiver.uplink.calm
    assert bitrate >= peer.config.publish_bitrate > 0


async def test_receiver_sends_remb_and_nack_at_once(connected_pair: tuple[Peer, SfuPeerConnection]) -> None:
    """A REMB or NACK leaves from the receive callback that decided it (no task, no loop turn per packet)."""
    peer, _ = connected_pair
    receiver: ForwardingReceiver = peer.pc.getTransceivers()[0].receiver  # type: ignore[assignment]
    media = receiver.media_ssrc
    assert media is not None
    await wait_until(lambda: receiver.rtcp_ssrc is not None and media in receiver.streams, 10)
    dtls: Any = receiver.transport
    sent = dtls._RTCDtlsTransport__tx_packets
    uplink, receiver.uplink = receiver.uplink, None  # no throttle (sfu.uplink.Uplink.due): this one must go
    receiver._send_remb((300_000, [media]))
    receiver.uplink = uplink
    assert dtls._RTCDtlsTransport__tx_packets == sent + 1 and not receiver._rtcp_tasks
    receiver._rtcp_soon(receiver._send_rtcp_nack(media, [1, 2]))
    assert dtls._RTCDtlsTransport__tx_packets == sent + 2 and not receiver._rtcp_tasks

    async def broken() -> None:
        raise RuntimeError("protect failed")

    receiver._rtcp_soon(broken())  # logged as a task's error would be; the receive path goes on
