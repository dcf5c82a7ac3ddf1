"""downlinks: the room's bandwidth allocation job: each subscriber's estimate, its video slots' layers, its pacer.

``Downlinks`` belongs to one ``Room``. Every ``PERIOD`` seconds (a job of the room's ``Ticker``) it reads, per
participant with a down Peer, what its subscriber reported (REMB and receiver-report loss, in its Consumers) and
what we sent it, updates that participant's ``sfu.allocator.Downlink``, sets the pacing rate of its down
transport (``PACING_FACTOR`` x the video estimate, at least ``MIN_PACING_RATE`` unless weak, plus its audio) and decides
each video slot's option: which spatial layer of the source track, up to which temporal layer, or paused. When a
choice changes it asks the room to reassign (``on_change``); the room's ``_reassign`` then calls ``apply`` for
each video slot the plan fills, which turns the choice into the layer Producer to forward and the slot's state
(``live`` or ``weak-network``).

A link *at rest* (no slot has a source, nothing chosen, calm: ``Downlink.at_rest``) whose subscriber has said
nothing new since (the same reports, NACKs, REMB and slot plan) is not allocated again: another period would change
nothing but the round-trip window's times (``Downlink.hold_round_trip``). A room connected without media then costs
no allocation (measured at N = 20: the job visited every down link every period for nothing).

The recorder's Sinks (in-process, no down Peer) are outside every budget: ``apply`` gives them the top
arriving layer. Audio is never allocated: it is always forwarded and paced first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sfu.allocator import (
    BURST_SECONDS,
    REMB_FALL,
    Demand,
    Downlink,
    Feedback,
    Option,
    slot_priority,
    track_options,
)
from sfu.consumer import Consumer
from sfu.layers import pick_layer
from sfu.pacer import PACING_FACTOR, UNLIMITED, Drains
from sfu.participant import Participant
from sfu.producer import Producer
from sfu.stats import DownlinkStats

PERIOD = 0.5  # seconds between two allocations
_UNALLOCATED = Option(0.0, -1, -1)  # a slot the allocation has no choice for (nothing measured of its track yet)
LOSS_FRESH = 1.5  # seconds a report's loss counts (Chromium reports about once a second)
MIN_LOSS_PACKETS = 20  # the loss of fewer packets than this says nothing
HOLE_SECONDS = 8.0  # seconds a hole our own output made (our pacer's drop, a publisher's loss) may take to show in
# the subscriber's loss or NACKs: it shows once the packets behind it arrive, and those may wait in our pacer
# (sfu.pacer.MAX_WAIT, behind a keyframe), be superseded in turn by the next keyframe, then wait for its next report
# (traced: a 1 Mbit/s classroom NACKed 119 screen packets superseded over the 5.2 s before, while its screen stepped
# down a layer at a time; with 4 s they read as 100 % loss)
RATE_ALPHA = 0.25  # a layer's measured rate: this share of the last period's, the rest of the average before
RATE_ALPHA_SLOW = 0.05  # and its longer average (~10 s): a layer costs the larger of the two (see _measure_layers)
YOUNG_SECONDS = 5.0  # a layer that started arriving this recently: its encoder is still ramping its rate up
YOUNG_RATIO = 2.5  # so it costs at least this x the arriving layer below it (Chromium's simulcast layers: ~2.5-3 x
# each other's rate; a 960x540 layer Chromium started ~10 s late under CPU load measured ~300 kbit/s for a second or
# two and then took ~900: a 1 Mbit/s classroom was moved to it, its pacer queued 1.4 s and dropped its screen's video)
BURST_DECAY = 0.9  # a layer's keyframe burst: the larger of its latest keyframe period's and this x the one before
AUDIO_BITRATE = 40_000.0  # bit/s assumed for an audio slot before it has been measured
PACE_BELOW = 3_000_000.0  # bit/s: a link estimated above this is not paced (its bursts fit)
MIN_PACING_RATE = 200_000.0  # bit/s for video at least, but on a weak link: a small layer's keyframe not held long
SILENCE_SECONDS = 3.0  # a subscriber that said nothing (no report, no NACK) this long while its video was sent: its
# link was cut (Chromium reports about once a second, and NACKs a hole as soon as the packets behind it arrive)
SILENT_PACKETS = 20  # of its video sent meanwhile, at least this many (a slot whose source is quiet is not a cut)
RESUME_GRACE = 3.0  # seconds after its link came back during which its loss does not count: its first reports and
# NACKs count the packets the cut lost (up to 100 %), not its link's capacity


@dataclass
class Reported:
    """Reported: a Consumer's counters when its subscriber's previous report arrived."""

    reports: int
    lost: int
    sent: int
    out_seq: int
    dropped: int = 0  # of `sent`, dropped by our pacer before they left (Consumer.pacer_dropped)


@dataclass
class Holes:
    """Holes: holes our own output made (packets our pacer dropped or superseded, a publisher's upstream loss) that
    the subscriber has not counted yet: each is taken out of the loss (or the NACKs) it reports within
    ``HOLE_SECONDS``. A hole shows only once the packets behind it arrive, which may be a report or a period later
    (a keyframe that superseded older frames may wait a second in the pacer): matched within the same interval only,
    the drops counted in one period and NACKed in the next read as 100 % loss and cut a 300 kbit/s classroom's
    estimate to the floor (measured)."""

    owed: list[tuple[float, int]] = field(default_factory=list)  # (when, holes), oldest first

    def add(self, holes: int, at: float) -> None:
        """add: `holes` more, made by `at`."""
        if holes > 0:
            self.owed.append((at, holes))

    def take(self, seen: int, at: float) -> int:
        """take: of `seen` packets the subscriber counts missing at `at`, how many are holes of ours (taken)."""
        self.owed = [(when, n) for when, n in self.owed if at - when <= HOLE_SECONDS]
        taken = 0
        while self.owed and taken < seen:
            when, n = self.owed[0]
            used = min(n, seen - taken)
            taken += used
            if used == n:
                self.owed.pop(0)
            else:
                self.owed[0] = (when, n - used)
        return taken


def downlink_loss(before: Reported, now: Reported, holes_owed: Holes | None = None,
                  at: float = 0.0) -> tuple[int, int] | None:
    """downlink_loss: (lost, sent) on the subscriber's own link between two of its reports, None without a new
    report or with nothing sent.

    Its reports count every hole in our output, and a packet its publisher lost on the way up (never recovered)
    is a hole we forward, and so is a packet our own pacer dropped after it was numbered (it waited too long, or a
    keyframe superseded it): those holes are our output's sequence advance minus what left, so they are taken out
    (in `holes_owed`, the ones not counted yet are kept for its next reports: ``Holes``). The loss left is the
    subscriber's own link's (a lossy publisher, or our own queue, does not make a classroom look weak).
    """
    if now.reports == before.reports:
        return None
    sent = (now.sent - now.dropped) - (before.sent - before.dropped)  # what left: our pacer's drops are holes too
    # (dropped now, numbered and counted as left before: more than were numbered since, when a keyframe superseded
    # what had waited; they are holes all the same, which its next reports count)
    holes = max(0, ((now.out_seq - before.out_seq) & 0xFFFF) - sent)
    if holes_owed is not None:
        holes_owed.add(holes, at)
    if sent <= 0:
        return None
    reported = max(0, now.lost - before.lost)
    if holes_owed is None:
        lost = max(0, reported - holes)
    else:
        lost = reported - holes_owed.take(reported, at)
    return min(lost, sent), sent


def choice_changed(before: Mapping[str, Option | None], after: Mapping[str, Option | None]) -> bool:
    """choice_changed: a slot appeared or went, was paused or resumed, or changed its layer or temporal cut.

    An option's bitrate is the layer's measured rate, new every period: comparing whole options made every
    period of every downlink reassign the room (``Room._reassign``: the slot plan of every participant), at N =
    20 once per period, for nothing ``apply`` would do differently.
    """
    if before.keys() != after.keys():
        return True
    for slot, option in after.items():
        old = before[slot]
        if (old is None) != (option is None) or (
                old is not None and option is not None
                and (old.spatial, old.temporal) != (option.spatial, option.temporal)):
            return True
    return False


def _signature(p: Participant, consumers: list[Consumer]) -> tuple[Any, ...] | None:
    """_signature: what `p`'s subscriber has said about its slots (reports, NACKs, REMB) and their plan (the room's
    slot view), None when a slot has a source (its link is not at rest)."""
    out: list[Any] = []
    for c in consumers:
        if c.source is not None:
            return None
        out.append((c, c.reports, c.nacks, c.remb_bitrate, p.slot_view.get(c.slot)))
    return tuple(out)


@dataclass
class Heard:
    """Heard: when a subscriber's feedback (reports and NACKs of its slots) last grew, and its video sent then."""

    feedback: int
    at: float
    video_sent: int
    resumed_at: float = float("-inf")  # when its link last came back after a silence


@dataclass
class Sent:
    """Sent: a participant's counters at the previous allocation, to turn them into rates."""

    at: float
    octets: int


@dataclass
class Downlinks:
    """Downlinks: the allocation job of one room (see the module docstring)."""

    participants: Mapping[str, Participant]
    on_change: Callable[[], None]
    temporal: bool = True  # the room's codec has temporal layers (VP8: Chromium sends L1T3)
    enabled: bool = True
    clock: Callable[[], float] = time.monotonic
    links: dict[str, Downlink] = field(default_factory=dict)
    _sent: dict[str, Sent] = field(default_factory=dict)
    _remb: dict[str, int] = field(default_factory=dict)  # each subscriber's REMB at the previous period
    _reported: dict[Consumer, Reported] = field(default_factory=dict)
    _loss: dict[Consumer, tuple[int, int, float]] = field(default_factory=dict)  # lost, sent, when
    _nacked: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # per subscriber: packets NACKed, sent,
    # and its pacer's drops
    _nack_holes: dict[str, Holes] = field(default_factory=dict)  # per subscriber: its pacer's drops not NACKed yet
    _report_holes: dict[Consumer, Holes] = field(default_factory=dict)  # per slot: holes not reported lost yet
    _heard: dict[str, Heard] = field(default_factory=dict)  # per subscriber: its feedback's last growth
    _dropped: dict[str, tuple[int, ...]] = field(default_factory=dict)  # per subscriber: packets its pacer dropped
    # so far, per class (sfu.pacer.pace_class)
    _layer_octets: dict[Producer, tuple[float, int, int, int]] = field(default_factory=dict)  # when, bytes,
    # keyframes, frames
    _layer_rate: dict[Producer, float] = field(default_factory=dict)
    _layer_fast: dict[Producer, float] = field(default_factory=dict)  # the short average (RATE_ALPHA)
    _layer_slow: dict[Producer, float] = field(default_factory=dict)  # the long one (RATE_ALPHA_SLOW)
    _layer_burst: dict[Producer, float] = field(default_factory=dict)
    _layer_fps: dict[Producer, float] = field(default_factory=dict)  # frames per second (RATE_ALPHA_SLOW)
    _layer_start: dict[Producer, float] = field(default_factory=dict)  # since when each layer arrives
    _options: dict[tuple[Producer, bool], tuple[Option, ...]] = field(default_factory=dict)  # this period's
    _rest: dict[str, tuple[tuple[Any, ...], float | None]] = field(default_factory=dict)  # links at rest: what their
    # subscriber had said (``_signature``) and their round trip
    drains: Drains = field(default_factory=Drains)  # one drain timer for the room's pacers
    runs: int = 0
    rested: int = 0  # allocations of links at rest skipped
    resumed: int = 0  # links heard again after a silence (``_resumed``)

    # ------------------------------------------------------------------ the periodic job

    def tick(self) -> None:
        """tick measures the layers, updates every downlink and reassigns when a choice changed."""
        if not self.enabled:
            return
        self.runs += 1
        now = self.clock()
        self._measure_layers(now)
        self._options = {}
        changed = False
        for p in list(self.participants.values()):
            consumers = [c for c in p.consumers.values() if isinstance(c, Consumer)]
            if not consumers or p.state != "connected" or all(c.wire is None for c in consumers):
                # no down connection up yet (a joiner who has not answered, one whose DTLS is not done): nothing
                # to send or hear, and its first allocation once it is up gives every slot what fits (a lecture's
                # 86 classrooms joining were each allocated every period meanwhile)
                continue
            if self._rests(p, consumers, now):
                self.rested += 1
                continue
            changed |= self._allocate(p, consumers, now)
        live = {p.id for p in self.participants.values()}
        for pid in [pid for pid in self.links if pid not in live]:
            del self.links[pid]
            self._sent.pop(pid, None)
            self._remb.pop(pid, None)
            self._nacked.pop(pid, None)
            self._nack_holes.pop(pid, None)
            self._heard.pop(pid, None)
        for pid in [pid for pid in self._rest if pid not in live]:
            del self._rest[pid]
        current = {c for p in self.participants.values() for c in p.consumers.values()}
        for c in [c for c in self._reported if c not in current]:
            del self._reported[c]
            self._loss.pop(c, None)
            self._report_holes.pop(c, None)
        if changed:
            self.on_change()

    def _measure_layers(self, now: float) -> None:
        """_measure_layers: each published video layer's bitrate over the last period (0: not arriving), and its
        keyframe burst: the bits of the last period in which a keyframe arrived (the keyframe and that period's
        other frames), kept as the larger of that and ``BURST_DECAY`` x the one before (a layer's keyframes vary:
        a burst measure that followed each one would offer and withdraw the layer in turn).

        A layer's rate is the larger of its short average (``RATE_ALPHA``: a rise counts within a period or two)
        and its long one (``RATE_ALPHA_SLOW``, ~10 s): a publisher whose encoder starves skips frames of a layer for
        a second or two, and the layer then looked cheap enough to be sent (measured: a 300 kbit/s classroom's
        presenter camera was moved to its 480x270 layer, ~200 kbit/s, on a 168 kbit/s estimate; its pacer then
        held its own camera's video 2 s, dropped it, and the camera stalled 2.8 s).
        A layer that started arriving less than ``YOUNG_SECONDS`` ago costs at least ``YOUNG_RATIO`` x the arriving
        layer below it: its encoder starts it low and ramps it up, and a layer new to the averages has nothing older
        (one back after a pause has its long average). Each layer's frame rate (``layer_fps``) is counted beside."""
        fast: dict[Producer, float] = {}
        slow: dict[Producer, float] = {}
        rates: dict[Producer, float] = {}
        bursts: dict[Producer, float] = {}
        octets: dict[Producer, tuple[float, int, int, int]] = {}
        fps: dict[Producer, float] = {}
        start: dict[Producer, float] = {}
        for p in self.participants.values():
            for producer in p.producers.values():
                if producer.kind != "video":
                    continue
                below = 0.0  # the rate of the arriving layer below
                for layer in producer.layers:
                    octets[layer] = (now, layer.bytes, layer.keyframes_received, layer.frames_received)
                    before = self._layer_octets.get(layer)
                    burst = self._layer_burst.get(layer)
                    old_fps = self._layer_fps.get(layer)
                    if before is not None and now > before[0]:
                        bits = (layer.bytes - before[1]) * 8
                        rate = bits / (now - before[0])
                        old, old_slow = self._layer_fast.get(layer), self._layer_slow.get(layer)
                        if rate == 0:  # not arriving
                            rates[layer] = 0.0
                            if old_slow is not None:
                                slow[layer] = old_slow
                        else:
                            fast[layer] = rate if old is None else RATE_ALPHA * rate + (1 - RATE_ALPHA) * old
                            slow[layer] = rate if old_slow is None else (
                                RATE_ALPHA_SLOW * rate + (1 - RATE_ALPHA_SLOW) * old_slow)
                            rates[layer] = max(fast[layer], slow[layer])
                            frames = (layer.frames_received - before[3]) / (now - before[0])
                            fps[layer] = frames if old_fps is None else (
                                RATE_ALPHA_SLOW * frames + (1 - RATE_ALPHA_SLOW) * old_fps)
                        if layer.keyframes_received != before[2]:
                            burst = max(bits, BURST_DECAY * (burst or 0.0))
                    if burst is not None:
                        bursts[layer] = burst
                    if layer not in fps and old_fps is not None:  # not arriving this period: as it was
                        fps[layer] = old_fps
                    if rates.get(layer, 0.0) > 0:
                        start[layer] = self._layer_start.get(layer, now)
                        if now - start[layer] < YOUNG_SECONDS and below > 0:
                            rates[layer] = max(rates[layer], YOUNG_RATIO * below)
                        below = rates[layer]
        self._layer_start = start
        self._layer_octets = octets
        self._layer_fps = fps
        self._layer_rate = rates
        self._layer_fast = fast
        self._layer_slow = slow
        self._layer_burst = bursts

    def layer_burst(self, layer: Producer) -> float:
        """layer_burst: the bits of the layer's recent keyframes, with their period's other frames (0: none seen)."""
        return self._layer_burst.get(layer, 0.0)

    def layer_fps(self, layer: Producer) -> float:
        """layer_fps: the layer's frames per second over ~10 s (``RATE_ALPHA_SLOW``; 0: not measured yet)."""
        return self._layer_fps.get(layer, 0.0)

    def layer_rate(self, layer: Producer) -> float:
        """layer_rate: the layer's measured bit/s (0: not arriving, or not measured yet)."""
        return self._layer_rate.get(layer, 0.0)

    def _rests(self, p: Participant, consumers: list[Consumer], now: float) -> bool:
        """_rests: `p`'s link was at rest at its last allocation and its subscriber has said nothing new since: what
        the period's allocation would change is done here (the round-trip window, the time base of the rate sent)
        and it is skipped."""
        rest = self._rest.get(p.id)
        if rest is None:
            return False
        if _signature(p, consumers) != rest[0]:
            del self._rest[p.id]
            return False
        self.links[p.id].hold_round_trip(rest[1], now)
        sent = self._sent.get(p.id)
        if sent is not None:
            self._sent[p.id] = Sent(now, sent.octets)
        return True

    def _allocate(self, p: Participant, consumers: list[Consumer], now: float) -> bool:
        link = self.links.get(p.id)
        if link is None:
            link = self.links[p.id] = Downlink(clock=self.clock)
        # one pass over the slots (a period of a room of 20 ran this for every classroom: its cost is the job's)
        video: list[Consumer] = []
        octets = nacked = video_packets = lost = sent_packets = audio = 0
        sourced = False  # a slot has a source
        remb: int | None = None
        rtt: float | None = None
        wire = None
        feedback = 0  # reports and NACKs of its slots so far (``_resumed``)
        for c in consumers:
            if wire is None:
                wire = c.wire
            feedback += c.reports
            bitrate = c.remb_bitrate
            if bitrate is not None and (remb is None or bitrate > remb):
                remb = bitrate
            # every slot's reports, audio's too: audio is never held, so when a video burst has filled the link's
            # queue the audio arriving behind it is most of what the queue drops (measured: a 300 kbit/s classroom
            # lost 5 % of its audio while its video reports said no loss, and nothing cut its estimate)
            counts = self._downlink_loss(c, now)
            if counts is not None:
                lost += counts[0]
                sent_packets += counts[1]
            if c.source is not None:
                sourced = True
            if c.kind == "video":
                video.append(c)
                octets += c.bytes_sent + c.retransmitted_bytes
                nacked += c.nacked
                feedback += c.nacks
                video_packets += c.packets_sent
                r = c.sender.rtt
                if r is not None and (rtt is None or r > rtt):
                    rtt = r
            elif c.source is not None:
                audio += 1
        before = self._sent.get(p.id)
        self._sent[p.id] = Sent(now, octets)
        sent = (octets - before.octets) * 8 / (now - before.at) if before and now > before.at else 0.0
        loss = lost / sent_packets if sent_packets >= MIN_LOSS_PACKETS else 0.0
        # what our own pacer dropped left holes its receiver NACKs: not its link's loss (counted, a 1 Mbit/s
        # classroom's screen NACKed thousands of them, its estimate was cut to the floor and every slot paused);
        # the older frames a keyframe superseded in it too
        pacer_dropped = sum(wire.pacer.dropped_by) + wire.pacer.superseded if wire is not None else 0
        loss = max(loss, self._nack_loss(p.id, nacked, video_packets, pacer_dropped, now))
        if self._resumed(p.id, feedback, video_packets, now, video, link):
            loss = 0.0  # the cut's loss, not its link's capacity
            for c in consumers:
                self._loss.pop(c, None)
        queue_delay = wire.pacer.queue_delay if wire is not None else 0.0
        queue_delays = wire.pacer.queue_delays if wire is not None else ()
        fell = remb is not None and p.id in self._remb and remb < REMB_FALL * self._remb[p.id]
        if remb is not None:
            self._remb[p.id] = remb
        lost_in: frozenset[int] = frozenset()  # the pacing classes whose packets our pacer dropped in the period
        if wire is not None:
            dropped = wire.pacer.dropped_by
            before_dropped = self._dropped.get(p.id, dropped)
            lost_in = frozenset(cls for cls, (a, b) in enumerate(zip(before_dropped, dropped, strict=True)) if b > a)
            self._dropped[p.id] = dropped
        estimate = link.update(Feedback(remb, loss, sent, queue_delay, fell, rtt, queue_delays, lost_in))
        weak = link.weak
        for c in video:  # its keyframe requests can wait for the track's gate (Consumer._on_keyframe)
            c.weak = weak
        if wire is not None:
            if wire.pacer.group is None:
                wire.pacer.group = self.drains
            # paced from the start while it is not known to be fast (a new link's first keyframes must not
            # overflow a 300 kbit/s link before its first report says so): audio first, video at the estimate;
            # not above it on a weak link (MIN_PACING_RATE + the audio sent a 300 kbit/s classroom 280 kbit/s of
            # payload, more than its link once the packets' headers count: its cap dropped 7 %)
            floor = 0.0 if weak else MIN_PACING_RATE
            rate = max(floor, estimate * PACING_FACTOR) + AUDIO_BITRATE * audio
            wire.pacer.set_rate(rate if estimate < PACE_BELOW else UNLIMITED)
        demands: list[Demand] = []
        for c in video:
            view = p.slot_view.get(c.slot)
            if view is None or view[2] not in ("live", "weak-network"):
                continue
            track = self._track(view)
            if track is None:
                continue
            grid = c.slot.startswith("grid-")
            options = self._options.get((track, grid))
            if options is None:  # once per track and period: every classroom's slot of it has the same options
                rates = [self.layer_rate(layer) for layer in track.layers]
                bursts = [self.layer_burst(layer) for layer in track.layers]
                # a camera's frame rate bounds its temporal cuts (a screen's sharpness matters more than its rate)
                fps = [self.layer_fps(layer) for layer in track.layers] if track.source != "screen" else []
                options = self._options[(track, grid)] = track_options(rates, self.temporal, lowest_only=grid,
                                                                        bursts=bursts, frame_rates=fps)
            demands.append(Demand(c.slot, slot_priority(c.slot), options))
        before_choice = dict(link.choice)
        choice = link.decide([d for d in demands if d.options])
        for d in demands:
            if not d.options and d.slot in before_choice:  # nothing measured yet: keep what it had
                choice[d.slot] = before_choice[d.slot]
        if lost_in:  # what waited too long was dropped: decoders wait for a keyframe, asked for the slots of the
            # classes that lost packets (a screen share's dropped packets asked the presenter's camera a keyframe,
            # sent to every classroom) that still send the same spatial layer: one paused (by the overfull step the
            # drop made, or before) asks its own when it resumes, one moved to another layer asks that layer's
            for c in video:
                if c.pace_class not in lost_in:
                    continue
                now_sent = choice.get(c.slot, _UNALLOCATED)
                was_sent = before_choice.get(c.slot, now_sent)  # (a slot new to the allocation: as it is now)
                if now_sent is _UNALLOCATED or (now_sent is not None and was_sent is not None
                                                and now_sent.spatial == was_sent.spatial):
                    c.repair()
        if (not sourced and not demands and sent == 0 and loss == 0 and sent_packets == 0 and link.at_rest
                and (remb is None or remb <= link.estimate) and (wire is None or not wire.pacer.bucket.queued)
                and (signature := _signature(p, consumers)) is not None):
            self._rest[p.id] = (signature, rtt)
        else:
            self._rest.pop(p.id, None)
        return choice_changed(before_choice, choice)

    def _resumed(self, pid: str, feedback: int, video_sent: int, now: float, video: list[Consumer],
                  link: Downlink) -> bool:
        """_resumed: True while `pid`'s link is within ``RESUME_GRACE`` of coming back from a cut (its loss then
        counts the cut's packets). A cut is a silence of ``SILENCE_SECONDS`` or more in its feedback (reports and
        NACKs) while ``SILENT_PACKETS`` of its video or more were sent to it; when the feedback grows again, every
        video slot it receives asks a keyframe (``Consumer.repair``: not optional, so the track's gate does not
        hold it). Without that its decoder waited for Chromium's own request, which comes once its NACKs of the
        cut's packets have failed (measured: 2.2 s after a 10 s cut ended), and then for the gate of a link its
        reports of the cut had made weak: its picture came back 6 s after its link."""
        heard = self._heard.get(pid)
        if heard is None or feedback != heard.feedback:
            resumed_at = heard.resumed_at if heard is not None else float("-inf")
            if (heard is not None and heard.feedback > 0 and now - heard.at >= SILENCE_SECONDS
                    and video_sent - heard.video_sent >= SILENT_PACKETS):  # (a link never heard was not cut: a
                # joiner's first report may come seconds after its first video on a loaded host)
                resumed_at = now
                self.resumed += 1
                for c in video:
                    if link.choice.get(c.slot, True) is not None:
                        c.repair()
            self._heard[pid] = Heard(feedback, now, video_sent, resumed_at)
            heard = self._heard[pid]
        return now - heard.resumed_at < RESUME_GRACE

    def _unallocated(self, link: Downlink, slot: str, track: Producer, target: Consumer) -> Producer:
        """_unallocated: the layer of a slot its link has no choice for yet (it appeared, or came back, since the last
        allocation): the best arriving layer whose measured rate fits what the link's other slots leave of its
        estimate, the lowest when none does or the link is weak. Not ``pick_layer``'s top layer: a screen share
        that came back between two allocations sent a 300 kbit/s classroom its 490 kbit/s layer, and the video
        that waited behind it paused every slot."""
        arriving = track.arriving_layers or track.layers
        if len(arriving) == 1 or slot.startswith("grid-"):
            return pick_layer(track, slot, target)
        target.max_temporal = -1
        if link.weak:
            return arriving[0]
        left = link.estimate - sum(o.bitrate for s, o in link.choice.items() if o is not None and s != slot)
        fits = [layer for layer in arriving if 0 < self.layer_rate(layer) <= left
                and self.layer_burst(layer) <= link.estimate * BURST_SECONDS]
        return fits[-1] if fits else arriving[0]

    def _nack_loss(self, pid: str, nacked: int, sent: int, dropped: int = 0, at: float = 0.0) -> float:
        """_nack_loss: the share of the video sent over the last period that the subscriber reported missing.

        Its receiver reports count a packet that a resend recovered as received, so on a link whose queue
        overflows they show the loss only once resends cannot keep up (seconds later, measured: a 300 kbit/s
        classroom sent twice its link reported no loss for ten seconds); its NACKs show it at once. A packet its
        publisher lost on the way up is NACKed too, and counted: a classroom whose publisher loses a lot may look
        weaker than it is, never stronger. `nacked` and `sent`: the counts of its video slots; `dropped`: the
        packets its pacer dropped so far (they left holes in our output that it NACKs: not its link's loss; those it
        NACKs a period later too: ``Holes``).
        """
        before = self._nacked.get(pid)
        self._nacked[pid] = (nacked, sent, dropped)
        holes = self._nack_holes.setdefault(pid, Holes())
        if before is None:
            return 0.0
        holes.add(dropped - before[2], at)
        new = max(0, nacked - before[0])
        new -= holes.take(new, at)
        if sent - before[1] < MIN_LOSS_PACKETS:
            return 0.0
        return min(1.0, new / (sent - before[1]))

    def _downlink_loss(self, c: Consumer, at: float) -> tuple[int, int] | None:
        """_downlink_loss: (lost, sent) on the subscriber's own link in its latest report about `c`, None when that
        report is older than ``LOSS_FRESH`` (a paused slot's last loss must not count for ever)."""
        reports = c.reports
        before = self._reported.get(c)
        if before is None or reports != before.reports:
            self._reported[c] = now = Reported(reports, c.packets_lost, c.packets_sent, c.last_out_seq,
                                               c.pacer_dropped)
            holes = self._report_holes.setdefault(c, Holes())
            counts = downlink_loss(before, now, holes, at) if before is not None else None
            if counts is not None:
                self._loss[c] = (counts[0], counts[1], at)
        kept = self._loss.get(c)
        return kept[:2] if kept is not None and at - kept[2] <= LOSS_FRESH else None

    def _track(self, view: tuple[str | None, str | None, str]) -> Producer | None:
        owner = self.participants.get(view[0]) if view[0] else None
        return owner.producers.get(view[1]) if owner is not None and view[1] else None

    def stats(self, p: Participant) -> DownlinkStats | None:
        """stats: `p`'s downlink as the allocator sees it, None without one."""
        link = self.links.get(p.id)
        wire = next((c.wire for c in p.consumers.values() if isinstance(c, Consumer) and c.wire is not None), None)
        if link is None or wire is None:
            return None
        pacer = wire.pacer
        return DownlinkStats(
            estimate=round(link.estimate), pacing_rate=round(pacer.rate) if pacer.rate < UNLIMITED else None,
            queue_delay=round(pacer.queue_delay, 3), queued=pacer.sent_queued, queue_dropped=pacer.dropped,
            paused=sum(1 for o in link.choice.values() if o is None), upgrades=link.upgrades,
            downgrades=link.downgrades,
        )

    # ------------------------------------------------------------------ what _reassign asks

    def apply(self, viewer: Participant, slot: str, track: Producer, target: Any,
              state: str) -> tuple[Producer | None, str]:
        """apply: for `viewer`'s `slot` filled by `track` (`state` as the plan says), the layer to forward and the
        slot's state.

        `target` is the slot's Consumer or Sink. A Sink (the recorder) and an audio slot get
        ``sfu.layers.pick_layer``'s layer (the recorder the top arriving one, outside any budget); a video slot of a
        participant without a downlink yet the lowest arriving layer; a video slot its downlink has no choice for
        yet gets what fits (``_unallocated``).
        """
        if not isinstance(target, Consumer) or target.kind != "video" or not self.enabled \
                or viewer.capabilities.relay:  # a cascade link: the top layer, the grid's lowest (docs/sfu.md)
            return pick_layer(track, slot, target), state
        link = self.links.get(viewer.id)
        if link is None:  # its first allocation comes within a period: until then the lowest arriving layer, what
            # a new link's START_ESTIMATE gets (``pick_layer``'s top one sent a 1 Mbit/s classroom joining a lecture
            # the presenter's 960x540 layer at 4 fps for 19 s: its switch down waited for a keyframe of the lowest)
            target.max_temporal = -1
            return (track.arriving_layers or track.layers)[0], state
        if slot not in link.choice:
            return self._unallocated(link, slot, track, target), state
        option: Option | None = link.choice[slot]
        if option is None:
            return None, "weak-network"
        target.max_temporal = option.temporal  # -1: all
        target.temporal_relief = self.temporal  # a switch down can wait for its keyframe, on the base layer
        layers = track.layers
        return layers[min(option.spatial, len(layers) - 1)], state
