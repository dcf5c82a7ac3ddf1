"""stats: RTCP-derived loss / jitter / RTT / bitrate per Consumer, and inbound statistics per Producer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConsumerStats:
    """ConsumerStats is one snapshot of a Consumer (a slot of a down Peer), from the subscriber's RTCP."""

    slot: str
    source_participant: str | None
    source: str | None
    packets_sent: int
    bytes_sent: int
    send_bitrate: float  # bit/s over the last measurement window
    fraction_lost: float  # 0..1, from the last receiver report
    packets_lost: int  # cumulative, from the last receiver report
    jitter: float  # seconds
    rtt: float | None  # seconds, from LSR/DLSR
    remb_bitrate: int | None  # bit/s, the subscriber's estimate
    nacks: int
    retransmitted: int
    keyframe_requests: int  # PLI/FIR received from the subscriber


@dataclass(frozen=True)
class ProducerStats:
    """ProducerStats is one snapshot of a Producer's inbound stream."""

    participant_id: str
    source: str
    kind: str
    packets: int
    bytes: int
    bitrate: float
    packets_lost: int  # from sequence gaps (late RTX recoveries count as received)
    keyframes_requested: int  # PLIs sent upstream
    keyframes_throttled: int
    keyframes_received: int
    consumers: int


class RateMeter:
    """RateMeter turns a growing byte counter into bit/s over windows of at least `window` seconds."""

    def __init__(self, window: float = 1.0, start: float | None = None) -> None:
        self.window = window
        self._t0: float | None = start
        self._b0 = 0
        self.bitrate = 0.0

    def update(self, now: float, total_bytes: int) -> float:
        """update feeds the current counter; returns the latest complete-window bitrate."""
        if self._t0 is None:
            self._t0, self._b0 = now, total_bytes
        elif now - self._t0 >= self.window:
            self.bitrate = (total_bytes - self._b0) * 8 / (now - self._t0)
            self._t0, self._b0 = now, total_bytes
        elif not self.bitrate and now > self._t0:
            return (total_bytes - self._b0) * 8 / (now - self._t0)  # first, partial window
        return self.bitrate


class SequenceTracker:
    """SequenceTracker counts received and expected RTP packets across 16-bit wraparound (RFC 3550 A.1)."""

    def __init__(self) -> None:
        self.base: int | None = None
        self.max_ext = 0
        self.received = 0

    def add(self, seq: int) -> None:
        """add notes one received sequence number."""
        self.received += 1
        if self.base is None:
            self.base = self.max_ext = seq
            return
        cur = self.max_ext & 0xFFFF
        delta = (seq - cur) & 0xFFFF
        if delta < 0x8000:
            self.max_ext += delta

    @property
    def expected(self) -> int:
        """expected is the number of packets between the first and the highest sequence number."""
        return 0 if self.base is None else self.max_ext - self.base + 1

    @property
    def lost(self) -> int:
        """lost is expected minus received, never negative (duplicates and RTX can overshoot)."""
        return max(0, self.expected - self.received)
