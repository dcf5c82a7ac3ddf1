import functools
import struct
from collections.abc import Callable

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    HeaderExtensionsMap,
    RtcpRtpfbPacket,
    RtpPacket,
)

from sfu.consumer import COMPILED, Consumer, HeaderRewriter, Inbound, build_header_template
from tests.sfu.fakes import FakeSender, FakeWire, context

needs_c = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ext_map(kind: str = "video") -> HeaderExtensionsMap:
    m = HeaderExtensionsMap()
    exts = [RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid")]
    if kind == "video":
        exts.append(RTCRtpHeaderExtensionParameters(
            id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"))
    else:
        exts.append(RTCRtpHeaderExtensionParameters(id=2, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"))
    m.configure(RTCRtpParameters(headerExtensions=exts))
    return m


def inbound(seq: int, ts: int, ssrc: int = 5, key: bool = True, payload: bytes = b"\x10abc") -> Inbound:
    return Inbound(ssrc=ssrc, seq=seq, ts=ts, marker=1, payload=payload, keyframe=key, ntp=7 << 32,
                   abs_send_time=0x123456, audio_level=0x85)


Made = tuple[Consumer, FakeSender, FakeWire]


def make_consumer(kind: str = "video", rtx: bool = True, clock: Clock | None = None, compiled: bool = False) -> Made:
    sender, wire = FakeSender(), FakeWire()
    c = Consumer("viewer", "floor-video", kind, sender, lambda ctx: wire, clock or Clock(),  # type: ignore[arg-type]
                 compiled=compiled)
    assert (c.cslot is not None) == compiled
    sender.on_ready(context(kind, rtx=rtx))
    return c, sender, wire


@pytest.fixture(params=[False, pytest.param(True, marks=needs_c)], ids=["python", "compiled"])
def make(request: pytest.FixtureRequest) -> Callable[..., Made]:
    """make builds a ready Consumer on the pure-Python state or on the C Slot (``sfu._fanout``, when built)."""
    return functools.partial(make_consumer, compiled=bool(request.param))


class Source:
    participant_id = "a"
    source = "camera"

    def __init__(self) -> None:
        self.keyframes = 0

    def request_keyframe(self) -> bool:
        self.keyframes += 1
        return True


def test_rewriter_continuity_across_switch() -> None:
    clock = Clock()
    rw = HeaderRewriter(90000, 3000, first_seq=100, first_ts=1000, clock=clock)
    assert rw.map(1, 5000, 90000) == (100, 1000)
    assert rw.map(1, 5001, 93000) == (101, 4000)
    clock.now = 0.010
    rw.switch()
    # new source with unrelated numbering: seq continues +1, ts by max(one frame, elapsed)
    assert rw.map(2, 60000, 123) == (102, 7000)
    assert rw.map(2, 60001, 3123) == (103, 10000)
    assert rw.map(2, 59999, 0) is None  # older than the switch point: dropped, never repeats a seq
    clock.now = 2.010
    rw.switch()
    assert rw.map(3, 7, 7) == (104, 10000 + 180000)  # wall-clock elapsed (2 s) > one frame


def test_rewriter_wraps_and_new_ssrc_rebases() -> None:
    rw = HeaderRewriter(48000, 960, first_seq=0xFFFF, first_ts=0xFFFFFF00, clock=Clock())
    assert rw.map(1, 10, 0) == (0xFFFF, 0xFFFFFF00)
    assert rw.map(1, 11, 960) == (0, (0xFFFFFF00 + 960) & 0xFFFFFFFF)
    assert rw.map(9, 500, 0) == (1, (0xFFFFFF00 + 960 + 960) & 0xFFFFFFFF)  # SSRC change = switch


def test_header_rewrite_remaps_extensions_and_keeps_payload(make: Callable[..., Made]) -> None:
    c, sender, wire = make()
    src = Source()
    c.switch(src)  # type: ignore[arg-type]
    c.forward(inbound(40000, 555, payload=b"\x10payload"))
    pkt = RtpPacket.parse(wire.sent[0], ext_map())
    assert pkt.payload_type == 96
    assert pkt.ssrc == 0x11111111
    assert pkt.payload == b"\x10payload"
    assert pkt.marker == 1
    assert pkt.extensions.mid == "3"
    assert pkt.extensions.abs_send_time == 0x123456
    assert sender.sr_info() == (7 << 32, pkt.timestamp, 1, len(b"\x10payload"))
    assert c.packets_sent == 1


def test_audio_level_is_carried(make: Callable[..., Made]) -> None:
    c, _, wire = make("audio")
    c.switch(Source())  # type: ignore[arg-type]
    c.forward(inbound(1, 1))
    pkt = RtpPacket.parse(wire.sent[0], ext_map("audio"))
    assert pkt.extensions.audio_level == (True, 5)
    assert pkt.extensions.mid == "3"


def test_template_without_extensions() -> None:
    head, ast, al = build_header_template(context(mid_id=None, abs_send_time_id=None))
    assert len(head) == 12 and ast == 0 and al == 0
    assert head[0] == 0x80


def test_video_waits_for_keyframe_after_switch_and_asks_for_one(make: Callable[..., Made]) -> None:
    c, _, wire = make()
    a, b = Source(), Source()
    c.switch(a)  # type: ignore[arg-type]
    assert a.keyframes == 1
    c.forward(inbound(1, 0, key=False))
    assert wire.sent == []
    c.forward(inbound(2, 0, key=True))
    c.forward(inbound(3, 0, key=False))
    assert len(wire.sent) == 2
    c.switch(b)  # type: ignore[arg-type]
    assert b.keyframes == 1
    c.forward(inbound(900, 50, ssrc=9, key=False))
    assert len(wire.sent) == 2
    c.forward(inbound(901, 50, ssrc=9, key=True))
    seqs = [RtpPacket.parse(d).sequence_number for d in wire.sent]
    assert seqs[2] == (seqs[1] + 1) & 0xFFFF


def test_nack_answered_from_history_over_rtx(make: Callable[..., Made]) -> None:
    c, _, wire = make(rtx=True)
    c.switch(Source())  # type: ignore[arg-type]
    for i in range(5):
        c.forward(inbound(100 + i, 0, payload=bytes([0x10, i])))
    original = RtpPacket.parse(wire.sent[2], ext_map())
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=0x11111111)
    nack.lost = [original.sequence_number, (original.sequence_number + 1000) & 0xFFFF]
    c._on_rtcp(nack)
    assert len(wire.sent) == 6  # one retransmission, the unknown seq is ignored
    rtx = RtpPacket.parse(wire.sent[-1], ext_map())
    assert rtx.payload_type == 97 and rtx.ssrc == 0x22222222
    assert struct.unpack("!H", rtx.payload[:2])[0] == original.sequence_number
    assert rtx.payload[2:] == original.payload
    assert rtx.timestamp == original.timestamp
    assert c.nacks == 1 and c.retransmitted == 1


def test_nack_without_rtx_resends_the_same_packet(make: Callable[..., Made]) -> None:
    c, _, wire = make(rtx=False)
    c.switch(Source())  # type: ignore[arg-type]
    c.forward(inbound(7, 0))
    seq = RtpPacket.parse(wire.sent[0]).sequence_number
    assert c.retransmit(seq)
    assert wire.sent[-1] == wire.sent[0]
    assert not c.retransmit((seq + 200) & 0xFFFF)


def test_rtcp_feeds_stats_and_keyframe_requests(make: Callable[..., Made]) -> None:
    c, sender, _ = make()
    src = Source()
    c.switch(src)  # type: ignore[arg-type]
    sender.report_block(64, 12, 900, 0, 0)  # into the C slot (as sfu/_rtcp.c) or through on_report
    sender.remb(300000)
    sender.rtt = 0.05
    sender.on_keyframe()  # what ForwardingSender does for PLI/FIR
    s = c.stats()
    assert s.fraction_lost == 0.25 and s.packets_lost == 12
    assert abs(s.jitter - 0.01) < 1e-9
    assert s.remb_bitrate == 300000
    assert s.rtt == 0.05
    assert s.keyframe_requests == 1
    assert src.keyframes == 2  # switch + PLI
    _ = RTCP_PSFB_PLI
