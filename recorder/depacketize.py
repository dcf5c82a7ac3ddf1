"""depacketize: RTP payloads -> whole media frames (VP8, H.264 Annex B, Opus), in order, from keyframes.

The recorder receives each slot's RTP stream exactly as the SFU forwards it (sequence numbers and
timestamps already continuous across source switches). ``FrameAssembler.push`` groups video packets by
timestamp; a frame is complete once its first packet (VP8 start of partition 0, H.264 single NAL, STAP-A or
FU-A start), its marker packet and every sequence number in between have arrived (NACK retransmissions
may come late and out of order). Frames leave in timestamp order. An incomplete frame that is overtaken by
more than ``max_wait_ticks`` is dropped, and so is everything up to the next keyframe (decoders would show
garbage otherwise); ``on_loss`` is called so the recorder can ask for a keyframe (PLI). Opus packets are
frames on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sfu.codec import is_keyframe_start

START_CODE = b"\x00\x00\x00\x01"


@dataclass(slots=True)
class Frame:
    """Frame is one encoded picture or audio packet: unwrapped RTP timestamp, bytes, keyframe flag."""

    ts: int
    data: bytes
    keyframe: bool
    arrival: float  # clock time (seconds) its first packet arrived


class Unwrapper:
    """Unwrapper turns 32-bit RTP timestamps into a monotonic-ish integer line (wraps and small reorders)."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._base = 0

    def unwrap(self, ts: int) -> int:
        """unwrap returns `ts` extended past 32 bits, relative to the stream's own history."""
        if self._last is None:
            self._last = ts
            return ts
        delta = (ts - self._last) & 0xFFFFFFFF
        if delta < 0x80000000:
            if ts < self._last:
                self._base += 1 << 32
            self._last = ts
            return self._base + ts
        # an older timestamp (reordered packet): on the previous lap if it lies before a wrap
        return self._base + ts - (1 << 32 if ts > self._last else 0)


def vp8_descriptor(payload: bytes) -> tuple[bool, int]:
    """vp8_descriptor returns (starts partition 0, descriptor length) of an RFC 7741 payload."""
    if not payload:
        return False, 0
    b0 = payload[0]
    pos = 1
    if b0 & 0x80:
        if len(payload) < 2:
            return False, len(payload)
        x = payload[1]
        pos = 2
        if x & 0x80:
            pos += 2 if len(payload) > pos and payload[pos] & 0x80 else 1
        if x & 0x40:
            pos += 1
        if x & 0x30:
            pos += 1
    return bool(b0 & 0x10) and (b0 & 0x07) == 0, min(pos, len(payload))


def vp8_size(frame: bytes) -> tuple[int, int] | None:
    """vp8_size reads (width, height) from a VP8 keyframe's header, None for an inter frame."""
    if len(frame) < 10 or frame[0] & 0x01 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return (frame[6] | frame[7] << 8) & 0x3FFF, (frame[8] | frame[9] << 8) & 0x3FFF


def h264_start(payload: bytes) -> bool:
    """h264_start tells whether an RTP payload begins an access unit's NAL (not an FU-A continuation)."""
    if not payload:
        return False
    nal = payload[0] & 0x1F
    if nal == 28:
        return len(payload) > 1 and bool(payload[1] & 0x80)
    return True


def h264_depayload(payload: bytes) -> bytes:
    """h264_depayload converts one RTP payload (single NAL, STAP-A, FU-A) into Annex B bytes."""
    if not payload:
        return b""
    nal = payload[0] & 0x1F
    if nal == 24:  # STAP-A
        out = bytearray()
        pos = 1
        while pos + 2 <= len(payload):
            size = payload[pos] << 8 | payload[pos + 1]
            pos += 2
            out += START_CODE + payload[pos:pos + size]
            pos += size
        return bytes(out)
    if nal == 28:  # FU-A
        if len(payload) < 2:
            return b""
        if payload[1] & 0x80:
            return START_CODE + bytes([(payload[0] & 0xE0) | (payload[1] & 0x1F)]) + payload[2:]
        return payload[2:]
    return START_CODE + payload


@dataclass
class _Pending:
    first_seq: int | None = None
    last_seq: int | None = None
    parts: dict[int, bytes] = field(default_factory=dict)
    arrival: float = 0.0


class FrameAssembler:
    """FrameAssembler turns one slot's RTP packets into frames; see the module doc."""

    def __init__(self, mime: str, on_loss: Callable[[], None] | None = None, max_wait_ticks: int = 45000) -> None:
        self.mime = mime
        self.video = mime.startswith("video/")
        self.on_loss = on_loss
        self.max_wait_ticks = max_wait_ticks
        self._ts = Unwrapper()
        self._pending: dict[int, _Pending] = {}
        self._emitted_ts: int | None = None
        self._need_keyframe = True
        self._asked = False
        self._last_seq: int | None = None  # last sequence number accounted for (None: unknown)
        self._fillers: set[int] = set()
        self.frames = 0
        self.dropped = 0

    def push(self, seq: int, ts: int, marker: bool, payload: bytes, arrival: float) -> list[Frame]:
        """push adds one packet; returns the frames it completes (possibly none), oldest first."""
        uts = self._ts.unwrap(ts)
        if self._emitted_ts is not None and uts <= self._emitted_ts:
            return []  # late duplicate or retransmission of a frame already written or dropped
        if not self.video:
            if not payload:
                return []
            self._emitted_ts = uts
            self.frames += 1
            return [Frame(uts, payload, True, arrival)]
        if not payload:  # padding only: it still takes a sequence number
            self._fillers.add(seq)
            return self._drain(uts)
        pending = self._pending.get(uts)
        if pending is None:
            pending = self._pending[uts] = _Pending(arrival=arrival)
        pending.parts[seq] = payload
        if self._starts_frame(payload):
            pending.first_seq = seq
        if marker:
            pending.last_seq = seq
        return self._drain(uts)

    def _starts_frame(self, payload: bytes) -> bool:
        if self.mime == "video/vp8":
            return vp8_descriptor(payload)[0]
        return h264_start(payload)

    def _complete(self, p: _Pending) -> bool:
        if p.first_seq is None or p.last_seq is None:
            return False
        count = ((p.last_seq - p.first_seq) & 0xFFFF) + 1
        return count <= len(p.parts) and all(((p.first_seq + i) & 0xFFFF) in p.parts for i in range(count))

    def _assemble(self, p: _Pending) -> bytes:
        assert p.first_seq is not None and p.last_seq is not None
        count = ((p.last_seq - p.first_seq) & 0xFFFF) + 1
        chunks = [p.parts[(p.first_seq + i) & 0xFFFF] for i in range(count)]
        if self.mime == "video/vp8":
            return b"".join(c[vp8_descriptor(c)[1]:] for c in chunks)
        return b"".join(h264_depayload(c) for c in chunks)

    def _contiguous(self, first_seq: int) -> bool:
        """_contiguous: no packet is missing between the last frame written and `first_seq`."""
        if self._last_seq is None:
            return True
        while (self._last_seq + 1) & 0xFFFF in self._fillers:
            self._last_seq = (self._last_seq + 1) & 0xFFFF
            self._fillers.discard(self._last_seq)
        return first_seq == (self._last_seq + 1) & 0xFFFF

    def _drain(self, newest: int) -> list[Frame]:
        out: list[Frame] = []
        for uts in sorted(self._pending):
            p = self._pending[uts]
            overdue = newest - uts > self.max_wait_ticks or len(self._pending) > 64
            if self._complete(p):
                assert p.first_seq is not None
                keyframe = is_keyframe_start(self.mime, p.parts[p.first_seq])
                if not self._need_keyframe and not keyframe and not self._contiguous(p.first_seq):
                    if not overdue:
                        break  # a whole frame before this one may still come (reordered or NACKed)
                    self._need_keyframe = True  # it did not: this frame would decode wrong
                del self._pending[uts]
                self._emitted_ts = uts
                self._last_seq = p.last_seq
                self._fillers = {q for q in self._fillers if (q - (p.last_seq or 0)) & 0xFFFF < 0x8000}
                if self._need_keyframe and not keyframe:
                    self._loss()
                    continue
                self._need_keyframe = False
                self._asked = False
                self.frames += 1
                out.append(Frame(uts, self._assemble(p), keyframe, p.arrival))
            elif overdue:
                del self._pending[uts]  # give up on it: wait for a keyframe
                self._emitted_ts = uts
                self._last_seq = p.last_seq
                self.dropped += 1
                self._need_keyframe = True
                self._loss()
            else:
                break  # keep order: wait for the missing packets (NACK) of this frame
        return out

    def _loss(self) -> None:
        if not self._asked and self.on_loss is not None:
            self._asked = True
            self.on_loss()

    def reset_keyframe_request(self) -> None:
        """reset_keyframe_request allows another ``on_loss`` call (e.g. a PLI went unanswered for a while)."""
        self._asked = False

    @property
    def waiting_keyframe(self) -> bool:
        """waiting_keyframe is true until a keyframe arrives (at the start, and after a loss)."""
        return self.video and self._need_keyframe
