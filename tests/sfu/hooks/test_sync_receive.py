"""Tests of sfu/hooks/sync_receive.py: media and RTCP from the socket without aioice's queue."""

from __future__ import annotations

from typing import Any

import pytest

from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.demux import MEDIA_DEMUX, MediaDemux
from sfu.hooks.guard import PRIVATE_INSTANCE_NAMES, CompiledDemux
from sfu.hooks.ice import ice_connection
from sfu.hooks.receiver import ForwardingReceiver
from sfu.peer import Peer
from tests.sfu.helpers import wait_until

pytestmark = pytest.mark.timeout(60)


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
    demux: MediaDemux | None = getattr(dtls, MEDIA_DEMUX)
    if demux is not None:  # after the first, its sender reports stay in C (sfu/_rtcp.c), LSR kept all the same
        first = lsr[media]
        await wait_until(lambda: demux.rtcp is not None and demux.rtcp.packets > 0 and lsr[media] != first, 10)
        assert demux.rtcp.to_python <= 1 and receiver.direct_rtcp >= 2


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
