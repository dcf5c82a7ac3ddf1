"""consumer_kit: what the Consumer's test modules share (tests/sfu/test_consumer.py, tests/sfu/test_consumer_layers.py):
inbound packets, a ready Consumer on the Python state or the C Slot (the `make` fixture), a fake source."""

import functools
from collections.abc import Callable
from typing import Any

import pytest
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap

from sfu.consumer import COMPILED, Consumer, Inbound
from sfu.rewriter import HeaderRewriter
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


MAKE_PARAMS: dict[str, Any] = dict(params=[False, pytest.param(True, marks=needs_c)], ids=["python", "compiled"])


def maker(request: pytest.FixtureRequest) -> Callable[..., Made]:
    """maker builds a ready Consumer on the pure-Python state or on the C Slot (``sfu._fanout``, when built): each
    module's ``make`` fixture, parametrized with ``MAKE_PARAMS``."""
    return functools.partial(make_consumer, compiled=bool(request.param))


class Source:
    participant_id = "a"
    source = "camera"

    def __init__(self, layer: int = 0) -> None:
        self.keyframes = 0
        self.optional = 0  # of those, optional requests
        self.layer = layer
        self.keyframes_received = 0
        self.sinks: tuple[Any, ...] = ()  # a consumer in here is the room's (its retries and owed requests count)

    def request_keyframe(self, optional: bool = False) -> bool:
        self.keyframes += 1
        self.optional += optional
        return True


def start_output_at(c: Consumer, seq: int, ts: int, clock: Callable[[], float]) -> None:
    """start_output_at makes a ready Consumer's output begin at (seq, ts) (what ``_on_ready`` draws at random)."""
    assert c.ctx is not None and c._rewriter is not None
    frame = c._rewriter.frame_ticks
    c._rewriter = HeaderRewriter(c.ctx.clock_rate, frame, seq, ts, clock)
    if c.cslot is not None:
        c.cslot.__init__(c.ctx.clock_rate, frame, seq, ts, c.kind == "video", c._vp8)
