"""server.ratelimit: a token bucket (per-connection message rate) and the password-failure limiter, both with an
injectable clock. Several nodes share the password-failure counts through Redis instead (server.sharedlimits)."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from aiohttp import web


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


def address_key(ip: str) -> str:
    """address_key: what one client address counts as: an IPv4 address itself, an IPv6 address its /64 (a
    host usually holds a whole /64), anything else (a Unix socket's empty peer) as given."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class LoginLimiter:
    """LoginLimiter: failed password checks in a sliding window of one minute, with an injectable clock.

    - one account from one address: after `per_pair` failures (`auth.login_failures_per_minute`) that address is
      refused for that account ("try again in N s") until its oldest failure is a minute old;
    - one address, whatever the accounts: after `per_ip` failures (`auth.login_ip_failures_per_minute`) refused
      the same way;
    - one account from every address: never refused, only slowed down: each check of it first waits `delay()`,
      STEP × 2^(failures − 1) s and at most `max_delay`. Failures spread over many addresses thus cannot lock the
      owner out: the right password from an address without failures always gets in.
    Addresses count as `address_key` says. Keys are forgotten a minute after their last failure; past MAX_KEYS
    keys every stale one is dropped at once, then the oldest if need be, so a flood of made-up usernames cannot
    grow the table.
    """

    WINDOW = 60.0
    STEP = 0.1
    MAX_DELAY = 2.0
    MAX_KEYS = 100_000

    def __init__(self, per_pair: int, per_ip: int, clock: Callable[[], float] = time.monotonic,
                 max_delay: float = MAX_DELAY) -> None:
        self.per_pair = per_pair
        self.per_ip = per_ip
        self.clock = clock
        self.max_delay = max_delay
        self._failures: dict[tuple[str, ...], deque[float]] = {}

    def _recent(self, key: tuple[str, ...], now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.WINDOW:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def _keys(self, account: str, ip: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        where = address_key(ip)
        return ("pair", account, where), ("ip", where), ("account", account)

    async def retry_after(self, account: str, ip: str) -> int:
        """LoginLimiter.retry_after: seconds `ip` must wait before checking `account`'s password (0: go on)."""
        now = self.clock()
        pair, by_ip, _account = self._keys(account, ip)
        wait = 0.0
        for key, limit in ((pair, self.per_pair), (by_ip, self.per_ip)):
            q = self._recent(key, now)
            if len(q) >= limit:
                wait = max(wait, q[-limit] + self.WINDOW - now)
        return math.ceil(wait)

    async def delay(self, account: str) -> float:
        """LoginLimiter.delay: seconds to wait before checking `account`'s password (grows with its failures
        from every address in the last minute; bounded by `max_delay`)."""
        failures = len(self._recent(("account", account), self.clock()))
        return 0.0 if failures == 0 else min(self.max_delay, self.STEP * 2 ** min(failures - 1, 16))

    async def failed(self, account: str, ip: str) -> None:
        """LoginLimiter.failed: count one failed check of `account` from `ip`."""
        now = self.clock()
        if len(self._failures) >= self.MAX_KEYS:
            for key in list(self._failures):
                self._recent(key, now)
            # still full of fresh keys (made-up usernames from many addresses): forget the oldest tenth, so the
            # table stays bounded and this sweep runs once per MAX_KEYS / 10 new keys at most
            for key in list(self._failures)[:max(0, len(self._failures) - self.MAX_KEYS * 9 // 10)]:
                del self._failures[key]
        for key in self._keys(account, ip):
            self._failures.setdefault(key, deque()).append(now)

    async def succeeded(self, account: str, ip: str) -> None:
        """LoginLimiter.succeeded: forget the failures of `account` from `ip` (the address's and the account's
        other failures stay)."""
        self._failures.pop(self._keys(account, ip)[0], None)


class LoginLimits(Protocol):
    """LoginLimits: what the password checks use: LoginLimiter in one process, or server.sharedlimits'
    RedisLoginLimiter counting every node's failures together."""

    async def retry_after(self, account: str, ip: str) -> int: ...

    async def delay(self, account: str) -> float: ...

    async def failed(self, account: str, ip: str) -> None: ...

    async def succeeded(self, account: str, ip: str) -> None: ...


LOGIN_LIMITER: web.AppKey[LoginLimits] = web.AppKey("login_limiter")
