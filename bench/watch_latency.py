"""watch_latency: presenter → viewer latency of the live broadcast, measured with a real player (Chromium on /watch).

The server runs as its own process (`python -m server.cli serve`, a temporary data directory, SQLite, on
127.0.0.1) with the recorder and the broadcast on, as in production. In this process a trainer publishes a camera
(aiortc, 640x360 VP8 at 30 fps, and a microphone) whose picture carries **the wall clock as a visible marker**:
the milliseconds since the bench started, as 32 black or white blocks (and their complements, a check against
misreads). The room forwards it, the recorder puts it on the program, the broadcast worker decodes it and encodes
the H.264 rendition (360p: the source is 640x360), the node serves the HLS files, and Debian's Chromium plays
`/watch/{meeting}` (the public link, the page's own hls.js and settings) directly from the node and through the
nginx caching front of docs/deploy.md (tests/nginxfront.py). On each frame the page presents
(`requestVideoFrameCallback`), the marker is read back from the picture (a canvas) and the latency is the time
of presentation minus the time written in the picture: everything from the presenter's capture to the viewer's
screen.

Modes are server configurations compared alternately in one run (A B C A B C …, a fresh server each time), each
measured directly and through nginx: `--modes NAME:key=value,key=value` (defaults: 2 s segments, 1 s segments,
and 1 s segments with LL-HLS parts, `broadcast.low_latency`). Per
(mode, target) and round: after the player settled (`--settle` s), `--seconds` of frames; printed: median, 10th
and 90th percentile, min and max of the latency, frames read, and the player's stalls (`waiting` events after it
started playing). Then the ranges over the rounds.

    .venv/bin/python bench/watch_latency.py
    .venv/bin/python bench/watch_latency.py --rounds 3 --modes "2s:broadcast.segment_seconds=2" \
        "ll2:broadcast.segment_seconds=2,broadcast.low_latency=true"

Needs: Chromium (`/usr/bin/chromium`), nginx.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import VideoStreamTrack  # noqa: E402
from av import VideoFrame  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from bench.wsflood import Server, free_port  # noqa: E402
from server.auth import COOKIE  # noqa: E402
from server.config import load_config  # noqa: E402
from server.db.engine import make_engine, make_sessionmaker  # noqa: E402
from server.db.models import (  # noqa: E402
    BroadcastLink,
    LoginSession,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    User,
    meeting_presenters,
)
from server.live.watch import serializer  # noqa: E402
from tests.e2e.browser import CHROMIUM, FLAGS  # noqa: E402
from tests.live_client import LiveClient  # noqa: E402
from tests.nginxfront import NginxFront  # noqa: E402

WIDTH, HEIGHT, BLOCK = 640, 360, 40  # the marker: 2 rows of 16 blocks (bits), then their complements
BITS = 32

# Reads the marker from every presented frame (the page's own video element); keeps [presented at, value].
SAMPLER_JS = """
() => {
  const v = document.querySelector('[data-watch-video]');
  const c = document.createElement('canvas');
  const g = c.getContext('2d', { willReadFrequently: true });
  const out = [];
  window.__latency = { out, stalls: 0 };
  v.addEventListener('waiting', () => { window.__latency.stalls += 1; });
  const step = () => {
    const at = Date.now();
    const w = v.videoWidth, h = v.videoHeight;
    if (w && h) {
      if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
      g.drawImage(v, 0, 0, w, h);
      const sx = w / WIDTH, sy = h / HEIGHT;
      const data = g.getImageData(0, 0, w, Math.min(h, Math.ceil(4 * BLOCK * sy))).data;
      let val = 0, ok = true;
      for (let i = 0; i < BITS; i++) {
        const row = Math.floor(i / 16), col = i % 16;
        const x = Math.floor((col * BLOCK + BLOCK / 2) * sx);
        const y1 = Math.floor((row * BLOCK + BLOCK / 2) * sy), y2 = Math.floor(((row + 2) * BLOCK + BLOCK / 2) * sy);
        const a = data[(y1 * w + x) * 4] > 128 ? 1 : 0, b = data[(y2 * w + x) * 4] > 128 ? 1 : 0;
        if (a === b) ok = false;
        val = val * 2 + a;
      }
      if (ok) out.push([at, val]);
    }
    v.requestVideoFrameCallback(step);
  };
  v.requestVideoFrameCallback(step);
}
"""
SAMPLER = SAMPLER_JS.replace("WIDTH", str(WIDTH)).replace("HEIGHT", str(HEIGHT)).replace("BLOCK", str(BLOCK)) \
    .replace("BITS", str(BITS))


class ClockTrack(VideoStreamTrack):
    """ClockTrack: a 640x360 camera whose picture shows the milliseconds since `epoch` (wall clock) as blocks."""

    def __init__(self, epoch: float) -> None:
        super().__init__()
        self.epoch = epoch
        self.planes = np.full((HEIGHT * 3 // 2, WIDTH), 128, dtype=np.uint8)
        self.planes[4 * BLOCK:HEIGHT] = 90

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        value = int((time.time() - self.epoch) * 1000) & 0xFFFFFFFF
        y = self.planes
        for i in range(BITS):
            bit = (value >> (BITS - 1 - i)) & 1
            row, col = divmod(i, 16)
            y[row * BLOCK:(row + 1) * BLOCK, col * BLOCK:(col + 1) * BLOCK] = 235 if bit else 16
            y[(row + 2) * BLOCK:(row + 3) * BLOCK, col * BLOCK:(col + 1) * BLOCK] = 16 if bit else 235
        frame = VideoFrame.from_ndarray(y, format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        return frame


async def cast(database_url: str, link_key: bytes) -> tuple[int, str, str]:
    """cast: a published meeting presented by a trainer, its public link on; (meeting id, the trainer's login
    token, the public link's token)."""
    engine = make_engine(database_url)
    db = make_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    try:
        async with db() as s:
            program = Program(title="Chương trình thử")
            s.add(program)
            await s.flush()
            meeting = Meeting(program_id=program.id, title="Đo độ trễ phát trực tiếp", status=MeetingStatus.PUBLISHED,
                              starts_at=now - dt.timedelta(minutes=5), ends_at=now + dt.timedelta(hours=2))
            trainer = User(username="latency-trainer", display_name="Giảng viên", role=Role.TRAINER)
            s.add_all([meeting, trainer])
            await s.flush()
            await s.execute(insert(meeting_presenters).values(meeting_id=meeting.id, user_id=trainer.id))
            login = secrets.token_urlsafe(32)
            nonce = secrets.token_urlsafe(12)
            s.add_all([LoginSession(id=login, user_id=trainer.id, csrf_token=secrets.token_urlsafe(24), created_at=now,
                                    expires_at=now + dt.timedelta(hours=2), ip="127.0.0.1", user_agent="bench"),
                       BroadcastLink(meeting_id=meeting.id, nonce=nonce)])
            await s.commit()
            return meeting.id, login, str(serializer(link_key).dumps([meeting.id, nonce]))
    finally:
        await engine.dispose()


@dataclass
class Sample:
    """Sample: one (mode, target, round): the latencies read (seconds) and the player's stalls."""

    mode: str
    target: str
    round: int
    latencies: list[float] = field(default_factory=list)
    stalls: int = 0

    def line(self) -> str:
        """Sample.line: the printed figures."""
        if not self.latencies:
            return f"{self.mode:>6} {self.target:>6} {self.round:>5}   no marker read (stalls {self.stalls})"
        q = statistics.quantiles(self.latencies, n=10) if len(self.latencies) >= 10 else [min(self.latencies)] * 9
        return (f"{self.mode:>6} {self.target:>6} {self.round:>5} {statistics.median(self.latencies):>7.2f} "
                f"{q[0]:>6.2f} {q[-1]:>6.2f} {min(self.latencies):>6.2f} {max(self.latencies):>6.2f} "
                f"{len(self.latencies):>6} {self.stalls:>6}")


HEAD = f"{'mode':>6} {'target':>6} {'round':>5} {'median':>7} {'p10':>6} {'p90':>6} {'min':>6} {'max':>6} " \
       f"{'frames':>6} {'stalls':>6}"


async def watch(browser: Any, base: str, meeting_id: int, token: str, epoch: float, args: argparse.Namespace,
                sample: Sample) -> None:
    """watch: one viewer (a fresh context) plays the broadcast from `base` and reads the marker."""
    ctx = await browser.new_context(base_url=base, viewport={"width": 1366, "height": 768}, locale="vi-VN")
    try:
        page = await ctx.new_page()
        await page.goto(f"/watch/{meeting_id}?k={token}")
        await page.wait_for_function("() => document.querySelector('[data-watch-video]').currentTime > 0.5",
                                     timeout=90_000)
        await asyncio.sleep(args.settle)
        await page.evaluate(SAMPLER)
        await asyncio.sleep(args.seconds)
        found = await page.evaluate("window.__latency")
        epoch_ms = epoch * 1000
        for at, value in found["out"]:
            sample.latencies.append((at - epoch_ms - value) / 1000)
        sample.stalls = int(found["stalls"])
    finally:
        await ctx.close()


async def one_round(mode: str, overrides: dict[str, str], rnd: int, args: argparse.Namespace, browser: Any,
                    epoch: float) -> list[Sample]:
    """one_round: a fresh server in `mode`, the presenter publishing, a viewer directly and through nginx."""
    out: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="taphuan-latency-") as tmp:
        server = Server(Path(tmp), {"recorder.enabled": "true", "log.level": "WARNING", **overrides}, ROOT)
        await server.start()
        front: NginxFront | None = None
        session = None
        presenter: LiveClient | None = None
        try:
            config = load_config(server.config_path, env={})
            link_key = (Path(tmp) / "data" / "secrets" / "link.key").read_bytes().strip()
            meeting_id, login, token = await cast(config.database_url, link_key)
            session = aiohttp.ClientSession(cookies={COOKIE: login})
            presenter = LiveClient(session, server.base.replace("http", "ws") + "/ws")
            await presenter.connect()
            await presenter.join(meeting_id)
            await presenter.publish(ClockTrack(epoch), audio=True)
            deadline = time.monotonic() + 90
            async with aiohttp.ClientSession() as http:
                while True:
                    async with http.get(f"{server.base}/api/v1/broadcasts/{meeting_id}?k={token}") as r:
                        state = (await r.json()).get("state")
                    if state == "live":
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the broadcast did not start: {state}")
                    await asyncio.sleep(0.5)
            await asyncio.sleep(args.warmup)  # a few segments listed before the first viewer comes
            if "nginx" in args.targets:
                front = NginxFront(Path(tmp) / "nginx", f"127.0.0.1:{server.port}", free_port()).start()
            for target in args.targets:
                base = server.base if target == "direct" else f"http://127.0.0.1:{front.port}"  # type: ignore[union-attr]
                sample = Sample(mode, target, rnd)
                await watch(browser, base, meeting_id, token, epoch, args, sample)
                print(sample.line(), flush=True)
                out.append(sample)
        finally:
            if front is not None:
                front.stop()
            if presenter is not None:
                with contextlib.suppress(Exception):
                    await presenter.close()
            if session is not None:
                await session.close()
            await server.stop()
    return out


def parse_modes(specs: list[str]) -> list[tuple[str, dict[str, str]]]:
    """parse_modes: `NAME:key=value,key=value` → (name, overrides)."""
    modes = []
    for spec in specs:
        name, _, rest = spec.partition(":")
        overrides = dict(item.split("=", 1) for item in rest.split(",") if item)
        modes.append((name, overrides))
    return modes


def summary(samples: list[Sample]) -> None:
    """summary: per (mode, target), the medians' range over the rounds and all frames pooled."""
    print("\nover the rounds (median of each round: range; all frames pooled: median, p10-p90, max; stalls):")
    keys = sorted({(s.mode, s.target) for s in samples}, key=lambda k: (k[1], k[0]))
    for mode, target in keys:
        rows = [s for s in samples if s.mode == mode and s.target == target and s.latencies]
        if not rows:
            continue
        medians = [statistics.median(s.latencies) for s in rows]
        pooled = [v for s in rows for v in s.latencies]
        q = statistics.quantiles(pooled, n=10)
        print(f"{mode:>6} {target:>6}: round medians {min(medians):.2f}-{max(medians):.2f} s over {len(rows)} rounds; "
              f"pooled median {statistics.median(pooled):.2f} s, p10-p90 {q[0]:.2f}-{q[-1]:.2f} s, "
              f"max {max(pooled):.2f} s; stalls {sum(s.stalls for s in rows)}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--modes", nargs="+",
                        default=["2s:broadcast.segment_seconds=2", "1s:broadcast.segment_seconds=1",
                                 "ll:broadcast.segment_seconds=1,broadcast.low_latency=true"])
    parser.add_argument("--targets", nargs="+", default=["direct", "nginx"], choices=["direct", "nginx"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds between the broadcast's start and the "
                        "first viewer")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds of playing before reading")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of frames read per sample")
    parser.add_argument("--json", default="", help="also write the samples to this file")
    args = parser.parse_args()
    modes = parse_modes(args.modes)
    epoch = time.time()
    samples: list[Sample] = []
    print(f"load average {os.getloadavg()[0]:.1f} at the start; {os.cpu_count()} CPUs")
    print(HEAD)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=[*FLAGS, "--autoplay-policy=no-user-gesture-required"])
        try:
            for rnd in range(1, args.rounds + 1):
                for name, overrides in modes:
                    samples += await one_round(name, overrides, rnd, args, browser, epoch)
        finally:
            await browser.close()
    summary(samples)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.json:
        await asyncio.to_thread(Path(args.json).write_text, json.dumps([s.__dict__ for s in samples], indent=1))


if __name__ == "__main__":
    asyncio.run(main())
