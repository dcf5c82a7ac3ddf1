"""Tests of sfu/hooks/simulcast.py: a browser's simulcast offer answered, layer SSRCs routed by mid and rid.

The SDP tests use a real offer of Chromium 156 (`chromium_simulcast_offer.sdp`: a camera with rids q/h/f and
``scalabilityMode`` L1T3, a microphone, a second video with rids q/f). aiortc cannot send simulcast, so the
routing tests use a real aiortc client whose offer is made a simulcast one (rids, no SSRCs, as Chromium's) and
which sends RTP crafted with the mid, rid and repaired-rid header extensions over its real DTLS-SRTP transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRtpfbPacket,
    unpack_remb_fci,
)
from aiortc.sdp import SessionDescription

from sfu.config import SfuConfig
from sfu.hooks.guard import CompiledIngress
from sfu.hooks.receiver import ForwardingReceiver
from sfu.hooks.simulcast import (
    RID_ROUTING,
    URI_MID,
    URI_REPAIRED_RID,
    URI_RID,
    SimulcastOffer,
    answer_simulcast,
    offered_simulcast,
)
from sfu.peer import Peer
from sfu.producer import Producer, link_layers
from tests.sfu.helpers import DELTA, KEYFRAME, SimulcastPublisher, client_pc, simulcast_offer, wait_until

pytestmark = pytest.mark.timeout(60)

CHROMIUM_OFFER = "\r\n".join((Path(__file__).parent / "chromium_simulcast_offer.sdp").read_text().splitlines()) + "\r\n"


def section(sdp: str, mid: str) -> list[str]:
    """section: the lines of the media section of `sdp` whose mid is `mid`."""
    parts = sdp.split("\r\nm=")
    return next([line for line in ("m=" + p).split("\r\n") if line] for p in parts[1:]
                if f"a=mid:{mid}" in p.split("\r\n"))


def test_chromium_offer_is_read() -> None:
    found = offered_simulcast(CHROMIUM_OFFER)
    assert found == {"0": SimulcastOffer("0", ("q", "h", "f"), 10, 11), "2": SimulcastOffer("2", ("q", "f"), 10, 11)}


def test_simulcast_lists_paused_and_alternative_rids_and_needs_the_extensions() -> None:
    lines = section(CHROMIUM_OFFER, "0")
    head = CHROMIUM_OFFER.split("\r\nm=")[0]
    custom = [line for line in lines if not line.startswith(("a=simulcast", "a=rid"))]
    offer = "\r\n".join([head, *custom, "a=rid:a send", "a=rid:b send", "a=rid:c send", "a=rid:z recv",
                         "a=simulcast:send ~a;b,c;z recv z", ""])
    assert offered_simulcast(offer)["0"].rids == ("a", "b")  # ~a paused counts, b,c is b; z is not a send rid
    no_rid_ext = offer.replace("a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n", "")
    assert offered_simulcast(no_rid_ext) == {}  # its layers could not be told apart: no simulcast
    no_simulcast = "\r\n".join([head, *custom, "a=rid:a send", ""])
    assert offered_simulcast(no_simulcast) == {}


async def test_chromium_offer_is_answered_with_the_layers_and_their_extensions() -> None:
    peer = Peer("p", False, SfuConfig(ice_addresses=["127.0.0.1"]), "video/vp8", lambda p, s: None)
    try:
        answer, tracks = await peer.answer(CHROMIUM_OFFER, {"0": "camera", "1": "mic", "2": "screen"})
        SessionDescription.parse(answer)  # still well-formed for aiortc
        camera, screen = section(answer, "0"), section(answer, "2")
        assert camera[-4:] == ["a=rid:q recv", "a=rid:h recv", "a=rid:f recv", "a=simulcast:recv q;h;f"]
        assert screen[-3:] == ["a=rid:q recv", "a=rid:f recv", "a=simulcast:recv q;f"]
        for lines in (camera, screen):  # the offer's ids
            assert {"a=extmap:9 " + URI_MID, f"a=extmap:10 {URI_RID}", f"a=extmap:11 {URI_REPAIRED_RID}"} <= set(lines)
            assert "a=recvonly" in lines
        mic_lines = section(answer, "1")
        assert not any(line.startswith(("a=rid", "a=simulcast")) or "stream-id" in line for line in mic_lines)
        assert [(t.source, [r.rid for r in t.layers]) for t in tracks] == [
            ("camera", ["q", "h", "f"]), ("mic", [None]), ("screen", ["q", "f"])]
        mic = tracks[1]
        assert mic.layers == (mic.receiver,)
        camera_rx = tracks[0].receiver
        assert all(layer.streams is camera_rx.streams and layer.remb is camera_rx.remb
                   and layer.rtcp_ssrc == camera_rx.rtcp_ssrc for layer in camera_rx.layers)
        assert getattr(camera_rx.transport, RID_ROUTING)
        # a renegotiation with the same offer keeps the layers and answers them again
        again, more = await peer.answer(CHROMIUM_OFFER.replace(" 2 IN IP4", " 3 IN IP4", 1), {})
        assert more == [] and section(again, "0")[-1] == "a=simulcast:recv q;h;f"
        assert tracks[0].receiver.layers == camera_rx.layers
    finally:
        await peer.close()


def test_an_answer_without_accepted_sections_is_unchanged_but_for_line_ends() -> None:
    assert answer_simulcast(CHROMIUM_OFFER, {}) == CHROMIUM_OFFER


# ------------------------------------------------------------------------------------ routing, real transport


@pytest.fixture
async def publisher() -> AsyncIterator[SimulcastPublisher]:
    """publisher: an aiortc client publishing two simulcast video sections (rids q, f) to an up Peer."""
    peer = Peer("p", False, SfuConfig(ice_addresses=["127.0.0.1"]), "video/vp8", lambda p, s: None)
    client = client_pc()
    client.addTransceiver("video", direction="sendonly")  # no track: only the crafted packets are sent
    client.addTransceiver("video", direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    answer, tracks = await peer.answer(simulcast_offer(client.localDescription.sdp, ("q", "f")),
                                       {"0": "camera", "1": "screen"})
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    router: Any = tracks[0].receiver.transport._rtp_router
    await wait_until(lambda: client.connectionState == "connected" and {"0", "1"} <= set(router.mid_table), 10)
    await wait_until(lambda: peer.pc.connectionState == "connected", 10)
    receiver: Any = peer.pc.getTransceivers()[0].receiver
    publisher = SimulcastPublisher(client, next(iter(receiver.rtx_apt.values())), next(iter(receiver.rtx_apt)))
    publisher.peer = peer
    yield publisher
    await client.close()
    await peer.close()


async def test_layers_are_routed_by_mid_and_rid_and_their_steady_state_takes_the_c_path(
    publisher: SimulcastPublisher,
) -> None:
    transceivers = publisher.peer.pc.getTransceivers()
    camera: ForwardingReceiver = transceivers[0].receiver  # type: ignore[assignment]
    screen: ForwardingReceiver = transceivers[1].receiver  # type: ignore[assignment]
    producers = {rx: link_layers(tuple(Producer("p", source, "video", "video/vp8", layer, rid=layer.rid)
                                       for layer in rx.layers))
                 for rx, source in ((camera, "camera"), (screen, "screen"))}
    q, f = camera.layers
    sq, sf = screen.layers
    # the same rids on two sections: the mid tells them apart; the extensions only ride the first packets
    streams = {0x1001: ("0", "q"), 0x1002: ("0", "f"), 0x2001: ("1", "q"), 0x2002: ("1", "f")}
    for seq in range(1, 121):
        for ssrc, (mid, rid) in streams.items():
            early = seq <= 5
            await publisher.send(ssrc, seq, mid if early else None, rid if early else None,
                                 payload=KEYFRAME if seq == 1 else DELTA)
        await asyncio.sleep(0.002)
    await wait_until(lambda: all(p.packets == 120 for rx in producers.values() for p in rx.layers), 10)
    assert (q.media_ssrc, f.media_ssrc, sq.media_ssrc, sf.media_ssrc) == (0x1001, 0x1002, 0x2001, 0x2002)
    assert [p.ssrc for p in producers[camera].layers] == [0x1001, 0x1002]
    assert camera.media_ssrc is None and camera.streams is q.streams  # the section's receiver gets nothing itself
    assert {0x1001, 0x1002} <= set(camera.streams)
    if CompiledIngress is not None:  # each layer armed its own C ingress after its first packet
        assert all(layer.ingress.armed and layer.ingress.ssrc == layer.media_ssrc and layer.ingress.packets > 60
                   for layer in (q, f, sq, sf))
    # an unknown SSRC without rid, or with a rid the offer did not name, is dropped
    await publisher.send(0x3001, 1, "0", None)
    await publisher.send(0x3002, 1, "0", "x")
    await asyncio.sleep(0.2)
    router: Any = camera.transport._rtp_router
    assert 0x3001 not in router.ssrc_table and 0x3002 not in router.ssrc_table
    # receiver reports cover every layer SSRC
    await wait_until(lambda: {0x1001, 0x1002, 0x2001, 0x2002} <= publisher.reported(), 10)


async def test_rtx_nack_and_pli_per_layer(publisher: SimulcastPublisher) -> None:
    camera: ForwardingReceiver = publisher.peer.pc.getTransceivers()[0].receiver  # type: ignore[assignment]
    q, f = camera.layers
    layers = link_layers(tuple(Producer("p", "camera", "video", "video/vp8", layer, rid=layer.rid)
                               for layer in camera.layers)).layers
    rtx_pt = publisher.rtx
    await publisher.send(0x5002, 1, "0", None, repaired="f", pt=rtx_pt, payload=b"\x00\x01" + DELTA)
    for seq in range(1, 31):
        await publisher.send(0x1001, seq, "0", "q", payload=KEYFRAME if seq == 1 else DELTA)
        if seq != 20:  # a gap in f: the SFU asks for it on f's SSRC
            await publisher.send(0x1002, seq, "0", "f", payload=KEYFRAME if seq == 1 else DELTA)
        await asyncio.sleep(0.002)
    await wait_until(lambda: layers[1].packets == 29 and layers[0].packets == 30, 10)
    assert f.rtx_to_media == {}  # RTX before its layer's media SSRC was known: dropped, not bound
    await wait_until(lambda: 0x1002 in publisher.feedback(RtcpRtpfbPacket, RTCP_RTPFB_NACK), 10)
    assert 0x1001 not in publisher.feedback(RtcpRtpfbPacket, RTCP_RTPFB_NACK)
    # the retransmission on f's RTX SSRC (bound by its repaired rid) fills the gap
    await publisher.send(0x5002, 2, "0", None, repaired="f", pt=rtx_pt, payload=(20).to_bytes(2, "big") + DELTA)
    await wait_until(lambda: layers[1].packets == 30, 10)
    assert f.rtx_to_media == {0x5002: 0x1002} and q.rtx_to_media == {}
    assert layers[1].stats().packets_lost == 0
    assert layers[0].request_keyframe() and layers[1].request_keyframe()
    await wait_until(lambda: {0x1001, 0x1002} <= publisher.feedback(RtcpPsfbPacket, RTCP_PSFB_PLI), 10)
    # the publisher restarts layer q with a new SSRC: the rid rebinds it
    await publisher.send(0x1011, 1, "0", "q", payload=KEYFRAME)
    await wait_until(lambda: q.media_ssrc == 0x1011, 10)
    router: Any = camera.transport._rtp_router
    assert router.ssrc_table[0x1011] is q and 0x1001 not in router.ssrc_table


async def test_one_remb_covers_every_layer(publisher: SimulcastPublisher) -> None:
    camera: ForwardingReceiver = publisher.peer.pc.getTransceivers()[0].receiver  # type: ignore[assignment]
    link_layers(tuple(Producer("p", "camera", "video", "video/vp8", layer, rid=layer.rid) for layer in camera.layers))
    publisher.stream("0", {"q": 0x1001, "f": 0x1002})

    def remb_ssrcs() -> set[int]:
        return {ssrc for p in publisher.rtcp if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP
                for ssrc in unpack_remb_fci(p.fci)[1]}

    await wait_until(lambda: {0x1001, 0x1002} <= remb_ssrcs(), 20)
    assert all(layer.remb is camera.remb for layer in camera.layers)
