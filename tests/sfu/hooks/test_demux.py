"""Tests of sfu/hooks/demux.py: the RTCP routing (MediaDemux: test_sync_receive.py, tests/sfu/test_ingress.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSdesPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
)

from sfu.hooks.demux import install_fast_rtcp_routing

pytestmark = pytest.mark.timeout(60)


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
