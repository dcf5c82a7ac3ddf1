"""allocator: a classroom's downlink estimate and how it is shared among the slots of its down Peer.

Each down Peer has a ``Downlink``: an estimate of what its link carries, from the subscriber's own feedback
(its REMB, the receive-side estimate Chromium computes from abs-send-time, and the loss in its receiver
reports), and the choice, per video slot, of what to send: one spatial layer of the source track and the
highest temporal layer forwarded within it, or nothing ("paused": the slot says ``weak-network``).

``allocate`` shares a budget by priority, as mediasoup's and LiveKit's allocators do: audio always (it is never
paused and is not in the budget: the REMB measures the video streams, which carry abs-send-time), then the
screen and the presenter's camera (the large slots), then the floor holder's camera, then the grid tiles (lowest
spatial layer only). Every slot first gets its smallest option in priority order (so a tile is paused before the
presenter loses video), then the slots are upgraded in the same order, each to the best option that still fits.

``Downlink.update`` judges the link from that feedback: *congested* when the REMB falls below what we send and
the link confirms it, or when loss stays above ``LOSS_HIGH``; the estimate is then what the link carries (video
waiting in our pacer only holds upgrades back). Uncongested, the REMB says little (Chromium's receive-side
estimate stays within 1.5 x what it receives, so a paused slot would never come back on the REMB alone).
``Downlink.decide`` adds hysteresis, so a choice does not oscillate: a downgrade is applied at once (only while
congested), an upgrade one slot at a time, at least ``UP_INTERVAL`` seconds after the previous upgrade and
``hold`` seconds after a downgrade. No padding is sent to probe: the options are small steps (temporal layers
within spatial layers), so sending the next option is the probe; if the link cannot carry it, the REMB or the
loss says so within a second or two and the upgrade is undone (every slot back to what it was sent before it,
which the link carried), and the hold after that downgrade doubles (from ``HOLD_AFTER_DOWN`` up to
``HOLD_MAX``) so a link that cannot carry it is not retried every few seconds.

Who owns what: ``sfu.downlinks.Downlinks`` (one per room) owns one ``Downlink`` per participant with a down
Peer, feeds it the consumers' feedback every period and applies the choices to the Consumers (layer,
``max_temporal``) through the room's ``_reassign``. Nothing here touches a packet.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sfu.pacer import MAX_WAIT, pace_class

# Chromium's share of a VP8 stream's bitrate up to each temporal layer with three layers (libwebrtc's
# kLayerRateAllocation for 3 temporal layers): TL0 40 %, TL0+TL1 60 %, all 100 %.
TEMPORAL_SHARE = (0.4, 0.6, 1.0)
FRAME_SHARE = (0.25, 0.5, 1.0)  # and its share of the frames (L1T3: TL0 every fourth frame, TL1 every other)
MIN_CUT_FPS = 10.0  # above the lowest spatial layer, no temporal cut of a camera under this frame rate: a sharper
# picture at 7.5 fps is worse on a projector than the layer below at 15 (a 15 fps camera's 960x540 layer at half its
# rate was chosen for a 1 Mbit/s classroom over its 480x270 layer whole; twelfth and thirteenth sessions)
UP_INTERVAL = 2.0  # seconds between two upgrades of one downlink
PROBE_STEP = 0.25  # a probe sends at most this share of the estimate above it (the pacer's margin is 0.2 plus
# audio: a bigger step overfills a link the estimate has right, and its queue drops audio too)
HOLD_AFTER_DOWN = 6.0  # seconds after a downgrade before the next upgrade (doubles after a failed one)
HOLD_MAX = 48.0
HOLD_SILENT = 12.0  # at most this hold on a link whose every video slot is paused (``decide``)
LOSS_HIGH = 0.10  # reported loss above this: the estimate is cut to what was sent x (1 - loss / 2)
LOSS_LOW = 0.02
LOSS_MARGIN = 0.9  # a lossy link's estimate: this share of what it delivered (sent x (1 - loss))
SENT_PERIODS = 4  # a calm link carried the least of what we sent in each of these periods (2 s: a keyframe's
# burst fills a bottleneck's queue for a period without being what the link carries)
OVERUSE = 0.8  # a REMB that fell below this share of what we send: the link is congested
REMB_FALL = 0.7  # a REMB below this share of the previous one fell (overuse: ~0.85 x incoming, from ~1.5 x)
QUEUE_CONGESTED = 0.8  # seconds video waited in the pacer, in three periods in a row: no upgrade until it drains
QUEUE_OVERFULL = 1.2  # seconds it waited in as many periods: the choices cost more than the pacer carries, one step
# down (the pacer drops a camera's packets that waited 2 s: a queue that old is video lost, the options' measured
# rates too low; the screen's class has its own bound, OVERFULL_BY below)
# (a keyframe alone waits ~0.6 s at 280 kbit/s: that is what the pacer is for, not a sign of congestion)
OVERFULL_BY = tuple(QUEUE_OVERFULL * wait / MAX_WAIT[0] for wait in MAX_WAIT)  # per pacing class: the screen's
# video may wait 1.5 x as long (``sfu.pacer.MAX_SCREEN_QUEUE_SECONDS``: a slide's keyframe takes 1-2 s of a weak link)
CUT_SPACING = 1.0  # seconds after a cut during which lasting loss does not cut again (the reports of a
# period or two still describe the rate before the cut)
FALL_CUT = 0.5  # a confirmed REMB fall cuts the estimate at most to this share of what the link carried lately (the
# estimate before, or the most we sent in the last ``RECENT_SECONDS`` if less): Chromium's REMB after an overuse is
# 0.85 x what it received over its last second, which can be a fraction of what the link carries (our own pacer idle
# for most of a second on a starved host, then a burst: a 300 kbit/s classroom's REMB fell from 211 to 51 kbit/s,
# every slot paused and its presenter camera stalled 7.9 s). A link that really lost more than half keeps confirming
# it (a queue standing on it, lasting loss, or its REMB still below what we send with its round trip still grown
# FALL_WINDOW after the cut) and is cut again.
RECENT_SECONDS = 2.0
CALM_PERIODS = 2  # periods without congestion before what we send counts as carried (the first ones after a
# downgrade still measure what the link could not carry, leaving the pacer's queue)
FALL_WINDOW = 3.0  # seconds a REMB fall waits for the link to confirm it (loss, a longer round trip)
STANDING_PERIODS = 2  # periods in a row with a REMB below what we send, a longer round trip and some loss: a
# queue standing full on the link (no fall needed: a REMB low from its first report never falls; measured: a 300
# kbit/s classroom sent 225 kbit/s of video beside its audio, its REMB at 145, its cap's queue full for a minute
# and 5 % of its audio dropped, with its loss under LOSS_HIGH)
RTT_RISE = 0.05  # seconds of round trip above the link's least recent one: a queue is growing on the link
RTT_WINDOW = 30.0  # seconds over which that least round trip is taken
MIN_ESTIMATE = 30_000  # bit/s: the estimate's floor
START_ESTIMATE = 300_000  # bit/s until the link says otherwise: the weakest link a classroom has (0.3-1 Mbit/s)
FAILED_UP_WINDOW = 8.0  # a downgrade this soon after an upgrade means the upgrade failed
RETRY_SHARE = 0.9  # after a failed upgrade, what the estimate vouches for that sends at least this share of what
# failed waits the doubled hold too, as a probe does (Chromium's REMB says up to 1.5 x what it receives before it sees
# a queue: a 1 Mbit/s classroom's said 1.1 Mbit/s while it received 750 kbit/s, vouched for the presenter camera's
# 960x540 layer, and said it again a few seconds after that overflowed the link)
WEAK_WINDOW = 60.0  # seconds after congestion last cut its estimate during which a link counts as weak
HEADROOM = 0.85  # a link whose REMB is below START_ESTIMATE (a weak classroom's: there the audio is a third of the
# link) grows to this share of its REMB at most. The REMB (Chromium's delay-based estimate of what its video can have)
# climbs to the capacity the link has beside the audio before it sees the queue grow; at 1 x the REMB, or above it
# (what we sent counted as carried, up to REMB / OVERUSE: our pacer's backlog leaves at 1.2 x the estimate, so that
# measure raised itself), a 300 kbit/s classroom's cap queued 200 ms and dropped, and its audio, waiting behind in
# that queue, was concealed (0.2 s at a time, 1.4-2.6 % of a 40 s window; tenth session)
BURST_SECONDS = 2.0  # a layer is offered only if its keyframe passes the link in this long at the estimate: the
# pacer sends at 1.2 x the estimate and drops a camera's packets that waited 2 s (sfu.pacer.MAX_WAIT; the screen's
# 3 s), so a keyframe that takes longer is lost
# in our own queue, and every other slot's video waits behind it meanwhile (measured: a 300 kbit/s classroom's
# presenter camera stalled 2.8-3.3 s behind its screen's 1366x768 keyframes). Not shorter: the estimate grows from
# what is sent, and a layer withheld for a keyframe of 1-2 s kept a 1 Mbit/s classroom on its lower layers.

PRIORITY = {"screen": 0, "presenter-video": 0, "floor-video": 2}  # grid tiles and the rest: 3
UPGRADE_FIRST = ("screen",)  # within a priority, upgraded first (the slides before the presenter's face)
MINIMUM_FIRST = ("presenter-video",)  # within a priority, given its smallest option first


@dataclass(frozen=True, order=True)
class Option:
    """Option is one way to send a video slot: spatial layer index, highest temporal layer (-1: all), bit/s."""

    bitrate: float
    spatial: int
    temporal: int
    burst: float = field(default=0.0, compare=False)  # bits of the layer's keyframe (with its period's deltas)


@dataclass(frozen=True)
class Demand:
    """Demand: a video slot of one downlink, its priority (0 first) and its options in ascending bitrate."""

    slot: str
    priority: int
    options: tuple[Option, ...]


def slot_priority(slot: str) -> int:
    """slot_priority: 0 for the screen and the presenter's camera, 2 the floor holder's, 3 grid tiles and others."""
    return PRIORITY.get(slot, 3)


def track_options(layer_bitrates: Sequence[float], temporal: bool, lowest_only: bool = False,
                  bursts: Sequence[float] = (), frame_rates: Sequence[float] = ()) -> tuple[Option, ...]:
    """track_options lists how a track can be sent, in order of quality: each arriving spatial layer (index,
    measured bit/s) and, when it has temporal layers, each temporal cut of it (the base layer alone only for the
    lowest spatial layer; above it, a cut only at ``MIN_CUT_FPS`` or more when the layer's frame rate is known).
    An option's cost is at least the one before it: a publisher's layer rates move with its own estimate and its
    keyframes, and a lower layer measured dearer must not look like an upgrade.

    `layer_bitrates[i]` is the measured bitrate of spatial layer i (0 or less: not arriving), `bursts[i]` (when
    given) the bits of its latest keyframes (``fitting`` reads them), `frame_rates[i]` (when given and above 0) its
    frames per second. `lowest_only` (grid tiles) keeps the lowest arriving spatial layer.
    """
    candidates: list[Option] = []
    for spatial, rate in enumerate(layer_bitrates):
        if rate <= 0:
            continue
        cuts = [(t, rate * share) for t, share in enumerate(TEMPORAL_SHARE)] if temporal else [(-1, rate)]
        if candidates and temporal:
            cuts = cuts[1:]  # above the lowest layer, never the quarter frame rate: a sharper image at 7 fps
            # is worse on a projector than the lower layer at 30
            fps = frame_rates[spatial] if spatial < len(frame_rates) else 0.0
            if fps > 0:  # nor any cut under MIN_CUT_FPS (a 15 fps camera's half rate); its whole rate stays
                cuts = [(t, r) for t, r in cuts if t == len(TEMPORAL_SHARE) - 1 or fps * FRAME_SHARE[t] >= MIN_CUT_FPS]
        burst = bursts[spatial] if spatial < len(bursts) else 0.0
        candidates += [Option(bitrate, spatial, t, burst) for t, bitrate in cuts]
        if lowest_only:
            break
    out: list[Option] = []
    for option in candidates:  # in order of quality: a layer's cuts, then the next layer's
        cost = max(option.bitrate, out[-1].bitrate) if out else option.bitrate  # better never costs less
        out.append(Option(cost, option.spatial, option.temporal, option.burst))
    return tuple(out)


def fitting(d: Demand, estimate: float) -> Demand:
    """fitting: `d` without the options of layers whose keyframe would hold the link more than ``BURST_SECONDS``
    at `estimate` (bit/s); its smallest option stays whatever its keyframe. A layer's keyframe is many times its
    frames' mean (a slide shared at 1366x768: ~60 kB every few seconds, almost nothing between), so a layer whose
    mean rate fits a weak link can still hold every other slot's video behind each of its keyframes."""
    limit = estimate * BURST_SECONDS
    kept = tuple(o for i, o in enumerate(d.options) if i == 0 or o.burst <= limit)
    return d if len(kept) == len(d.options) else Demand(d.slot, d.priority, kept)


def allocate(budget: float, demands: Iterable[Demand]) -> dict[str, int]:
    """allocate shares `budget` (bit/s for video) among `demands`; slot -> index of its option, -1 paused.

    Minimums first in priority order, then upgrades in priority order, each to the best option that fits.
    """
    # minimums by priority, the presenter's camera first within the first (a weak link keeps seeing who speaks,
    # the slides when they fit too); upgrades by priority, the screen first within one (then the slides sharpen)
    cheapest = sorted(demands, key=lambda d: (d.priority, d.slot not in MINIMUM_FIRST))
    ordered = sorted(demands, key=lambda d: (d.priority, d.slot not in UPGRADE_FIRST))
    choice = {d.slot: -1 for d in ordered}
    left = budget
    for d in cheapest:
        if d.options and d.options[0].bitrate <= left:
            choice[d.slot] = 0
            left -= d.options[0].bitrate
    for d in ordered:
        i = choice[d.slot]
        if i < 0:
            continue
        best = i
        for j in range(len(d.options) - 1, i, -1):
            if d.options[j].bitrate - d.options[i].bitrate <= left:
                best = j
                break
        left -= d.options[best].bitrate - d.options[i].bitrate
        choice[d.slot] = best
    return choice


@dataclass
class Feedback:
    """Feedback: what a downlink's subscriber told us lately (one allocation period)."""

    remb: int | None  # its latest REMB (bit/s), None before any
    loss: float  # the loss on its own link in its latest receiver reports about video (0..1)
    sent: float  # the video we sent it over the period (bit/s, retransmissions included)
    queue_delay: float = 0.0  # seconds the oldest packet has waited in its pacer
    remb_fell: bool = False  # its REMB went down since the previous period (Chromium's overuse signal)
    rtt: float | None = None  # seconds, the round trip from its receiver reports (None: not measured yet)
    queue_delays: tuple[float, ...] = ()  # seconds the oldest packet of each pacing class has waited
    # (``sfu.pacer.pace_class``; empty: not known, every class as queue_delay)
    dropped_classes: frozenset[int] = frozenset()  # the pacing classes whose packets its pacer dropped in the period
    # (they waited longer than they may: their keyframes do not pass the link; overfull at once, ``update``)


@dataclass
class Downlink:
    """Downlink: one down Peer's estimate and its video slots' current options (see the module docstring)."""

    clock: Callable[[], float] = time.monotonic
    estimate: float = START_ESTIMATE
    congested: bool = False
    choice: dict[str, Option | None] = field(default_factory=dict)  # slot -> option sent, None paused
    last_up: float = float("-inf")
    last_down: float = float("-inf")
    hold: float = HOLD_AFTER_DOWN
    downgrades: int = 0
    upgrades: int = 0
    steady: int = 0  # decisions that found every slot at its best option on a calm link (``_at_top``)
    queued: bool = False  # video has waited in its pacer for a while: no upgrade until it drains
    overfull: bool = False  # and long: its choices cost more than the pacer carries (one step down, ``decide``)
    _overfull_reports: int = 0
    overfull_classes: frozenset[int] = frozenset()  # the pacing classes whose video waited over OVERFULL_BY last
    feedback: Feedback | None = None  # the latest period's (what ``update`` judged; None before any)
    _loss_reports: int = 0
    _queue_reports: int = 0
    heard: bool = False  # a REMB has come (before it the estimate is START_ESTIMATE, a guess)
    _calm: int = CALM_PERIODS  # periods since the link was last congested
    _sent: list[float] = field(default_factory=list)  # what we sent in the last SENT_PERIODS calm periods
    _fell_at: float = float("-inf")  # the latest REMB fall not yet confirmed or dismissed
    _standing: int = 0  # periods in a row that looked like a queue standing on the link (STANDING_PERIODS)
    _cut_at: float = float("-inf")  # when the link last counted as congested (the cut's spacing starts there)
    _lowered_at: float = float("-inf")  # when congestion last lowered the estimate (the weak window starts there)
    _bounded_at: float = float("-inf")  # when FALL_CUT last bounded a confirmed fall's cut (looked at again later)
    _before_up: dict[str, Option | None] = field(default_factory=dict)  # the choices before the latest upgrade
    _carried_before_up: float = 0.0  # what the link carried calmly before it (0: not known)
    _up_cost: float = 0.0  # what its choices cost (bit/s)
    _failed_cost: float = 0.0  # what the choices of the latest failed upgrade cost (``RETRY_SHARE``)
    _undo: bool = False  # this period's congestion failed the latest upgrade: ``decide`` undoes it
    _undone_at: float = float("-inf")  # when ``decide`` last undid a failed upgrade
    unconfirmed: bool = False  # its latest REMB is below OVERUSE x what we send: no upgrade (``decide``)
    _recent: deque[tuple[float, float]] = field(default_factory=deque)  # (when, video sent) of the periods of the
    # last RECENT_SECONDS (FALL_CUT)
    _rtts: deque[tuple[float, float]] = field(default_factory=deque)  # (when, rtt) of the last RTT_WINDOW seconds
    # that no later one undercuts: their round trips rise from the first, the least

    def update(self, fb: Feedback) -> float:
        """update takes one period's feedback and returns the new estimate of what the link carries for video.

        The link is *congested* when the subscriber's REMB fell, below ``OVERUSE`` x what we send, and the link
        confirms it within ``FALL_WINDOW`` (some loss, or a round trip ``RTT_RISE`` above its least of the last
        ``RTT_WINDOW``: a queue is growing). Chromium's delay-based detector cuts its estimate to 0.85 x what it
        received when it sees the delays grow, but it sees them grow on a busy PC too, where the receiving
        process, not the link, is late; a REMB that is merely below what we send is its slow climb after an
        upgrade. A REMB below what we send with a longer round trip and some loss (``LOSS_LOW``) in
        ``STANDING_PERIODS`` periods in a row is congestion without a fall: a queue standing full on the link, which
        a busy PC does not make (it reads late but loses nothing); so is a longer round trip beside a REMB below
        what we send within ``FAILED_UP_WINDOW`` of an upgrade (the probe failed: step back before the link's
        queue is full and drops the audio behind it). The link is congested too when its loss exceeds
        ``LOSS_HIGH`` in two periods in a row (the loss-based half of Google's congestion control: a short queue
        drops before its delay grows). Then the
        estimate is the least of the confirmed REMB (but one fall cuts at most to ``FALL_CUT`` x what the link
        carried lately: Chromium's REMB measures what it received over its last second, which our own idle pacer
        can make a fraction of what the link carries; a link still confirming the fall ``FALL_WINDOW`` later is cut
        to its REMB then), ``LOSS_MARGIN`` x what a lossy link delivered (sent x (1 -
        loss)) and the estimate before. Video that keeps waiting in our own pacer (``QUEUE_CONGESTED`` in three periods:
        *queued*) is not the link's congestion (the pacer sends at 1.2 x the estimate: what waits is keyframes
        above the layers' measured rates, and a link slower than the pacer drops, which the loss says), so it
        only holds upgrades back until the queue drains; cutting the estimate on it paused every slot of a 1
        Mbit/s link whose keyframes had queued up. Otherwise the REMB says little (Chromium's receive-side
        estimate stays within 1.5 x what it receives): the estimate only grows, to the REMB or to the least of
        what we sent in each of the last ``SENT_PERIODS`` calm periods (but not above REMB / ``OVERUSE``: what
        the receiver says it does not get was not carried; nothing before its first REMB), whichever is larger,
        but on a link whose REMB is below ``START_ESTIMATE`` to ``HEADROOM`` x the REMB at most (there the REMB is
        the capacity left beside the audio, and at 1 x the link's queue stands full with the audio in it),
        once the link has been calm for ``CALM_PERIODS`` (so the period that follows a downgrade, still sending
        what did not fit, does not undo the cut, and one keyframe's burst does not count as carried) and only in
        a period without loss (``LOSS_LOW``) or a longer round trip beside a REMB below what we send (between
        ``LOSS_LOW`` and ``LOSS_HIGH`` the estimate holds, as Google's loss-based controller does: growing there
        overfilled a 300 kbit/s link); only
        congestion lowers it, once per ``CUT_SPACING`` for lasting loss (the reports of the next period still
        describe the rate before the cut: cutting again on them would cut the same excess twice), and the first
        REMB (the start, ``START_ESTIMATE``, is a guess: a first REMB below it lowers the estimate to ``HEADROOM``
        x it). Congestion within ``FAILED_UP_WINDOW`` of an upgrade is that upgrade failing: the cut goes no lower
        than what the link carried calmly before it (Chromium's REMB after the overflow is 0.85 x what it received
        while its link's queue dropped: a 1 Mbit/s classroom's said 659 kbit/s after carrying 750, and its
        presenter camera fell from 960x540 past 480x270, which it had been sent for minutes, to 240x135), and
        ``decide`` undoes the upgrade; for ``FALL_WINDOW`` after that, congestion holds the estimate (the reports
        describe the overflow while the link's queue drains: a 1 Mbit/s classroom's, 12 % loss and a REMB still
        low, cut it again and its camera fell past the layer the undo had restored), and a link still confirming
        its REMB then is cut to it, as a bounded fall is.
        """
        now = self.clock()
        self.feedback = fb
        remb = float(fb.remb) if fb.remb is not None else None
        recent = self._recent
        while recent and now - recent[0][0] > RECENT_SECONDS:
            recent.popleft()
        recent.append((now, fb.sent))
        if fb.loss > LOSS_HIGH:
            self._loss_reports += 1
        elif fb.loss < LOSS_LOW:
            self._loss_reports = 0
        self._queue_reports = self._queue_reports + 1 if fb.queue_delay > QUEUE_CONGESTED else 0
        lossy = self._loss_reports >= 2 and fb.sent > 0
        if fb.remb_fell:
            self._fell_at = now
        grew = self._queue_grew(fb.rtt, now)
        below = remb is not None and fb.sent > MIN_ESTIMATE and remb < OVERUSE * fb.sent
        self.unconfirmed = below
        self._standing = self._standing + 1 if below and grew and fb.loss >= LOSS_LOW else 0
        standing = self._standing >= STANDING_PERIODS
        # an upgrade is a probe: a queue growing on the link within FAILED_UP_WINDOW of it, with the REMB below
        # what we send, means the link cannot carry it; stepping back then, before that queue is full, keeps the
        # audio behind it (waiting for loss let a 300 kbit/s classroom's probes drop its audio)
        probing = now - self.last_up < FAILED_UP_WINDOW and self.last_down < self.last_up
        overuse = below and (standing or (probing and grew)
                             or now - self._fell_at <= FALL_WINDOW and (fb.loss >= LOSS_LOW or grew))
        # a fall whose cut FALL_CUT bounded is looked at again FALL_WINDOW later: still below what we send, with the
        # round trip still grown or some loss, the link did lose that much (the REMB is believed); otherwise it was
        # a receiver that had little to measure (its round trip is back once the burst's queue drained)
        believed = False
        if self._bounded_at > float("-inf") and now - self._bounded_at >= FALL_WINDOW:
            self._bounded_at = float("-inf")
            believed = not overuse and below and (grew or fb.loss >= LOSS_LOW)
            overuse = overuse or believed
        if overuse:
            self._fell_at = float("-inf")  # confirmed: one fall, one cut
            self._standing = 0  # and the queue it left is measured afresh
        self.queued = self._queue_reports >= 3
        self.overfull_classes = frozenset(
            c for c, delay in enumerate(fb.queue_delays) if delay > OVERFULL_BY[min(c, len(OVERFULL_BY) - 1)])
        over = bool(self.overfull_classes) if fb.queue_delays else fb.queue_delay > QUEUE_OVERFULL
        self._overfull_reports = self._overfull_reports + 1 if over else 0
        # a class whose packets our pacer dropped is overfull at once: what it sends waited longer than it may, so
        # its keyframes do not pass (the queue then restarts younger, and never stood over its bound for three
        # periods: a 300 kbit/s classroom's screen keyframes were dropped and repaired every 1.5-2 s for 15 s, each
        # repair a keyframe of every classroom, while its queue swung between 0.6 and 2.9 s)
        self.overfull_classes |= fb.dropped_classes
        self.overfull = self._overfull_reports >= 3 or bool(fb.dropped_classes)
        self.congested = lossy or overuse
        # the reports of the next periods still describe what was sent before the last cut (lasting loss), or the
        # overflow of an upgrade just undone (its link's queue drains: loss, a REMB still low)
        recut = lossy and not overuse and now - self._cut_at < CUT_SPACING or (
            self.congested and now - self._undone_at < FALL_WINDOW)
        self._calm = 0 if self.congested else self._calm + 1
        # some loss, or a queue growing on the link while its REMB is below what we send: the estimate holds (the
        # loss-based half of Google's congestion control holds between LOSS_LOW and LOSS_HIGH), and what we send
        # does not count as carried
        held = fb.loss >= LOSS_LOW or (grew and below)
        if remb is not None and not self.heard:  # its first REMB: the start was a guess, the receiver knows (a
            self.heard = True  # 300 kbit/s classroom's first said 171 kbit/s; START_ESTIMATE held until loss cut it)
            if remb < self.estimate:
                self.estimate = max(MIN_ESTIMATE, HEADROOM * remb)
        if self.congested:
            self._sent.clear()
        elif held:
            pass
        elif self._calm >= CALM_PERIODS:
            self._sent.append(fb.sent)
            del self._sent[:-SENT_PERIODS]
        if recut:
            estimate = self.estimate  # reports still describing what was sent before the last cut
        elif self.congested:
            self._cut_at = now
            # what the link delivered, or what its confirmed REMB says (at most a halving: FALL_CUT), whichever is
            # less
            estimate = float("inf")
            if overuse and remb is not None:
                estimate = remb if believed else max(
                    remb, FALL_CUT * min(self.estimate, max(sent for _, sent in recent)))
                if estimate > remb:
                    self._bounded_at = now
            if lossy:
                estimate = min(estimate, fb.sent * (1 - fb.loss) * LOSS_MARGIN)
            estimate = min(estimate, self.estimate)  # congestion never raises it (a burst's loss, say)
            if probing:  # the latest upgrade failed: what the link carried before it stands
                floor = min(self.estimate, self._carried_before_up)
                if estimate < floor:
                    estimate = floor
                    self._bounded_at = now  # looked at again FALL_WINDOW later, as a bounded fall is
                self._undo = True
            if estimate < self.estimate:
                self._lowered_at = now
        else:
            carried = min(self._sent) if len(self._sent) == SENT_PERIODS else 0.0
            # what we sent counts as carried only where the receiver says it got it (before its first REMB, an
            # unpaced burst into a small link's queue looks carried until the losses are reported)
            carried = min(carried, remb / OVERUSE) if remb is not None else 0.0
            grows = self._calm >= CALM_PERIODS and not held
            target = max(carried, remb or 0.0)
            if remb is not None and remb < START_ESTIMATE:  # a weak classroom's link: HEADROOM x its REMB at most
                target = min(target, HEADROOM * remb)  # (a lower REMB cuts only when confirmed)
            estimate = max(self.estimate, target) if grows else self.estimate
        self.estimate = max(MIN_ESTIMATE, estimate)
        return self.estimate

    @property
    def at_rest(self) -> bool:
        """at_rest: another period of the same feedback without media (nothing sent, no REMB above the estimate, no
        loss, no round trip but the same) changes nothing but the round-trip window's times: the link is calm and
        not weak, no slot is chosen, and the periods that count what was sent hold only the zeros of periods
        without media (``sfu.downlinks.Downlinks`` then skips its allocation: ``hold_round_trip`` is what is left
        of ``update``)."""
        return (not self.congested and not self.queued and not self.overfull and not self.overfull_classes
                and not self.choice and self._loss_reports == 0 and self._queue_reports == 0
                and self._overfull_reports == 0 and self._standing == 0 and self._calm >= CALM_PERIODS
                and len(self._sent) == SENT_PERIODS and not any(self._sent) and not self.weak)

    def hold_round_trip(self, rtt: float | None, now: float) -> None:
        """hold_round_trip: what ``update`` does with a period's round trip `rtt` when the rest of its feedback
        changes nothing (``at_rest``): the window of round trips keeps it (its least is what a rise is measured
        from once media flows again)."""
        self._queue_grew(rtt, now)

    @property
    def weak(self) -> bool:
        """weak: the link is congested, video waits in its pacer, or congestion cut its estimate less than
        ``WEAK_WINDOW`` ago: its subscriber's keyframe requests can wait for the track's gate
        (``sfu.producer.Producer.request_keyframe``), a link that stays calm never counts. A congestion that left
        the estimate where it was (our own queue behind a join's keyframes, with the REMB above the estimate) ends
        with it: an uncapped classroom's one such period at its join made its climb to the top layer wait 26 s for
        the gate, which the weak classrooms' switches kept empty (the full suite beside stress-ng)."""
        return self.congested or self.queued or self.clock() - self._lowered_at < WEAK_WINDOW

    def _queue_grew(self, rtt: float | None, now: float) -> bool:
        """_queue_grew: `rtt` is ``RTT_RISE`` above the least round trip of the last ``RTT_WINDOW`` seconds.

        The window keeps only the round trips no later one undercuts (a later, smaller one is the least for as long
        as they would be in the window), so the least is its first: a link's window held 60 and each period took
        the least of them (at N = 20, 1,200 a second)."""
        rtts = self._rtts
        while rtts and now - rtts[0][0] > RTT_WINDOW:
            rtts.popleft()
        if rtt is None:
            return False
        least = rtts[0][1] if rtts else rtt
        while rtts and rtts[-1][1] >= rtt:
            rtts.pop()
        rtts.append((now, rtt))
        return rtt - least >= RTT_RISE

    def decide(self, demands: Sequence[Demand]) -> dict[str, Option | None]:
        """decide returns every video slot's option (None: paused) for the current estimate, with hysteresis.

        A slot seen for the first time gets what fits the estimate at once (the others stepping down to their share
        if their current choices leave it less). While the link is congested, slots above what fits step down at
        once (lowest priority first, by ``allocate``). While video waits in our pacer longer than its class may
        (``OVERFULL_BY``; *overfull*: the choices send more than the pacer carries, whatever their rates say), one slot
        steps down one option every ``UP_INTERVAL`` (a slot above its smallest option, least important first; then a
        pause, the presenter's camera last; never the last slot sending: what waits then is the paused slots'); the
        estimate stays. Otherwise, at most one slot every ``UP_INTERVAL`` moves up: to what the estimate vouches for
        (``HOLD_AFTER_DOWN`` after a downgrade) or, after ``hold`` (which a failed probe doubles), when it vouches
        for nothing more, one option up: that step is the probe (the pacer keeps it within ``PACING_FACTOR`` x the
        estimate, so a probe the link cannot carry only delays video, never audio). One probe at a time: the next
        waits until the estimate covers what is sent (the receiver confirmed the last one); probes stacked every
        ``UP_INTERVAL`` on a link whose losses were not reported yet had a 300 kbit/s classroom sent twice its link.
        And a small one: at most ``PROBE_STEP`` x the estimate above it (a bigger step waits for the estimate to
        grow by itself), unless it resumes a paused slot at its smallest option (its REMB alone would never bring it
        back). No upgrade while the subscriber's REMB is below ``OVERUSE`` x what we send (*unconfirmed*: it does
        not get what is sent, or sees a queue; a 1 Mbit/s classroom's screen was upgraded while its REMB said 686
        kbit/s of the 1 Mbit/s we sent, and the link overflowed). A failed upgrade (congestion within
        ``FAILED_UP_WINDOW`` of it, on a link that carried something before it) is undone: every slot goes back to
        what it was sent before it; and until the doubled hold has passed,
        what the estimate vouches for waits too when it would send ``RETRY_SHARE`` of what failed or more (the REMB
        that vouched for it says so again soon).
        """
        now = self.clock()
        top = self._at_top(demands)
        if top is not None:  # what the rest would decide, without its sorting and sharing (``_at_top``)
            if now - self.last_down > 4 * HOLD_MAX:
                self.hold = HOLD_AFTER_DOWN
            self.choice = top
            self.steady += 1
            return top
        demands = [self._keep(fitting(d, self.estimate)) for d in demands]
        target = allocate(self.estimate, demands)
        # a link whose every video slot is paused waits at most HOLD_SILENT to probe: its REMB measures video and
        # stays within 1.5 x what it receives, so without video it cannot grow, and only a probe (the smallest
        # option, ~50 kbit/s) shows the link back (a 300 kbit/s classroom's estimate, cut to 46 kbit/s on a starved
        # host, kept its presenter camera paused 35 s by a doubled hold)
        silent = bool(self.choice) and all(option is None for option in self.choice.values())
        may_upgrade = now - self.last_up >= UP_INTERVAL and now - self.last_down >= (
            min(self.hold, HOLD_SILENT) if silent else self.hold)
        # what the estimate vouches for is no probe: it waits only the first hold, not the one a failed probe doubled
        # (a classroom whose estimate covered the presenter's smallest option stayed paused for the doubled hold)
        may_vouch = now - self.last_up >= UP_INTERVAL and now - self.last_down >= HOLD_AFTER_DOWN
        new: dict[str, int] = {}
        downgraded = False
        ordered = sorted(demands, key=lambda d: (d.priority, d.slot not in UPGRADE_FIRST))
        over: list[Demand] = []  # congested: the slots above their target
        undo, self._undo = self._undo and self.congested and bool(self._before_up), False
        for d in ordered:
            if d.slot not in self.choice:
                new[d.slot] = target[d.slot]
                continue
            found = self._index(d, self.choice[d.slot])
            current = 0 if found is None else found  # never None: _keep gave it its current option
            new[d.slot] = current
            if self.congested and current > target[d.slot]:
                over.append(d)
        if now - self._undone_at < FALL_WINDOW:
            over = []  # the overflow of the upgrade just undone, still in the reports (``update``)
        if undo and self._carried_before_up > 0:
            # the latest upgrade failed: every slot goes back to what it was sent before it, which the link carried
            # calmly (``update`` kept the estimate there), whatever the REMB after the overflow says (one that
            # resumed a slot from nothing carried, with nothing to go back to, steps down as any congestion does)
            for d in ordered:
                if d.slot in self._before_up and d.slot in self.choice:
                    back = self._index(d, self._before_up[d.slot])
                    if back is not None and back < new[d.slot]:
                        new[d.slot] = back
                        downgraded = True
                        self._undone_at = now
            if downgraded:  # undone: only a slot that came after it steps down as congestion has it
                over = [d for d in over if d.slot not in self._before_up]
        if over:
            # they step down to what the estimate leaves beside the others *as they are sent*, never below their
            # target: the target reckons every slot at its own, and a slot below it (the screen, upgraded first
            # there) is not raised by a downgrade (measured: a 1 Mbit/s classroom's presenter camera fell from its
            # 960x540 layer to its 240x135 one, the share of a screen upgrade that never came; 270p fitted)
            kept = sum(d.options[new[d.slot]].bitrate for d in demands if d not in over and new[d.slot] >= 0)
            share = allocate(self.estimate - kept, over)
            for d in over:
                stepped = min(new[d.slot], max(share[d.slot], target[d.slot]))
                downgraded |= stepped < new[d.slot]
                new[d.slot] = stepped
        if self.overfull and not downgraded and now - self.last_down >= UP_INTERVAL:
            # video keeps waiting in our own pacer for longer than it may: what the choices really send (keyframes
            # above the layers' measured rates, a layer's rate rising) exceeds the pacing rate, however right the
            # estimate; the least important slot that sends steps down once (every UP_INTERVAL while it lasts)
            # first a step within a slot's options (the reverse of the upgrade order), then a pause (the reverse of
            # the order minimums are given in: the presenter's camera last), never the last slot sending; a slot
            # above its lowest spatial layer steps to the layer below (``_step_down``)
            senders = [d for d in ordered if d.slot in self.choice and new[d.slot] >= 0]
            # the slots whose video waits: the pacer sends the cameras' before the screen's (``sfu.pacer``), so
            # when only the screen's waits, stepping a camera down relieves nothing (measured: a 1 Mbit/s
            # classroom's presenter camera and floor were paused while its screen's keyframes kept waiting)
            waiting = [d for d in senders if pace_class(d.slot) in self.overfull_classes] or senders
            step = next((d for d in reversed(waiting) if new[d.slot] > 0), None)
            if step is None and len(senders) > 1:
                step = max(waiting, key=lambda d: (d.priority, d.slot not in MINIMUM_FIRST))
            if step is not None:
                new[step.slot] = self._step_down(step, new[step.slot])
                downgraded = True
        if any(d.slot not in self.choice for d in demands) and self.choice:
            # a slot appeared beside others (the floor was given): what fits it was reckoned with the others at
            # their targets, so if their current choices leave it less, they take their targets too
            cost = sum(d.options[new[d.slot]].bitrate for d in demands if new[d.slot] >= 0)
            if cost > self.estimate:
                new = {d.slot: min(new[d.slot], target[d.slot]) if d.slot in self.choice else target[d.slot]
                       for d in demands}
        upgraded = False
        # paused slots resume first, in the order minimums are given (the presenter's camera before the screen: a
        # weak link resumed its screen first and its presenter camera an upgrade interval later, 7.5 s paused in
        # all), then the others in the upgrade order
        ordered_up = sorted(ordered, key=lambda d: (new[d.slot] >= 0, d.priority, d.slot not in (
            MINIMUM_FIRST if new[d.slot] < 0 else UPGRADE_FIRST)))
        before = dict(self.choice)
        if not self.congested and not self.queued and not downgraded and may_vouch and not self.unconfirmed:
            def bits(d: Demand, i: int) -> float:
                return d.options[i].bitrate if i >= 0 else 0.0

            sending = sum(bits(d, new[d.slot]) for d in demands)
            # what the estimate vouches for, but what sends near what failed lately waits that failure's hold
            retrying = self._failed_cost > 0 and now - self.last_down < self.hold
            vouched = next((d for d in ordered_up if d.slot in self.choice and target[d.slot] > new[d.slot] and not (
                retrying and sending - bits(d, new[d.slot]) + bits(d, target[d.slot])
                >= RETRY_SHARE * self._failed_cost)), None)
            if vouched is not None:
                new[vouched.slot] = target[vouched.slot]
                upgraded = True
            elif may_upgrade and sending <= self.estimate:
                # one probe at a time, only while what is sent fits the estimate (the previous probe confirmed),
                # and a small one: at most PROBE_STEP x the estimate above it
                probe = next((d for d in ordered_up if d.slot in self.choice and new[d.slot] < len(d.options) - 1
                              and (new[d.slot] < 0 or sending + d.options[new[d.slot] + 1].bitrate
                                   - d.options[new[d.slot]].bitrate <= self.estimate * (1 + PROBE_STEP))), None)
                if probe is not None:
                    new[probe.slot] += 1
                    upgraded = True
        if downgraded:
            if now - self.last_up < FAILED_UP_WINDOW and self.last_down < self.last_up:
                # the last upgrade overflowed the link (its first downgrade; the next ones of the same episode
                # are the same failure): wait longer
                self.hold = min(HOLD_MAX, self.hold * 2)
                self._failed_cost = self._up_cost
            self.last_down = now
            self.downgrades += 1
        elif upgraded:
            self.last_up = now
            self.upgrades += 1
            self._before_up = before
            self._carried_before_up = min(self._sent) if len(self._sent) == SENT_PERIODS else 0.0
            self._up_cost = sum(d.options[new[d.slot]].bitrate for d in demands if new[d.slot] >= 0)
        if not downgraded and now - self.last_down > 4 * HOLD_MAX:
            self.hold = HOLD_AFTER_DOWN  # a long calm: back to the first hold
        by_slot = {d.slot: d for d in demands}
        self.choice = {slot: by_slot[slot].options[i] if i >= 0 else None for slot, i in new.items()}
        return self.choice

    def _at_top(self, demands: Sequence[Demand]) -> dict[str, Option | None] | None:
        """_at_top: every slot's choice when each is sent its best option and the link is neither congested nor
        overfull, None otherwise. Then ``decide`` moves nothing: no downgrade (only congestion or an overfull
        pacer steps down), no upgrade (nothing is above), no slot new; each keeps its best option, with this
        period's measured rate. The best option's keyframe must fit the estimate (``fitting``), else it is not
        among the options ``decide`` weighs. A steady room of 20 classrooms ran the whole of ``decide`` for each
        of them every period to find this."""
        if self.congested or self.overfull or not demands:
            return None
        choice = self.choice
        limit = self.estimate * BURST_SECONDS
        out: dict[str, Option | None] = {}
        for d in demands:
            current = choice.get(d.slot)
            if current is None or not d.options:
                return None
            best = d.options[-1]
            if (best.spatial, best.temporal) != (current.spatial, current.temporal) or (
                    len(d.options) > 1 and best.burst > limit):
                return None
            out[d.slot] = best
        return out

    @staticmethod
    def _step_down(d: Demand, current: int) -> int:
        """_step_down: the option an overfull pacer moves `d` to from its option `current` (-1: paused): the best
        option of the spatial layer below when it has one, else one option down. What stands in the pacer is mostly
        keyframes (the layers' measured rates fit the estimate), and a keyframe is all in the base temporal layer:
        a temporal step leaves them whole (measured: a 300 kbit/s classroom's pacer held video 2 s, and dropped it,
        for 8 s while its screen's 1366x768 layer stepped down one temporal layer at a time; its presenter camera,
        behind it in the queue, stalled as long)."""
        if current <= 0:
            return current - 1
        spatial = d.options[current].spatial
        below = [i for i in range(current) if d.options[i].spatial < spatial]
        return below[-1] if below else current - 1

    def _keep(self, d: Demand) -> Demand:
        """_keep: `d`, with the option its slot is sent kept first among its options when only layers above it are
        measured this period (see ``_index``): a lower layer that skipped a period moves nothing; one that stopped
        is left by the usual upgrade (what the estimate vouches for, or a probe)."""
        option = self.choice.get(d.slot)
        if option is None or not d.options or self._index(d, option) is not None:
            return d
        return Demand(d.slot, d.priority, (option, *d.options))

    @staticmethod
    def _index(d: Demand, option: Option | None) -> int | None:
        """_index: the position of `option` among `d`'s options, -1 for None (paused).

        When it is not among them (its layer was not measured this period: the publisher's encoder skipped its
        frames for a while, or stopped that layer), the best option *below* it in quality (fewer temporal layers of
        the same spatial layer, or a lower spatial layer), never one of a higher layer, which would be an upgrade
        past every check of ``decide``; None when only higher layers are measured (``_keep`` then keeps it).
        Measured before: a 300 kbit/s classroom's presenter camera, sent its lowest layer, was moved to the top
        one's base temporal layer (~300 kbit/s: by its cost, the nearest option) when the lowest skipped a period
        (the publisher's encoder drops frames of a layer over its target), and its screen to its top layer too; its
        pacer's queue then dropped what waited and its video stalled.
        """
        if option is None or not d.options:
            return -1
        below: int | None = None
        for i, o in enumerate(d.options):
            if (o.spatial, o.temporal) == (option.spatial, option.temporal):
                return i
            if _quality(o) <= _quality(option):
                below = i
        return below


def _quality(option: Option) -> tuple[int, int]:
    """_quality: an option's place in the order of quality (spatial layer, then temporal layers; -1: all)."""
    return option.spatial, option.temporal if option.temporal >= 0 else len(TEMPORAL_SHARE)


def layer_bitrates(rates: Mapping[int, float], count: int) -> list[float]:
    """layer_bitrates: a track's measured bitrate per spatial layer index (0 for a layer not arriving)."""
    return [rates.get(i, 0.0) for i in range(count)]
