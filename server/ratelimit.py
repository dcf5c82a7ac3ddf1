"""server.ratelimit: a token bucket with an injectable clock (per-connection message rate)."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """TokenBucket: `rate` tokens per second, at most `burst` saved; take() is False when empty."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def take(self, cost: float = 1.0) -> bool:
        """TokenBucket.take: spend `cost` tokens if there are enough."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False
