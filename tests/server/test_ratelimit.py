"""Tests of server.ratelimit: the token bucket's burst, refill and cost, and the password-failure limiter (refused per
account and address and per address, only slowed per account), on an injected clock."""

from __future__ import annotations

import pytest

from server.ratelimit import LoginLimiter, TokenBucket, address_key


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


# ---------------------------------------------------------------- LoginLimiter


async def test_failures_of_one_account_from_one_address_refuse_that_pair_only() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_pair=3, per_ip=10, clock=clock)
    for _ in range(3):
        assert await limiter.retry_after("user:an", "203.0.113.1") == 0
        await limiter.failed("user:an", "203.0.113.1")
    assert await limiter.retry_after("user:an", "203.0.113.1") == 60
    assert await limiter.retry_after("user:an", "203.0.113.2") == 0  # the account from elsewhere
    assert await limiter.retry_after("user:binh", "203.0.113.1") == 0  # another account from there
    clock.now += 45.5
    assert await limiter.retry_after("user:an", "203.0.113.1") == 15
    clock.now += 15
    assert await limiter.retry_after("user:an", "203.0.113.1") == 0


async def test_an_address_failing_on_many_accounts_is_refused() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_pair=3, per_ip=4, clock=clock)
    for i in range(4):
        await limiter.failed(f"user:u{i}", "198.51.100.7")
        clock.now += 1
    assert await limiter.retry_after("user:new", "198.51.100.7") == 56  # until the oldest of the four is a minute old
    assert await limiter.retry_after("user:new", "198.51.100.8") == 0


async def test_an_account_failing_from_many_addresses_is_only_slowed_down() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_pair=5, per_ip=20, clock=clock)
    assert await limiter.delay("user:an") == 0
    delays = []
    for i in range(40):
        await limiter.failed("user:an", f"192.0.2.{i}")
        delays.append(await limiter.delay("user:an"))
    assert delays[0] > 0 and delays == sorted(delays)  # grows with the failures
    assert max(delays) == limiter.max_delay == LoginLimiter.MAX_DELAY  # and is bounded
    assert await limiter.retry_after("user:an", "192.0.2.200") == 0  # never refused from a clean address
    assert await limiter.delay("user:binh") == 0
    clock.now += 61
    assert await limiter.delay("user:an") == 0


async def test_success_forgets_that_pair_only() -> None:
    limiter = LoginLimiter(per_pair=2, per_ip=3, clock=Clock())
    await limiter.failed("user:an", "203.0.113.1")
    await limiter.failed("user:an", "203.0.113.1")
    await limiter.failed("user:binh", "203.0.113.1")
    assert await limiter.retry_after("user:an", "203.0.113.1") > 0
    await limiter.succeeded("user:an", "203.0.113.1")
    assert await limiter.retry_after("user:an", "203.0.113.1") > 0  # the address itself has 3 failures
    await limiter.succeeded("user:binh", "203.0.113.1")
    assert await limiter.delay("user:an") > 0  # the account's failures stay


async def test_ipv6_addresses_count_by_their_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.5") == "192.0.2.5"
    assert address_key("") == ""
    limiter = LoginLimiter(per_pair=2, per_ip=2, clock=Clock())
    await limiter.failed("user:a", "2001:db8:1:2::1")
    await limiter.failed("user:b", "2001:db8:1:2::2")
    assert await limiter.retry_after("user:c", "2001:db8:1:2::ffff") > 0


async def test_stale_keys_are_dropped_when_the_table_is_full() -> None:
    clock = Clock()
    limiter = LoginLimiter(per_pair=5, per_ip=5, clock=clock)
    limiter.MAX_KEYS = 21  # ten made-up accounts from one address: ten pairs, ten accounts, one address
    for i in range(10):
        await limiter.failed(f"user:made-up-{i}", "203.0.113.1")
    assert len(limiter._failures) == 21
    clock.now += 61
    await limiter.failed("user:x", "203.0.113.2")
    assert len(limiter._failures) == 3
    for i in range(20):  # fresh keys only: the oldest go, the newest stay
        await limiter.failed(f"user:flood-{i}", f"198.51.100.{i}")
    assert len(limiter._failures) <= limiter.MAX_KEYS + 3
    assert ("account", "user:flood-19") in limiter._failures
