"""Tests of sfu/hooks/feedback.py: a publisher gets its receiver reports, REMB and NACKs from a room's Peer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiortc import RTCSessionDescription
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtcpRrPacket, unpack_remb_fci

from sfu.config import SfuConfig
from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.feedback import FEEDBACK, ReceiverFeedback
from sfu.hooks.guard import COMPILED_PATH
from sfu.hooks.receiver import ForwardingReceiver
from sfu.peer import Peer
from sfu.rtp import report_period
from sfu.tasks import Ticker
from tests.sfu.helpers import RED, ColorTrack, client_pc, drop_every, wait_until

pytestmark = pytest.mark.timeout(90)


async def publish(compiled: bool) -> tuple[Peer, SfuPeerConnection, Ticker]:
    """publish: a client publishing two video tracks on one BUNDLE to an up Peer on a room's kind of Ticker."""
    ticker = Ticker(report_period, grace=1.0, slack=0.25)  # as sfu.room.Room's; nothing polls it but its timer
    config = SfuConfig(ice_addresses=["127.0.0.1"], compiled_fanout=compiled)
    peer = Peer("p", False, config, "video/vp8", lambda p, s: None, ticker=ticker)
    client = client_pc()
    client.addTransceiver(ColorTrack(RED), direction="sendonly")
    client.addTransceiver(ColorTrack(RED), direction="sendonly")
    await client.setLocalDescription(await client.createOffer())
    answer, tracks = await peer.answer(client.localDescription.sdp, {"0": "camera", "1": "screen"})
    await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    await wait_until(lambda: all(t.receiver.media_ssrc for t in tracks), 15)
    return peer, client, ticker


@pytest.fixture(params=[True, False], ids=["compiled", "python"])
async def published(request: Any) -> AsyncIterator[tuple[Peer, SfuPeerConnection, Ticker]]:
    if request.param and not COMPILED_PATH:
        pytest.skip("sfu._fanout not built")
    peer, client, ticker = await publish(request.param)
    yield peer, client, ticker
    await client.close()
    await peer.close()
    ticker.close()


def spy_rtcp(client: SfuPeerConnection) -> list[Any]:
    """spy_rtcp: every RTCP packet the client's senders handle, in order."""
    seen: list[Any] = []
    for transceiver in client.getTransceivers():
        sender = transceiver.sender
        original = sender._handle_rtcp_packet

        async def spy(packet: Any, original: Any = original) -> None:
            seen.append(packet)
            await original(packet)

        sender._handle_rtcp_packet = spy  # type: ignore[method-assign]
    return seen


async def test_publisher_gets_reports_remb_and_nacks(published: tuple[Peer, SfuPeerConnection, Ticker]) -> None:
    peer, client, _ = published
    receivers: list[ForwardingReceiver] = [t.receiver for t in peer.pc.getTransceivers()]  # type: ignore[misc]
    dtls: Any = receivers[0].transport
    feedback: ReceiverFeedback = getattr(dtls, FEEDBACK)
    compiled = peer.config.compiled_fanout
    await wait_until(lambda: set(feedback.receivers) == set(receivers), 10)  # one job for both m-lines
    seen = spy_rtcp(client)
    media = receivers[0].media_ssrc
    # drop one packet in three of the first track: the publisher must be told about the loss
    stop_dropping = drop_every(client, media, 3)
    sender = client.getTransceivers()[0].sender

    async def reported_loss() -> int:
        report = await sender.getStats()
        return max((s.packetsLost for s in report.values() if s.type == "remote-inbound-rtp"), default=0)

    deadline = time.monotonic() + 20
    while await reported_loss() <= 0:
        assert time.monotonic() < deadline, "no receiver report with loss reached the publisher"
        await asyncio.sleep(0.2)
    stop_dropping()
    assert receivers[0].nacks_sent > 0  # and the gaps were NACKed
    rrs = [p for p in seen if isinstance(p, RtcpRrPacket)]
    reported = {r.ssrc for p in rrs for r in p.reports}
    assert {r.media_ssrc for r in receivers} <= reported  # both m-lines' streams, RTX included when it came
    assert {p.ssrc for p in rrs} == {r.rtcp_ssrc for r in receivers}
    await wait_until(lambda: any(isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP for p in seen), 20)
    remb = [p for p in seen if isinstance(p, RtcpPsfbPacket) and p.fmt == RTCP_PSFB_APP][-1]
    bitrate, ssrcs = unpack_remb_fci(remb.fci)
    assert remb.ssrc in {r.rtcp_ssrc for r in receivers} and media in ssrcs and bitrate > 0
    assert feedback.reports_sent > 0 and feedback.rembs_sent > 0
    c: Any = feedback._c
    if compiled:  # built, protected and sent in C
        assert c is not None and c.routed and c.reports > 0 and c.rembs > 0 and c.errors == 0
    else:
        assert c is None


async def test_reports_stop_with_the_receivers() -> None:
    if not COMPILED_PATH:
        pytest.skip("sfu._fanout not built")
    peer, client, ticker = await publish(True)
    receivers = [t.receiver for t in peer.pc.getTransceivers()]
    feedback: ReceiverFeedback = getattr(receivers[0].transport, FEEDBACK)
    await wait_until(lambda: len(feedback.receivers) == 2, 10)
    assert ticker._jobs  # the report job
    await peer.close()
    assert feedback.receivers == () and feedback._report not in ticker._jobs
    await client.close()
    ticker.close()
