"""pacer: one down transport's pacer: it sends at the classroom's estimate, audio first.

A keyframe is a burst of 10-40 packets; sent at once into a 300 kbit/s link it fills the bottleneck's small
queue ahead of the audio, which then arrives late or not at all (measured before this pacer: 36-65 % of
audio concealed on 0.3-1 Mbit/s links). The pacer is a token bucket at ``rate`` (the allocator sets it to
``PACING_FACTOR`` x the estimate):

* audio is never held: it is sent at once and its bits are taken from the bucket (which may go below zero);
* video is sent at once only while nothing waits and the bucket is not empty; else it waits in the queue,
  in order, and a timer sends it as the bucket refills, so the audio that arrives meanwhile goes first.

The bucket is ``TokenBucket`` in Python and ``sfu._fanout.Pacer`` in C (the same fields and arithmetic, checked
by ``tests/sfu/test_pacer.py``); the C fan-out (``sfu/_fanout.c``) asks the bucket of a slot's wire before
sending, and leaves a video packet it may not send to the Python path, which queues it here
(``PacketWire.send_rtp``). The queue is ``Pacer``'s, in Python: only a congested classroom's packets go
through it. Retransmissions are video: they wait in the same queue, and ``Consumer.retransmit`` refuses them
while the queue is not empty (``Pacer.congested``) or they exceed ``RESEND_SHARE`` of the rate.

Owner: one ``PacketWire`` (one down DTLS transport) owns one ``Pacer``; the room's allocation job sets its rate.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sfu.rtp import abs_send_time_now

try:
    from sfu._fanout import Pacer as CompiledBucket
except ImportError:  # the C extension is optional
    CompiledBucket = None

PACING_FACTOR = 1.2  # the pacer's rate over the estimate (a little above, so the estimate can grow)
BURST_SECONDS = 0.02  # the bucket holds at most this long at `rate`
MIN_BURST_BITS = 2 * 1200 * 8  # and at least two full packets
UNLIMITED = 1e12  # bit/s: pacing off (no estimate yet, or allocation disabled)
MAX_QUEUE_SECONDS = 2.0  # packets waiting longer than this are dropped (counted): the allocator steps down first
RESEND_SHARE = 0.25  # retransmissions may use at most this share of the rate (per second)
_AST = struct.Struct("!HB")  # abs-send-time, 3 bytes
OVERHEAD = 10 + 28  # bytes per packet beyond the plain RTP: SRTP tag, IPv4 + UDP headers


class TokenBucket:
    """TokenBucket is the pacer's bucket in Python (the twin of ``sfu._fanout.Pacer``): bits, refilled at `rate`."""

    __slots__ = ("rate", "tokens", "burst", "last", "queued")

    def __init__(self, rate: float = UNLIMITED) -> None:
        self.rate = rate
        self.burst = burst_for(rate)
        self.tokens = self.burst
        self.last = -1.0
        self.queued = 0  # packets waiting in the Python queue: while any do, video waits behind them

    def set_rate(self, rate: float) -> None:
        """set_rate changes the rate (bit/s) and the burst that goes with it."""
        self.rate = rate
        self.burst = burst_for(rate)
        if self.tokens > self.burst:
            self.tokens = self.burst

    def refill(self, now: float) -> None:
        """refill adds the bits earned since the last call (at most the burst)."""
        if self.last >= 0 and now > self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def admit(self, size: int, audio: bool, now: float) -> bool:
        """admit: may a packet of `size` bytes go now? Audio always (its bits are taken); video when nothing waits
        and the bucket is not empty."""
        self.refill(now)
        if audio or (self.queued == 0 and self.tokens >= 0):
            self.tokens -= (size + OVERHEAD) * 8
            return True
        return False

    def take(self, size: int, now: float) -> None:
        """take removes a queued packet's bits as it is sent."""
        self.refill(now)
        self.tokens -= (size + OVERHEAD) * 8

    def wait(self) -> float:
        """wait: seconds until the bucket is not empty."""
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def burst_for(rate: float) -> float:
    """burst_for: the bucket's size at `rate` (``BURST_SECONDS`` of it, at least two packets)."""
    return max(MIN_BURST_BITS, rate * BURST_SECONDS)


def new_bucket(compiled: bool) -> Any:
    """new_bucket: a ``sfu._fanout.Pacer`` when built and wanted, else a ``TokenBucket``."""
    if compiled and CompiledBucket is not None:
        return CompiledBucket(UNLIMITED)
    return TokenBucket(UNLIMITED)


class Pacer:
    """Pacer: one transport's bucket and its queue of video packets waiting for it (see the module docstring).

    `send` sends one plain packet now (``PacketWire._send_now``). The queue holds (header, payload, padding,
    enqueued at) in order; a timer on the running loop drains it.
    """

    def __init__(self, send: Callable[[bytes | bytearray, bytes, int], bool], compiled: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bucket = new_bucket(compiled)
        self._send = send
        self._clock = clock
        self._queue: deque[tuple[bytes, bytes, int, float, int]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.sent_queued = 0  # packets sent from the queue
        self.dropped = 0  # packets dropped after waiting MAX_QUEUE_SECONDS
        self._resend_bits = 0.0
        self._resend_window = 0.0

    @property
    def rate(self) -> float:
        """rate: the pacing rate in bit/s (``UNLIMITED``: off)."""
        return float(self.bucket.rate)

    def set_rate(self, rate: float) -> None:
        """set_rate: the allocator's new pacing rate (bit/s)."""
        self.bucket.set_rate(rate)

    @property
    def queue_delay(self) -> float:
        """queue_delay: how long the oldest waiting packet has waited (0 when none waits)."""
        return self._clock() - self._queue[0][3] if self._queue else 0.0

    @property
    def congested(self) -> bool:
        """congested: packets are waiting (so a retransmission would only add to the delay)."""
        return bool(self._queue)

    def allow_resend(self, size: int) -> bool:
        """allow_resend: a retransmission of `size` bytes fits the budget (nothing waits, under RESEND_SHARE)."""
        if self._queue:
            return False
        now = self._clock()
        if now - self._resend_window >= 1.0:
            self._resend_window = now
            self._resend_bits = 0.0
        bits = (size + OVERHEAD) * 8
        if self.bucket.rate < UNLIMITED and self._resend_bits + bits > RESEND_SHARE * self.bucket.rate:
            return False
        self._resend_bits += bits
        return True

    def send(self, head: bytes | bytearray, payload: bytes, padding: int, audio: bool, ast_off: int = 0) -> bool:
        """send sends the packet now if the bucket admits it, else queues a copy; True either way.

        `ast_off`: where `head` holds the abs-send-time extension (0: none), rewritten when a queued packet leaves:
        a receiver's delay-based estimate must see when it left, not the time it waited here as a growing queue.
        """
        now = self._clock()
        size = len(head) + len(payload) + padding
        if self.bucket.admit(size, audio, now):
            return self._send(head, payload, padding)
        self._queue.append((bytes(head), payload, padding, now, ast_off))
        self.bucket.queued = len(self._queue)
        self._schedule()
        return True

    def _schedule(self) -> None:
        if self._timer is None and self._queue:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.001, self.bucket.wait()), self._drain)

    def _drain(self) -> None:
        """_drain sends what the bucket allows from the head of the queue, drops what waited too long."""
        self._timer = None
        now = self._clock()
        queue = self._queue
        bucket = self.bucket
        while queue and now - queue[0][3] > MAX_QUEUE_SECONDS:
            queue.popleft()
            self.dropped += 1
        bucket.refill(now)
        while queue and bucket.tokens >= 0:
            head, payload, padding, _, ast_off = queue.popleft()
            bucket.take(len(head) + len(payload) + padding, now)
            if ast_off:
                stamped = bytearray(head)
                _AST.pack_into(stamped, ast_off, *divmod(abs_send_time_now(), 256))
                self._send(stamped, payload, padding)
            else:
                self._send(head, payload, padding)
            self.sent_queued += 1
        bucket.queued = len(queue)
        self._schedule()

    def close(self) -> None:
        """close drops what waits and stops the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
        self.bucket.queued = 0
