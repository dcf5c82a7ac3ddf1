"""pacer: one down transport's pacer: it sends at the classroom's estimate, audio first.

A keyframe is a burst of 10-40 packets; sent at once into a 300 kbit/s link it fills the bottleneck's small
queue ahead of the audio, which then arrives late or not at all (measured before this pacer: 36-65 % of
audio concealed on 0.3-1 Mbit/s links). The pacer is a token bucket at ``rate`` (the allocator sets it to
``PACING_FACTOR`` x the estimate):

* audio is never held: it is sent at once and its bits are taken from the bucket (which may go below zero);
* video is sent at once only while nothing waits and the bucket is not empty; else it waits in the queue,
  in order, and a timer sends it as the bucket refills, so the audio that arrives meanwhile goes first;
* what waits leaves by class (``pace_class``): the cameras' video before the screen share's, each class in order.
  A shared slide's keyframe is a burst of 20-60 kB every few seconds; in one queue the presenter camera's frames
  waited behind it (measured on a 300 kbit/s classroom: its queue stood at 1.9 s for 4 s, behind the screen's
  packets, and the presenter camera stalled 2.5 s), while a frame of a camera's low layer is 1-3 packets;
* a keyframe that must wait drops the older packets of its own stream still waiting (``TokenBucket.supersede``):
  a decoder that gets the keyframe has no use for the frames before it, and they would hold it back.

The bucket and its queue are ``TokenBucket`` in Python and ``sfu._fanout.Pacer`` in C (the same fields,
arithmetic and queue, checked by ``tests/sfu/test_pacer.py``). The C fan-out (``sfu/_fanout.c``) asks the bucket
of a slot's wire before sending; a video packet it may not send yet is rewritten as usual and waits in the C
queue, so a paced link costs no Python per packet (``on_queue`` tells ``Pacer`` to start its timer). The Python
path (``PacketWire.send_rtp``) queues its packets in the same queue (``push``). The timer calls ``drain``, which
sends what the bucket allows, oldest first; the pacers of a room's subscribers share one timer (``Drains``, which
the room's allocation job puts them in), on a 5 ms grid (``drain_at``). Retransmissions are video: they wait in
the same queue, and ``Consumer.retransmit`` refuses them while what waits has waited more than
``RESEND_QUEUE_DELAY`` or they exceed ``RESEND_SHARE`` of the rate.

Owner: one ``PacketWire`` (one down DTLS transport) owns one ``Pacer``; the room's allocation job sets its rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from sfu.rtp import abs_send_time_now, pack_abs_send_time

try:
    from sfu._fanout import Pacer as CompiledBucket
except ImportError:  # the C extension is optional
    CompiledBucket = None

PACING_FACTOR = 1.2  # the pacer's rate over the estimate (a little above, so the estimate can grow)
BURST_SECONDS = 0.02  # the bucket holds at most this long at `rate`
MIN_BURST_BITS = 2 * 1200 * 8  # and at least two full packets
UNLIMITED = 1e12  # bit/s: pacing off (no estimate yet, or allocation disabled)
MAX_QUEUE_SECONDS = 2.0  # packets waiting longer than this are dropped (counted): the allocator steps down first
MAX_SCREEN_QUEUE_SECONDS = 3.0  # and the screen share's (class SCREEN): a slide's keyframe on a weak link takes 1-2 s
# of it behind the cameras (its low layer's, 20-40 kB, at a 140-180 kbit/s estimate); dropped at 2 s, it only asked
# the next one, which Chromium's simulcast sends on every layer to every classroom (traced on a 300 kbit/s classroom:
# its screen's repairs were two of the uncapped classroom's six extra keyframes a minute), and a slide 3 s late is
# still the slide. Not longer: a receiver that decoded no frame for 3 s asks a keyframe itself (WebRTC's video
# receive stream waits that long for a frame), so what waited longer is asked again anyway
SUPERSEDE_AFTER = 1.0  # a keyframe drops its stream's older frames once they have waited this long (a shorter wait is
# delivered: dropping it froze the picture for as long as it had waited, at every layer switch of a paced link)
MAX_QUEUE = 4096  # packets that may wait (2 s at 16 Mbit/s); more are dropped (counted)
RESEND_SHARE = 0.25  # retransmissions may use at most this share of the rate (per second)
RESEND_QUEUE_DELAY = 0.25  # seconds: behind a queue that waited longer a resend is refused (too late to help). Not
# at all behind any queue, as before, refused every resend of a 300 kbit/s classroom (its queue is seldom empty):
# each lost packet broke its decoder until a keyframe, which a weak link's request waits for (the track's gate)
DRAIN_GRID = 0.005  # seconds: the instants drain timers fire on (see drain_at)
OVERHEAD = 10 + 28  # bytes per packet beyond the plain RTP: SRTP tag, IPv4 + UDP headers
CLASSES = 2  # classes of waiting video (pace_class): class 0 leaves first
FIRST, SCREEN = 0, 1  # the cameras' class; the screen share's
MAX_WAIT = (MAX_QUEUE_SECONDS, MAX_SCREEN_QUEUE_SECONDS)  # per class: how long a packet may wait before it is dropped


def pace_class(slot: str) -> int:
    """pace_class: the class a video slot's packets wait in: ``SCREEN`` for the screen share, else ``FIRST`` (the
    presenter's, the floor holder's and the grid's cameras). A slide's keyframe is 20-60 kB every few seconds,
    a frame of a camera's low layer 1-3 packets: behind the slide a face freezes, behind the face a slide arrives
    a little later."""
    return SCREEN if slot == "screen" else FIRST


class TokenBucket:
    """TokenBucket is the pacer's bucket and queue in Python (the twin of ``sfu._fanout.Pacer``): bits, refilled at
    `rate`, and the packets waiting for them, one queue per class (``pace_class``)."""

    __slots__ = ("rate", "tokens", "burst", "last", "queued", "send", "on_queue", "armed", "sent_queued", "dropped",
                 "superseded", "_dropped_by", "_queues")

    def __init__(self, rate: float = UNLIMITED) -> None:
        self.rate = rate
        self.burst = burst_for(rate)
        self.tokens = self.burst
        self.last = -1.0
        self.queued = 0  # packets waiting in the queue (while any do, video waits behind them)
        self.send: Callable[[bytes | bytearray, bytes, int], Any] | None = None  # the way out of the queue
        self.on_queue: Callable[[], Any] | None = None  # the C twin calls it when its fan-out queues (never here)
        self.armed = False  # Pacer's drain timer is set
        self.sent_queued = 0  # packets sent from the queue
        self.dropped = 0  # packets dropped from the queue (waited too long, or the queue was full)
        self._dropped_by = [0] * CLASSES  # of those, each class's
        self.superseded = 0  # packets dropped from the queue because a keyframe of their stream came behind them
        # per class: (head, payload, padding, ast_off, size, queued at, key: the stream, or None)
        self._queues: tuple[deque[tuple[bytes, bytes, int, int, int, float, object]], ...] = tuple(
            deque() for _ in range(CLASSES))

    @property
    def oldest(self) -> float:
        """oldest: the clock when the oldest waiting packet was queued, -1 when none waits."""
        return min((q[0][5] for q in self._queues if q), default=-1.0)

    @property
    def dropped_by(self) -> tuple[int, ...]:
        """dropped_by: ``dropped`` per class (class 0's first)."""
        return tuple(self._dropped_by)

    def oldest_in(self, cls: int) -> float:
        """oldest_in: the clock when class `cls`'s oldest waiting packet was queued, -1 when none of it waits."""
        queue = self._queues[_clamp(cls)]
        return queue[0][5] if queue else -1.0

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

    def admit(self, size: int, audio: bool, now: float, cls: int = FIRST) -> bool:
        """admit: may a packet of `size` bytes go now? Audio always (its bits are taken); video of class `cls` when
        nothing of its class or a first one waits and the bucket is not empty."""
        self.refill(now)
        cls = _clamp(cls)
        if audio or (not any(self._queues[c] for c in range(cls + 1)) and self.tokens >= 0):
            self.tokens -= (size + OVERHEAD) * 8
            return True
        return False

    def take(self, size: int, now: float) -> None:
        """take removes a packet's bits as it is sent."""
        self.refill(now)
        self.tokens -= (size + OVERHEAD) * 8

    def wait(self) -> float:
        """wait: seconds until the bucket is not empty."""
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def push(self, head: bytes | bytearray, payload: bytes, padding: int, ast_off: int, now: float,
             cls: int = FIRST, key: object = None, keyframe: bool = False) -> bool:
        """push queues a copy of the packet in class `cls` (`ast_off`: where its abs-send-time is, 0: none); False:
        the queue is full and it is dropped (counted). `key`: the stream it belongs to (None: none told); a
        `keyframe` of a stream first drops that stream's older waiting packets (``supersede``)."""
        cls = _clamp(cls)
        if keyframe and key is not None:
            self.supersede(key, bytes(head[4:8]), now)
        if self.queued >= MAX_QUEUE:
            self.dropped += 1
            self._dropped_by[cls] += 1
            return False
        self._queues[cls].append((bytes(head), payload, padding, ast_off, len(head) + len(payload) + padding, now,
                                  key))
        self.queued += 1
        return True

    def supersede(self, key: object, ts: bytes, now: float) -> int:
        """supersede drops every waiting packet of stream `key` of another frame than `ts` (the RTP timestamp's 4
        bytes), a keyframe of which is about to wait behind them: older frames are of no use to a decoder that gets
        the keyframe, and they would hold it back (a camera's keyframe waited ~2 s in a 300 kbit/s classroom's queue
        behind its own older frames), once the oldest of them has waited ``SUPERSEDE_AFTER`` (`now`: the clock); the
        keyframe's own packets stay (an H.264 keyframe's SPS/PPS and each IDR
        slice are each told a keyframe). Counted in ``superseded``, not in ``dropped`` (no keyframe is needed for
        them: ``sfu.downlinks`` repairs what ``dropped_by`` counts). Returns how many."""
        older = [entry[5] for queue in self._queues for entry in queue if entry[6] is key and entry[0][4:8] != ts]
        if not older or now - min(older) < SUPERSEDE_AFTER:
            return 0
        n = 0
        for queue in self._queues:
            if any(entry[6] is key and entry[0][4:8] != ts for entry in queue):
                kept = [entry for entry in queue if entry[6] is not key or entry[0][4:8] == ts]
                n += len(queue) - len(kept)
                queue.clear()
                queue.extend(kept)
        self.queued -= n
        self.superseded += n
        return n

    def drain(self, now: float) -> int:
        """drain drops what waited longer than its class may (``MAX_WAIT``), then sends what the bucket allows, class 0
        first, each class oldest first, each packet stamped with the abs-send-time of its departure; returns the
        packets sent."""
        for cls, queue in enumerate(self._queues):
            while queue and now - queue[0][5] > MAX_WAIT[cls]:
                queue.popleft()
                self.queued -= 1
                self.dropped += 1
                self._dropped_by[cls] += 1
        self.refill(now)
        sent = 0
        while self.queued and self.tokens >= 0:
            queue = next(q for q in self._queues if q)
            head, payload, padding, ast_off, size, _, _ = queue.popleft()
            self.queued -= 1
            self.tokens -= (size + OVERHEAD) * 8
            out: bytes | bytearray = head
            if ast_off:
                out = bytearray(head)
                pack_abs_send_time(out, ast_off, abs_send_time_now())
            if self.send is not None:
                self.send(out, payload, padding)
            self.sent_queued += 1
            sent += 1
        return sent

    def clear(self) -> None:
        """clear drops what waits (not counted)."""
        for queue in self._queues:
            queue.clear()
        self.queued = 0


def _clamp(cls: int) -> int:
    """_clamp: `cls` within 0 .. ``CLASSES`` - 1 (as the C twin reads a slot's class)."""
    return min(max(cls, 0), CLASSES - 1)


def burst_for(rate: float) -> float:
    """burst_for: the bucket's size at `rate` (``BURST_SECONDS`` of it, at least two packets)."""
    return max(MIN_BURST_BITS, rate * BURST_SECONDS)


def drain_at(now: float, wait: float) -> float:
    """drain_at: when a drain timer armed at `now` fires, the bucket empty for `wait` more seconds: on the
    ``DRAIN_GRID`` (every pacer of the process on the same instants, so the timers of a room's classrooms, which
    queue together as a keyframe reaches them all, fire in one wake-up of the event loop, not one each: measured
    at N = 20, 780 timers a second), after at most ``BURST_SECONDS`` (the bucket holds no more: a later drain
    would lose rate), or, when the bucket refills later than that, once it has."""
    if wait > BURST_SECONDS:
        return math.ceil((now + wait) / DRAIN_GRID) * DRAIN_GRID
    return max(math.floor((now + BURST_SECONDS) / DRAIN_GRID) * DRAIN_GRID, now)


def new_bucket(compiled: bool) -> Any:
    """new_bucket: a ``sfu._fanout.Pacer`` when built and wanted, else a ``TokenBucket``."""
    if compiled and CompiledBucket is not None:
        return CompiledBucket(UNLIMITED)
    return TokenBucket(UNLIMITED)


class Drains:
    """Drains: one drain timer for the pacers of a room (``sfu.downlinks.Downlinks`` puts its subscribers' in).

    A keyframe reaches every classroom at once and each one's pacer queues it: with a timer each, a room of 20
    woke the event loop ~780 times a second (measured) to send what one wake-up can. A member's ``_schedule``
    adds it to the waiting ones; the timer (on ``drain_at``'s instants) drains each, keeps those still waiting
    and fires again while any does.
    """

    def __init__(self) -> None:
        self._waiting: dict[Any, Callable[[], float]] = {}  # the waiting pacers' buckets, in the order they queued,
        # and their clocks (the timer's loop reads no Pacer attribute: it ran ~500 times a second at N = 20)
        self._timer: asyncio.TimerHandle | None = None
        self._due = math.inf
        self.fired = 0  # timer wake-ups

    def wait(self, pacer: Pacer, loop: asyncio.AbstractEventLoop) -> None:
        """wait: `pacer` has packets waiting: drained on the next wake-up (armed for it if it is due sooner)."""
        self._waiting[pacer.bucket] = pacer._clock
        pacer.bucket.armed = True
        due = drain_at(loop.time(), pacer.bucket.wait())
        if due < self._due:
            if self._timer is not None:
                self._timer.cancel()
            self._due = due
            self._timer = loop.call_at(due, self._fire, loop)

    def leave(self, pacer: Pacer) -> None:
        """leave forgets `pacer` (closed)."""
        self._waiting.pop(pacer.bucket, None)
        if not self._waiting and self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._due = math.inf

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._due = math.inf
        self.fired += 1
        wait = math.inf
        waiting = self._waiting
        done = []
        for bucket, clock in list(waiting.items()):  # a bucket's drain may send through Python (which may queue)
            bucket.drain(clock())
            if bucket.queued:
                left = bucket.wait()
                if left < wait:
                    wait = left
            else:
                done.append(bucket)
        for bucket in done:
            if bucket.queued:  # queued again meanwhile (a later drain sent through Python, which queued here)
                wait = min(wait, bucket.wait())
            else:
                del waiting[bucket]
                bucket.armed = False
        if self._waiting:
            self._due = drain_at(loop.time(), wait)
            self._timer = loop.call_at(self._due, self._fire, loop)


class Pacer:
    """Pacer: one transport's bucket and queue (see the module docstring) and the timer that drains it: its own,
    or its room's (``group``, a ``Drains``).

    `send` sends one plain packet now (``PacketWire._send_now``).
    """

    def __init__(self, send: Callable[[bytes | bytearray, bytes, int], bool], compiled: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.bucket = new_bucket(compiled)
        self.bucket.send = send
        self.bucket.on_queue = self._schedule
        self._send = send
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self.group: Drains | None = None  # the room's drain timer, when it has put this pacer in
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
    def sent_queued(self) -> int:
        """sent_queued: packets sent from the queue."""
        return int(self.bucket.sent_queued)

    @property
    def dropped(self) -> int:
        """dropped: packets dropped from the queue (waited longer than their class may, ``MAX_WAIT``, or it was
        full)."""
        return int(self.bucket.dropped)

    @property
    def dropped_by(self) -> tuple[int, ...]:
        """dropped_by: ``dropped`` per class (``pace_class``; class 0's first)."""
        return tuple(self.bucket.dropped_by)

    @property
    def superseded(self) -> int:
        """superseded: packets dropped from the queue because a keyframe of their stream came behind them."""
        return int(self.bucket.superseded)

    @property
    def queue_delay(self) -> float:
        """queue_delay: how long the oldest waiting packet has waited (0 when none waits)."""
        return self._clock() - self.bucket.oldest if self.bucket.queued else 0.0

    def delay_of(self, cls: int) -> float:
        """delay_of: how long the oldest packet waiting in class `cls` or before it has waited (0 when none waits):
        what a packet of that class waits behind."""
        now = self._clock()
        waits = [now - at for at in (self.bucket.oldest_in(c) for c in range(_clamp(cls) + 1)) if at >= 0]
        return max(waits, default=0.0)

    @property
    def queue_delays(self) -> tuple[float, ...]:
        """queue_delays: how long the oldest packet of each class has waited (0 when none of it waits)."""
        now = self._clock()
        return tuple(now - at if at >= 0 else 0.0 for at in (self.bucket.oldest_in(c) for c in range(CLASSES)))

    @property
    def congested(self) -> bool:
        """congested: packets are waiting (so a retransmission would only add to the delay)."""
        return bool(self.bucket.queued)

    def allow_resend(self, size: int, cls: int = FIRST) -> bool:
        """allow_resend: a retransmission of `size` bytes, of class `cls`, fits the budget: what it would wait behind
        (its class and the ones before) has waited under ``RESEND_QUEUE_DELAY`` (a resend queued behind it still
        comes in time for the decoder; a camera's resend does not wait behind the screen's packets), resends under
        ``RESEND_SHARE`` of the rate."""
        if self.bucket.queued and self.delay_of(cls) > RESEND_QUEUE_DELAY:
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

    def send(self, head: bytes | bytearray, payload: bytes, padding: int, audio: bool, ast_off: int = 0,
             cls: int = FIRST, key: object = None, keyframe: bool = False) -> bool:
        """send sends the packet now if the bucket admits it, else queues a copy in class `cls`; True either way.

        What waits goes first, as far as the bucket allows (as the C fan-out does). `ast_off`: where `head` holds
        the abs-send-time extension (0: none), rewritten when a queued packet leaves: a receiver's delay-based
        estimate must see when it left, not the time it waited here as a growing queue. `key`: the stream it
        belongs to; a `keyframe` that must wait drops that stream's older waiting packets (``TokenBucket.push``).
        """
        now = self._clock()
        size = len(head) + len(payload) + padding
        if self.bucket.queued:
            self.bucket.drain(now)
        if self.bucket.admit(size, audio, now, cls):
            return self._send(head, payload, padding)
        self.bucket.push(head, payload, padding, ast_off, now, cls, key, keyframe)
        self._schedule()
        return True

    def _schedule(self) -> None:
        """_schedule starts the drain timer when packets wait and none runs (without a running loop: a test's
        synchronous fan-out, which drains by hand).

        It fires after ``BURST_SECONDS`` at least: the bucket holds that much of the rate, so a drain that often
        keeps the rate, and the media the link receives drains it in between (every packet the fan-out handles
        for a paced slot drains first): one timer per burst, not one per packet.
        """
        if self._timer is None and self.bucket.queued:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            if self.group is not None:
                if not self.bucket.armed:  # else it is among the group's waiting ones already
                    self.group.wait(self, loop)
                return
            self._timer = loop.call_at(drain_at(loop.time(), self.bucket.wait()), self._drain)
            self.bucket.armed = True

    def _drain(self) -> None:
        """_drain sends what the bucket allows from the head of the queue, drops what waited too long."""
        self._timer = None
        self.bucket.armed = False
        self.bucket.drain(self._clock())
        self._schedule()

    def close(self) -> None:
        """close drops what waits and stops the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.group is not None:
            self.group.leave(self)
            self.group = None
        self.bucket.armed = False
        self.bucket.clear()
        self.bucket.send = self.bucket.on_queue = None  # no cycle through the bound methods
