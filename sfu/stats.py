"""stats: RTCP-derived loss / jitter / RTT / bitrate per Consumer, inbound statistics per Producer, and the
receive-side RTP statistics (RFC 3550) and NACK tracking of ForwardingReceiver."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from aiortc.rtp import clamp_packets_lost

from sfu.cells import Cell, Cells
from sfu.uplink import Uplink


@dataclass
class Forwarded:
    """Forwarded totals RTP packets and payload bytes sent to subscribers (resends excluded), e.g. by the consumers
    an Sfu's rooms have closed: added once when a consumer goes, so a total over time never goes down."""

    packets: int = 0
    bytes: int = 0

    def add(self, packets: int, octets: int) -> None:
        """add counts what one consumer sent."""
        self.packets += packets
        self.bytes += octets


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
    keyframe_requests_throttled: int = 0  # of those, not passed on (the consumer's own throttle)
    resends_refused: int = 0  # NACKed packets not resent (too old, too recent, or over the budget)
    layer: int | None = None  # the spatial layer of the source it forwards (0 lowest), None: nothing
    max_temporal: int = -1  # the highest temporal layer it forwards, -1 all
    repairs: int = 0  # keyframes asked because its pacer dropped what waited too long (Consumer.repair)
    keyframe_retries: int = 0  # keyframes asked again while the slot waited for one (Consumer.KEYFRAME_RETRY)


@dataclass(frozen=True)
class UplinkStats:
    """UplinkStats is what a publisher's connection is told it may send (sfu/uplink.py)."""

    remb: int  # bit/s, the latest REMB sent (0: none yet)
    falls: int  # times the server's estimate of its link fell (a queue grew on it)
    calm: bool  # no fall within the current hold: the floor (sfu.publish_bitrate) applies

    @classmethod
    def of(cls, uplink: Uplink) -> UplinkStats:
        """UplinkStats.of: the figures of `uplink`."""
        return cls(remb=uplink.sent, falls=uplink.falls, calm=uplink.calm)


@dataclass(frozen=True)
class DownlinkStats:
    """DownlinkStats is one subscriber's downlink as the allocator sees it (sfu/downlinks.py)."""

    estimate: float  # bit/s, from its REMB, loss and our pacer's queue
    pacing_rate: float | None  # bit/s, None: not paced (no estimate yet, or allocation off)
    queue_delay: float  # seconds the oldest packet waiting in the pacer has waited
    queued: int  # packets that waited in the pacer (sent later than they arrived)
    queue_dropped: int  # packets dropped after waiting too long in the pacer
    paused: int  # video slots paused because the link cannot carry them
    upgrades: int
    downgrades: int


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
    rid: str | None = None  # the simulcast layer's RTP stream id (None: the track has no layers)
    layer: int = 0  # index among the track's layers, lowest spatial layer first
    arriving: bool = False  # packets came within the last second or so (Producer.arriving)
    keyframes_deferred: int = 0  # optional requests held back by the track's keyframe gate


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


class SequenceTracker(Cells):
    """SequenceTracker counts received and expected RTP packets across 16-bit wraparound (RFC 3550 A.1)."""

    __slots__ = ()
    # cells (sfu.cells): the C receive path writes them in place (sfu/_ingress.c)
    base: Cell[int | None] = Cell(0, optional=True)
    max_ext: Cell[int] = Cell(1)
    received: Cell[int] = Cell(2)

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


class RtpStreamStats(Cells):
    """RtpStreamStats: RFC 3550 A.3 / A.8 receive statistics of one SSRC, read by aiortc's RR loop.

    It has the attributes aiortc's ``RTCRtpReceiver._run_rtcp`` and ``getStats()`` read from a
    ``StreamStatistics`` (``packets_received``, ``max_seq``, ``fraction_lost``, ``packets_lost``, ``jitter``)
    but is fed plain integers, and ``max_seq`` is the extended highest sequence number (cycles included) as
    RFC 3550 wants it in a report block.
    """

    __slots__ = ("clock_rate", "base_seq", "_expected_prior", "_received_prior")
    # what the C receive path updates per packet, in place (sfu/_ingress.c): cells (sfu.cells)
    max16: Cell[int] = Cell(0)
    cycles: Cell[int] = Cell(1)
    packets_received: Cell[int] = Cell(2)
    _jitter_q4: Cell[int] = Cell(3)
    _last_transit: Cell[int | None] = Cell(4, optional=True)
    _last_ts: Cell[int] = Cell(5)

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.base_seq: int | None = None
        self.max16 = 0
        self.cycles = 0
        self.packets_received = 0
        self._jitter_q4 = 0
        self._last_transit: int | None = None
        self._last_ts = -1
        self._expected_prior = 0
        self._received_prior = 0

    def add(self, seq: int, ts: int, arrival: float) -> None:
        """add notes one received packet (`arrival` in seconds, any epoch)."""
        self.packets_received += 1
        if self.base_seq is None:
            self.base_seq = self.max16 = seq
        else:
            delta = (seq - self.max16) & 0xFFFF
            if delta == 0 or delta >= 0x8000:
                return  # duplicate or reordered: counted, no jitter sample (like aiortc)
            if seq < self.max16:
                self.cycles += 0x10000
            self.max16 = seq
        if ts != self._last_ts:
            transit = int(arrival * self.clock_rate) - ts
            last = self._last_transit
            if last is not None:
                # the transit difference as a signed 32-bit value (RFC 3550 A.8): RTP timestamps wrap at 2^32
                d = ((transit - last + 0x80000000) & 0xFFFFFFFF) - 0x80000000
                if d < 0:
                    d = -d
                self._jitter_q4 += d - ((self._jitter_q4 + 8) >> 4)
            self._last_transit = transit
            self._last_ts = ts

    @property
    def max_seq(self) -> int:
        """max_seq is the extended highest sequence number received, modulo 2^32 (the report block's field)."""
        return (self.cycles + self.max16) & 0xFFFFFFFF

    @property
    def packets_expected(self) -> int:
        """packets_expected is extended highest - base + 1 (0 before the first packet)."""
        if self.base_seq is None:
            return 0
        return self.cycles + self.max16 - self.base_seq + 1

    @property
    def packets_lost(self) -> int:
        """packets_lost is the cumulative loss, clamped to the 24-bit signed RR field."""
        return clamp_packets_lost(self.packets_expected - self.packets_received)

    @property
    def fraction_lost(self) -> int:
        """fraction_lost is the loss since the previous read, in 1/256 (reading starts a new interval)."""
        expected = self.packets_expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self.packets_received - self._received_prior
        self._received_prior = self.packets_received
        lost = expected_interval - received_interval
        if expected_interval <= 0 or lost <= 0:
            return 0
        return min(255, (lost << 8) // expected_interval)

    @property
    def jitter(self) -> int:
        """jitter is the interarrival jitter in timestamp units."""
        return self._jitter_q4 >> 4


class NackTracker(Cells):
    """NackTracker finds missing sequence numbers among the last `window` packets (video NACKs).

    ``add(seq)`` returns True when `seq` revealed a new gap; ``missing`` then lists what to NACK (the same
    policy as aiortc's NackGenerator, on plain integers, and a jump of more than `window` starts over
    instead of listing thousands of packets).
    """

    __slots__ = ("window", "missing")
    max_seq: Cell[int | None] = Cell(0, optional=True)  # a cell (sfu.cells): the C receive path sets it per packet

    def __init__(self, window: int = 128) -> None:
        self.window = window
        self.max_seq: int | None = None
        self.missing: set[int] = set()

    def wanted(self, seq: int, retransmission: bool) -> bool:
        """wanted tells whether `seq` still has a use: new, or filling a gap we NACK.

        Anything else is a copy of a packet already here: a duplicate on the network, or (a `retransmission`)
        a publisher's padding made of old packets (Chromium probes its link with them on RTX) or a second
        answer to one NACK. A plain packet older than the window is let through: only the NACK window is
        known, and a publisher that restarted its numbering lower would otherwise never be heard again.
        """
        last = self.max_seq
        if last is None:
            return True
        behind = (last - seq) & 0xFFFF
        if behind >= 0x8000:  # newer than anything received
            return True
        if seq in self.missing:
            return True
        return not retransmission and behind > self.window

    def add(self, seq: int) -> bool:
        """add notes one received sequence number; True when new packets are missing."""
        last = self.max_seq
        if last is None:
            self.max_seq = seq
            return False
        delta = (seq - last) & 0xFFFF
        if delta == 0:
            return False
        if delta >= 0x8000:  # older: a late packet or a retransmission
            self.missing.discard(seq)
            return False
        self.max_seq = seq
        missing = self.missing
        if delta > self.window:
            missing.clear()
            return False
        if missing:
            low = (seq - self.window) & 0xFFFF
            for old in [s for s in missing if (low - s) & 0xFFFF < 0x8000 and s != low]:
                missing.discard(old)
        if delta == 1:
            return False
        for i in range(1, delta):
            missing.add((last + i) & 0xFFFF)
        return True


class WindowRate:
    """WindowRate is aiortc's ``RateCounter`` (the REMB estimator's incoming bitrate) without 1 ms buckets.

    Same results: the rate over the last `window_ms` (or since the first sample, when that is shorter),
    times `scale`. aiortc's counter walks one bucket per elapsed millisecond (a thousand Python steps per
    second per video stream); this one keeps (ms, value) samples and drops the expired ones.
    """

    def __init__(self, window_ms: int, scale: int = 8000) -> None:
        self._window = window_ms
        self._scale = scale
        self._samples: deque[tuple[int, int]] = deque()
        self._origin_ms: int | None = None
        self._count = 0
        self._total = 0

    def add(self, value: int, now_ms: int) -> None:
        """add counts `value` at `now_ms`."""
        if self._origin_ms is None:
            self._origin_ms = now_ms
        else:
            self._erase_old(now_ms)
        self._samples.append((now_ms, value))
        self._count += 1
        self._total += value

    def rate(self, now_ms: int) -> int | None:
        """rate is scale x (sum of values in the window) / (window length in ms); None without samples."""
        origin = self._origin_ms
        if origin is None:
            return None
        self._erase_old(now_ms)
        active = now_ms - self._origin_ms + 1  # type: ignore[operator]
        if self._count > 0 and active > 1:
            return round(self._scale * self._total / active)
        return None

    def reset(self) -> None:
        """reset forgets every sample."""
        self._samples.clear()
        self._origin_ms = None
        self._count = 0
        self._total = 0

    def _erase_old(self, now_ms: int) -> None:
        new_origin = now_ms - self._window + 1
        if self._origin_ms is not None and self._origin_ms < new_origin:
            self._origin_ms = new_origin
            samples = self._samples
            while samples and samples[0][0] < new_origin:
                _, value = samples.popleft()
                self._count -= 1
                self._total -= value


class SlidingMin:
    """SlidingMin is the minimum of the last `size` values pushed (the newest included), in O(1) amortised.

    It replaces ``OveruseEstimator.update_min_frame_period`` of aiortc's REMB estimator, which scans a
    60-entry list in Python for every video frame (same results, see the tests).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._count = 0
        self._window: deque[tuple[int, float]] = deque()  # (index, value), values increasing

    def push(self, value: float) -> float:
        """push adds `value` and returns the minimum of the last `size` values."""
        i = self._count
        self._count = i + 1
        window = self._window
        while window and window[-1][1] >= value:
            window.pop()
        window.append((i, value))
        if window[0][0] <= i - self._size:
            window.popleft()
        return window[0][1]

