"""Tests of server.ratelimit: the token bucket's burst, refill and cost, on an injected clock."""

from __future__ import annotations

import pytest

from server.ratelimit import TokenBucket


class Clock:
    """Clock: a clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_a_burst_then_refuses() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    assert not bucket.take()  # a refusal costs nothing, and nothing came back without time


def test_tokens_come_back_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=5, clock=clock)
    while bucket.take():
        pass
    clock.now += 0.4  # 0.8 of a token
    assert not bucket.take()
    clock.now += 0.1  # 1.0: the refused take above kept the 0.8
    assert bucket.take()
    assert not bucket.take()
    clock.now += 1.5  # 3 tokens
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_an_idle_bucket_saves_at_most_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10.0, burst=3, clock=clock)
    bucket.take()
    clock.now += 3600
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_cost_spends_several_tokens_or_none() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=4, clock=clock)
    assert bucket.take(3)
    assert not bucket.take(2)  # only 1 left: refused whole, nothing spent
    assert bucket.tokens == pytest.approx(1.0)
    assert bucket.take(1)
    clock.now += 2.5
    assert bucket.take(2.5)
    assert bucket.tokens == pytest.approx(0.0)


def test_the_real_clock_is_the_default() -> None:
    bucket = TokenBucket(rate=1e9, burst=1)
    assert bucket.take()
    for _ in range(1000):  # at a billion tokens a second, any tick of the monotonic clock refills it
        if bucket.take():
            return
    raise AssertionError("the default clock never moved")
