"""fakes: queue/list-based stand-ins for unit tests (no media path is mocked in loopback tests)."""

from __future__ import annotations

from typing import Any

from aiortc import RTCDtlsTransport

from sfu.pacer import UNLIMITED, Pacer
from sfu.rtp import SendContext


class Clock:
    """Clock: a settable time (seconds) for what takes a clock callable."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeWire:
    """FakeWire records what a Consumer would send (whole plain packets) and the senders it reports for."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.senders: list[Any] = []
        self.pacer = Pacer(self._send_now, compiled=False)  # a real pacer, off (UNLIMITED) until a test sets a rate

    def send(self, data: bytes) -> bool:
        self.sent.append(data)
        return True

    def send_rtp(self, head: bytes | bytearray, payload: bytes, padding: int = 0, audio: bool = False,
                 ast_off: int = 0, cls: int = 0, key: object = None, keyframe: bool = False) -> bool:
        if self.pacer.rate < UNLIMITED:
            return self.pacer.send(head, payload, padding, audio, ast_off, cls, key, keyframe)
        return self._send_now(head, payload, padding)

    def _send_now(self, head: bytes | bytearray, payload: bytes, padding: int = 0) -> bool:
        pad = bytes(padding - 1) + bytes((padding,)) if padding else b""
        return self.send(bytes(head) + payload + pad)

    def add_sender(self, sender: Any) -> None:
        self.senders.append(sender)

    def bind_slot(self, slot: Any) -> bool:
        return False  # no real route: a C slot's packets keep going through Consumer.forward


class FakeSender:
    """FakeSender has the callback surface of ForwardingSender."""

    def __init__(self) -> None:
        self.on_ready: Any = None
        self.on_rtcp: Any = None
        self.on_report: Any = None
        self.on_remb: Any = None
        self.on_keyframe: Any = None
        self.sr_info: Any = None
        self.context: SendContext | None = None
        self.rtt: float | None = None
        self.report_slot: Any = None  # set by the Consumer (its C slot)

    def report_block(self, fraction_lost: int, packets_lost: int, jitter: int, lsr: int, dlsr: int) -> None:
        """report_block: as ForwardingSender's (the slot's, else on_report)."""
        if self.report_slot is not None:
            self.report_slot.report(fraction_lost, packets_lost, jitter, lsr, dlsr, 0.0)
        elif self.on_report is not None:
            self.on_report(fraction_lost, packets_lost, jitter)

    def remb(self, bitrate: int) -> None:
        """remb: as ForwardingSender's (the slot's, else on_remb)."""
        if self.report_slot is not None:
            self.report_slot.remb = bitrate
        elif self.on_remb is not None:
            self.on_remb(bitrate)


class FakeReceiver:
    """FakeReceiver records PLIs a Producer sends."""

    def __init__(self, media_ssrc: int | None = 1234) -> None:
        self.on_rtp: Any = None
        self.media_ssrc = media_ssrc
        self.plis: list[int] = []
        self.disarmed = 0

    async def send_pli(self, ssrc: int) -> None:
        self.plis.append(ssrc)

    def disarm(self) -> None:
        self.disarmed += 1


def context(kind: str = "video", rtx: bool = True, mid: str = "3", **kw: Any) -> SendContext:
    base: dict[str, Any] = dict(
        kind=kind,
        mime="video/vp8" if kind == "video" else "audio/opus",
        clock_rate=90000 if kind == "video" else 48000,
        payload_type=96 if kind == "video" else 111,
        rtx_payload_type=97 if rtx and kind == "video" else None,
        ssrc=0x11111111,
        rtx_ssrc=0x22222222,
        mid=mid,
        mid_id=1,
        abs_send_time_id=3 if kind == "video" else None,
        audio_level_id=2 if kind == "audio" else None,
        transport=RTCDtlsTransport.__new__(RTCDtlsTransport),
    )
    base.update(kw)
    return SendContext(**base)
