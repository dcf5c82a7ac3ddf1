"""Tests for sfu/batch.py: the loop waits between its polls only while the receive rate is high."""

from __future__ import annotations

import asyncio

from sfu.batch import ReceiveBatching


class Received:
    """Received: a packet counter the test moves, and the waits the batching made (instead of sleeping)."""

    def __init__(self) -> None:
        self.count = 0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_the_loop_waits_each_iteration_only_while_the_rate_is_high() -> None:
    loop = asyncio.get_running_loop()
    r = Received()
    clock = [0.0]
    batching = ReceiveBatching(loop, lambda: r.count, 0.001, 3000, period=0.05, clock=lambda: clock[0],
                               sleep=r.sleep)
    try:
        r.count, clock[0] = 100, 1.0  # 100 packets/s: off
        await asyncio.sleep(0.12)
        assert not batching.on and batching.rate < 3000
        assert r.waits == [] and batching.naps == 0
        r.count, clock[0] = 100 + 5000, 2.0  # 5000 packets in the next second: on
        await asyncio.sleep(0.06)
        assert batching.on and batching.rate >= 3000
        await turns(20)
        assert len(r.waits) >= 20 and set(r.waits) == {0.001} and batching.naps == len(r.waits)
        clock[0] = 3.0  # nothing more received: off at the next measure, and the waits stop
        await asyncio.sleep(0.06)
        assert not batching.on
        stopped = len(r.waits)
        await turns(20)
        assert len(r.waits) <= stopped + 1
        assert batching.periods_on >= 1
    finally:
        batching.close()


async def test_no_wait_when_off_by_configuration_or_closed() -> None:
    loop = asyncio.get_running_loop()
    r = Received()
    clock = [0.0]
    off = ReceiveBatching(loop, lambda: r.count, 0.0, 0, period=0.02, clock=lambda: clock[0], sleep=r.sleep)
    closed = ReceiveBatching(loop, lambda: r.count, 0.001, 0, period=0.02, clock=lambda: clock[0], sleep=r.sleep)
    closed.close()
    r.count, clock[0] = 10**6, 1.0
    await asyncio.sleep(0.1)
    await turns(10)
    assert r.waits == [] and not off.on and not closed.on
