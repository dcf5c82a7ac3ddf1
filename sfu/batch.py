"""batch: ReceiveBatching, the event loop's short wait between two polls while the media sockets are busy.

Each media socket is read when the event loop's poll (epoll) says it holds datagrams. With many publishers the
datagrams arrive spread out: measured on a lecture of 86 classrooms publishing (bench/forward.py --classrooms
86, N = 0: 13 000 datagrams/s), the loop woke about 4 000 times a second, three datagrams per wake-up, and the
kernel's share (the context switches, the polls, a ``recvmmsg`` per socket each time) was a third of the server's
CPU. Waiting 1 ms per iteration cut the server's CPU there by a fifth to a third (docs/sfu.md).
While the process receives at least ``min_rate`` media packets a second, ``ReceiveBatching`` makes the loop wait
``wait`` seconds (1 ms by default, the GIL released) once per iteration before its next poll: the datagrams of
that millisecond are then read together, many per socket and per system call. Below the rate (a few meetings,
tests) nothing changes.

The cost: while it is on, every callback of the loop may run up to ``wait`` later, a packet included (1 ms
against the 20 ms of an audio frame and a receiver's jitter buffer of tens of milliseconds).

Ownership: the event loop's thread; ``Sfu`` starts it with its first room and closes it with itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

PERIOD = 1.0  # seconds between two measures of the receive rate


class ReceiveBatching:
    """ReceiveBatching: the loop waits `wait` s per iteration while `count()` (media packets received so far) grows
    by `min_rate` a second or more, measured every `period` s. ``wait`` 0: off."""

    def __init__(self, loop: asyncio.AbstractEventLoop, count: Callable[[], int], wait: float, min_rate: float,
                 period: float = PERIOD, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._loop = loop
        self._count = count
        self.wait = wait
        self.min_rate = min_rate
        self.period = period
        self._clock = clock
        self._sleep = sleep
        self.rate = 0.0  # media packets/s over the last period
        self.on = False  # the loop waits each iteration
        self.naps = 0  # waits made (loop iterations slowed)
        self.periods_on = 0  # periods it was on
        self._napping = False
        self._last = (clock(), count())
        self._timer: asyncio.TimerHandle | None = None
        if wait > 0:
            self._timer = loop.call_later(period, self._measure)

    def _measure(self) -> None:
        """_measure: the rate over the last period turns the waits on or off."""
        now, count = self._clock(), self._count()
        elapsed = now - self._last[0]
        if elapsed > 0:
            self.rate = (count - self._last[1]) / elapsed
        self._last = (now, count)
        self.on = self.rate >= self.min_rate
        if self.on:
            self.periods_on += 1
            if not self._napping:
                self._napping = True
                self._loop.call_soon(self._nap)
        self._timer = self._loop.call_later(self.period, self._measure)

    def _nap(self) -> None:
        """_nap waits once, then again at the loop's next iteration while on (a callback made ready again makes
        the loop poll without blocking, so the wait is the only one per iteration)."""
        if not self.on:
            self._napping = False
            return
        self._sleep(self.wait)
        self.naps += 1
        self._loop.call_soon(self._nap)

    def close(self) -> None:
        """close stops the waits and the measures."""
        self.on = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
