"""server.bus: publish/subscribe of small JSON events between parts of the server.

`MemoryBus` (embedded default) delivers inside one process; `RedisBus` delivers across processes and
machines through Redis pub/sub. Both deliver each message to every current subscriber of a channel, in
order per publisher, at most once. Subscribers own their `Subscription`; the bus owns the channel table
and protects it with the event loop (no awaits while it is changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web

Message = dict[str, Any]


class Subscription(Protocol):
    """Subscription: an async iterator of messages on one channel; close() to stop."""

    def __aiter__(self) -> AsyncIterator[Message]: ...

    async def get(self) -> Message: ...

    async def close(self) -> None: ...


class Bus(Protocol):
    """Bus: what the rest of the server may use."""

    async def publish(self, channel: str, message: Message) -> None: ...

    async def subscribe(self, channel: str) -> Subscription: ...

    async def close(self) -> None: ...


class _QueueSubscription:
    def __init__(self, bus: MemoryBus, channel: str, maxsize: int) -> None:
        self._bus = bus
        self.channel = channel
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self.dropped = 0

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Message]:
        while True:
            yield await self.queue.get()

    async def get(self) -> Message:
        return await self.queue.get()

    async def close(self) -> None:
        self._bus._remove(self)


class MemoryBus:
    """MemoryBus: in-process bus; a slow subscriber loses its oldest messages, never blocks others."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._channels: dict[str, set[_QueueSubscription]] = {}
        self._queue_size = queue_size

    async def publish(self, channel: str, message: Message) -> None:
        # Round-trip through JSON so both buses deliver the same shapes.
        data = json.loads(json.dumps(message))
        for sub in list(self._channels.get(channel, ())):
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(data)

    async def subscribe(self, channel: str) -> Subscription:
        sub = _QueueSubscription(self, channel, self._queue_size)
        self._channels.setdefault(channel, set()).add(sub)
        return sub

    def _remove(self, sub: _QueueSubscription) -> None:
        subs = self._channels.get(sub.channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._channels[sub.channel]

    async def close(self) -> None:
        self._channels.clear()


class _RedisSubscription:
    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Message]:
        while True:
            yield await self.get()

    async def get(self) -> Message:
        while True:
            item = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if item is None:
                continue
            try:
                data = json.loads(item["data"])
            except (TypeError, ValueError):
                continue
            if isinstance(data, dict):
                return data

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.unsubscribe()
            await self._pubsub.aclose()


class RedisBus:
    """RedisBus: the same contract over Redis pub/sub (channels are prefixed with `taphuan:`)."""

    PREFIX = "taphuan:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)

    async def ping(self) -> None:
        """RedisBus.ping: fail early with a clear error when Redis is unreachable."""
        await self._redis.ping()

    async def publish(self, channel: str, message: Message) -> None:
        await self._redis.publish(self.PREFIX + channel, json.dumps(message))

    async def subscribe(self, channel: str) -> Subscription:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self.PREFIX + channel)
        return _RedisSubscription(pubsub)

    async def close(self) -> None:
        await self._redis.aclose()

BUS: web.AppKey[Bus] = web.AppKey("bus")


async def keep_renewing(every: float, renew: Callable[[], Awaitable[object]], what: str) -> None:
    """keep_renewing: await `renew()` every `every` seconds until cancelled; a failure (Redis away for a moment) is
    logged as `what` could not be renewed and the next round tries again (a node's heartbeat, its socket leases)."""
    while True:
        await asyncio.sleep(every)
        try:
            await renew()
        except Exception:
            logging.getLogger("taphuan.bus").warning("could not renew %s in Redis", what, exc_info=True)
