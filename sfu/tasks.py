"""tasks: asyncio helpers for the forwarding path's synchronous code (callbacks that must not await)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


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


class Ticker:
    """Ticker runs periodic jobs from calls its owner makes anyway (``poll``), with a timer as the fallback.

    The SFU polls it for every inbound media packet, so a room's sender reports go out on wake-ups that
    happen anyway instead of one timer wake-up per transport and second (a wake-up is the dearest thing an
    idle process does). Without polls, the timer runs what is due `grace` seconds late. Each job runs again
    `period()` seconds after it ran (the ticker's, or the job's own); a run takes the jobs due within `slack`
    seconds too (a job then runs up to `slack` early): a room's transports' reports go out in a few runs a
    second instead of one run each, and back to back, with the code still in the CPU's caches. A job added
    with ``early=False`` runs only once due (its period is what its work is counted in, as the room's allocation
    job's: taken along by the reports of 40 transports it ran every ~0.27 s instead of 0.5).
    Owned by one event loop; not thread-safe.
    """

    __slots__ = ("next_due", "__dict__")  # read by the C receive path per packet (sfu/_ingress.c), at its offset

    def __init__(self, period: Callable[[], float], grace: float = 0.25,
                 clock: Callable[[], float] = time.monotonic, slack: float = 0.0) -> None:
        self._period = period
        self._grace = grace
        self._slack = slack
        self._clock = clock
        self._jobs: dict[Callable[[], None], float] = {}  # job -> when it is due (the truth)
        self._periods: dict[Callable[[], None], Callable[[], float]] = {}  # jobs with their own period
        self._punctual: set[Callable[[], None]] = set()  # jobs never run early (add's early=False)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []  # (due, order, job); stale entries skipped
        self._order = itertools.count()
        self.next_due = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    def add(self, job: Callable[[], None], period: Callable[[], float] | None = None, early: bool = True) -> None:
        """add schedules `job` (again) one period from now: `period()` if given, else the ticker's; with
        `early` False it never runs before it is due (not within another run's slack)."""
        if self.closed:
            return
        if period is not None:
            self._periods[job] = period
        if not early:
            self._punctual.add(job)
        self._schedule(job, self._clock() + (period or self._period)())
        self._arm()

    def _schedule(self, job: Callable[[], None], due: float) -> None:
        self._jobs[job] = due
        heapq.heappush(self._heap, (due, next(self._order), job))
        self.next_due = self._heap[0][0]

    def remove(self, job: Callable[[], None]) -> None:
        """remove forgets `job` (its heap entry is dropped when it comes up)."""
        self._jobs.pop(job, None)
        self._periods.pop(job, None)
        self._punctual.discard(job)

    def poll(self) -> None:
        """poll runs the jobs that are due (cheap when none is)."""
        now = self._clock()
        if now >= self.next_due:
            self._run(now)

    def _run(self, now: float) -> None:
        heap, jobs = self._heap, self._jobs
        ready: list[tuple[Callable[[], None], float]] = []
        later: list[tuple[float, int, Callable[[], None]]] = []  # punctual jobs not due yet
        until = now + self._slack  # jobs due a little later run now too: one run (and warm caches) for several
        while heap and heap[0][0] <= until:
            entry = heapq.heappop(heap)
            due, _, job = entry
            if jobs.get(job) != due:  # removed, or scheduled again since
                continue
            if due > now and job in self._punctual:
                later.append(entry)
            else:
                ready.append((job, due))
        for entry in later:
            heapq.heappush(heap, entry)
        for job, due in ready:
            if jobs.get(job) != due:
                continue  # removed (or re-added) by a job that ran before it
            self._schedule(job, now + self._periods.get(job, self._period)())
            try:
                job()
            except Exception:
                logger.exception("periodic job %r failed", job)
        self.next_due = heap[0][0] if heap else math.inf

    def _arm(self) -> None:
        if self._timer is None and self._jobs and not self.closed:
            delay = max(0.0, self.next_due - self._clock()) + self._grace
            self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.poll()
        self._arm()

    def close(self) -> None:
        """close cancels the timer and forgets every job."""
        self.closed = True
        self._jobs.clear()
        self._periods.clear()
        self._punctual.clear()
        self._heap.clear()
        self.next_due = math.inf
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
