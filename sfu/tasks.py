"""tasks: small asyncio helpers for callbacks that must not await (the forwarding path's synchronous code)."""

from __future__ import annotations

import asyncio
from typing import Any


def spawn(tasks: set[asyncio.Future[None]], coro: Any) -> None:
    """spawn runs `coro` in a task kept in `tasks` until it ends (a task nobody references may be collected)."""
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def run_now(coro: Any, tasks: set[asyncio.Future[None]]) -> None:
    """run_now runs a coroutine that does not suspend to its end, now; one that suspends is finished in a task.

    The suspended coroutine cannot be handed over (the future it waits on was yielded to us), so a task
    awaits that future and then resumes the coroutine the way the event loop would.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return
    spawn(tasks, _finish(coro, yielded))


async def _finish(coro: Any, yielded: Any) -> None:
    while True:
        error: BaseException | None = None
        if yielded is not None:
            try:
                await yielded
            except BaseException as exc:  # handed to the coroutine, as the event loop would
                error = exc
        try:
            yielded = coro.send(None) if error is None else coro.throw(error)
        except StopIteration:
            return
