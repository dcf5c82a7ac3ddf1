"""test_consumer_layers: a Consumer's VP8 temporal layers, PictureID and TL0PICIDX rewriting and layer switches
(sfu/consumer.py; the rest of the Consumer in tests/sfu/test_consumer.py)."""

import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from aiortc.rtp import RtpPacket

from sfu import vp8
from sfu.consumer import Consumer, Inbound
from sfu.rewriter import DROP_RUNS
from tests.sfu.consumer_kit import MAKE_PARAMS, Made, Source, maker
from tests.sfu.vp8stream import Vp8Stream


@pytest.fixture(**MAKE_PARAMS)
def make(request: pytest.FixtureRequest) -> Callable[..., Made]:
    return maker(request)


# ------------------------------------------------------------------ VP8: temporal layers, PictureID, layer switches


@dataclass
class Out:
    """Out is one packet as the subscriber reads it: header numbers, descriptor fields and the input's tag."""

    seq: int
    ts: int
    pic: int
    pic_bits: int
    tl0: int
    tid: int
    sync: bool
    tag: int
    data: bytes


def read_out(data: bytes) -> Out:
    packet = RtpPacket.parse(data)
    d = vp8.parse(packet.payload)
    assert d is not None
    tag = int.from_bytes(packet.payload[d.size + 1:d.size + 5], "big")
    return Out(packet.sequence_number, packet.timestamp, d.picture_id, d.picture_id_bits, d.tl0picidx, d.tid,
               d.layer_sync, tag, data)


def check_continuous(out: list[Out]) -> int:
    """check_continuous: packets sent in order, no hole; one PictureID per frame, +1 per frame; TL0PICIDX +1 per
    TL0 frame, kept by the frames above it; PictureIDs always 15 bits. Returns the number of frames."""
    frames = 0
    for before, after in zip(out, out[1:], strict=False):
        assert after.seq == (before.seq + 1) & 0xFFFF, f"hole or repeat: {before.seq} then {after.seq}"
        if after.ts == before.ts:
            assert (after.pic, after.tl0) == (before.pic, before.tl0), "one frame, one PictureID and TL0PICIDX"
            continue
        frames += 1
        assert after.pic == (before.pic + 1) & 0x7FFF, f"PictureID {before.pic} then {after.pic}"
        if after.tl0 >= 0 and before.tl0 >= 0:
            assert after.tl0 == ((before.tl0 + 1) & 0xFF if after.tid == 0 else before.tl0), "TL0PICIDX"
    assert all(o.pic_bits == 15 for o in out)
    return frames


class LayerSource(Source):
    """LayerSource is a Producer as a Consumer sees it, with the SSRC of its packets."""

    def __init__(self, ssrc: int, layer: int = 0) -> None:
        super().__init__(layer)
        self.ssrc = ssrc


def feed_frames(c: Consumer, stream: Vp8Stream, count: int) -> list[list[Inbound]]:
    frames = [stream.frame() for _ in range(count)]
    for frame in frames:
        for p in frame:
            c.forward(p)
    return frames


def test_temporal_layers_are_filtered_at_frame_starts_without_holes(make: Callable[..., Made]) -> None:
    c, _, wire = make()
    c.switch(LayerSource(5))  # type: ignore[arg-type]
    stream = Vp8Stream(5, random.Random(1), max_packets=3)
    c.max_temporal = 0
    assert c.max_temporal == 0
    frames = feed_frames(c, stream, 40)
    out = [read_out(d) for d in wire.sent]
    assert {o.tid for o in out} == {0}
    assert [o.tag for o in out] == [int.from_bytes(p.payload[-4:], "big") for f in frames for p in f
                                    if vp8.parse(p.payload).tid == 0]  # type: ignore[union-attr]
    n = len(wire.sent)
    c.max_temporal = None  # up: only where the decoder can follow (a layer sync frame; a keyframe)
    feed_frames(c, stream, 40)
    ups = [o for o in map(read_out, wire.sent[n:]) if o.tid > 0]
    for layer in (1, 2):
        assert next(o for o in ups if o.tid == layer).sync, f"TL{layer} from a frame that is not a sync frame"
    stream.max_packets = 4
    frame = stream.frame()
    while vp8.parse(frame[0].payload).tid != 2 or len(frame) < 2:  # type: ignore[union-attr]
        for p in frame:
            c.forward(p)
        frame = stream.frame()
    c.forward(frame[0])
    c.max_temporal = 1  # down in the middle of a TL2 frame: that frame is sent whole, the next TL2 is not
    for p in frame[1:]:
        c.forward(p)
    feed_frames(c, stream, 20)
    out = [read_out(d) for d in wire.sent]
    tail = out[[o.tag for o in out].index(int.from_bytes(frame[-1].payload[-4:], "big")) + 1:]
    assert tail and {o.tid for o in tail} <= {0, 1}
    assert check_continuous(out) > 40


def test_late_and_retransmitted_packets_keep_their_place_or_are_dropped(make: Callable[..., Made]) -> None:
    c, _, wire = make(rtx=False)
    c.switch(LayerSource(5))  # type: ignore[arg-type]
    c.max_temporal = 0
    seed = 0
    while True:  # a stream whose first two TL0 frames have two packets
        stream = Vp8Stream(5, random.Random(seed), max_packets=2)
        frames = [stream.frame() for _ in range(12)]
        if len(frames[0]) == len(frames[4]) == 2:
            break
        seed += 1
    held = frames[0][1]
    for frame in frames:
        for p in frame:
            if p is not held:
                c.forward(p)
    c.forward(held)  # late: gets the number kept for it
    c.forward(frames[1][0])  # a retransmission of a dropped TL2 packet: dropped again
    c.forward(frames[4][0])  # a retransmission of a forwarded packet: the same number and bytes
    out = [read_out(d) for d in wire.sent]
    assert out[-1].data == out[1].data and out[-2].tag == int.from_bytes(held.payload[-4:], "big")
    first = out[0].seq
    assert sorted((o.seq - first) & 0xFFFF for o in out[:-1]) == list(range(len(out) - 1))
    assert check_continuous(sorted(out[:-1], key=lambda o: (o.seq - first) & 0xFFFF)) == 2
    for _ in range(DROP_RUNS + 2):  # more runs of drops than remembered: older packets are dropped cleanly
        feed_frames(c, stream, 4)
    n = len(wire.sent)
    c.forward(frames[4][1])
    assert len(wire.sent) == n


def test_picture_id_and_tl0picidx_continue_across_switches(make: Callable[..., Made]) -> None:
    c, _, wire = make()
    rnd = random.Random(3)
    a, b, d = LayerSource(5), LayerSource(6), LayerSource(7)
    streams = {5: Vp8Stream(5, rnd), 6: Vp8Stream(6, rnd, pic_style="aiortc"), 7: Vp8Stream(7, rnd, pic_style="short")}
    c.switch(a)  # type: ignore[arg-type]
    c.max_temporal = 1
    feed_frames(c, streams[5], 30)
    c.switch(b)  # type: ignore[arg-type]  # a hard switch: waits for b's keyframe
    feed_frames(c, streams[6], 10)
    streams[6].force_key = True
    feed_frames(c, streams[6], 150)  # aiortc's PictureID crosses 2^15 and is sent in 7 bits below 128
    assert c.switch_layer(d)  # type: ignore[arg-type]
    for _ in range(20):
        for ssrc in (6, 7):
            for p in streams[ssrc].frame():
                c.forward(p)
    streams[7].force_key = True
    for _ in range(200):  # a 7-bit counter wraps, the output keeps 15 bits
        for ssrc in (6, 7):
            for p in streams[ssrc].frame():
                c.forward(p)
    out = [read_out(x) for x in wire.sent]
    assert {o.tag >> 24 for o in out} == {5, 6, 7}
    assert check_continuous(out) > 150


def test_retransmissions_resend_the_rewritten_bytes(make: Callable[..., Made]) -> None:
    c, _, wire = make(rtx=False)
    c.switch(LayerSource(5))  # type: ignore[arg-type]
    c.max_temporal = 1
    feed_frames(c, Vp8Stream(5, random.Random(4), pic_style="short"), 12)
    sent = list(wire.sent)
    for data in sent:
        assert c.retransmit(RtpPacket.parse(data).sequence_number)
    off = c._ast_off

    def unstamped(data: bytes) -> bytes:  # a resend carries when it left again (test_nack_without_rtx_...)
        return data[:off] + data[off + 3:]

    # PictureID, TL0PICIDX (and the widened PictureID) as first sent
    assert [unstamped(d) for d in wire.sent[len(sent):]] == [unstamped(d) for d in sent]


def test_switch_layer_keeps_the_current_source_until_the_targets_keyframe(make: Callable[..., Made]) -> None:
    c, _, wire = make()
    rnd = random.Random(5)
    low, high = LayerSource(5), LayerSource(6)
    streams = {5: Vp8Stream(5, rnd), 6: Vp8Stream(6, rnd)}
    streams[6].frame()  # its keyframe went before: delta frames come next
    switched: list[Consumer] = []
    c.on_switched = switched.append
    assert c.switch_layer(low)  # type: ignore[arg-type]  # nothing forwarded yet: a plain switch
    assert c.source is low and c.wants == (low,)
    feed_frames(c, streams[5], 5)
    assert c.switch_layer(high)  # type: ignore[arg-type]
    assert c.wants == (low, high) and c.pending_source is high and high.keyframes == 1
    for _ in range(6):  # the target's delta frames wait, the current source goes on
        for ssrc in (5, 6):
            for p in streams[ssrc].frame():
                c.forward(p)
    assert {read_out(x).tag >> 24 for x in wire.sent} == {5} and not switched
    streams[6].force_key = True
    for _ in range(6):
        for ssrc in (6, 5):  # the old source's packets after the switch are ignored
            for p in streams[ssrc].frame():
                c.forward(p)
    assert switched == [c] and c.source is high and c.wants == (high,)
    out = [read_out(x) for x in wire.sent]
    assert [o.tag >> 24 for o in out][-1] == 6 and out[-1].tid >= 0
    check_continuous(out)
    assert c.switch_layer(low) and c.switch_layer(high)  # type: ignore[arg-type]  # asked back: cancelled
    assert c.wants == (high,)
    assert c.switch_layer(low) and c.switch(LayerSource(9)) and c.wants[0] is not low  # type: ignore[arg-type]


def test_a_switch_down_relieves_at_once_and_waits_for_the_tracks_keyframe(make: Callable[..., Made]) -> None:
    """A switch down of a layered VP8 slot cuts the current layer to its base temporal layer at once (no
    keyframe needed) and asks the target for an optional keyframe (the track's gate may hold it); the wanted
    temporal layers come back with the switch. Without temporal layers the request cannot wait."""
    c, _, wire = make()
    rnd = random.Random(8)
    low, high = LayerSource(5, layer=0), LayerSource(6, layer=1)
    streams = {5: Vp8Stream(5, rnd), 6: Vp8Stream(6, rnd)}
    streams[5].frame()  # its keyframe went before: delta frames come next
    c.temporal_relief = True
    c.switch(high)  # type: ignore[arg-type]
    feed_frames(c, streams[6], 8)
    assert {read_out(x).tid for x in wire.sent} == {0, 1, 2}
    assert c.switch_layer(low)  # type: ignore[arg-type]
    assert (low.keyframes, low.optional) == (1, 1)
    before = len(wire.sent)
    for _ in range(12):  # the target's keyframe is held back: the current layer goes on, base layer only
        for ssrc in (6, 5):
            for p in streams[ssrc].frame():
                c.forward(p)
    relieved = [read_out(x) for x in wire.sent[before:]]
    assert relieved and {o.tid for o in relieved} == {0} and {o.tag >> 24 for o in relieved} == {6}
    streams[5].force_key = True
    before = len(wire.sent)
    for _ in range(12):
        for ssrc in (5, 6):
            for p in streams[ssrc].frame():
                c.forward(p)
    after = [read_out(x) for x in wire.sent[before:]]
    assert {o.tag >> 24 for o in after} == {5} and {o.tid for o in after} == {0, 1, 2}
    check_continuous([read_out(x) for x in wire.sent])
    c.weak = True
    assert c.switch_layer(high) and (high.keyframes, high.optional) == (2, 1)  # type: ignore[arg-type]  # up, weak link
    assert c.switch_layer(low) and c.switch_layer(high) and high.optional == 2  # type: ignore[arg-type]  # (back, again)
    streams[6].force_key = True
    for _ in range(3):
        for ssrc in (5, 6):
            for p in streams[ssrc].frame():
                c.forward(p)
    assert c.source is high
    c.temporal_relief = False
    assert c.switch_layer(low) and (low.keyframes, low.optional) == (2, 1)  # type: ignore[arg-type]  # required
