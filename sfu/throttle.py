"""throttle: a minimum-interval gate with an injectable clock (keyframe requests)."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """Throttle lets one event through per `interval` seconds of `clock`; others are counted as dropped."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: float | None = None
        self.passed = 0
        self.dropped = 0

    def allow(self) -> bool:
        """allow returns True (and starts a new interval) when the last pass is at least `interval` ago."""
        now = self._clock()
        if self._last is not None and now - self._last < self.interval:
            self.dropped += 1
            return False
        self._last = now
        self.passed += 1
        return True

    def wait_time(self) -> float:
        """wait_time is how long until allow() would pass (0 when it would pass now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self.interval - (self._clock() - self._last))
