"""Tests for sfu/allocator.py: priorities, options, hysteresis, the loss cap."""

from __future__ import annotations

from sfu.allocator import (
    HOLD_AFTER_DOWN,
    MIN_ESTIMATE,
    TEMPORAL_SHARE,
    UP_INTERVAL,
    Demand,
    Downlink,
    Feedback,
    allocate,
    slot_priority,
    track_options,
)


class Clock:
    """Clock: a settable clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


LAYERS = [150_000.0, 500_000.0, 1_500_000.0]


def demands(*slots: str) -> list[Demand]:
    return [Demand(s, slot_priority(s), track_options(LAYERS, True, lowest_only=s.startswith("grid")))
            for s in slots]


def test_options_ascend_and_grid_tiles_keep_the_lowest_layer() -> None:
    options = track_options(LAYERS, True)
    rates = [o.bitrate for o in options]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    assert options[0].spatial == 0 and options[0].temporal == 0
    assert options[-1].spatial == 2 and options[-1].temporal == 2
    assert options[0].bitrate == LAYERS[0] * TEMPORAL_SHARE[0]
    assert {o.spatial for o in track_options(LAYERS, True, lowest_only=True)} == {0}
    assert [(o.spatial, o.temporal) for o in track_options([0.0, 400_000.0], False)] == [(1, -1)]  # not arriving


def test_minimums_first_in_priority_order_then_upgrades() -> None:
    ds = demands("grid-0", "floor-video", "presenter-video", "screen")
    # room for every minimum and a bit more: the screen gets the upgrade first
    minimum = sum(d.options[0].bitrate for d in ds)
    choice = allocate(minimum + 200_000, ds)
    assert all(i >= 0 for i in choice.values())
    assert choice["screen"] > 0 and choice["grid-0"] == 0
    # not enough for all minimums: the grid tile is paused before the presenter loses video
    choice = allocate(3 * ds[0].options[0].bitrate, ds)
    assert choice["grid-0"] == -1 and choice["screen"] == 0 and choice["presenter-video"] == 0
    assert allocate(0, ds) == {d.slot: -1 for d in ds}


def test_a_weak_link_gets_a_low_layer_and_a_good_one_the_top() -> None:
    ds = demands("presenter-video")
    weak = Downlink(clock=Clock())
    weak.update(Feedback(remb=250_000, loss=0.0, sent=0))
    option = weak.decide(40_000, ds)["presenter-video"]
    assert option is not None and option.spatial == 0
    good = Downlink(clock=Clock())
    good.update(Feedback(remb=5_000_000, loss=0.0, sent=0))
    option = good.decide(40_000, ds)["presenter-video"]
    assert option is not None and (option.spatial, option.temporal) == (2, 2)


def test_downgrades_at_once_upgrades_after_holds_one_slot_at_a_time() -> None:
    clock = Clock()
    link = Downlink(clock=clock)
    ds = demands("presenter-video", "floor-video")
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=0))
    first = link.decide(80_000, ds)
    assert first["presenter-video"] is not None and first["presenter-video"].spatial == 2
    clock.now += 0.5
    link.update(Feedback(remb=300_000, loss=0.0, sent=2_000_000))
    low = link.decide(80_000, ds)
    assert sum(o.bitrate for o in low.values() if o) <= 300_000 - 80_000  # at once
    # the link recovers: nothing before the hold, then one slot per UP_INTERVAL
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=250_000))
    clock.now += HOLD_AFTER_DOWN / 2
    assert link.decide(80_000, ds) == low
    clock.now += HOLD_AFTER_DOWN
    step1 = link.decide(80_000, ds)
    changed = [s for s in step1 if step1[s] != low[s]]
    assert len(changed) == 1
    clock.now += UP_INTERVAL / 2
    assert link.decide(80_000, ds) == step1
    clock.now += UP_INTERVAL
    step2 = link.decide(80_000, ds)
    assert step2 != step1


def test_a_failed_upgrade_doubles_the_hold() -> None:
    clock = Clock()
    link = Downlink(clock=clock)
    ds = demands("presenter-video")
    link.update(Feedback(remb=300_000, loss=0.0, sent=0))
    link.decide(40_000, ds)
    clock.now += 100
    link.update(Feedback(remb=2_000_000, loss=0.0, sent=250_000))
    link.decide(40_000, ds)  # upgrade
    assert link.upgrades == 1
    clock.now += 1
    link.update(Feedback(remb=300_000, loss=0.0, sent=1_500_000))
    link.decide(40_000, ds)  # the link could not carry it: back down, and wait twice as long next time
    assert link.downgrades == 1 and link.hold == 2 * HOLD_AFTER_DOWN


def test_loss_caps_the_estimate_after_two_reports_and_never_below_the_minimum() -> None:
    link = Downlink(clock=Clock())
    assert link.update(Feedback(remb=2_000_000, loss=0.3, sent=800_000)) == 2_000_000  # one report: noise
    assert link.update(Feedback(remb=2_000_000, loss=0.3, sent=800_000)) == 800_000 * (1 - 0.15)
    assert link.update(Feedback(remb=1_000, loss=0.0, sent=0)) == MIN_ESTIMATE


def test_self_limited_estimates_may_be_used_whole_for_an_upgrade() -> None:
    clock = Clock()
    ds = demands("presenter-video")
    options = ds[0].options
    need = options[-1].bitrate + 40_000
    for self_limited, expect_top in ((False, False), (True, True)):
        link = Downlink(clock=clock)
        link.update(Feedback(remb=int(options[-2].bitrate + 40_000), loss=0.0, sent=0))
        link.decide(40_000, ds)
        clock.now += 100
        link.update(Feedback(remb=int(need * 1.05), loss=0.0, sent=need / 1.5))
        top = link.decide(40_000, ds, self_limited=self_limited)["presenter-video"]
        assert (top == options[-1]) is expect_top
