"""Tests of sfu/layers.py: which simulcast layer each kind of slot forwards."""

from __future__ import annotations

from typing import Any

from sfu.layers import pick_layer
from sfu.producer import Producer, link_layers
from sfu.sink import Sink
from tests.sfu.fakes import FakeReceiver


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def track(clock: Clock, rids: str = "qhf") -> tuple[Producer, ...]:
    layers = tuple(Producer("a", "camera", "video", "video/vp8", FakeReceiver(), clock=clock, rid=rid)  # type: ignore[arg-type]
                   for rid in rids)
    link_layers(layers)
    return layers


def arrive(layers: tuple[Producer, ...], clock: Clock, which: tuple[int, ...]) -> None:
    clock.now += 0.5
    for i in which:
        p = layers[i]
        p.on_fields(100 + i, p.packets + 1, 0, 1, b"\x10\x00\x00", 0, 0x7F, 0.0)
    for p in layers:
        p.sample()


def test_grid_takes_the_lowest_arriving_layer_other_slots_and_the_recorder_the_highest() -> None:
    clock = Clock()
    layers = track(clock)
    consumer: Any = object()  # a down Peer's Consumer (anything but a Sink)
    sink = Sink("program-video", "video", lambda *a: None, clock=clock)
    # nothing arrives yet: the rule applies to the negotiated layers
    assert pick_layer(layers[0], "grid-3", consumer) is layers[0]
    assert pick_layer(layers[0], "presenter-video", consumer) is layers[2]
    arrive(layers, clock, (1, 2))  # q missing (e.g. CPU load)
    assert pick_layer(layers[0], "grid-0", consumer) is layers[1]
    assert pick_layer(layers[0], "presenter-video", consumer) is layers[2]
    assert pick_layer(layers[0], "grid-0", sink) is layers[2]  # the recorder: the top layer, whatever its slot
    arrive(layers, clock, (0, 1))
    arrive(layers, clock, (0, 1))
    arrive(layers, clock, (0, 1))  # f stopped more than a second ago (a small capture): h is the top one now
    assert pick_layer(layers[0], "grid-0", consumer) is layers[0]
    assert pick_layer(layers[0], "floor-video", consumer) is layers[1]
    assert pick_layer(layers[0], "program-video", sink) is layers[1]
    sink.close()


def test_a_track_without_layers_fills_every_slot_itself() -> None:
    clock = Clock()
    (only,) = track(clock, "x")
    only.layers = (only,)
    plain = Producer("a", "camera", "video", "video/vp8", FakeReceiver(), clock=clock)  # type: ignore[arg-type]
    for slot in ("grid-0", "presenter-video"):
        assert pick_layer(plain, slot, object()) is plain  # type: ignore[arg-type]
