"""Long-run test of a real room: over 65,536 video packets from a publisher to a subscriber and the recorder.

A trainer publishes pre-encoded VP8 (noise frames encoded once up front, sent as ``av.Packet``: aiortc only
packetizes) at 100 frames/s of ~31 packets each, about 3,000 packets/s, plus aiortc's Opus, until more than
70,000 video packets went out. The 16-bit sequence numbers and the SRTP rollover counter then wrap on the
publisher -> SFU leg and on the SFU -> client leg, and each rewriter (the subscriber's slot's and the
recorder's Sinks') has forwarded more than 32,768 packets of one source (its "older than the start" check
once stalled a slot there). A decoder-less classroom subscriber must receive every packet the SFU forwarded
to it, directly or by NACK/RTX, with no hole in the sequence numbers; the room's recorder (in-process
Sinks) records the same stream, and its lecture file must have no gap.

Every peer runs on this process's event loop, so the test paces itself on its slowest reader rather than
lose packets to a late loop: the receive buffers of the busy sockets are raised (the SFU raises its own,
``sfu.hooks.ice.receive_buffer``; the test raises the subscriber's: loopback delivers a burst at once,
and 212 KB hold ~75 packets), and the publisher holds its next frame while a reader is more than
``MAX_BACKLOG`` packets behind. The publisher's first frame also waits for the SFU's SRTP keys (see below).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import subprocess
import time
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack
from aiortc.codecs.vpx import Vp8Encoder

from recorder.archive import finalize
from recorder.participant import RecorderOptions, RecordingParticipant
from sfu.consumer import COMPILED, Consumer
from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.receiver import ForwardingReceiver
from sfu.sfu import Sfu
from tests.recorder.media import FFPROBE, ffprobe
from tests.sfu.helpers import (
    Client,
    SeqLog,
    join,
    publish,
    sfu_config,
    subscribe,
    wait_until,
)

pytestmark = pytest.mark.timeout(240)
needs_c = pytest.mark.skipif(not COMPILED, reason="sfu._fanout not built")

FPS = 100
FRAME_TICKS = 90000 // FPS
LOOP_FRAMES = 50  # distinct frames, the first a keyframe: the loop repeats every 0.5 s
MIN_PACKETS = 70_000  # > 65,536: every leg's sequence numbers and SRTP rollover counter wrap
RCVBUF = 8 << 20  # the kernel caps it at net.core.rmem_max
MAX_BACKLOG = 1000  # packets sent to a reader and not read yet, beyond which the publisher waits


@cache
def encode_noise(frames: int = LOOP_FRAMES, size: tuple[int, int] = (320, 240),
                 bitrate: int = 27_000_000) -> tuple[bytes, ...]:
    """encode_noise encodes `frames` frames of per-pixel noise once (~40 KB each at this bitrate).

    The first frame is the only keyframe (gop = the loop), so the loop played again and again is a valid stream.
    """
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = size[0], size[1], "yuv420p"
    ctx.bit_rate = bitrate
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.gop_size = frames
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    rng = np.random.default_rng(7)
    out: list[bytes] = []
    for i in range(frames):
        noise = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        picture = av.VideoFrame.from_ndarray(noise, format="rgb24").reformat(format="yuv420p")
        picture.pts = i
        out += [bytes(p) for p in ctx.encode(picture)]
    out += [bytes(p) for p in ctx.encode(None)]
    assert len(out) == frames
    return tuple(out)


def rtp_packets(frame: bytes) -> int:
    """rtp_packets is how many RTP packets aiortc's VP8 packetizer makes of one frame."""
    packet = av.Packet(frame)
    packet.pts, packet.time_base = 0, fractions.Fraction(1, 90000)
    return len(Vp8Encoder().pack(packet)[0])


class PacketTrack(MediaStreamTrack):
    """PacketTrack sends `count` frames of `frames` (looped) at FPS as av.Packet, then nothing more.

    The first frame waits for ``go``; each frame waits while ``backlog()`` exceeds MAX_BACKLOG.
    """

    kind = "video"

    def __init__(self, frames: tuple[bytes, ...], count: int, backlog: Callable[[], int]) -> None:
        super().__init__()
        self.frames = frames
        self.count = count
        self.backlog = backlog
        self.sent = 0
        self.holds = 0  # times a frame waited for a reader
        self.started: float | None = None
        self.finished: float | None = None
        self.go = asyncio.Event()
        self.done = asyncio.Event()

    async def recv(self) -> av.Packet:
        if self.sent >= self.count:
            self.finished = self.finished or time.monotonic()
            self.done.set()
            await asyncio.Event().wait()  # the sender waits here until its peer closes
        if self.started is None:
            await self.go.wait()
            self.started = time.monotonic()
        # aiortc sends a frame's packets without suspending: always yield, so that a late track does not
        # catch up with seconds of video in one burst
        await asyncio.sleep(max(0.0, self.started + self.sent / FPS - time.monotonic()))
        while self.backlog() > MAX_BACKLOG:
            self.holds += 1
            await asyncio.sleep(0.002)
        i = self.sent % len(self.frames)
        packet = av.Packet(self.frames[i])
        packet.pts = self.sent * FRAME_TICKS
        packet.time_base = fractions.Fraction(1, 90000)
        packet.is_keyframe = i == 0
        self.sent += 1
        return packet


def received(receivers: Iterable[ForwardingReceiver]) -> int:
    """received counts the RTP packets some receivers got, RTX included (their statistics)."""
    return sum(s.packets_received for r in receivers for s in r.streams.values())


def rtx_received(receiver: ForwardingReceiver) -> int:
    """rtx_received counts the RTX packets a receiver got (under their own SSRC)."""
    return sum(s.packets_received for ssrc, s in receiver.streams.items() if ssrc in receiver.rtx_to_media)


def reader_backlog(consumers: list[Consumer], receivers: list[ForwardingReceiver]) -> Callable[[], int]:
    """reader_backlog: packets the SFU sent through `consumers` that `receivers` have not read yet."""
    return lambda: sum(c.packets_sent for c in consumers) - received(receivers)


def video_pts(path: Path) -> list[float]:
    """video_pts lists the video packets' presentation times of a media file (ffprobe)."""
    out = subprocess.run([FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time",
                          "-of", "json", str(path)], capture_output=True, text=True, timeout=60, check=True)
    return [float(p["pts_time"]) for p in json.loads(out.stdout)["packets"] if "pts_time" in p]


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_c), False], ids=["compiled", "python"])
async def test_seventy_thousand_packets_reach_subscriber_and_recording(tmp_path: Path, compiled: bool) -> None:
    frames = encode_noise()
    per_loop = [rtp_packets(f) for f in frames]
    count = total = 0  # frames to send: the first that add up to MIN_PACKETS video packets
    while total < MIN_PACKETS:
        total += per_loop[count % len(frames)]
        count += 1

    # hours of packets in seconds (~10x a camera's rate): no downlink could carry that, so no allocation or pacing
    # here (a pacer at the subscriber's estimate would rightly hold and drop most of it); tests/sfu/test_downlinks.py
    # covers them at real rates
    sfu = Sfu(sfu_config(compiled_fanout=compiled, allocation=False))
    room = await sfu.room("long")
    clients: list[Client] = []
    rec = RecordingParticipant(room, tmp_path / "rec", RecorderOptions())
    backlogs: list[Callable[[], int]] = []
    track = PacketTrack(frames, count, lambda: max((b() for b in backlogs), default=0))
    try:
        trainer = await join(room, "t", "trainer", decode=False)
        sub, sub_receivers = await subscribe(room, "c", RCVBUF)
        clients += [trainer, sub]
        video, audio = SeqLog(), SeqLog()
        sub_receivers["presenter-video"].on_rtp = video.add
        sub_receivers["presenter-audio"].on_rtp = audio.add
        await rec.start()
        await wait_until(lambda: sub.down is not None and sub.down.connectionState == "connected", 10)
        await publish(room, trainer, video=track, audio=True)
        up = room.participants["t"].up
        assert up is not None and isinstance(trainer.up, SfuPeerConnection)
        # no wait for the SFU's SRTP keys: media sent before them are held and go first (install_sync_rtp_receive)
        sender: Any = trainer.up.getTransceivers()[0].sender
        producers = list(room.participants["t"].producers.values())
        backlogs += [
            lambda: sender._RTCRtpSender__packet_count - sum(p.packets for p in producers if p.kind == "video"),
            reader_backlog(list(room.participants["c"].consumers.values()), list(sub_receivers.values())),
        ]
        track.go.set()

        await asyncio.wait_for(track.done.wait(), 200)
        consumer = room.participants["c"].consumers["presenter-video"]
        with contextlib.suppress(TimeoutError):  # (what is missing shows below)
            await wait_until(lambda: len(video.seen) >= consumer.packets_sent
                             and rec.writers["program-video"].frames >= count, 20)
        sub_video = sub_receivers["presenter-video"]
        outcome = {
            "frames": count, "published": sender._RTCRtpSender__packet_count, "forwarded": consumer.packets_sent,
            "received": video.packets, "unique": len(video.seen), "by RTX": rtx_received(sub_video),
            "NACKs": sub_video.nacks_sent, "resent": consumer.retransmitted, "holes": video.holes()[:10],
            "holds": track.holds, "recorded frames": rec.writers["program-video"].frames,
        }
        # every packet published (from the first, a keyframe) was forwarded and received, none missing between
        assert outcome["published"] >= MIN_PACKETS, outcome
        assert len(video.seen) == outcome["published"], outcome
        assert video.holes() == [] and max(video.seen) - min(video.seen) + 1 == len(video.seen), outcome
        assert video.packets >= consumer.packets_sent >= outcome["published"], outcome
        assert audio.packets > 0 and audio.holes() == [], outcome
        for slot in ("program-video", "presenter-video"):  # the recorder's Sinks wrapped too
            assert rec.sinks[slot].packets >= MIN_PACKETS, (slot, outcome)
        assert track.started is not None and track.finished is not None
        sending = track.finished - track.started
        await rec.stop()
    finally:
        if rec.timeline is not None:  # started
            await rec.stop()
        for c in clients:
            await c.close()
        await sfu.close()

    result = finalize(tmp_path / "rec")
    lecture = tmp_path / "rec" / result.file
    assert sorted(s["codec_name"] for s in ffprobe(lecture)["streams"]) == ["opus", "vp8"]
    pts = video_pts(lecture)
    steps = np.diff(pts)
    summary = (len(pts), float(steps.max()), pts[0], pts[-1], sending, outcome)
    assert len(pts) == count, summary  # every frame sent
    assert steps.max() <= 3 / FPS + 0.002, summary  # no gap: Matroska's 1 ms ticks round each step
    assert abs(pts[-1] - pts[0] - (count - 1) / FPS) <= 3 / FPS, summary  # all the RTP time sent
    assert pts[-1] - pts[0] <= sending + 1.0, summary  # and not longer than the sending took
