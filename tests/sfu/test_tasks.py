"""Tests of sfu/tasks.py."""

from __future__ import annotations

import asyncio

from sfu.tasks import run_now
from tests.sfu.helpers import wait_until


async def test_run_now_finishes_a_suspending_coroutine_in_a_task() -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("quick")

    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def slow() -> None:
        done.append(await gate)

    async def failing() -> None:
        try:
            await gate2
        except KeyError:
            done.append("caught")

    gate2: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    tasks: set[asyncio.Future[None]] = set()
    run_now(quick(), tasks)
    assert done == ["quick"] and not tasks  # ran to its end at once
    run_now(slow(), tasks)
    run_now(failing(), tasks)
    assert len(tasks) == 2
    gate.set_result("slow")
    gate2.set_exception(KeyError("x"))
    await wait_until(lambda: not tasks, 5)
    assert done == ["quick", "slow", "caught"]
