"""Tests of sfu/hooks/connection.py: what SfuPeerConnection installs on each transport and transceiver."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCRtpReceiver, RTCRtpSender

from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.demux import MEDIA_DEMUX, MediaDemux
from sfu.hooks.guard import COMPILED_PATH, CompiledEstimator
from sfu.hooks.ice import ice_connection
from sfu.hooks.receiver import ForwardingReceiver
from sfu.hooks.sender import ForwardingSender
from sfu.tasks import Ticker

pytestmark = pytest.mark.timeout(60)


async def test_forwarding_transceivers_get_our_sender_receiver_and_receive_path() -> None:
    ticker = Ticker(lambda: 1.0)
    pc = SfuPeerConnection(RTCConfiguration(iceServers=[]), ice_addresses=["127.0.0.1"], forwarding=True,
                           ticker=ticker, consent_interval=2.0)
    try:
        transceiver = pc.addTransceiver("video", direction="sendrecv")
        sender, receiver = transceiver.sender, transceiver.receiver
        assert isinstance(sender, ForwardingSender) and isinstance(receiver, ForwardingReceiver)
        assert receiver.ticker is ticker and receiver.rtcp_ssrc == sender._ssrc
        assert isinstance(receiver.remb, CompiledEstimator) if COMPILED_PATH else receiver.remb is not None
        dtls: Any = receiver.transport
        assert sender.transport is dtls
        conn: Any = ice_connection(dtls)
        (consent,) = pc.consents  # one transport so far: its consent runs on the ticker instead of aioice's task
        assert consent.interval == 2.0 and conn.query_consent == consent.start
        assert "data_received" in vars(conn) and "route_rtcp" in vars(dtls._rtp_router)
        demux = getattr(dtls, MEDIA_DEMUX)  # the C receive path in front of the Python one, when built
        assert isinstance(demux, MediaDemux) if COMPILED_PATH else demux is None
    finally:
        await pc.close()
        ticker.close()


async def test_without_forwarding_transceivers_and_receive_path_stay_aiortcs() -> None:
    pc = SfuPeerConnection(RTCConfiguration(iceServers=[]), ice_addresses=["127.0.0.1"])
    try:
        transceiver = pc.addTransceiver("video", direction="sendrecv")
        assert type(transceiver.sender) is RTCRtpSender and type(transceiver.receiver) is RTCRtpReceiver
        dtls: Any = transceiver.receiver.transport
        assert pc.consents == [] and "data_received" not in vars(ice_connection(dtls))
        assert "route_rtcp" in vars(dtls._rtp_router)  # RTCP routing without aiortc's typing overhead, always
    finally:
        await pc.close()
