"""Tests of sfu/hooks/sender.py: ForwardingSender against the pinned aiortc."""

from __future__ import annotations

import time

import pytest
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
)

from sfu.config import SfuConfig
from sfu.hooks.guard import PRIVATE_INSTANCE_NAMES
from sfu.hooks.ice import ice_connection
from sfu.hooks.sender import ForwardingSender
from sfu.peer import Peer

pytestmark = pytest.mark.timeout(60)


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
