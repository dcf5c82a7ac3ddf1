"""server.sharedlimits: the limits of several nodes counted together in Redis (when `bus.kind: redis`).

With the in-process bus (the embedded default) each process counts alone (server.ratelimit.LoginLimiter,
server.live.service.SocketQuota). With Redis, every node behind the same address shares one count, so a client
cannot multiply a limit by the number of nodes:
- `RedisLoginLimiter`: failed password checks per account and address, per address, per account (the slow-down)
  in a sliding minute, the same rules as LoginLimiter;
- `RedisSocketQuota`: open signalling WebSockets per login and per client address, and the flood cool-down of a
  login, the same rules as SocketQuota.

Redis's own clock (TIME, inside Lua scripts) times everything, so the nodes' clocks need not agree, and each
script runs atomically. Every key expires by itself: failures a minute after the last one; a node's sockets are
members of sorted sets with a lease (SOCKET_LEASE) that the node renews while they are open, so the sockets of a
node that died stop counting within a lease. (A WebSocket's own message rate, server.ratelimit.TokenBucket, needs
nothing shared: the socket lives on one node.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import secrets
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server.bus import keep_renewing
from server.config import Config
from server.live.service import SOCKET_QUOTA, Refusal, cooldown_refusal, ip_refusal, login_refusal
from server.ratelimit import LOGIN_LIMITER, LoginLimiter, address_key

log = logging.getLogger("taphuan")
PREFIX = "taphuan:limits:"
SOCKET_LEASE = 60.0  # s a node's open socket counts without a renewal (a dead node's sockets stop counting)

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

# KEYS: the keys to count one failure in; ARGV: window (ms), a unique member
_FAILED = _NOW + """
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[2] .. ':' .. i)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[1]))
  redis.call('PEXPIRE', key, ARGV[1])
end
return 0
"""

# KEYS: pair key, address key; ARGV: window (ms), pair limit, address limit; returns the ms to wait (0: go on)
_RETRY_AFTER = _NOW + """
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[1]))
  local limit = tonumber(ARGV[i + 1])
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + tonumber(ARGV[1]) - now)
  end
end
return wait
"""

# KEYS: account key; ARGV: window (ms); returns the failures in the window
_COUNT = _NOW + "return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]), '+inf')"

# KEYS: cool-down key, login key, address key; ARGV: lease (ms), login limit, address limit, member
# returns {what, ms}: {'ok', 0}, {'cooldown', ms left}, {'login', 0}, {'ip', 0}
_TAKE = _NOW + """
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return {'cooldown', left} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return {'login', 0} end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return {'ip', 0} end
for i = 2, 3 do
  redis.call('ZADD', KEYS[i], now + tonumber(ARGV[1]), ARGV[4])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
return {'ok', 0}
"""

# KEYS: sorted sets; ARGV: lease (ms), then the member to renew in each key (only if still there)
_RENEW = _NOW + """
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', key, ARGV[1])
end
return 0
"""


class RedisLoginLimiter:
    """RedisLoginLimiter: LoginLimiter's rules (see there) over Redis: every node counts every failure."""

    WINDOW = LoginLimiter.WINDOW
    STEP = LoginLimiter.STEP

    def __init__(self, redis: Any, per_pair: int, per_ip: int, max_delay: float = LoginLimiter.MAX_DELAY) -> None:
        self.redis, self.per_pair, self.per_ip, self.max_delay = redis, per_pair, per_ip, max_delay
        self._failed = redis.register_script(_FAILED)
        self._retry = redis.register_script(_RETRY_AFTER)
        self._count = redis.register_script(_COUNT)

    def _keys(self, account: str, ip: str) -> tuple[str, str, str]:
        where = address_key(ip)
        return f"{PREFIX}pair:{account}|{where}", f"{PREFIX}ip:{where}", f"{PREFIX}account:{account}"

    async def retry_after(self, account: str, ip: str) -> int:
        """RedisLoginLimiter.retry_after: seconds `ip` must wait before checking `account`'s password (0: go on)."""
        pair, by_ip, _ = self._keys(account, ip)
        wait = await self._retry(keys=[pair, by_ip], args=[int(self.WINDOW * 1000), self.per_pair, self.per_ip])
        return math.ceil(int(wait) / 1000)

    async def delay(self, account: str) -> float:
        """RedisLoginLimiter.delay: the account's slow-down (its failures from every address, on every node)."""
        failures = int(await self._count(keys=[self._keys(account, "")[2]], args=[int(self.WINDOW * 1000)]))
        return 0.0 if failures == 0 else min(self.max_delay, self.STEP * 2 ** min(failures - 1, 16))

    async def failed(self, account: str, ip: str) -> None:
        """RedisLoginLimiter.failed: count one failed check of `account` from `ip`."""
        await self._failed(keys=list(self._keys(account, ip)), args=[int(self.WINDOW * 1000), secrets.token_hex(8)])

    async def succeeded(self, account: str, ip: str) -> None:
        """RedisLoginLimiter.succeeded: forget the failures of `account` from `ip`."""
        await self.redis.delete(self._keys(account, ip)[0])


class RedisSocketQuota:
    """RedisSocketQuota: SocketQuota's rules (see there) over Redis: the sockets of a login or an address on
    every node count together; a login's flood cool-down holds on every node. `renew()` (every third of the
    lease, by `shared_ctx`) keeps this node's open sockets counted."""

    def __init__(self, redis: Any, per_login: int, per_ip: int, cooldown: float,
                 lease: float = SOCKET_LEASE) -> None:
        self.redis, self.per_login, self.per_ip, self.cooldown, self.lease = redis, per_login, per_ip, cooldown, lease
        self.node = secrets.token_hex(6)
        self._serial = 0
        # (login, address) -> the members this node holds for them
        self.held: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)

    @staticmethod
    def _keys(login_id: str, ip: str) -> tuple[str, str, str]:
        return (f"{PREFIX}ws-cooling:{login_id}", f"{PREFIX}ws-login:{login_id}", f"{PREFIX}ws-ip:{ip}")

    async def take(self, login_id: str, ip: str) -> Refusal | None:
        """RedisSocketQuota.take: count a new socket of this login and address in, or say why it is refused."""
        self._serial += 1
        member = f"{self.node}:{self._serial}"
        what, left = await self._take(keys=list(self._keys(login_id, ip)),
                                      args=[int(self.lease * 1000), self.per_login, self.per_ip, member])
        what = what.decode() if isinstance(what, bytes) else str(what)
        if what == "cooldown":
            return cooldown_refusal(int(left) / 1000)
        if what == "login":
            return login_refusal(self.per_login)
        if what == "ip":
            return ip_refusal(self.per_ip)
        self.held[(login_id, ip)].append(member)
        return None

    async def give_back(self, login_id: str, ip: str) -> None:
        """RedisSocketQuota.give_back: a socket counted in by `take` closed."""
        members = self.held.get((login_id, ip))
        if not members:
            return
        member = members.pop()
        if not members:
            del self.held[(login_id, ip)]
        _, by_login, by_ip = self._keys(login_id, ip)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(by_login, member)
            pipe.zrem(by_ip, member)
            await pipe.execute()

    async def cool_down(self, login_id: str) -> None:
        """RedisSocketQuota.cool_down: one of this login's connections flooded: every node refuses its new
        sockets for a while."""
        if self.cooldown > 0:
            await self.redis.set(self._keys(login_id, "")[0], "1", px=int(self.cooldown * 1000))

    async def renew(self) -> None:
        """RedisSocketQuota.renew: extend the lease of every socket this node holds open."""
        keys: list[str] = []
        members: list[str] = []
        for (login_id, ip), held in list(self.held.items()):
            _, by_login, by_ip = self._keys(login_id, ip)
            for member in held:
                keys += [by_login, by_ip]
                members += [member, member]
        for start in range(0, len(keys), 1000):
            await self._renew(keys=keys[start:start + 1000], args=[int(self.lease * 1000),
                                                                   *members[start:start + 1000]])


async def shared_ctx(app: web.Application) -> AsyncIterator[None]:
    """shared_ctx: renews this node's socket leases while the app runs; closes the Redis client after."""
    quota = app[SOCKET_QUOTA]
    assert isinstance(quota, RedisSocketQuota)

    task = asyncio.create_task(keep_renewing(quota.lease / 3, quota.renew, "the WebSocket leases"),
                               name="socket-leases")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await quota.redis.aclose()


def setup(app: web.Application, config: Config) -> None:
    """setup: with `bus.kind: redis`, the login limiter and the socket quota of this app count in Redis (the
    bus's server); with the in-process bus nothing changes."""
    if config.bus.kind != "redis":
        return
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(config.bus.redis_url)
    app[LOGIN_LIMITER] = RedisLoginLimiter(client, config.auth.login_failures_per_minute,
                                           config.auth.login_ip_failures_per_minute)
    limits = config.limits
    app[SOCKET_QUOTA] = RedisSocketQuota(client, limits.ws_connections_per_login, limits.ws_connections_per_ip,
                                         limits.ws_flood_cooldown_seconds)
    app.cleanup_ctx.append(shared_ctx)

