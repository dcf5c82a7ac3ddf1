"""Tests of sfu/tasks.py."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest

from sfu.tasks import Ticker, run_now
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


async def test_ticker_runs_due_jobs_on_poll_and_reschedules() -> None:
    now = [100.0]
    ticker = Ticker(lambda: 1.0, grace=60.0, clock=lambda: now[0])  # the timer never fires in this test
    runs: list[str] = []

    def a() -> None:
        runs.append("a")

    def b() -> None:
        runs.append("b")

    ticker.add(a)
    now[0] = 100.5
    ticker.add(b)  # due at 101.5
    ticker.poll()
    assert runs == [] and ticker.next_due == 101.0
    now[0] = 101.0
    ticker.poll()
    assert runs == ["a"]  # b is not due yet; a runs again at 102.0
    now[0] = 101.6
    ticker.poll()
    ticker.poll()  # nothing more is due
    assert runs == ["a", "b"] and ticker.next_due == 102.0
    ticker.remove(a)
    now[0] = 103.0
    ticker.poll()
    assert runs == ["a", "b", "b"]
    ticker.close()
    ticker.add(a)  # ignored once closed
    now[0] = 200.0
    ticker.poll()
    assert runs == ["a", "b", "b"]


async def test_ticker_runs_due_jobs_in_order_and_honours_removal_by_another_job() -> None:
    now = [0.0]
    period = [1.0]
    ticker = Ticker(lambda: period[0], grace=60.0, clock=lambda: now[0])
    runs: list[int] = []
    jobs: dict[int, Callable[[], None]] = {}

    def make(i: int) -> Callable[[], None]:
        def job() -> None:
            runs.append(i)
            if i == 1:
                ticker.remove(jobs[2])  # due in the same round: must not run
        return job

    for i in range(5):
        jobs[i] = make(i)
        now[0] = i * 0.1
        ticker.add(jobs[i])  # due at 1.0, 1.1, ... 1.4
    now[0] = 1.25
    ticker.poll()
    assert runs == [0, 1] and ticker.next_due == pytest.approx(1.3)
    now[0] = 10.0
    ticker.poll()
    assert runs == [0, 1, 3, 4, 0, 1]  # due order; 2 stays removed
    period[0] = 0.0  # a job due again at once waits for the next poll instead of looping
    now[0] = 20.0
    ticker.poll()
    assert runs[-4:] == [3, 4, 0, 1] and len(runs) == 10
    ticker.poll()
    assert len(runs) == 14
    ticker.close()
    assert ticker.next_due == math.inf


async def test_ticker_jobs_may_have_their_own_period() -> None:
    now = [0.0]
    ticker = Ticker(lambda: 1.0, grace=60.0, clock=lambda: now[0])
    runs: list[str] = []

    def often() -> None:
        runs.append("often")

    def rarely() -> None:
        runs.append("rarely")

    ticker.add(often)
    ticker.add(rarely, lambda: 5.0)
    for t in range(1, 11):
        now[0] = float(t)
        ticker.poll()
    assert runs.count("often") == 10 and runs.count("rarely") == 2  # at 5 and 10
    ticker.remove(rarely)
    ticker.add(rarely)  # added again without a period: the ticker's
    now[0] = 11.0
    ticker.poll()
    assert runs[-2:] == ["often", "rarely"]


async def test_ticker_runs_jobs_due_within_its_slack_together() -> None:
    now = [0.0]
    ticker = Ticker(lambda: 1.0, grace=60.0, clock=lambda: now[0], slack=0.25)
    runs: list[tuple[str, float]] = []

    def job(name: str) -> Callable[[], None]:
        return lambda: runs.append((name, now[0]))

    for name, at in (("a", 0.0), ("b", 0.2), ("c", 0.5)):
        now[0] = at
        ticker.add(job(name))  # due at 1.0, 1.2, 1.5
    now[0] = 1.0
    ticker.poll()
    assert runs == [("a", 1.0), ("b", 1.0)]  # b was due within the slack
    assert ticker.next_due == 1.5
    now[0] = 1.3  # a poll runs nothing before the next job is due, only then those within the slack
    ticker.poll()
    assert len(runs) == 2
    now[0] = 1.6
    ticker.poll()
    assert runs[-1] == ("c", 1.6) and ticker.next_due == 2.0  # a and b again at 2.0, c at 2.6
    now[0] = 2.0
    ticker.poll()
    assert runs[-2:] == [("a", 2.0), ("b", 2.0)] and ticker.next_due == 2.6


async def test_a_punctual_job_is_not_taken_along_by_the_slack() -> None:
    """A job added with early=False runs when due, never within another run's slack: the room's allocation job
    counts its work in periods (measured: taken along by 40 transports' reports it ran every ~0.27 s, not 0.5)."""
    now = [-0.6]
    ticker = Ticker(lambda: 1.0, grace=60.0, clock=lambda: now[0], slack=0.25)
    runs: list[tuple[str, float]] = []
    ticker.add(lambda: runs.append(("report", now[0])))  # due at 0.4
    now[0] = 0.0
    ticker.add(lambda: runs.append(("allocation", now[0])), lambda: 0.5, early=False)  # due at 0.5
    now[0] = 0.4
    ticker.poll()  # the report is due; the allocation is within the slack but waits
    assert runs == [("report", 0.4)]
    assert ticker.next_due == pytest.approx(0.5)
    now[0] = 0.5
    ticker.poll()
    assert runs[-1] == ("allocation", 0.5) and ticker.next_due == pytest.approx(1.0)
    now[0] = 1.3  # both due: both run, the allocation again one period later
    ticker.poll()
    assert sorted(runs[-2:]) == [("allocation", 1.3), ("report", 1.3)] and ticker.next_due == pytest.approx(1.8)


async def test_ticker_timer_runs_jobs_without_polls_and_survives_a_failing_job() -> None:
    ticker = Ticker(lambda: 0.05, grace=0.05)
    runs: list[str] = []

    def bad() -> None:
        raise RuntimeError("boom")

    ticker.add(bad)
    ticker.add(lambda: runs.append("ok"))
    await wait_until(lambda: len(runs) >= 3, 5)  # the fallback timer keeps going
    ticker.close()
    count = len(runs)
    await asyncio.sleep(0.3)
    assert len(runs) == count  # closed: no timer left
