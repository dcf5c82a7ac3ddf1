"""Tests of sfu/sink.py and its place in the room (``Room.join(sinks=...)``, ``Room.choose``): an in-process
subscriber in a real room with aiortc publishers and subscribers on 127.0.0.1, no peer connection of its own."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from sfu.codec import is_keyframe_start
from sfu.consumer import COMPILED, Consumer, Inbound
from sfu.errors import SfuError
from sfu.events import Event, ServerOffer, SlotChanged
from sfu.participant import Capabilities
from sfu.plan import grid_sources
from sfu.room import Room
from sfu.sfu import Sfu
from sfu.sink import Sink
from tests.sfu.helpers import BLUE, CAPABILITIES, RED, Client, ColorTrack, join, publish, sfu_config, wait_until

needs_c = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")


@dataclass
class Received:
    """Received: what one Sink handed over: (seq, ts, marker, payload) and the events of its participant."""

    packets: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    closed: int = 0

    def on_packet(self, seq: int, ts: int, marker: int, payload: bytes) -> None:
        self.packets.append((seq, ts, marker, payload))

    async def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_close(self) -> None:
        self.closed += 1


def _continuous(packets: list[tuple[int, int, int, bytes]]) -> bool:
    return all((b[0] - a[0]) & 0xFFFF == 1 for a, b in zip(packets, packets[1:], strict=False))


@pytest.fixture
async def sfu() -> Sfu:
    return Sfu(sfu_config())


async def _room_with_trainer(sfu: Sfu, clients: list[Client], room_id: str) -> tuple[Room, Client]:
    room = await sfu.room(room_id)
    trainer = await join(room, "t", "trainer", decode=False)
    clients.append(trainer)
    await publish(room, trainer, video=ColorTrack(RED))
    return room, trainer


async def test_a_sink_participant_receives_without_a_peer_connection(sfu: Sfu) -> None:
    clients: list[Client] = []
    try:
        room, _ = await _room_with_trainer(sfu, clients, "s1")
        got = {"presenter-video": Received(), "presenter-audio": Received()}
        sinks = {slot: Sink(slot, slot.split("-")[1], r.on_packet, r.on_close) for slot, r in got.items()}
        events = Received()
        await room.join("rec", "recorder", "Ghi hình", Capabilities(), events.on_event, admitted=True, sinks=sinks)
        p = room.participants["rec"]
        assert p.down is None and p.consumers == sinks
        await wait_until(lambda: len(got["presenter-video"].packets) > 60 and len(got["presenter-audio"].packets) > 50)
        video = got["presenter-video"].packets
        assert is_keyframe_start("video/vp8", video[0][3])  # it starts at a keyframe
        assert _continuous(video) and _continuous(got["presenter-audio"].packets)
        assert not any(isinstance(e, ServerOffer) for e in events.events)
        assert SlotChanged("presenter-video", "t", "camera", "live") in events.events
        stats = next(s for s in room.stats().participants if s.participant_id == "rec")
        assert {c.slot for c in stats.consumers} == set(sinks) and all(c.packets_sent > 0 for c in stats.consumers)

        # what the recorder role may not do, and where it never shows
        for refused in (room.give_floor("rec", "t"), room.publish("rec", "v=0\r\n", {})):
            with pytest.raises(SfuError) as error:
                await refused
            assert error.value.code == "forbidden"
        assert "rec" not in {q.id for q in grid_sources(room.participants, room.participants["t"])}

        await room.leave("rec")
        assert [r.closed for r in got.values()] == [1, 1] and all(s.closed for s in sinks.values())
        n = len(video)
        await asyncio.sleep(0.3)
        assert len(video) == n  # nothing after it left
    finally:
        for c in clients:
            await c.close()
        await sfu.close()


async def test_the_owner_chooses_a_slots_source_and_it_switches_at_a_keyframe(sfu: Sfu) -> None:
    clients: list[Client] = []
    try:
        room, _ = await _room_with_trainer(sfu, clients, "s2")
        classroom = await join(room, "c", "classroom", decode=False)
        clients.append(classroom)
        await publish(room, classroom, video=ColorTrack(BLUE))
        got, events = Received(), Received()
        sink = Sink("lecture", "video", got.on_packet)
        await room.join("rec", "recorder", "Ghi hình", Capabilities(), events.on_event, admitted=True,
                        sinks={"lecture": sink})
        await asyncio.sleep(0.3)
        assert got.packets == []  # a slot the room's plan does not know stays empty until chosen

        await room.choose("rec", "lecture", "t", "camera")
        await wait_until(lambda: len(got.packets) > 30)
        assert sink.source is room.participants["t"].producers["camera"]
        classroom_camera = room.participants["c"].producers["camera"]
        asked = classroom_camera.keyframes_requested
        await room.choose("rec", "lecture", "c", "camera")  # the floor is not the classroom's: chosen all the same
        # counted once the switch is done: the room's mailbox runs it, and the trainer's packets received while
        # the choice waited there were still the slot's (the packet at the count taken before was one of them)
        n = len(got.packets)
        await wait_until(lambda: len(got.packets) > n + 30)
        assert classroom_camera.keyframes_requested > asked  # the new source was asked for a keyframe
        assert is_keyframe_start("video/vp8", got.packets[n][3])  # and the slot switched at it
        assert _continuous(got.packets)  # one stream for the owner: no jump in sequence numbers
        assert all(b[1] - a[1] >= 0 for a, b in zip(got.packets, got.packets[1:], strict=False))
        assert SlotChanged("lecture", "c", "camera", "live") in events.events

        await room.choose("rec", "lecture", None)
        await wait_until(lambda: SlotChanged("lecture", None, None, "empty") in events.events)
        with pytest.raises(SfuError) as error:
            await room.choose("rec", "nothing", "t", "camera")
        assert error.value.code == "not-found"
        with pytest.raises(SfuError) as error:
            await room.choose("rec", "lecture", "t", "ears")
        assert error.value.code == "sdp-invalid"
    finally:
        for c in clients:
            await c.close()
        await sfu.close()


@needs_c
async def test_subscribers_keep_the_compiled_fanout_beside_a_sink(sfu: Sfu) -> None:
    clients: list[Client] = []
    try:
        room, _ = await _room_with_trainer(sfu, clients, "s3")
        classroom = await join(room, "c", "classroom", decode=False)
        clients.append(classroom)
        got = Received()
        await room.join("rec", "recorder", "Ghi hình", Capabilities(), got.on_event, admitted=True,
                        sinks={"presenter-video": Sink("presenter-video", "video", got.on_packet)})
        consumer = room.participants["c"].consumers["presenter-video"]
        assert isinstance(consumer, Consumer) and consumer.cslot is not None
        await wait_until(lambda: consumer.cslot.c_sent > 100 and len(got.packets) > 100)
        producer = room.participants["t"].producers["camera"]
        assert producer._slots is not None and None in producer._slots  # the Sink's place: Python serves it
        assert _continuous(got.packets)
    finally:
        for c in clients:
            await c.close()
        await sfu.close()


async def test_a_failing_callback_stays_in_the_sink_and_keyframe_requests_reach_the_source(sfu: Sfu) -> None:
    clients: list[Client] = []
    try:
        room, _ = await _room_with_trainer(sfu, clients, "s4")

        def broken(seq: int, ts: int, marker: int, payload: bytes) -> None:
            raise ValueError("a bug in the owner")

        bad = Sink("presenter-video", "video", broken)
        good = Received()
        await room.join("rec", "recorder", "Ghi hình", Capabilities(), good.on_event, admitted=True,
                        sinks={"presenter-video": bad})
        await room.join("rec2", "recorder", "Ghi hình", Capabilities(), good.on_event, admitted=True,
                        sinks={"presenter-video": Sink("presenter-video", "video", good.on_packet)})
        await wait_until(lambda: bad.errors > 30 and len(good.packets) > 30)  # the fan-out went on
        producer = room.participants["t"].producers["camera"]
        await asyncio.sleep(0.6)  # past the producer's keyframe throttle
        asked = producer.keyframes_requested
        bad.request_keyframe()
        assert producer.keyframes_requested == asked + 1 and bad.keyframe_requests == 1
    finally:
        for c in clients:
            await c.close()
        await sfu.close()


async def test_a_locked_room_admits_a_sink_participant_let_in_and_closing_it_closes_the_sinks(sfu: Sfu) -> None:
    room = await sfu.room("s5")
    got = Received()

    async def noop(event: Event) -> None:
        return None

    await room.join("t", "trainer", "T", CAPABILITIES["trainer"], noop)
    await room.set_locked("t", True)
    sinks = {"presenter-video": Sink("presenter-video", "video", got.on_packet, got.on_close)}
    with pytest.raises(SfuError):
        await room.join("rec", "recorder", "Ghi hình", Capabilities(), noop, sinks=sinks)
    await room.join("rec", "recorder", "Ghi hình", Capabilities(), noop, admitted=True, sinks=sinks)
    await room.close()
    assert got.closed == 1
    await sfu.close()


@dataclass
class FakeSource:
    """FakeSource: the stream filling a Sink's slot, as the Sink sees it (`sfu.consumer.Source`)."""

    participant_id: str
    source: str = "camera"
    keyframes_asked: int = 0
    layer: int = 0
    keyframes_received: int = 0
    sinks: tuple[Any, ...] = ()

    def request_keyframe(self, optional: bool = False) -> bool:
        self.keyframes_asked += 1
        return True


def test_three_hours_of_packets_through_a_sink_across_every_wrap() -> None:
    """Three hours of 30 fps video (two packets a frame, 648 000 packets), sources starting just below the
    16-bit sequence and 32-bit timestamp wraps, a source switch every 20 minutes: every packet reaches the
    callback, the output numbers advance by exactly one (seq) and by the source's step (ts) modulo their
    wraps, and never repeat: an unbounded-integer model follows each packet."""
    now = [0.0]
    out: list[tuple[int, int]] = []
    sink = Sink("program-video", "video", lambda seq, ts, marker, payload: out.append((seq, ts)),
                clock=lambda: now[0])
    sources = [FakeSource(f"p{i}") for i in range(9)]
    forwarded = 0
    for n, src in enumerate(sources):
        sink.switch(src)
        assert src.keyframes_asked == 1  # a new video source is asked for a keyframe at once
        seq, ts = 0xFFFF - 300 - n, 0xFFFFFFFF - 3000 * 20 - n  # both wrap within the first seconds
        first = len(out)
        for frame in range(20 * 60 * 30):  # 20 minutes
            for part in range(2):
                now[0] += 1 / 60
                sink.forward(Inbound(ssrc=100 + n, seq=seq & 0xFFFF, ts=ts & 0xFFFFFFFF, marker=part,
                                     payload=b"\x10abc", keyframe=frame == 0, ntp=0, abs_send_time=0,
                                     audio_level=127))
                seq += 1
                forwarded += 1
            ts += 3000
        tenure = out[first:]
        assert len(tenure) == 20 * 60 * 30 * 2, n
        assert all((b[0] - a[0]) & 0xFFFF == 1 for a, b in zip(tenure, tenure[1:], strict=False)), n
        steps = {(b[1] - a[1]) & 0xFFFFFFFF for a, b in zip(tenure, tenure[1:], strict=False)}
        assert steps == {0, 3000}, (n, steps)
    assert len(out) == forwarded == sink.packets
    assert all((b[0] - a[0]) & 0xFFFF == 1 for a, b in zip(out, out[1:], strict=False))  # switches included
    # model: unwrapped output sequence numbers are consecutive integers from the first one
    unwrapped, top = [], None
    for seq, _ in out:
        top = seq if top is None else top + (((seq - top + 0x8000) & 0xFFFF) - 0x8000)
        unwrapped.append(top)
    assert unwrapped == list(range(unwrapped[0], unwrapped[0] + len(out)))
