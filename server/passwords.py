"""server.passwords: argon2 hashing and checking in worker threads, with a bounded queue.

An argon2 check costs about a tenth of a second of CPU; on the event loop it would stall every meeting's
signalling and media for that long. `PasswordPool` runs them in `auth.hash_threads` threads (argon2 releases the
GIL) and lets at most `auth.hash_queue` more wait: beyond that `PasswordsBusy` (503 `busy`, `Retry-After: 1`)
refuses at once instead of queueing without end. The pool lives under `PASSWORDS` (made by `create_app`, its
threads stopped by `passwords_ctx`); callers without an application (the CLI) pass no pool and get a plain
worker thread (`hash_in`, `verify_in`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.errors import ApiError

T = TypeVar("T")


def _verify(hasher: PasswordHasher, stored_hash: str, password: str) -> bool:
    if not stored_hash:
        return False
    try:
        return hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class PasswordsBusy(ApiError):
    """PasswordsBusy: every hashing thread is busy and the queue is full (503, try again in a second)."""

    def __init__(self) -> None:
        super().__init__(503, "busy", "Máy chủ đang bận kiểm tra mật khẩu; hãy thử lại sau giây lát. / "
                                      "The server is busy checking passwords; try again in a moment.",
                         retry_after=1)
        self.headers["Retry-After"] = "1"


class PasswordPool:
    """PasswordPool: hash and verify passwords in `threads` worker threads, at most `queue` more waiting.

    `pending` counts the checks submitted and not finished (running or waiting); a check whose caller went away
    still counts until its thread is done with it, so the bound holds for the threads' real work.
    """

    def __init__(self, threads: int, queue: int, hasher: PasswordHasher | None = None) -> None:
        self.threads = threads
        self.limit = threads + queue
        self.hasher = hasher or PasswordHasher()
        self.pending = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="argon2")
        self._dummy: str | None = None

    def _finished(self, _future: Future[Any]) -> None:
        with self._lock:
            self.pending -= 1

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        with self._lock:
            if self.pending >= self.limit:
                raise PasswordsBusy()
            self.pending += 1
        try:
            future = self._executor.submit(fn, *args)
        except RuntimeError:  # shut down: the application is stopping
            with self._lock:
                self.pending -= 1
            raise PasswordsBusy() from None
        future.add_done_callback(self._finished)
        return await asyncio.wrap_future(future)

    async def hash(self, password: str) -> str:
        """PasswordPool.hash: an argon2id hash of the password, computed in a worker thread."""
        return await self._run(self.hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> bool:
        """PasswordPool.verify: True when the password matches the stored hash (checked in a worker thread)."""
        return await self._run(_verify, self.hasher, stored_hash, password)

    async def verify_unknown(self, password: str) -> bool:
        """PasswordPool.verify_unknown: the same work as `verify` for an account that does not exist (always
        False), so a wrong username costs the caller as long as a wrong password."""
        if self._dummy is None:
            self._dummy = await self.hash("not-a-real-password")
        await self.verify(self._dummy, password)
        return False

    def close(self) -> None:
        """PasswordPool.close: stop the threads (checks not started are dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


async def hash_in(pool: PasswordPool | None, password: str) -> str:
    """hash_in: `pool.hash`, or without a pool (the CLI) the same in a plain worker thread."""
    if pool is not None:
        return await pool.hash(password)
    return await asyncio.to_thread(PasswordHasher().hash, password)


async def verify_in(pool: PasswordPool | None, stored_hash: str, password: str) -> bool:
    """verify_in: `pool.verify`, or without a pool (the CLI, tests) the same in a plain worker thread."""
    if pool is not None:
        return await pool.verify(stored_hash, password)
    return await asyncio.to_thread(_verify, PasswordHasher(), stored_hash, password)


def passwords_of(request: web.Request | None) -> PasswordPool | None:
    """passwords_of: the application's pool for a request, None without a request."""
    return request.app[PASSWORDS] if request is not None else None


async def passwords_ctx(app: web.Application) -> AsyncIterator[None]:
    """passwords_ctx: stop the pool's threads when the application stops."""
    yield
    app[PASSWORDS].close()


PASSWORDS: web.AppKey[PasswordPool] = web.AppKey("passwords", PasswordPool)
