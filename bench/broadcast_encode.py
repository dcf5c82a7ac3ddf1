"""broadcast_encode: benchmark of the live broadcast's production: the worker's CPU, and presenter → playlist latency.

1. **CPU** (`--seconds`, default 60): a typical lecture program, a 1280x720 VP8 camera at 30 fps with motion
   (a 10 s loop encoded once with libvpx at ~1.2 Mbit/s, a keyframe every 4 s) and Opus sound from the presenter
   and, half of the time, the floor holder, is fed to the real worker (``python -m recorder.broadcast``, nice 0)
   exactly as the server feeds it (records with the recording's clock, ticks every 0.25 s). The worker decodes
   the program once and encodes 720p + 360p (the default ladder and preset, 25 fps) and AAC once. The input goes
   as fast as the worker takes it, so the figure is the worker's CPU (user + system, its threads included) per
   second of media: the share of a core a live broadcast needs. `--realtime` paces the input as a meeting does
   (then the worker's CPU is also sampled per second).
2. **Latency** (`--latency-seconds`, default 30; 0 skips it): a real room (this process's SFU) with an aiortc
   publisher (640x360 camera + microphone), the recorder and the broadcast (``server.live.broadcast``, its
   worker process) as the server runs them. The playlist of the first rendition is polled every 20 ms; for each
   new segment: the time it was listed minus the time its first and its last frame entered the room (its
   PROGRAM-DATE-TIME, and that plus its duration: the recorder places frames at their arrival). Run with
   `--segment-seconds 2` to see how listing latency follows the segment length (default: `broadcast.segment_seconds`'s
   default, whose keyframe interval the encoders follow).

    .venv/bin/python bench/broadcast_encode.py
    .venv/bin/python bench/broadcast_encode.py --seconds 120 --preset superfast --latency-seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import fractions
import json
import os
import pickle
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402
import numpy as np  # noqa: E402
from aiohttp import web  # noqa: E402

from recorder.broadcast import END, FLOOR_AUDIO, PRESENTER_AUDIO, RECORD, TICK, VIDEO  # noqa: E402
from recorder.hls import read_segments  # noqa: E402
from recorder.participant import RecorderOptions, RecordingParticipant  # noqa: E402
from server.config import CONFIG, BroadcastSection, load_config  # noqa: E402
from server.live.broadcast import Broadcasts, header  # noqa: E402
from sfu.sfu import Sfu  # noqa: E402
from tests.sfu.helpers import RED, ColorTrack, join, publish, sfu_config  # noqa: E402

LOOP = 10  # seconds of video encoded once
SOURCE_FPS = 30


def encode_loop(width: int, height: int) -> tuple[list[tuple[bool, bytes]], list[bytes]]:
    """encode_loop: 10 s of moving VP8 (keyframe every 4 s) and 1 s of Opus frames."""
    venc: Any = av.CodecContext.create("libvpx", "w")
    venc.width, venc.height, venc.pix_fmt = width, height, "yuv420p"
    venc.time_base = fractions.Fraction(1, 90000)
    venc.bit_rate = 1_200_000
    venc.gop_size = 4 * SOURCE_FPS
    venc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    yy, xx = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(1)
    texture = rng.integers(0, 40, (height, width), dtype=np.uint8)
    video: list[tuple[bool, bytes]] = []
    for i in range(LOOP * SOURCE_FPS):
        y = (((xx + 3 * i) % 256) // 2 + texture + ((yy // 40 + i // 15) % 2) * 40).astype(np.uint8)
        planes = np.empty((height * 3 // 2, width), dtype=np.uint8)
        planes[:height] = y
        planes[height:] = 128 + ((i // 30) % 3) * 10
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts = i * 3000
        for packet in venc.encode(frame):
            video.append((bool(packet.is_keyframe), bytes(packet)))
    for packet in venc.encode(None):
        video.append((bool(packet.is_keyframe), bytes(packet)))
    aenc: Any = av.CodecContext.create("libopus", "w")
    aenc.sample_rate, aenc.layout, aenc.format = 48000, "stereo", "s16"
    aenc.time_base = fractions.Fraction(1, 48000)
    audio = []
    for i in range(50):
        t = np.arange(i * 960, (i + 1) * 960) / 48000
        pcm = (np.sin(t * 2 * np.pi * 220) * np.sin(t * 3) * 9000).astype(np.int16).repeat(2).reshape(1, -1)
        sound = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        sound.sample_rate, sound.pts = 48000, i * 960
        audio += [bytes(p) for p in aenc.encode(sound)]
    return video, audio


def records(seconds: float, video: list[tuple[bool, bytes]], audio: list[bytes]) -> list[tuple[float, bytes]]:
    """records: (elapsed, record) of the program for `seconds`, as the server sends them, in time order."""
    out: list[tuple[float, bytes]] = []
    for i in range(int(seconds * SOURCE_FPS)):
        key, data = video[i % len(video)]  # the loop starts with a keyframe
        out.append((i / SOURCE_FPS + 0.05, RECORD.pack(VIDEO, key, i * 3000, i / SOURCE_FPS + 0.05, len(data)) + data))
    for n in range(int(seconds * 50)):
        t = n / 50
        out.append((t + 0.03, RECORD.pack(PRESENTER_AUDIO, 1, n * 960, t + 0.03, len(audio[n % 50])) + audio[n % 50]))
        if (t // 30) % 2 == 1:  # the floor holder speaks every other 30 s
            data = audio[(n + 17) % 50]
            out.append((t + 0.04, RECORD.pack(FLOOR_AUDIO, 1, n * 960, t + 0.04, len(data)) + data))
    out += [(k * 0.25, RECORD.pack(TICK, 0, 0, k * 0.25, 0)) for k in range(int(seconds * 4) + 1)]
    out.sort(key=lambda item: item[0])
    return out


def cpu_of(pid: int) -> float:
    """cpu_of: a live process's user + system CPU seconds (/proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_cpu(args: argparse.Namespace) -> None:
    """bench_cpu: part 1 (see the module doc)."""
    width, height = (int(v) for v in args.source.split("x"))
    began = time.monotonic()
    cache = Path(tempfile.gettempdir()) / f"taphuan-bench-broadcast-{width}x{height}.pickle"
    if cache.exists():  # the loop is the same every time: encoded once per machine
        video, audio = pickle.loads(cache.read_bytes())
    else:
        video, audio = encode_loop(width, height)
        cache.write_bytes(pickle.dumps((video, audio)))
    print(f"source: {width}x{height} VP8 {sum(len(d) for _k, d in video) * 8 / LOOP / 1e6:.2f} Mbit/s at "
          f"{SOURCE_FPS} fps + Opus (presenter; floor half the time), ready in {time.monotonic() - began:.1f} s")
    config = load_config(None, env={}, overrides={"broadcast.preset": args.preset, "broadcast.fps": args.fps,
                                                  "broadcast.segment_seconds": args.segment_seconds})
    directory = Path(tempfile.mkdtemp(prefix="taphuan-bench-broadcast-"))
    try:
        run_header = header(config, directory, None)
        run_header.wall0 = time.time()
        items = records(args.seconds, video, audio)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen([sys.executable, "-m", "recorder.broadcast", "--nice", "0"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout.read().decode().splitlines()))  # type: ignore[union-attr]
        reader.start()
        proc.stdin.write(json.dumps(asdict(run_header)).encode() + b"\n")
        started = time.monotonic()
        samples: list[float] = []
        last_cpu, last_t = 0.0, started
        for elapsed, record in items:
            if args.realtime:
                delay = started + elapsed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                if time.monotonic() - last_t >= 1.0:
                    cpu = cpu_of(proc.pid)
                    samples.append((cpu - last_cpu) / (time.monotonic() - last_t))
                    last_cpu, last_t = cpu, time.monotonic()
            proc.stdin.write(record)
        proc.stdin.write(RECORD.pack(END, 0, 0, args.seconds, 0))
        proc.stdin.close()
        proc.wait()
        reader.join()
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        master = (directory / "hls" / "master.m3u8").read_text()
        renditions = [line.split("RESOLUTION=")[1].split(",")[0] for line in master.splitlines()
                      if "RESOLUTION" in line]
        sizes = {p.parent.name: sum(f.stat().st_size for f in p.parent.glob("seg*.m4s"))
                 for p in (directory / "hls").glob("*/index.m3u8")}
        print(f"renditions: {', '.join(renditions)} at {args.fps} fps, preset {args.preset}, "
              f"{args.segment_seconds:g} s segments; "
              + ", ".join(f"{name} {size * 8 / args.seconds / 1e6:.2f} Mbit/s" for name, size in sorted(sizes.items())))
        print(f"worker: {cpu:.1f} s CPU for {args.seconds:g} s of program = **{100 * cpu / args.seconds:.0f} % of a "
              f"core** (one decode, {len(renditions)} encodes + AAC); wall {wall:.1f} s, max RSS "
              f"{after.ru_maxrss / 1024:.0f} MiB; load average {os.getloadavg()[0]:.1f}")
        if samples:
            print(f"realtime: per-second CPU median {100 * statistics.median(samples):.0f} %, max "
                  f"{100 * max(samples):.0f} %")
        if not any('"ended": true' in line for line in lines):
            print("worker did not end cleanly:", lines[-3:])
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class BenchBroadcasts(Broadcasts):
    """BenchBroadcasts: the server's broadcasts without a database (no Recording row to update)."""

    async def _set(self, recording_id: int, **values: Any) -> None:
        return None


def _pdt(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def bench_latency(args: argparse.Namespace) -> None:
    """bench_latency: part 2 (see the module doc)."""
    config = load_config(None, env={}, overrides={"broadcast.preset": args.preset, "broadcast.fps": args.fps,
                                                  "broadcast.segment_seconds": args.segment_seconds})
    app = web.Application()
    app[CONFIG] = config
    broadcasts = BenchBroadcasts(app)
    directory = Path(tempfile.mkdtemp(prefix="taphuan-bench-latency-"))
    sfu = Sfu(sfu_config())
    room = await sfu.room("1")
    presenter = await join(room, "p", "trainer", decode=False)
    rec = RecordingParticipant(room, directory, RecorderOptions(segment_seconds=4.0))
    try:
        await publish(room, presenter, video=ColorTrack(RED, (640, 360)))
        await rec.start()
        broadcasts.begin(1, 1, directory, rec)
        index = directory / "hls" / "360p" / "index.m3u8"
        seen: dict[str, float] = {}
        first_listed: dict[int, float] = {}
        end = time.monotonic() + args.latency_seconds
        while time.monotonic() < end:
            await asyncio.sleep(0.02)
            try:
                text = index.read_text()
            except OSError:
                continue
            now = time.time()
            for line in text.splitlines():
                if line.startswith("seg") and line not in seen:
                    seen[line] = now
                    first_listed[int(line[3:-4])] = now
        dropped = broadcasts.running[1].dropped
        await rec.stop()
        await broadcasts.end(1)
        segments = {s.n: s for s in read_segments(directory / "hls" / "360p")}
        first, last = [], []
        for n, listed in sorted(first_listed.items())[1:]:  # the first segment waited for the recorder's anchor
            s = segments.get(n)
            if s is not None:
                first.append(listed - s.wall)
                last.append(listed - s.wall - s.duration)
        cpu = cpu_of(os.getpid())
        print(f"latency, {args.segment_seconds:g} s segments, {len(first)} segments (640x360 camera, 360p rendition "
              f"listed): a segment's first frame → listed median {statistics.median(first):.2f} s "
              f"({min(first):.2f}-{max(first):.2f}); its last frame → listed median {statistics.median(last):.2f} s "
              f"({min(last):.2f}-{max(last):.2f}); frames dropped {dropped}; the bench process (SFU, publisher, "
              f"recorder) {cpu:.0f} s CPU")
    finally:
        await presenter.close()
        await rec.stop()
        await broadcasts.close()
        await sfu.close()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    """main: parse the options and run both parts."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60, help="program seconds of the CPU part (0 skips it)")
    parser.add_argument("--source", default="1280x720")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--segment-seconds", type=float, default=BroadcastSection().segment_seconds,
                        help="the broadcast's segment length (default: the configuration's default)")
    parser.add_argument("--realtime", action="store_true", help="feed the CPU part at the program's pace")
    parser.add_argument("--latency-seconds", type=float, default=30, help="length of the latency part (0 skips it)")
    args = parser.parse_args()
    if args.seconds > 0:
        bench_cpu(args)
    if args.latency_seconds > 0:
        asyncio.run(bench_latency(args))


if __name__ == "__main__":
    main()
