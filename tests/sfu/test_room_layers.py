"""VP8 temporal layers through a real room: aiortc publishers sending L1T3, an aiortc subscriber decoding.

Two publishers send VP8 encoded with three temporal layers (libvpx's 0-2-1-2 pattern, packetized with
PictureID, TL0PICIDX, TID and the Y bit as Chromium does; encoded once up front, sent as ``av.Packet``). The
subscriber's slot goes through hard source switches, seamless ``switch_layer`` switches and ``max_temporal``
changes that keep every layer, on the compiled and the Python path: its aiortc decoder never fails, frames
keep coming, and what it shows is the source the slot forwards. (This libvpx build ignores the temporal-layer
reference flags, so its frames cannot be dropped by layer and still decode; that part is checked on the
rewritten numbers in tests/sfu/test_consumer_layers.py, and with Chromium's real L1T3 at integration.)
"""

from __future__ import annotations

import asyncio
import fractions
import logging
from functools import cache
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack

from sfu.consumer import COMPILED, Consumer
from sfu.producer import Producer
from sfu.room import Room
from sfu.sfu import Sfu
from tests.sfu.helpers import Client, join, mean_yuv, publish, sfu_config, wait_until
from tests.sfu.vp8stream import PATTERN, descriptor

pytestmark = pytest.mark.timeout(180)
needs_c = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")

FPS = 30
FRAME_TICKS = 90000 // FPS
LOOP = 64  # frames; keyframes at 0 and 32, group starts, so the looped stream stays valid
RED, BLUE = (200, 30, 30), (30, 30, 200)


@cache
def encode_layers(color: tuple[int, int, int]) -> tuple[tuple[bytes, bool], ...]:
    """encode_layers encodes LOOP frames of `color` with a moving white box in three temporal layers."""
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 160, 120, "yuv420p"
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.bit_rate = 300_000
    ctx.gop_size = 1000
    ctx.options = {
        "ts-parameters": "ts_number_layers=3:ts_target_bitrate=150,225,300:ts_rate_decimator=4,2,1:"
                         "ts_periodicity=4:ts_layer_id=0,2,1,2:ts_layering_mode=3",
        "deadline": "realtime", "lag-in-frames": "0", "cpu-used": "8",
    }
    out: list[tuple[bytes, bool]] = []
    for i in range(LOOP):
        img = np.zeros((120, 160, 3), np.uint8)
        img[:] = color
        x = (i * 5) % 140
        img[40:80, x:x + 20] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        if i % 32 == 0:
            frame.pict_type = av.video.frame.PictureType.I
        out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(None)]
    assert len(out) == LOOP and [i for i, (_, key) in enumerate(out) if key] == [0, 32]
    return tuple(out)


class TemporalPacker:
    """TemporalPacker packetizes the frames as Chromium does with L1T3: PictureID (15 bits), TL0PICIDX, TID and Y
    (a TL1/TL2 frame that references only TL0: frames 1 and 2 of libvpx's group of four)."""

    def __init__(self) -> None:
        self.pic = 0x7FF0  # crosses the 15-bit wrap early
        self.tl0 = 0xFC

    def pack(self, packet: av.Packet) -> tuple[list[bytes], int]:
        index = int(packet.pts or 0) // FRAME_TICKS
        position = index % 4
        tid = PATTERN[position]
        if tid == 0:
            self.tl0 = (self.tl0 + 1) & 0xFF
        data = bytes(packet)
        chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)]
        payloads = [descriptor(start=i == 0, pic=self.pic, tl0=self.tl0, tid=tid, sync=position in (1, 2)) + chunk
                    for i, chunk in enumerate(chunks)]
        self.pic = (self.pic + 1) & 0x7FFF
        return payloads, int(packet.pts or 0)


class LayeredTrack(MediaStreamTrack):
    """LayeredTrack replays the encoded loop at FPS as av.Packet."""

    kind = "video"

    def __init__(self, frames: tuple[tuple[bytes, bool], ...]) -> None:
        super().__init__()
        self.frames = frames
        self.sent = 0
        self.go = asyncio.Event()
        self.started = 0.0

    async def recv(self) -> av.Packet:
        if not self.sent:
            await self.go.wait()
            self.started = asyncio.get_running_loop().time()
        await asyncio.sleep(max(0.0, self.started + self.sent / FPS - asyncio.get_running_loop().time()))
        data, key = self.frames[self.sent % LOOP]
        packet = av.Packet(data)
        packet.pts = self.sent * FRAME_TICKS
        packet.time_base = fractions.Fraction(1, 90000)
        packet.is_keyframe = key
        self.sent += 1
        return packet


async def layered_publisher(room: Room, pid: str, role: str, color: tuple[int, int, int]) -> tuple[Client, Any]:
    c = await join(room, pid, role, decode=False)
    track = LayeredTrack(encode_layers(color))
    await publish(room, c, video=track, audio=False)
    assert c.up is not None
    sender = c.up.getTransceivers()[0].sender
    sender._RTCRtpSender__encoder = TemporalPacker()  # type: ignore[attr-defined]  # the packetizer of a layered publisher (aiortc has none)
    track.go.set()
    return c, track


def colour(frame: Any) -> str:
    y, u, v = mean_yuv(frame)
    return "red" if v > u else "blue"


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=needs_c)], ids=["python", "compiled"])
async def test_decoder_follows_temporal_layers_and_switches(compiled: bool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    # the test moves the slot between sources itself: no allocation job reassigning the room behind it
    sfu = Sfu(sfu_config(compiled_fanout=compiled, allocation=False))
    room = await sfu.room("layers", video_codec="VP8")
    clients: list[Client] = []
    try:
        a, _ = await layered_publisher(room, "a", "trainer", RED)
        b, _ = await layered_publisher(room, "b", "leader", BLUE)
        viewer = await join(room, "v", "classroom")
        clients += [a, b, viewer]
        await room.set_presenter("a", "a")
        participants = room.participants
        await wait_until(lambda: all(p.producers.get("camera") for p in (participants["a"], participants["b"])))
        consumer = participants["v"].consumers["presenter-video"]
        assert isinstance(consumer, Consumer)
        red: Producer = participants["a"].producers["camera"]
        blue: Producer = participants["b"].producers["camera"]
        assert (consumer.cslot is not None) == compiled
        frames = viewer.frames.setdefault(viewer.slots["presenter-video"], [])
        await wait_until(lambda: len(frames) > 20, within=20)

        def want() -> None:  # what the room does (Room._reassign): the Consumer in the sinks of what it wants
            for producer in (red, blue):
                sinks = [s for s in producer.sinks if s is not consumer]
                producer.set_sinks(tuple(sinks + ([consumer] if producer in consumer.wants else [])))

        consumer.on_switched = lambda c: want()  # the old source's sinks lose it

        # max_temporal stays at the top here: the bundled libvpx ignores temporal-layer reference flags (its frames
        # all reference the previous one), so dropping layers of this stream cannot decode; Chromium's can
        steps: list[tuple[str, Any]] = [("layer", blue), ("switch", red), ("temporal", 2), ("layer", blue),
                                        ("layer", red), ("temporal", None), ("switch", blue), ("layer", red),
                                        ("layer", blue)]
        async def frames_after(count: int) -> None:
            await wait_until(lambda: len(frames) >= count, within=15)

        current = red
        for kind, arg in steps:
            if kind == "temporal":
                consumer.max_temporal = arg
            elif kind == "layer":
                assert consumer.switch_layer(arg)
                current = arg
            else:
                assert consumer.switch(arg)
                current = arg
            want()
            await wait_until(lambda: consumer.pending_source is None, within=10)
            assert consumer.source is current
            await frames_after(len(frames) + 15)  # frames keep coming
            shown = colour(frames[-1])
            assert shown == ("red" if current is red else "blue"), f"after {kind} {arg}: shows {shown}"
        decode_errors = [r for r in caplog.records if "failed to decode" in r.getMessage()]
        assert not decode_errors, decode_errors[:3]
        assert consumer.packets_sent > 150
    finally:
        for c in clients:
            await c.close()
        await sfu.close()
