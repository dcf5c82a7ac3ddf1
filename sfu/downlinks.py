"""downlinks: the room's bandwidth allocation job: each subscriber's estimate, its video slots' layers, its pacer.

``Downlinks`` belongs to one ``Room``. Every ``PERIOD`` seconds (a job of the room's ``Ticker``) it reads, per
participant with a down Peer, what its subscriber reported (REMB and receiver-report loss, in its Consumers)
and what we sent it, updates that participant's ``sfu.allocator.Downlink``, sets the pacing rate of its down
transport (``PACING_FACTOR`` x the estimate) and decides each video slot's option: which spatial layer of
the source track, up to which temporal layer, or paused. When a choice changes it asks the room to
reassign (``on_change``); the room's ``_reassign`` then calls ``apply`` for each video slot the plan fills,
which turns the choice into the layer Producer to forward and the slot's state (``live`` or
``weak-network``).

The recorder's Sinks (in-process, no down Peer) are outside every budget: ``apply`` gives them the top
arriving layer. Audio is never allocated: it is always forwarded and paced first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sfu.allocator import (
    LOSS_LOW,
    Demand,
    Downlink,
    Feedback,
    Option,
    slot_priority,
    track_options,
)
from sfu.consumer import Consumer
from sfu.pacer import PACING_FACTOR, UNLIMITED
from sfu.participant import Participant
from sfu.producer import Producer

PERIOD = 0.5  # seconds between two allocations
AUDIO_BITRATE = 40_000.0  # bit/s assumed for an audio slot before it has been measured
QUEUE_CONGESTED = 0.25  # seconds: video waiting this long in the pacer means the estimate is too high
SELF_LIMITED = 1.35  # an estimate this far above what we send is capped by our own sending, not by the link


def layers_of(producer: Producer) -> tuple[Producer, ...]:
    """layers_of: the Producers of `producer`'s track, lowest spatial layer first (one without simulcast)."""
    layers: tuple[Producer, ...] | None = getattr(producer, "layers", None)
    return layers if layers else (producer,)


@dataclass
class _Sent:
    """_Sent: a participant's counters at the previous allocation, to turn them into rates."""

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
    _sent: dict[str, _Sent] = field(default_factory=dict)
    _layer_octets: dict[Producer, tuple[float, int]] = field(default_factory=dict)
    _layer_rate: dict[Producer, float] = field(default_factory=dict)
    runs: int = 0

    # ------------------------------------------------------------------ the periodic job

    def tick(self) -> None:
        """tick measures the layers, updates every downlink and reassigns when a choice changed."""
        if not self.enabled:
            return
        self.runs += 1
        now = self.clock()
        self._measure_layers(now)
        changed = False
        for p in list(self.participants.values()):
            consumers = [c for c in p.consumers.values() if isinstance(c, Consumer)]
            if not consumers or p.state != "connected":
                continue
            changed |= self._allocate(p, consumers, now)
        live = {p.id for p in self.participants.values()}
        for pid in [pid for pid in self.links if pid not in live]:
            del self.links[pid]
            self._sent.pop(pid, None)
        if changed:
            self.on_change()

    def _measure_layers(self, now: float) -> None:
        """_measure_layers: each published video layer's bitrate over the last period (0: not arriving)."""
        rates: dict[Producer, float] = {}
        octets: dict[Producer, tuple[float, int]] = {}
        for p in self.participants.values():
            for producer in p.producers.values():
                if producer.kind != "video":
                    continue
                for layer in layers_of(producer):
                    octets[layer] = (now, layer.bytes)
                    before = self._layer_octets.get(layer)
                    if before is not None and now > before[0]:
                        rate = (layer.bytes - before[1]) * 8 / (now - before[0])
                        old = self._layer_rate.get(layer)
                        rates[layer] = rate if old is None or rate == 0 else 0.5 * old + 0.5 * rate
        self._layer_octets = octets
        self._layer_rate = rates

    def layer_rate(self, layer: Producer) -> float:
        """layer_rate: the layer's measured bit/s (0: not arriving, or not measured yet)."""
        return self._layer_rate.get(layer, 0.0)

    def _allocate(self, p: Participant, consumers: list[Consumer], now: float) -> bool:
        link = self.links.get(p.id)
        if link is None:
            link = self.links[p.id] = Downlink(clock=self.clock)
        octets = sum(c.bytes_sent + c.retransmitted_bytes for c in consumers)
        before = self._sent.get(p.id)
        self._sent[p.id] = _Sent(now, octets)
        sent = (octets - before.octets) * 8 / (now - before.at) if before and now > before.at else 0.0
        rembs = [c.remb_bitrate for c in consumers if c.remb_bitrate is not None]
        loss = max((c.fraction_lost for c in consumers if c.kind == "video" and c.packets_sent), default=0.0)
        wire = next((c.wire for c in consumers if c.wire is not None), None)
        estimate = link.update(Feedback(max(rembs) if rembs else None, loss, sent))
        if wire is not None and wire.pacer.queue_delay > QUEUE_CONGESTED and sent > 0:
            link.estimate = estimate = min(estimate, sent * 0.85)  # our own queue grows: the link is full
        if wire is not None:  # no pacing before the subscriber's first estimate: nothing to pace at yet
            wire.pacer.set_rate(estimate * PACING_FACTOR if rembs else UNLIMITED)
        self_limited = bool(rembs) and estimate >= SELF_LIMITED * sent and loss < LOSS_LOW and not (
            wire is not None and wire.pacer.congested)
        demands: list[Demand] = []
        audio = 0.0
        for c in consumers:
            view = p.slot_view.get(c.slot)
            if view is None or view[2] not in ("live", "weak-network"):
                continue
            if c.kind == "audio":
                audio += AUDIO_BITRATE
                continue
            track = self._track(view)
            if track is None:
                continue
            rates = [self.layer_rate(layer) for layer in layers_of(track)]
            demands.append(Demand(c.slot, slot_priority(c.slot),
                                  track_options(rates, self.temporal, lowest_only=c.slot.startswith("grid-"))))
        before_choice = dict(link.choice)
        choice = link.decide(audio, [d for d in demands if d.options], self_limited)
        for d in demands:
            if not d.options and d.slot in before_choice:  # nothing measured yet: keep what it had
                choice[d.slot] = before_choice[d.slot]
        return choice != before_choice

    def _track(self, view: tuple[str | None, str | None, str]) -> Producer | None:
        owner = self.participants.get(view[0]) if view[0] else None
        return owner.producers.get(view[1]) if owner is not None and view[1] else None

    # ------------------------------------------------------------------ what _reassign asks

    def apply(self, viewer: Participant, slot: str, track: Producer, target: Any) -> tuple[Producer | None, str]:
        """apply: for `viewer`'s video `slot` filled by `track`, the layer to forward and the slot's state.

        `target` is the slot's Consumer or Sink. A Sink (the recorder) gets the top arriving layer; a slot not
        yet allocated gets the lowest layer for a grid tile and the top one otherwise until the first decision.
        """
        layers = layers_of(track)
        if not isinstance(target, Consumer) or not self.enabled:
            return self._top(layers), "live"
        link = self.links.get(viewer.id)
        if link is None or target.slot not in link.choice:
            target.max_temporal = -1
            return (layers[0] if target.slot.startswith("grid-") else self._top(layers)), "live"
        option: Option | None = link.choice[target.slot]
        if option is None:
            return None, "weak-network"
        target.max_temporal = option.temporal
        return layers[min(option.spatial, len(layers) - 1)], "live"

    def _top(self, layers: tuple[Producer, ...]) -> Producer:
        """_top: the highest layer arriving (the highest layer when none is measured yet)."""
        for layer in reversed(layers):
            if self.layer_rate(layer) > 0:
                return layer
        return layers[-1]
