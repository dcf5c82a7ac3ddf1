"""mailbox: typed actions handled one at a time, in order, by one task.

A ``Mailbox`` owns an asyncio queue and a task. ``post(action)`` enqueues without waiting; ``ask(action)``
enqueues and awaits the handler's result (its exception is raised in the caller). The room's state is only
ever changed by its mailbox task, so room code needs no locks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from sfu.errors import SfuError

logger = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass
class Action(Generic[R]):
    """Action is the base of every typed message; R is the type of the handler's reply."""


@dataclass
class _Envelope:
    action: Action[Any]
    reply: asyncio.Future[Any] | None = field(default=None)


class Mailbox:
    """Mailbox runs `handler(action)` for each posted action, strictly in order, in a single task."""

    def __init__(self, name: str, handler: Callable[[Action[Any]], Awaitable[Any]]) -> None:
        self.name = name
        self._handler = handler
        self._queue: asyncio.Queue[_Envelope | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        """start creates the handling task (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"mailbox-{self.name}")

    @property
    def closed(self) -> bool:
        """closed is true once close() was called; later posts are refused."""
        return self._closed

    def in_task(self) -> bool:
        """in_task is true when called from the mailbox's own task (asking oneself would deadlock)."""
        return self._task is not None and asyncio.current_task() is self._task

    def post(self, action: Action[Any]) -> None:
        """post enqueues `action`; errors of its handler are logged, not raised."""
        if self._closed:
            return
        self._queue.put_nowait(_Envelope(action))

    async def ask(self, action: Action[R]) -> R:
        """ask enqueues `action` and returns the handler's result, or raises its exception."""
        if self._closed:
            raise SfuError("closed", f"{self.name} is closed")
        if self.in_task():
            raise RuntimeError("Mailbox.ask from its own task would deadlock")
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Envelope(action, reply))
        return cast(R, await reply)

    async def close(self) -> None:
        """close lets queued actions finish, then stops the task; pending asks after it fail with SfuError."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if self._task is not None and not self.in_task():
            await self._task

    async def _run(self) -> None:
        while True:
            envelope = await self._queue.get()
            if envelope is None:
                break
            try:
                result = await self._handler(envelope.action)
            except Exception as exc:  # delivered to the asker
                if envelope.reply is not None:
                    if not envelope.reply.done():
                        envelope.reply.set_exception(exc)
                else:
                    logger.exception("%s: %s failed", self.name, type(envelope.action).__name__)
            else:
                if envelope.reply is not None and not envelope.reply.done():
                    envelope.reply.set_result(result)
        while not self._queue.empty():
            envelope = self._queue.get_nowait()
            if envelope is not None and envelope.reply is not None and not envelope.reply.done():
                envelope.reply.set_exception(SfuError("closed", f"{self.name} is closed"))
