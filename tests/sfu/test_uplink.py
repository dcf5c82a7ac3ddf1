"""Tests for sfu.uplink: the floor of a publisher's REMB while its link is calm, the estimate after a fall."""

from __future__ import annotations

from sfu.uplink import CALM, FALL_WINDOW, HOLD, HOLD_MAX, REMB_INTERVAL, REMB_REPEAT, Uplink
from tests.sfu.fakes import Clock


def test_a_calm_link_is_allowed_the_floor_and_more_when_the_estimate_says_so() -> None:
    clock = Clock(1000.0)
    up = Uplink(3_000_000, clock)
    for estimate in (300_000, 450_000, 600_000):  # the estimator's climb at 1.5 x what arrives
        clock.now += 1
        assert up.remb(estimate) == 3_000_000
    clock.now += 1
    assert up.remb(4_000_000) == 4_000_000
    assert up.calm and up.falls == 0 and up.sent == 4_000_000


def test_no_floor_sends_the_estimate_unchanged() -> None:
    clock = Clock(1000.0)
    up = Uplink(0, clock)
    assert [up.remb(e) for e in (300_000, 450_000, 200_000, 250_000)] == [300_000, 450_000, 200_000, 250_000]


def test_a_fall_sends_the_estimate_for_the_hold_then_the_floor_again() -> None:
    clock = Clock(1000.0)
    up = Uplink(3_000_000, clock)
    up.remb(900_000)
    clock.now += 1
    assert up.remb(500_000) == 500_000  # fell: the link's queue grew
    assert not up.calm and up.falls == 1
    for _ in range(int(HOLD) - 1):
        clock.now += 1
        assert up.remb(520_000) == 520_000  # the estimate's own climb, nothing more
    clock.now += 1.5
    assert up.calm
    assert up.remb(540_000) == 3_000_000


def test_small_moves_are_not_falls() -> None:
    clock = Clock(1000.0)
    up = Uplink(3_000_000, clock)
    up.remb(900_000)
    clock.now += 1
    assert up.remb(850_000) == 3_000_000
    assert up.falls == 0


def test_falls_within_a_hold_extend_it_without_doubling() -> None:
    clock = Clock(1000.0)
    up = Uplink(3_000_000, clock)
    up.remb(900_000)
    up.remb(500_000)
    for _ in range(3):
        clock.now += 2
        up.remb(400_000)
        up.remb(300_000)
    assert up.hold == HOLD
    assert up.held_until == clock.now + HOLD


def test_a_fall_soon_after_the_floor_came_back_doubles_the_hold_up_to_its_maximum() -> None:
    clock = Clock(1000.0)
    up = Uplink(3_000_000, clock)
    holds = []
    for _ in range(8):
        up.remb(900_000)
        up.remb(300_000)  # falls
        holds.append(up.hold)
        clock.now = up.held_until + 3  # the floor is back, and the link cannot carry it
    assert holds == [HOLD, 2 * HOLD, 4 * HOLD, 8 * HOLD, min(HOLD_MAX, 16 * HOLD), HOLD_MAX, HOLD_MAX, HOLD_MAX]


def test_a_long_calm_brings_the_first_hold_back() -> None:
    clock = Clock(1000.0)
    up = Uplink(3_000_000, clock)
    for _ in range(3):
        up.remb(900_000)
        up.remb(300_000)
        clock.now = up.held_until + 3
    assert up.hold == 4 * HOLD
    clock.now = up.held_until + CALM + 1
    up.remb(900_000)
    up.remb(300_000)
    assert up.hold == HOLD


class Losses:
    """Losses: a settable count of packets found missing (the connection's NACKed gaps)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def test_a_fall_without_loss_is_a_busy_server_and_keeps_the_floor() -> None:
    clock, losses = Clock(1000.0), Losses()
    up = Uplink(3_000_000, clock, losses)
    up.remb(900_000)
    for _ in range(6):  # late, bunched arrivals read as a queue: the estimate falls again and again
        clock.now += 1
        assert up.remb(500_000) == 3_000_000
        clock.now += 1
        up.remb(900_000)
    assert up.falls == 0 and up.calm


def test_a_fall_and_a_loss_within_the_window_hold_the_estimate() -> None:
    clock, losses = Clock(1000.0), Losses()
    up = Uplink(3_000_000, clock, losses)
    up.remb(900_000)
    clock.now += 1
    assert up.remb(500_000) == 3_000_000  # not confirmed yet
    clock.now += 1
    losses.count = 4  # the bottleneck's queue overflowed
    assert up.remb(520_000) == 520_000
    assert up.falls == 1 and not up.calm


def test_a_loss_just_before_the_fall_confirms_it_and_one_long_before_does_not() -> None:
    clock, losses = Clock(1000.0), Losses()
    up = Uplink(3_000_000, clock, losses)
    up.remb(900_000)
    losses.count = 2
    clock.now += 1
    up.remb(900_000)  # the loss is seen here
    clock.now += 1
    assert up.remb(500_000) == 500_000 and up.falls == 1
    clock.now = up.held_until + 60  # long after: calm, the floor again
    up.remb(900_000)
    losses.count = 3
    clock.now += 1
    up.remb(900_000)
    clock.now += FALL_WINDOW + 1
    assert up.remb(500_000) == 3_000_000 and up.falls == 1


def test_rembs_are_throttled_as_libwebrtc_does_unless_they_fall_or_name_other_ssrcs() -> None:
    clock = Clock(1000.0)
    up = Uplink(0, clock)
    assert up.due(500_000, [1, 2])  # the first goes
    clock.now += 0.05
    assert not up.due(500_000, [1, 2])  # the same value 50 ms later: not yet
    assert not up.due(900_000, [1, 2])  # higher: waits for the interval
    assert not up.due(486_000, [1, 2])  # within 3 % below: waits too
    assert up.due(480_000, [1, 2])  # more than 3 % below the last sent: at once
    clock.now += 0.01
    assert up.due(480_000, [1, 2, 3])  # a new SSRC (a layer appeared): at once
    clock.now += REMB_INTERVAL - 0.001
    assert not up.due(900_000, [1, 2, 3])
    clock.now += 0.002
    assert up.due(900_000, [1, 2, 3])  # the interval passed: the rise goes


def test_a_remb_that_says_the_same_is_repeated_once_a_second() -> None:
    """A calm link's REMB is the floor, the same value every time: repeated every REMB_REPEAT, not five times a
    second; a rise of more than 3 % still goes after REMB_INTERVAL, a fall at once."""
    clock = Clock(1000.0)
    up = Uplink(0, clock)
    assert up.due(2_000_000, [1])
    sent = 0
    for _ in range(int(10 / 0.05)):  # 10 s of estimates every 50 ms, all saying the floor (or 1 % either side)
        clock.now += 0.05
        sent += up.due(2_000_000 + (20_000 if sent % 2 else -20_000), [1])
    assert 9 <= sent <= 10  # once a second (REMB_INTERVAL would have let 50 go)
    assert REMB_REPEAT > REMB_INTERVAL
    clock.now += REMB_INTERVAL
    assert up.due(2_100_000, [1])  # more than 3 % above the last one sent: a rise goes after REMB_INTERVAL
    clock.now += 0.01
    assert up.due(1_900_000, [1])  # a fall: at once
