"""Tests for sfu/allocator.py: priorities, options, hysteresis, the loss cap."""

from __future__ import annotations

import pytest

from sfu.allocator import (
    CALM_PERIODS,
    CUT_SPACING,
    FALL_CUT,
    FALL_WINDOW,
    HEADROOM,
    HOLD_AFTER_DOWN,
    HOLD_MAX,
    HOLD_SILENT,
    LOSS_HIGH,
    LOSS_LOW,
    LOSS_MARGIN,
    SENT_PERIODS,
    STANDING_PERIODS,
    START_ESTIMATE,
    TEMPORAL_SHARE,
    UP_INTERVAL,
    WEAK_WINDOW,
    Demand,
    Downlink,
    Feedback,
    Option,
    allocate,
    fitting,
    slot_priority,
    track_options,
)
from tests.sfu.fakes import Clock

LAYERS = [150_000.0, 500_000.0, 1_500_000.0]
CALM_RTT = 0.02  # seconds: the link's round trip with an empty queue
QUEUED_RTT = 0.2  # seconds: the same with a queue growing on it


def settle(link: Downlink, clock: Clock, **fields: object) -> None:
    """settle: `link` sees a calm period (its round trip CALM_RTT), then the clock moves on half a second."""
    link.update(Feedback(**{"remb": None, "loss": 0.0, "sent": 0.0, "rtt": CALM_RTT, **fields}))  # type: ignore[arg-type]
    clock.now += 0.5


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


def test_above_the_lowest_layer_a_camera_is_never_cut_under_ten_frames_per_second() -> None:
    """A 15 fps camera's upper layers are offered whole only (their half rate is 7.5 fps); a 30 fps camera's keep
    their half rate; the lowest layer keeps every cut (a weak link's last resort), and a layer whose frame rate is
    not measured yet keeps the cuts of the rule before."""
    cuts = {(o.spatial, o.temporal) for o in track_options(LAYERS, True, frame_rates=[15.0, 15.0, 15.0])}
    assert cuts == {(0, 0), (0, 1), (0, 2), (1, 2), (2, 2)}
    cuts = {(o.spatial, o.temporal) for o in track_options(LAYERS, True, frame_rates=[30.0, 30.0, 30.0])}
    assert cuts == {(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)}
    assert track_options(LAYERS, True, frame_rates=[0.0, 0.0, 0.0]) == track_options(LAYERS, True)
    # a 1 Mbit/s link with a 15 fps camera (layers at ~130 / ~300 / ~850 kbit/s): its middle layer whole, not the
    # top one at half its rate; at 30 fps the top at 15 fps fits the same budget and is taken
    camera = [130_000.0, 300_000.0, 850_000.0]
    for fps, chosen in ((15.0, (1, 2)), (30.0, (2, 1))):
        d = Demand("presenter-video", 0, track_options(camera, True, frame_rates=[fps] * 3))
        option = d.options[allocate(600_000, [d])["presenter-video"]]
        assert (option.spatial, option.temporal) == chosen, fps


def test_a_congested_slot_steps_down_to_what_the_others_leave_as_they_are_sent() -> None:
    """Congested, the presenter camera above its target steps down to what the estimate leaves beside the screen
    as it is sent (its lowest option), not to its share of an allocation that upgraded the screen first (measured:
    a 1 Mbit/s classroom's camera fell from 540p to 135p while 270p fitted beside the screen's 135p)."""
    clock = Clock(100.0)
    camera = track_options([130_000.0, 330_000.0, 850_000.0], True, frame_rates=[15.0] * 3)
    screen = track_options([100_000.0, 600_000.0], True)
    ds = [Demand("presenter-video", 0, camera), Demand("screen", 0, screen)]
    link = Downlink(clock=clock, estimate=2_000_000)
    link.choice = {"presenter-video": camera[-1], "screen": screen[2]}  # 540p whole, the screen's lowest layer whole
    link.estimate, link.congested = 740_000, True
    target = allocate(740_000, ds)
    assert (screen[target["screen"]].spatial, camera[target["presenter-video"]].spatial) == (1, 0)  # screen first
    choice = link.decide(ds)
    assert (choice["presenter-video"].spatial, choice["presenter-video"].temporal) == (1, 2)  # 270p whole
    assert choice["screen"] == screen[2]  # not raised by a downgrade
    assert link.downgrades == 1


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
    weak = Downlink(clock=Clock(1000.0))
    weak.update(Feedback(remb=210_000, loss=0.0, sent=800_000, rtt=CALM_RTT))  # below what we send: its slow climb
    assert not weak.congested
    # it fell, and the round trip grew (a queue on the link): congested
    weak.update(Feedback(remb=180_000, loss=0.0, sent=800_000, remb_fell=True, rtt=QUEUED_RTT))
    assert weak.congested
    option = weak.decide(ds)["presenter-video"]
    assert option is not None and option.spatial == 0
    good = Downlink(clock=Clock(1000.0))
    good.update(Feedback(remb=5_000_000, loss=0.0, sent=0))
    option = good.decide(ds)["presenter-video"]
    assert option is not None and (option.spatial, option.temporal) == (2, 2)


def test_downgrades_at_once_upgrades_after_holds_one_slot_at_a_time() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    ds = demands("presenter-video", "floor-video")
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=0, rtt=CALM_RTT))
    first = link.decide(ds)
    assert first["presenter-video"] is not None and first["presenter-video"].spatial == 2
    clock.now += 0.5
    link.update(Feedback(remb=600_000, loss=0.05, sent=1_000_000, remb_fell=True))  # it fell, and lost packets
    low = link.decide(ds)
    assert sum(o.bitrate for o in low.values() if o) <= 600_000  # at once
    # the link recovers (its REMB grows): nothing before the hold, then one slot per interval
    for _ in range(4):
        link.update(Feedback(remb=900_000, loss=0.0, sent=250_000))
    assert not link.congested and link.estimate == 900_000
    clock.now += HOLD_AFTER_DOWN / 2
    assert link.decide(ds) == low
    clock.now += HOLD_AFTER_DOWN
    step1 = link.decide(ds)
    changed = [s for s in step1 if step1[s] != low[s]]
    assert len(changed) == 1
    clock.now += UP_INTERVAL / 2
    assert link.decide(ds) == step1
    clock.now += UP_INTERVAL
    if sum(o.bitrate for o in step1.values() if o) > link.estimate:  # step 1 was a probe: not confirmed yet
        assert link.decide(ds) == step1
        for _ in range(4):  # the receiver gets it: its REMB follows
            settle(link, clock, remb=1_000_000, sent=sum(o.bitrate for o in step1.values() if o))
    step2 = link.decide(ds)
    assert step2 != step1


def test_a_paused_slot_is_probed_back_and_a_failed_probe_doubles_the_hold() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    ds = demands("presenter-video")
    link.update(Feedback(remb=40_000, loss=0.03, sent=600_000, remb_fell=True))
    assert link.decide(ds)["presenter-video"] is None  # nothing fits: paused
    # only audio flows now: its REMB stays low (it never exceeds 1.5 x what it receives), but nothing is congested
    link.update(Feedback(remb=70_000, loss=0.0, sent=0))
    clock.now += 100
    probe = link.decide(ds)["presenter-video"]
    assert probe == ds[0].options[0] and link.upgrades == 1  # the smallest option: the probe
    clock.now += 1
    link.update(Feedback(remb=40_000, loss=0.03, sent=probe.bitrate, remb_fell=True))  # it could not carry it
    assert link.decide(ds)["presenter-video"] is None
    assert link.downgrades == 1 and link.hold == 2 * HOLD_AFTER_DOWN
    clock.now += HOLD_AFTER_DOWN + 0.5
    link.update(Feedback(remb=70_000, loss=0.0, sent=0))
    assert link.decide(ds)["presenter-video"] is None  # not yet: the hold doubled


def test_a_link_with_every_slot_paused_probes_within_the_silent_hold() -> None:
    """Its REMB cannot grow without video: a hold doubled up to HOLD_MAX would keep the presenter paused that long
    on a link that has room again; it probes after HOLD_SILENT at most. A link still sending video keeps its doubled
    hold."""
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    ds = demands("presenter-video")
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=0, rtt=CALM_RTT))
    assert link.decide(ds)["presenter-video"] is not None
    for _ in range(2):  # lasting loss: cut to what it delivered, below the smallest option
        clock.now += 1
        link.update(Feedback(remb=40_000, loss=0.5, sent=80_000))
    assert link.decide(ds)["presenter-video"] is None and link.downgrades == 1
    link.hold = HOLD_MAX  # as after failed probes
    clock.now += HOLD_SILENT - 1
    link.update(Feedback(remb=45_000, loss=0.0, sent=0))
    assert link.decide(ds)["presenter-video"] is None
    clock.now += 1.5
    link.update(Feedback(remb=45_000, loss=0.0, sent=0))
    assert link.decide(ds)["presenter-video"] == ds[0].options[0]  # the probe: its smallest option
    # two slots, one still sending: the doubled hold stands
    link = Downlink(clock=clock)
    ds = demands("presenter-video", "floor-video")
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=0, rtt=CALM_RTT))
    link.decide(ds)
    clock.now += 1
    link.update(Feedback(remb=90_000, loss=0.03, sent=2_000_000, remb_fell=True))
    link.update(Feedback(remb=90_000, loss=0.3, sent=100_000))
    clock.now += 1
    link.update(Feedback(remb=90_000, loss=0.3, sent=100_000))
    first = link.decide(ds)
    assert first["presenter-video"] is not None and first["floor-video"] is None
    link.hold = HOLD_MAX
    clock.now += HOLD_SILENT + 1
    settle(link, clock, remb=90_000, sent=first["presenter-video"].bitrate)
    assert link.decide(ds)["floor-video"] is None


def test_lasting_loss_makes_the_link_congested_and_a_waiting_pacer_holds_upgrades() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    settle(link, clock, remb=2_000_000, sent=800_000)
    assert link.update(Feedback(remb=2_000_000, loss=0.3, sent=800_000)) == 2_000_000  # one report: noise
    assert not link.congested
    # what the lossy link delivered, with a margin (not its REMB, which a busy receiver may say anything in)
    assert link.update(Feedback(remb=2_000_000, loss=0.3, sent=800_000)) == pytest.approx(800_000 * 0.7 * LOSS_MARGIN)
    assert link.congested
    link = Downlink(clock=Clock(1000.0))
    for _ in range(2):  # a keyframe held by the pacer
        link.update(Feedback(remb=2_000_000, loss=0.0, sent=800_000, queue_delay=0.9))
        assert not link.queued
    before = link.estimate
    # lasting: keyframes above the layers' measured rates wait; not the link's congestion: no upgrade until it drains
    assert link.update(Feedback(remb=2_000_000, loss=0.0, sent=100_000, queue_delay=0.9)) == before
    assert link.queued and not link.congested
    link.update(Feedback(remb=2_000_000, loss=0.0, sent=100_000, queue_delay=0.1))
    assert not link.queued
    # a REMB fall to almost nothing: confirmed (some loss), it halves what the link carried lately (FALL_CUT)
    assert link.update(Feedback(remb=1_000, loss=0.05, sent=900_000, remb_fell=True)) == FALL_CUT * 900_000


def test_a_link_with_room_for_one_large_slot_keeps_the_presenter_and_upgrades_the_screen_first() -> None:
    presenter = Demand("presenter-video", slot_priority("presenter-video"), track_options([120_000.0], True))
    screen = Demand("screen", slot_priority("screen"), track_options([100_000.0], True))  # cheaper
    assert allocate(presenter.options[0].bitrate + 1_000, [screen, presenter]) == {"presenter-video": 0, "screen": -1}
    both = presenter.options[0].bitrate + screen.options[0].bitrate
    choice = allocate(both + screen.options[-1].bitrate - screen.options[0].bitrate, [presenter, screen])
    assert choice == {"presenter-video": 0, "screen": len(screen.options) - 1}  # the slides sharpen first


def test_a_remb_fall_the_link_does_not_confirm_is_a_busy_receiver_not_congestion() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    for _ in range(4):
        settle(link, clock, remb=2_000_000, sent=800_000)
    # a busy PC reads its packets late: its REMB falls, but nothing is lost and the round trip is what it was
    link.update(Feedback(remb=150_000, loss=0.0, sent=800_000, remb_fell=True, rtt=CALM_RTT + 0.01))
    assert not link.congested and link.estimate == 2_000_000
    clock.now += FALL_WINDOW + 0.5  # too late to confirm that fall
    link.update(Feedback(remb=150_000, loss=0.0, sent=800_000, rtt=QUEUED_RTT))
    assert not link.congested and link.downgrades == 0


def test_a_remb_fall_confirmed_by_a_growing_round_trip_within_the_window_is_congestion() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    for _ in range(4):
        settle(link, clock, remb=2_000_000, sent=800_000)
    link.update(Feedback(remb=500_000, loss=0.0, sent=800_000, remb_fell=True, rtt=CALM_RTT))
    assert not link.congested
    clock.now += FALL_WINDOW / 2
    assert link.update(Feedback(remb=520_000, loss=0.0, sent=800_000, rtt=QUEUED_RTT)) == 520_000
    assert link.congested
    clock.now += 0.5  # one fall, one cut: the same fall does not cut again
    link.update(Feedback(remb=540_000, loss=0.0, sent=800_000, rtt=QUEUED_RTT))
    assert not link.congested


def test_one_remb_fall_cuts_at_most_by_half_and_a_link_that_keeps_confirming_is_cut_again() -> None:
    """A confirmed REMB fall to a fraction of what the link carried (Chromium measured what it received while our
    pacer was idle: 211 to 51 kbit/s on a 300 kbit/s link) halves the estimate, no more; the most sent lately counts,
    not the period that confirmed it (after an idle second, what confirms is the burst); a link that really lost more
    keeps confirming it and is cut again."""
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=180_000, heard=True)
    for _ in range(4):
        settle(link, clock, remb=210_000, sent=170_000)
    assert link.estimate == 180_000  # 0.85 x its REMB at most (HEADROOM: a weak link's)
    settle(link, clock, remb=210_000, sent=10_000)  # an idle pacer (a starved server) for a period
    link.update(Feedback(remb=51_000, loss=0.0, sent=90_000, remb_fell=True, rtt=QUEUED_RTT))
    assert link.congested and link.estimate == pytest.approx(FALL_CUT * 170_000)
    bounded = link.estimate
    # FALL_WINDOW later its round trip is back (the burst's queue drained): the bounded cut stands
    for _ in range(int(FALL_WINDOW / 0.5) + 1):
        settle(link, clock, remb=60_000, sent=bounded)
    assert link.estimate == bounded and not link.congested
    # the same fall, but FALL_WINDOW later its REMB is still far below what we send and the round trip still grown:
    # the link did lose that much, the REMB is believed
    link = Downlink(clock=clock, estimate=180_000, heard=True)
    for _ in range(4):
        settle(link, clock, remb=210_000, sent=170_000)
    link.update(Feedback(remb=51_000, loss=0.0, sent=170_000, remb_fell=True, rtt=QUEUED_RTT))
    bounded = link.estimate
    assert bounded == pytest.approx(FALL_CUT * 170_000)
    for _ in range(int(FALL_WINDOW / 0.5) + 1):
        clock.now += 0.5
        link.update(Feedback(remb=52_000, loss=0.0, sent=bounded, rtt=QUEUED_RTT))
    assert link.estimate == 52_000
    # the REMB vouches for more than half: it is the cut
    link = Downlink(clock=clock, estimate=180_000, heard=True)
    for _ in range(4):
        settle(link, clock, remb=210_000, sent=170_000)
    link.update(Feedback(remb=120_000, loss=0.0, sent=170_000, remb_fell=True, rtt=QUEUED_RTT))
    assert link.congested and link.estimate == 120_000
    # a link that now carries a quarter: lasting loss cuts it again, to what it delivered
    link = Downlink(clock=clock, estimate=800_000, heard=True)
    for _ in range(4):
        settle(link, clock, remb=800_000, sent=800_000)
    link.update(Feedback(remb=150_000, loss=0.03, sent=800_000, remb_fell=True, rtt=QUEUED_RTT))
    assert link.estimate == pytest.approx(FALL_CUT * 800_000)
    for _ in range(2):
        clock.now += CUT_SPACING
        link.update(Feedback(remb=150_000, loss=0.5, sent=400_000, rtt=QUEUED_RTT))
    assert link.congested and link.estimate == pytest.approx(400_000 * 0.5 * LOSS_MARGIN)


def test_a_queue_standing_full_on_the_link_is_congestion_without_a_remb_fall() -> None:
    # measured: a 300 kbit/s classroom whose REMB was low from its first report (it never fell) was sent 225
    # kbit/s of video beside its audio; its cap's queue stayed full (round trip +230 ms) and dropped 5 % of
    # everything, audio too, for a minute: under LOSS_HIGH, so nothing cut the estimate
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=240_000, heard=True)
    settle(link, clock, remb=145_000, sent=225_000)
    for _ in range(STANDING_PERIODS - 1):
        link.update(Feedback(remb=145_000, loss=(LOSS_LOW + LOSS_HIGH) / 2, sent=225_000, rtt=QUEUED_RTT))
        clock.now += 0.5
        assert not link.congested and link.estimate == 240_000
    assert link.update(Feedback(remb=145_000, loss=(LOSS_LOW + LOSS_HIGH) / 2, sent=225_000, rtt=QUEUED_RTT)) \
        == 145_000
    assert link.congested and link.weak


def test_a_probe_that_makes_the_round_trip_grow_is_stepped_back_before_anything_is_lost() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=150_000, heard=True)
    ds = demands("screen", "presenter-video")
    for _ in range(CALM_PERIODS):
        settle(link, clock, remb=150_000, sent=140_000)
    link.decide(ds)
    clock.now += HOLD_AFTER_DOWN + UP_INTERVAL
    before = dict(link.choice)
    link.decide(ds)  # a probe: one slot a step up
    assert link.upgrades == 1 and link.choice != before
    clock.now += 1.0
    # nothing lost yet, but the link's queue grows and its REMB stays below what we now send
    assert link.update(Feedback(remb=150_000, loss=0.0, sent=200_000, rtt=QUEUED_RTT)) == 150_000
    assert link.congested
    link.decide(ds)
    assert link.downgrades == 1 and link.hold == 2 * HOLD_AFTER_DOWN  # the probe failed: it waits longer


def studio_lecture() -> list[Demand]:
    """studio_lecture: a 15 fps studio camera (~130 / ~300 / ~850 kbit/s) and a two-layer screen share."""
    camera = track_options([130_000.0, 300_000.0, 850_000.0], True, frame_rates=[15.0, 15.0, 15.0])
    return [Demand("presenter-video", slot_priority("presenter-video"), camera),
            Demand("screen", slot_priority("screen"), track_options([200_000.0, 400_000.0], True))]


def test_a_failed_upgrade_is_undone_and_its_retry_waits_the_doubled_hold() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=800_000, heard=True)
    ds = studio_lecture()
    for _ in range(CALM_PERIODS + SENT_PERIODS):  # a 1 Mbit/s link: both middle layers, carried calmly
        settle(link, clock, remb=800_000, sent=680_000)  # (a little less than their measured rates)
    first = link.decide(ds)
    assert (first["presenter-video"].spatial, first["screen"].spatial) == (1, 1)  # type: ignore[union-attr]
    # its receiver's REMB climbs to 1.5 x what it receives before it sees any queue: it vouches for the top layer
    for _ in range(4):
        settle(link, clock, remb=1_300_000, sent=680_000)
    clock.now += HOLD_AFTER_DOWN
    up = link.decide(ds)
    assert up["presenter-video"].spatial == 2 and link.upgrades == 1  # type: ignore[union-attr]
    clock.now += 1.0
    # which the link cannot carry: the REMB falls to 0.85 x what the link delivered while its queue dropped
    link.update(Feedback(remb=660_000, loss=0.11, sent=1_250_000, remb_fell=True, rtt=QUEUED_RTT))
    assert link.congested and link.estimate == 680_000  # no lower than what it carried before the upgrade
    back = link.decide(ds)
    assert back == {slot: ds[i].options[ds[i].options.index(first[slot])]  # type: ignore[arg-type]
                    for i, slot in enumerate(("presenter-video", "screen"))}  # undone, not below
    assert link.downgrades == 1 and link.hold == 2 * HOLD_AFTER_DOWN
    for _ in range(4):  # the next reports still describe the overflow while the link's queue drains
        clock.now += 0.5
        link.update(Feedback(remb=680_000, loss=0.13, sent=900_000, rtt=QUEUED_RTT))
        assert link.estimate == 680_000 and link.decide(ds) == back
    # the REMB climbs back to what vouched for the failed upgrade: not retried before the doubled hold
    while clock.now - link.last_down < link.hold - 1.0:
        settle(link, clock, remb=1_300_000, sent=680_000)
        assert link.decide(ds)["presenter-video"].spatial == 1  # type: ignore[union-attr]
    assert link.estimate == 1_300_000
    clock.now += 1.0
    settle(link, clock, remb=1_300_000, sent=680_000)
    assert link.decide(ds)["presenter-video"].spatial == 2  # type: ignore[union-attr]  # then it is


def test_no_upgrade_while_the_receiver_gets_less_than_is_sent() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=800_000, heard=True)
    ds = studio_lecture()
    for _ in range(CALM_PERIODS + SENT_PERIODS):
        settle(link, clock, remb=800_000, sent=680_000)
    first = link.decide(ds)
    link.estimate = 1_300_000  # what an earlier REMB said
    for _ in range(8):  # its REMB fell below what we send, and nothing confirms a queue yet
        settle(link, clock, remb=500_000, sent=680_000)
        assert link.unconfirmed and not link.congested and link.decide(ds) == first
    settle(link, clock, remb=1_300_000, sent=680_000)  # it gets what is sent again
    assert not link.unconfirmed and link.decide(ds) != first


def test_a_busy_receiver_whose_round_trip_grows_without_loss_is_not_cut() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=800_000, heard=True)
    settle(link, clock, remb=900_000, sent=800_000)
    before = link.estimate
    for _ in range(3 * STANDING_PERIODS):  # it reads its packets late: low REMB, longer round trip, nothing lost
        link.update(Feedback(remb=150_000, loss=0.0, sent=800_000, rtt=QUEUED_RTT))
        clock.now += 0.5
        assert not link.congested
    assert link.estimate == before  # held: neither cut nor grown


def test_some_loss_holds_the_estimate() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=300_000, heard=True)
    for _ in range(8):  # its REMB says more, but 5 % is lost: what we send is not all carried
        settle(link, clock, remb=600_000, sent=400_000, loss=(LOSS_LOW + LOSS_HIGH) / 2)
    assert link.estimate == 300_000 and not link.congested
    for _ in range(CALM_PERIODS):  # the loss ends: it grows
        settle(link, clock, remb=600_000, sent=400_000)
    assert link.estimate == 600_000


def test_what_was_sent_before_a_downgrade_does_not_undo_it() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    settle(link, clock, remb=2_000_000, sent=800_000)
    link.update(Feedback(remb=500_000, loss=0.05, sent=900_000, remb_fell=True))
    assert link.congested and link.estimate == 500_000
    for _ in range(CALM_PERIODS - 1):  # the pacer still drains what did not fit
        clock.now += 0.5
        assert link.update(Feedback(remb=510_000, loss=0.0, sent=700_000)) == 500_000
    clock.now += 0.5
    assert link.update(Feedback(remb=520_000, loss=0.0, sent=480_000)) == 520_000  # calm: it grows again


def test_a_keyframe_burst_is_not_what_the_link_carries() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=400_000, heard=True)
    for sent in (400_000, 400_000, 1_600_000, 400_000):  # one period's burst filled the bottleneck's queue
        settle(link, clock, sent=sent, remb=420_000)
    assert link.estimate == 420_000
    for _ in range(4):  # a probe that the link carries for two seconds is (its REMB follows, 1.5 x at most)
        settle(link, clock, sent=700_000, remb=600_000)
    assert link.estimate == 700_000


def test_a_slot_that_appears_beside_others_does_not_overflow_the_estimate() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=1_000_000, heard=True)
    both = link.decide(demands("screen", "presenter-video"))
    assert sum(o.bitrate for o in both.values() if o) <= 1_000_000
    three = link.decide(demands("screen", "presenter-video", "floor-video"))  # the floor was given
    assert three["floor-video"] is not None
    assert sum(o.bitrate for o in three.values() if o) <= 1_000_000


def test_one_congestion_episode_doubles_the_hold_once() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    ds = demands("screen", "presenter-video", "floor-video")
    settle(link, clock, remb=5_000_000, sent=0)
    link.decide(ds)
    clock.now += 100
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=0, rtt=CALM_RTT))
    link.decide(ds)  # an upgrade (a probe), if anything is left to upgrade
    link.last_up = clock.now  # as if it had been one
    for sent in (3_000_000, 2_000_000, 1_000_000):  # loss that lasts: a step down every second
        clock.now += 1.1
        link.update(Feedback(remb=None, loss=0.3, sent=sent))
        link.update(Feedback(remb=None, loss=0.3, sent=sent))
        link.decide(ds)
    assert link.downgrades >= 2 and link.hold == 2 * HOLD_AFTER_DOWN


def test_lasting_loss_cuts_once_until_the_reports_catch_up() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=900_000, heard=True)
    link.update(Feedback(remb=None, loss=0.2, sent=900_000))
    clock.now += 0.5
    first = link.update(Feedback(remb=None, loss=0.2, sent=900_000))  # lasting: one cut
    assert link.congested and first == pytest.approx(900_000 * 0.8 * LOSS_MARGIN)
    clock.now += 0.5  # the next report still describes the old rate, while we already send less
    assert link.update(Feedback(remb=None, loss=0.2, sent=500_000)) == first
    clock.now += 1.0
    assert link.update(Feedback(remb=None, loss=0.2, sent=500_000)) < first  # still lossy later: cut again


def test_a_first_remb_below_the_start_is_what_the_link_has() -> None:
    # measured: a 300 kbit/s classroom's first REMB said 171 kbit/s; the estimate stayed at START_ESTIMATE (1.2 x
    # it paced, with the audio beside) until loss cut it 5 s later, its cap's queue full and dropping meanwhile
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    settle(link, clock, sent=200_000)
    assert link.estimate == START_ESTIMATE and not link.heard
    settle(link, clock, remb=171_000, sent=250_000)
    assert link.heard and link.estimate == HEADROOM * 171_000 and not link.weak and not link.congested
    fast = Downlink(clock=clock)
    settle(fast, clock, remb=2 * START_ESTIMATE, sent=250_000)
    assert fast.heard and fast.estimate >= START_ESTIMATE  # a first REMB above the start lowers nothing


def test_a_weak_classroom_grows_to_its_remb_less_the_headroom() -> None:
    # measured: 300 kbit/s classrooms whose estimate grew to what our pacer's backlog sent (175-190 kbit/s) above
    # their REMB (137-160), or followed the REMB to 169: their cap's queue stood full (round trip 180-250 ms, so
    # never seen to grow), dropped, and their audio was concealed
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=100_000, heard=True)
    for _ in range(8):  # the pacer's backlog leaves at 1.2 x the estimate
        settle(link, clock, remb=169_000, sent=190_000)
    assert link.estimate == HEADROOM * 169_000 and not link.weak
    for _ in range(8):  # a link the REMB vouches more for than the weakest a classroom has: what it says
        settle(link, clock, remb=START_ESTIMATE + 100_000, sent=150_000)
    assert link.estimate == START_ESTIMATE + 100_000


def test_what_the_receiver_does_not_get_is_not_carried() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=450_000, heard=True)
    for _ in range(8):  # we send 1.6 Mbit/s; its REMB stays at 400: the link's queue holds the rest
        settle(link, clock, remb=400_000, sent=1_600_000)
    assert link.estimate == pytest.approx(400_000 / 0.8)


def test_nothing_counts_as_carried_before_the_first_remb() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    for _ in range(8):  # a burst into a small link's queue; its losses not reported yet
        settle(link, clock, sent=1_500_000)
    assert link.estimate == START_ESTIMATE


def test_one_probe_at_a_time() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=200_000, heard=True)
    ds = demands("screen", "presenter-video")
    first = link.decide(ds)
    assert sum(o.bitrate for o in first.values() if o) <= 200_000
    probes = []
    for _ in range(5):  # nothing confirms the probe (its REMB stays below the estimate): no second one
        clock.now += UP_INTERVAL + 0.1
        link.update(Feedback(remb=170_000, loss=0.0, sent=200_000, rtt=CALM_RTT))
        probes.append(dict(link.decide(ds)))
    assert link.upgrades == 1 and probes[-1] == probes[0]


def test_a_probe_is_a_small_step_above_the_estimate() -> None:
    clock = Clock(1000.0)
    big = Demand("presenter-video", 0, (Option(100_000, 0, 0), Option(200_000, 0, 1)))  # a step of 100 %
    link = Downlink(clock=clock, estimate=110_000, heard=True)
    assert link.decide([big])["presenter-video"] == big.options[0]
    for _ in range(4):
        clock.now += UP_INTERVAL + 0.1
        link.update(Feedback(remb=110_000, loss=0.0, sent=100_000, rtt=CALM_RTT))
        assert link.decide([big])["presenter-video"] == big.options[0]  # waits for the estimate to grow
    small = Demand("presenter-video", 0, (Option(100_000, 0, 0), Option(125_000, 0, 1)))
    clock.now += UP_INTERVAL + 0.1
    assert link.decide([small])["presenter-video"] == small.options[1]  # within 25 % of it: probed


def test_video_waiting_long_in_the_pacer_steps_the_least_important_slot_down_and_keeps_the_estimate() -> None:
    """A classroom's choices fitted its estimate by their measured rates, yet the pacer held video for
    seconds (and dropped what waited 2 s): what they really send is more than it carries."""
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    ds = demands("presenter-video", "floor-video")
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=0))
    first = link.decide(ds)
    assert all(first[d.slot] == d.options[-1] for d in ds)  # room for the best of both
    before = dict(first)
    for i in range(3):
        clock.now += 0.5
        estimate = link.update(Feedback(remb=5_000_000, loss=0.0, sent=800_000, queue_delay=1.5))
        choice = link.decide(ds)
        if i < 2:
            assert choice == before  # a keyframe's wait: not yet
    assert link.overfull and not link.congested and estimate == 5_000_000  # the estimate stays
    # the least important slot steps down, to the best option of the spatial layer below: what stands in the pacer
    # is mostly keyframes, which a temporal step leaves whole
    least = next(d for d in ds if d.slot == "floor-video")
    stepped, top = choice[least.slot], before[least.slot]
    assert stepped is not None and top is not None
    assert stepped.spatial == top.spatial - 1
    assert stepped == max(o for o in least.options if o.spatial == stepped.spatial)
    other = next(d for d in ds if d is not least)
    assert choice[other.slot] == before[other.slot] and link.downgrades == 1
    clock.now += 0.5
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=800_000, queue_delay=1.5))
    assert link.decide(ds) == choice  # once per UP_INTERVAL
    clock.now += UP_INTERVAL
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=800_000, queue_delay=0.2))  # it drained
    assert not link.overfull and link.decide(ds) == choice


def test_an_overfull_pacer_steps_a_slot_on_its_lowest_layer_down_one_temporal_layer() -> None:
    clock = Clock(1000.0)
    ds = [Demand("floor-video", 2, track_options(LAYERS[:1], True))]  # one spatial layer: its temporal cuts
    link = Downlink(clock=clock, estimate=5_000_000, heard=True)
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=0))
    before = link.decide(ds)["floor-video"]
    assert before == ds[0].options[-1]
    for _ in range(3):
        clock.now += 0.5
        link.update(Feedback(remb=5_000_000, loss=0.0, sent=800_000, queue_delay=1.5))
        choice = link.decide(ds)
    assert link.overfull and choice["floor-video"] == ds[0].options[-2]


def test_an_overfull_pacer_never_pauses_the_last_slot_at_its_smallest_option() -> None:
    """Measured: a 300 kbit/s classroom's screen was paused by a cut, its keyframe still waited in the pacer, and
    the overfull rule then paused the presenter's camera too, the only video left."""
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=70_000, heard=True)
    ds = demands("presenter-video")
    link.update(Feedback(remb=70_000, loss=0.0, sent=0))  # room for its smallest option only
    first = link.decide(ds)
    assert first["presenter-video"] == ds[0].options[0]
    for _ in range(6):
        clock.now += UP_INTERVAL
        link.update(Feedback(remb=70_000, loss=0.0, sent=60_000, queue_delay=1.5))
        assert link.decide(ds) == first
    assert link.overfull and link.downgrades == 0


def screen_and_presenter_at_their_minimums() -> tuple[Clock, list[Demand], float, Downlink, dict[str, Option | None]]:
    """screen_and_presenter_at_their_minimums: a link whose estimate just covers the screen's and the presenter
    camera's smallest options, both sent them (its clock, demands, their cost, the link and its first choice)."""
    clock = Clock(1000.0)
    ds = demands("screen", "presenter-video")
    minimums = sum(d.options[0].bitrate for d in ds)
    link = Downlink(clock=clock, estimate=minimums + 1_000, heard=True)
    link.update(Feedback(remb=int(minimums) + 1_000, loss=0.0, sent=0))
    first = link.decide(ds)
    assert all(first[d.slot] == d.options[0] for d in ds)
    return clock, ds, minimums, link, first


def test_an_overfull_pacer_pauses_the_screen_before_the_presenter() -> None:
    """Measured: on a 300 kbit/s classroom the overfull rule paused the presenter's camera (its smallest option)
    and kept the screen sending: the classroom watched slides without the speaker for ten seconds."""
    clock, ds, minimums, link, first = screen_and_presenter_at_their_minimums()
    for _ in range(12):  # it lasts: a step every UP_INTERVAL
        clock.now += UP_INTERVAL / 2
        link.update(Feedback(remb=int(minimums) + 1_000, loss=0.0, sent=minimums, queue_delay=1.5))
        choice = link.decide(ds)
        assert choice["presenter-video"] == first["presenter-video"]
    assert link.overfull and choice["screen"] is None


def test_an_overfull_pacer_steps_down_the_screen_when_only_the_screens_video_waits() -> None:
    """The pacer sends the cameras' video before the screen's: when only the screen's waits, the screen steps down
    (then pauses), not the cameras (measured before: a 1 Mbit/s classroom's floor and presenter cameras were stepped
    down and paused while its screen's keyframes kept waiting); and only when it waited longer than its class may
    (1.5 x the cameras': a slide's keyframe takes 1-2 s of a weak link, and its pause and resume asked a keyframe of
    every classroom)."""
    clock = Clock(1000.0)
    ds = demands("screen", "presenter-video", "floor-video")
    link = Downlink(clock=clock)
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=0))
    first = link.decide(ds)
    assert all(first[d.slot] == d.options[-1] for d in ds)
    for _ in range(12):  # the screen's keyframe waits 1.5 s: a slide on a weak link, which its class may
        clock.now += UP_INTERVAL / 2
        link.update(Feedback(remb=5_000_000, loss=0.0, sent=800_000, queue_delay=1.5, queue_delays=(0.0, 1.5)))
        assert link.decide(ds) == first
    assert not link.overfull and link.downgrades == 0
    screen_only = (0.0, 2.6)  # the cameras' class has nothing waiting; the screen's waited longer than it may
    for _ in range(12):  # it lasts: a step every UP_INTERVAL
        clock.now += UP_INTERVAL / 2
        link.update(Feedback(remb=5_000_000, loss=0.0, sent=800_000, queue_delay=2.6, queue_delays=screen_only))
        choice = link.decide(ds)
        assert choice["presenter-video"] == first["presenter-video"]
        assert choice["floor-video"] == first["floor-video"]
    assert link.overfull and choice["screen"] is None and link.downgrades > 2
    # when the cameras' video waits, the cameras step down (the floor's first)
    clock.now += UP_INTERVAL
    link.update(Feedback(remb=5_000_000, loss=0.0, sent=800_000, queue_delay=1.5, queue_delays=(1.5, 0.0)))
    choice = link.decide(ds)
    assert choice["floor-video"] != first["floor-video"] and choice["presenter-video"] == first["presenter-video"]


def test_packets_the_pacer_dropped_make_their_class_overfull_at_once() -> None:
    """Traced on a 300 kbit/s classroom: its screen's keyframes, at the screen's smallest option, waited longer than
    the pacer keeps them, were dropped and repaired every 1.5-2 s for 15 s (each repair a keyframe of every
    classroom), while its queue swung between 0.6 and 2.9 s and never stood over its bound for three periods. A drop
    is overfull at once: the screen (its class) pauses, the presenter's camera keeps its option; a period without a
    drop, under the bound, is not overfull."""
    clock, ds, minimums, link, first = screen_and_presenter_at_their_minimums()
    clock.now += UP_INTERVAL
    calm = Feedback(remb=int(minimums) + 1_000, loss=0.0, sent=minimums, queue_delay=1.0, queue_delays=(0.0, 1.0))
    link.update(calm)
    assert not link.overfull
    clock.now += UP_INTERVAL / 2
    link.update(Feedback(remb=int(minimums) + 1_000, loss=0.0, sent=minimums, queue_delay=0.6,
                         queue_delays=(0.0, 0.6), dropped_classes=frozenset({1})))  # the screen's class dropped
    assert link.overfull and link.overfull_classes == {1}
    choice = link.decide(ds)
    assert choice["screen"] is None and choice["presenter-video"] == first["presenter-video"]
    assert link.downgrades == 1
    clock.now += UP_INTERVAL / 2
    link.update(calm)
    assert not link.overfull


def test_paused_slots_resume_the_presenters_camera_first() -> None:
    """After a pause of every slot, the presenter's camera resumes before the screen (measured before: a 300 kbit/s
    classroom resumed its screen first, and its presenter camera one upgrade interval later); then the upgrades go
    in their order (the screen first)."""
    clock = Clock(1000.0)
    ds = demands("screen", "presenter-video")
    link = Downlink(clock=clock, estimate=sum(d.options[0].bitrate for d in ds) + 1_000)
    link.choice = {"screen": None, "presenter-video": None}
    link.last_down = clock.now - HOLD_AFTER_DOWN - 0.1
    choice = link.decide(ds)
    assert choice["presenter-video"] == ds[1].options[0] and choice["screen"] is None
    clock.now += UP_INTERVAL + 0.1
    choice = link.decide(ds)
    assert choice["screen"] == ds[0].options[0]


def test_what_the_estimate_vouches_for_waits_only_the_first_hold() -> None:
    clock = Clock(1000.0)
    link = Downlink(clock=clock, estimate=2_000_000, heard=True)
    ds = demands("presenter-video")
    link.update(Feedback(remb=2_000_000, loss=0.0, sent=0, rtt=CALM_RTT))
    link.decide(ds)
    link.last_up = clock.now  # as if that had been a probe
    link.hold = HOLD_MAX
    clock.now += 1.0
    link.update(Feedback(remb=20_000, loss=0.3, sent=40_000, remb_fell=True, rtt=QUEUED_RTT))  # it failed
    assert link.congested and link.decide(ds)["presenter-video"] is None  # paused
    for _ in range(4 * CALM_PERIODS):  # the estimate comes back above its smallest option
        settle(link, clock, remb=int(1.5 * LAYERS[0]), sent=0)
    clock.now += HOLD_AFTER_DOWN
    link.update(Feedback(remb=int(1.5 * LAYERS[0]), loss=0.0, sent=0, rtt=CALM_RTT))
    assert HOLD_AFTER_DOWN < link.hold
    assert link.decide(ds)["presenter-video"] is not None  # vouched for: no doubled hold


def test_a_link_congested_lately_is_weak_a_calm_one_never() -> None:
    """Downlink.weak (its subscriber's keyframe requests can wait for the track's gate): from the congestion that
    cut its estimate until WEAK_WINDOW after it; a link that never congested is not weak, however low its REMB."""
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    for _ in range(4):
        settle(link, clock, remb=200_000, sent=150_000)
    assert not link.weak
    link.update(Feedback(remb=120_000, loss=0.0, sent=400_000, remb_fell=True, rtt=QUEUED_RTT))
    assert link.congested and link.weak
    clock.now += 1.0
    settle(link, clock, remb=150_000, sent=100_000)
    assert not link.congested and link.weak  # calm again, not for long
    clock.now += WEAK_WINDOW
    settle(link, clock, remb=150_000, sent=100_000)
    assert not link.weak


def test_a_congestion_that_left_the_estimate_where_it_was_leaves_the_link_strong() -> None:
    """Downlink.weak: a link congested for a period whose estimate no signal lowered (our own queue behind a join's
    keyframes: the REMB above the estimate, no loss) is weak while congested and not after; the same link cut by a
    confirmed fall stays weak for WEAK_WINDOW."""
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    for _ in range(4):
        settle(link, clock, remb=900_000, sent=500_000)
    before = link.estimate
    link.update(Feedback(remb=950_000, loss=0.0, sent=1_200_000, remb_fell=True, rtt=QUEUED_RTT))
    assert link.congested and link.weak and link.estimate == before  # the REMB said more than the estimate
    clock.now += 1.0
    settle(link, clock, remb=950_000, sent=500_000)
    assert not link.congested and not link.weak  # its climb to the top layer need not wait for the track's gate
    link.update(Feedback(remb=300_000, loss=0.0, sent=1_200_000, remb_fell=True, rtt=QUEUED_RTT))
    assert link.congested and link.estimate < before
    clock.now += 1.0
    settle(link, clock, remb=300_000, sent=200_000)
    assert not link.congested and link.weak


def test_a_lower_layer_that_skips_a_period_never_moves_a_slot_to_a_higher_one() -> None:
    # a weak link sent the presenter's lowest layer and the screen's; then the publisher's encoder skips the lowest
    # layers' frames for a period (over their targets): only the top layers are measured. The slots keep what they
    # had (before: the nearest option by cost, the top layer's base temporal layer, ~twice the link)
    clock = Clock(1000.0)
    link = Downlink(clock=clock)
    for _ in range(CALM_PERIODS + 1):
        settle(link, clock, remb=250_000, sent=150_000)
    ds = demands("presenter-video", "screen")
    before = link.decide(ds)
    assert all(o is not None and o.spatial == 0 for o in before.values()), before
    clock.now += 0.5
    settle(link, clock, remb=250_000, sent=150_000)
    link.last_up = clock.now  # no probe due in this period (a probe is one option up, the usual way)
    skipped = [Demand(d.slot, d.priority, track_options([0.0, *LAYERS[1:]], True)) for d in ds]
    assert link.decide(skipped) == before
    assert link.decide(ds) == before  # they come back: nothing moved
    # a layer the slot is sent that is not measured, with a lower one measured: the lower one (never higher)
    link.choice["presenter-video"] = ds[0].options[-1]  # the top layer, all temporal layers
    option = link.decide([Demand(ds[0].slot, ds[0].priority, track_options([LAYERS[0], LAYERS[1], 0.0], True)),
                          ds[1]])["presenter-video"]
    assert option is not None and option.spatial == 1


def test_a_layer_whose_keyframe_holds_the_link_too_long_is_not_offered() -> None:
    """fitting: a layer whose keyframe would hold the link more than BURST_SECONDS at the estimate is not among the
    slot's options, though its mean rate fits (a slide's keyframes: large, rare); the smallest option stays. A slot
    sent such a layer steps to the best option below it."""
    screen = Demand("screen", slot_priority("screen"),
                    track_options([60_000.0, 120_000.0], True, bursts=[100_000.0, 900_000.0]))
    assert [o.spatial for o in fitting(screen, 600_000).options] == [0, 0, 0, 1, 1]
    assert screen.options[-1].burst == 900_000.0
    assert [o.spatial for o in fitting(screen, 300_000).options] == [0, 0, 0]  # its mean rate fits, its keyframe not
    tiny = fitting(Demand("screen", 0, track_options([60_000.0], False, bursts=[900_000.0])), 100_000)
    assert len(tiny.options) == 1  # its only option, whatever its keyframe
    clock = Clock()
    link = Downlink(clock=clock, estimate=1_000_000, heard=True)
    top = link.decide([screen])["screen"]
    assert top is not None and top.spatial == 1  # 1 Mbit/s: the 900 kbit keyframe passes in 0.9 s
    clock.now += 1.0
    link.estimate = 400_000  # the link proved weaker (mean rates all fit: 120 kbit/s)
    after = link.decide([screen])["screen"]
    assert after is not None and (after.spatial, after.temporal) == (0, 2)  # the best option below it


def test_a_calm_link_at_its_best_options_decides_as_the_whole_decision_would() -> None:
    """decide's shortcut for a calm link whose slots all have their best option (``_at_top``) decides what the
    whole of decide does, over random links, estimates, layer rates and keyframe bursts: the same choices, hold,
    up- and downgrades; and it is taken when it applies (a steady room's decisions every period)."""
    import copy
    import random

    rng = random.Random(16)
    slots = ["presenter-video", "screen", "floor-video", "grid-0", "grid-1"]
    taken = 0
    for _ in range(3000):
        clock = Clock(rng.uniform(0, 400))
        link = Downlink(clock=clock, estimate=rng.choice([60_000.0, 400_000.0, 1_200_000.0, 5_000_000.0]))
        link.congested = rng.random() < 0.2
        link.overfull = rng.random() < 0.1
        link.queued = rng.random() < 0.2
        link.last_down = clock.now - rng.choice([1.0, 10.0, 300.0])
        link.last_up = clock.now - rng.choice([1.0, 10.0, 300.0])
        link.hold = rng.choice([HOLD_AFTER_DOWN, HOLD_MAX])
        demands = []
        for slot in rng.sample(slots, rng.randint(1, 4)):
            rates = [rng.choice([0.0, 120_000.0, 150_000.0]), rng.choice([0.0, 500_000.0]),
                     rng.choice([0.0, 1_500_000.0])]
            bursts = [rng.choice([20_000.0, 3_000_000.0]) for _ in rates]
            options = track_options(rates, rng.random() < 0.8, lowest_only=slot.startswith("grid-"), bursts=bursts)
            if not options:
                continue
            demands.append(Demand(slot, slot_priority(slot), options))
            if rng.random() < 0.9:  # mostly at the best option (the case the shortcut is for), else anywhere
                best = options[-1] if rng.random() < 0.8 else rng.choice(options)
                link.choice[slot] = Option(best.bitrate * rng.uniform(0.8, 1.2), best.spatial, best.temporal)
            elif rng.random() < 0.5:
                link.choice[slot] = None
        whole = copy.deepcopy(link)
        whole._at_top = lambda demands: None  # type: ignore[method-assign]
        steady = link.steady
        assert link.decide(demands) == whole.decide(demands)
        taken += link.steady - steady
        for name in ("choice", "hold", "last_up", "last_down", "upgrades", "downgrades"):
            assert getattr(link, name) == getattr(whole, name), name
    assert taken > 300


def test_the_round_trip_window_finds_its_least_without_keeping_every_period() -> None:
    """A rise is measured from the least round trip of the last RTT_WINDOW seconds, over random round trips as a
    full list of them finds it; the window keeps only those no later one undercuts (a steady link's: one, not the
    60 of 30 s that each period searched)."""
    import random

    from sfu.allocator import RTT_RISE, RTT_WINDOW

    rng = random.Random(7)
    clock = Clock()
    link = Downlink(clock=clock)
    seen: list[tuple[float, float]] = []
    for _ in range(2000):
        clock.now += rng.choice([0.5, 0.5, 0.5, 3.0, 40.0])
        rtt = None if rng.random() < 0.05 else rng.choice([0.02, 0.03, 0.05, 0.08, 0.2, 0.4])
        seen = [(t, r) for t, r in seen if clock.now - t <= RTT_WINDOW]
        expected = rtt is not None and rtt - min((r for _, r in seen), default=rtt) >= RTT_RISE
        if rtt is not None:
            seen.append((clock.now, rtt))
        assert link._queue_grew(rtt, clock.now) == expected
    for _ in range(100):
        clock.now += 0.5
        link._queue_grew(0.03, clock.now)
    assert len(link._rtts) == 1
