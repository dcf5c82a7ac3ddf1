"""record: benchmark of the recorder: live writing cost and the time from a meeting's end to its file.

Synthesises a meeting of `--minutes` (default 60) without waiting for it: VP8 640x360 at 30 fps is
encoded once for a 10 s loop (a keyframe at each loop start) and Opus for 1 s, then repeated with running
sequence numbers and timestamps. The packets go through the recorder's live path (``FrameAssembler`` →
``SlotClock`` on the event loop's side, then the writer thread: ``DiskWriter`` → ``SegmentWriter``) into
``program-video``, ``presenter-video`` and ``presenter-audio`` (all meeting long) and ``floor-audio``
(``--floor`` percent of the meeting, in 5-minute turns). The meeting runs faster than real time, so instead
of dropping what the writer thread has not written yet (a real meeting's queue refuses media more than
``QUEUE_SECONDS`` behind), the bench waits for it. Then the meeting "ends": the worker process finalizes
it exactly as the server does (``recorder.worker``, nice 10), and the time it takes is the figure the issue
asks for (< 60 s after a 1-hour meeting on the 2-core machine).

    .venv/bin/python bench/record.py                      # 60 min, floor 20 %
    .venv/bin/python bench/record.py --minutes 5 --floor 100
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc.codecs.opus import OpusEncoder  # noqa: E402
from aiortc.codecs.vpx import Vp8Encoder  # noqa: E402

from recorder.depacketize import FrameAssembler  # noqa: E402
from recorder.disk import DiskWriter  # noqa: E402
from recorder.participant import write_meta  # noqa: E402
from recorder.timing import SlotClock  # noqa: E402
from recorder.worker import run_worker  # noqa: E402
from recorder.writer import SegmentWriter  # noqa: E402

FPS = 30
LOOP = 10  # seconds of video encoded once


def encode_loop() -> tuple[list[list[bytes]], list[bytes]]:
    """encode_loop: RTP payloads of 10 s of moving 640x360 VP8 and 1 s of Opus (a voice-like tone)."""
    venc = Vp8Encoder()
    venc.target_bitrate = 800_000
    yy, xx = np.mgrid[0:360, 0:640]
    video = []
    for i in range(LOOP * FPS):
        img = ((xx + 4 * i) % 256).astype(np.uint8)
        rgb = np.stack([img, ((yy + 2 * i) % 256).astype(np.uint8), (img // 2 + 60)], axis=-1)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        payloads, _ = venc.encode(frame, force_keyframe=i == 0)
        video.append(payloads)
    aenc = OpusEncoder()
    audio = []
    for i in range(50):
        t = np.arange(i * 960, (i + 1) * 960) / 48000
        pcm = (np.sin(t * 2 * np.pi * 220) * np.sin(t * 3) * 9000).astype(np.int16).repeat(2).reshape(1, -1)
        sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        sound.sample_rate, sound.pts, sound.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        audio.append(aenc.encode(sound)[0][0])
    return video, audio


class MeetingClock:
    """MeetingClock: the synthetic meeting's time (the frames' arrivals), set as the meeting is written."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def write_meeting(directory: Path, minutes: float, floor_percent: float) -> tuple[float, float, int]:
    """write_meeting pushes the whole meeting through the live path; returns (CPU seconds: all, on the loop's
    thread; bytes)."""
    video, audio = encode_loop()
    seconds = minutes * 60
    write_meta(directory, video_codec="VP8", video_mime="video/vp8", segment_seconds=4.0, duration=seconds)
    started, started_loop = time.process_time(), time.thread_time()
    names = (("program-video", "video/vp8"), ("presenter-video", "video/vp8"), ("presenter-audio", "audio/opus"),
             ("floor-audio", "audio/opus"))
    meeting = MeetingClock()
    disk = DiskWriter("bench", {name: SegmentWriter(directory, name, mime, 4.0) for name, mime in names},
                      clock=meeting)
    disk.start()
    slots = {name: (FrameAssembler(mime), SlotClock(mime.startswith("video/"), 0.0)) for name, mime in names}

    def push(name: str, seq: int, ts: int, marker: bool, payload: bytes) -> None:
        assembler, clock = slots[name]
        for frame in assembler.push(seq, ts, marker, payload, meeting.now):
            for pts, placed in clock.place(frame):
                while not disk.put(name, pts, placed.keyframe, placed.data):
                    time.sleep(0.001)  # the writer thread is QUEUE_SECONDS of the meeting behind: wait for it

    seq = {name: 0 for name in slots}
    turn = 300.0  # the floor changes hands every 5 minutes; floor_percent of each turn has a speaker
    for i in range(int(seconds * FPS)):
        meeting.now = i / FPS
        payloads = video[i % len(video)]
        for name in ("program-video", "presenter-video"):
            for j, p in enumerate(payloads):
                push(name, seq[name], (i * 3000) & 0xFFFFFFFF, j == len(payloads) - 1, p)
                seq[name] = (seq[name] + 1) & 0xFFFF
        for k in range(round((i + 1) * 50 / FPS) - round(i * 50 / FPS)):
            n = round(i * 50 / FPS) + k
            names_now = ["presenter-audio"] + (["floor-audio"] if (n / 50 % turn) < turn * floor_percent / 100 else [])
            for name in names_now:
                meeting.now = n / 50
                push(name, n & 0xFFFF, (n * 960) & 0xFFFFFFFF, False, audio[n % 50])
    for name, (_, clock) in slots.items():
        for pts, placed in clock.release():
            disk.put(name, pts, placed.keyframe, placed.data)
    loop_cpu = time.thread_time() - started_loop
    await disk.close()
    size = sum(writer.bytes for writer in disk.writers.values())
    return time.process_time() - started, loop_cpu, size


async def main() -> None:
    """main: write, then finalize in the worker, and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--floor", type=float, default=20, help="percent of the meeting someone holds the floor")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the recording directory")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="taphuan-bench-record-"))
    try:
        cpu, loop_cpu, size = await write_meeting(directory, args.minutes, args.floor)
        media = args.minutes * 60
        print(f"meeting: {args.minutes:g} min, floor {args.floor:g} %, {size / 1e6:.0f} MB of media written "
              f"({size * 8 / media / 1000:.0f} kbit/s over 4 slots)")
        print(f"live writing: {cpu:.1f} s CPU for {media:.0f} s of media = {100 * cpu / media:.2f} % of a core "
              f"({loop_cpu:.1f} s of it on the event loop's side, {100 * loop_cpu / media:.2f} %)")
        os.sync()  # a real meeting's segments reach the disk while it runs, not in one burst at its end
        began = time.monotonic()
        ready: list[float] = []
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = await run_worker(directory, args.nice, on_lecture=lambda _r: ready.append(time.monotonic()))
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        elapsed = time.monotonic() - began
        worker_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        size_mb = int(str(result["size"])) / 1e6
        print(f"lecture ready: {ready[0] - began:.1f} s after the end: {result['file']} {size_mb:.0f} MB, "
              f"{float(str(result['duration'])):.0f} s")
        print(f"originals done: {elapsed:.1f} s after the end ({worker_cpu:.1f} s CPU in the worker, nice {args.nice})")
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            print("kept", directory)


if __name__ == "__main__":
    asyncio.run(main())
