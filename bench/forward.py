"""forward: benchmark of the SFU's forwarding path (server CPU per outgoing packet, delivery, memory).

One publisher sends pre-encoded VP8 (~500 kbit/s, encoded once up front, sent as av.Packet so aiortc only
packetizes) plus Opus; N decoder-less subscribers receive it through the SFU. The SFU runs in its own
process pinned to one core; the clients run in this process on another core.

    .venv/bin/python bench/forward.py                 # N = 1 5 10 20 40, fast path, 3 runs each
    .venv/bin/python bench/forward.py --n 20 --slow   # aiortc's awaited _send_rtp instead, for comparison
    .venv/bin/python bench/forward.py --loop asyncio  # the server on asyncio's loop instead of uvloop
    BENCH_PYTHON=1 .venv/bin/python bench/forward.py  # pure-Python fan-out even when sfu._fanout is built

Columns: server CPU µs per outgoing packet (server process CPU time / packets it forwarded, inbound
handling and RTCP included; median of --repeat runs and their range: a shared virtual machine's speed
drifts by a third between runs), the same less the CPU the connected room costs without media
(µs/pkt-idle), outgoing and inbound packets/s, the worst delivery ratio (packets the subscribers received /
packets forwarded), server RSS growth per participant, CPU ms/s of the connected room without media, and the
share of inbound media packets the C receive path handled (sfu/_ingress.c; the rest took the Python path).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import multiprocessing as mp
import os
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402
import numpy as np  # noqa: E402
from aiortc import (  # noqa: E402
    AudioStreamTrack,
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCSessionDescription,
)

from server.cli import loop_factory  # noqa: E402
from server.db.models import Role  # noqa: E402
from server.live.capabilities import CAPABILITIES  # noqa: E402
from sfu.config import SfuConfig  # noqa: E402
from sfu.consumer import COMPILED  # noqa: E402
from sfu.events import Event, ServerOffer  # noqa: E402
from sfu.hooks.connection import SfuPeerConnection  # noqa: E402
from sfu.hooks.receiver import ForwardingReceiver  # noqa: E402
from sfu.sfu import Sfu  # noqa: E402

LOOPBACK = ["127.0.0.1"]
FPS = 30


# ------------------------------------------------------------------------------------------ server


def rss_kib() -> int:
    """rss_kib is this process's resident set size in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def thread_cpu() -> dict[str, float]:
    """thread_cpu is the CPU seconds of each thread of this process (from /proc)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        name = (task / "comm").read_text().strip()
        out[f"{name}-{task.name}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def server_entry(conn: Connection, fast: bool, core: int, loop: str) -> None:
    """server_entry runs the SFU, pinned to `core`, on `loop` (as server.event_loop), driven over `conn`."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(serve(conn, fast))


async def serve(conn: Connection, fast: bool) -> None:
    """serve answers join/publish/answer/stats/stop commands until stop."""
    loop = asyncio.get_running_loop()
    sfu = Sfu(SfuConfig(ice_addresses=LOOPBACK, fast_path=fast, max_participants_per_room=1000,
                        compiled_fanout=not os.environ.get("BENCH_PYTHON")))
    room = await sfu.room("bench")
    offers: dict[str, asyncio.Future[str]] = {}
    profiler: Any = None

    def on_event_for(pid: str) -> Any:
        async def on_event(event: Event) -> None:
            if isinstance(event, ServerOffer) and not offers[pid].done():
                offers[pid].set_result(event.sdp)

        return on_event

    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        op = cmd[0]
        if op == "join":
            pid, role = cmd[1], cmd[2]
            offers[pid] = loop.create_future()
            await room.join(pid, role, pid, CAPABILITIES[Role(role)], on_event_for(pid))
            conn.send(await offers[pid])
        elif op == "publish":
            conn.send(await room.publish(cmd[1], cmd[2], cmd[3]))
        elif op == "answer":
            await room.answer_down(cmd[1], cmd[2])
            conn.send(None)
        elif op == "stats":
            consumers = [c for p in room.participants.values() for c in p.consumers.values()]
            producers = [pr for p in room.participants.values() for pr in p.producers.values()]
            conn.send({
                "cpu": time.process_time(),
                "threads": thread_cpu(),
                "out": sum(c.packets_sent for c in consumers),
                "in": sum(pr.packets for pr in producers),
                "rss": rss_kib(),
                "fast": sum(c.wire.fast_sent for c in consumers if c.wire),
                "slow": sum(c.wire.slow_sent for c in consumers if c.wire),
                "c_in": sum(pr.receiver.ingress.packets for pr in producers if pr.receiver.ingress is not None),
            })
        elif op == "profile":  # cProfile of the measurement window only (BENCH_PROFILE=path)
            import cProfile

            if cmd[1]:
                profiler = cProfile.Profile()
                profiler.enable()
            elif profiler is not None:
                profiler.disable()
                profiler.dump_stats(cmd[2])
            conn.send(None)
        elif op == "stop":
            await sfu.close()
            conn.send(None)
            return


# ----------------------------------------------------------------------------------------- clients


def encode_vp8(seconds: float, bitrate: int = 500_000) -> list[tuple[bytes, bool]]:
    """encode_vp8 encodes a moving texture once: [(frame bytes, is keyframe)].

    The texture is random 8×8-pixel blocks: libvpx holds ~500 kbit/s on it with camera-like frame sizes
    (deltas of ~1.5 KB, two RTP packets each; keyframes of ~27 KB). Per-pixel noise would not do: its
    keyframes alone (~190 KB every 2 s) take the stream to ~800 kbit/s.
    """
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 640, 360, "yuv420p"
    ctx.bit_rate = bitrate
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.gop_size = 2 * FPS
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)  # 720 × 1280
    out: list[tuple[bytes, bool]] = []
    for i in range(int(seconds * FPS)):
        x, y = (i * 7) % 640, (i * 3) % 360
        crop = np.ascontiguousarray(texture[y:y + 360, x:x + 640])
        frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        for pkt in ctx.encode(frame):
            out.append((bytes(pkt), bool(pkt.is_keyframe)))
    for pkt in ctx.encode(None):
        out.append((bytes(pkt), bool(pkt.is_keyframe)))
    return out


class PacketTrack(MediaStreamTrack):
    """PacketTrack replays pre-encoded VP8 frames at 30 fps as av.Packet (aiortc packetizes, no encoding)."""

    kind = "video"

    def __init__(self, frames: list[tuple[bytes, bool]]) -> None:
        super().__init__()
        self.frames = frames
        self.i = 0
        self.start: float | None = None

    async def recv(self) -> av.Packet:
        if self.start is None:
            self.start = time.monotonic()
        wait = self.start + self.i / FPS - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        data, key = self.frames[self.i % len(self.frames)]
        pkt = av.Packet(data)
        pkt.pts = self.i * (90000 // FPS)
        pkt.time_base = fractions.Fraction(1, 90000)
        pkt.is_keyframe = key
        self.i += 1
        return pkt


def client_pc(forwarding: bool) -> SfuPeerConnection:
    """client_pc: loopback aiortc peer; forwarding=True makes its receivers decoder-less counters."""
    return SfuPeerConnection(
        RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE),
        ice_addresses=LOOPBACK, forwarding=forwarding,
    )


async def run_one(n: int, fast: bool, seconds: float, frames: list[tuple[bytes, bool]],
                  loop_kind: str = "uvloop") -> dict[str, float]:
    """run_one measures one configuration with `n` subscribers."""
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    server = ctx.Process(target=server_entry, args=(theirs, fast, 0, loop_kind), daemon=True)
    server.start()
    loop = asyncio.get_running_loop()

    async def call(*cmd: Any) -> Any:
        ours.send(cmd)
        return await loop.run_in_executor(None, ours.recv)

    pcs: list[SfuPeerConnection] = []
    received = [0]

    def count(_: Any) -> None:
        received[0] += 1

    async def down(pid: str, role: str) -> None:
        offer = await call("join", pid, role)
        pc = client_pc(forwarding=True)
        pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for t in pc.getTransceivers():
            assert isinstance(t.receiver, ForwardingReceiver)
            t.receiver.on_rtp = count
        await pc.setLocalDescription(await pc.createAnswer())
        await call("answer", pid, pc.localDescription.sdp)

    try:
        base = await call("stats")
        await down("pub", "trainer")
        for i in range(n):
            await down(f"s{i}", "classroom")
        await asyncio.sleep(2.0)
        i0, ti0 = await call("stats"), time.monotonic()
        await asyncio.sleep(2.0)
        i1, ti1 = await call("stats"), time.monotonic()
        idle_ms = (i1["cpu"] - i0["cpu"]) / (ti1 - ti0) * 1000  # CPU ms/s with everyone connected, no media
        pub = client_pc(forwarding=False)
        pcs.append(pub)
        pub.addTransceiver(PacketTrack(frames), direction="sendonly")
        pub.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pub.setLocalDescription(await pub.createOffer())
        answer = await call("publish", "pub", pub.localDescription.sdp, {"0": "camera", "1": "mic"})
        await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        await asyncio.sleep(3.0)  # connect, first keyframes
        profile = os.environ.get("BENCH_PROFILE")
        if profile:
            await call("profile", True)
        s0, r0, t0 = await call("stats"), received[0], time.monotonic()
        await asyncio.sleep(seconds)
        s1, r1, t1 = await call("stats"), received[0], time.monotonic()
        if profile:
            await call("profile", False, f"{profile}.{n}")
        out = s1["out"] - s0["out"]
        if os.environ.get("BENCH_THREADS"):
            print({k: round(v - s0["threads"].get(k, 0), 3) for k, v in s1["threads"].items()})
        return {
            "n": n,
            "us_per_packet": (s1["cpu"] - s0["cpu"]) / out * 1e6 if out else float("nan"),
            "out_pps": out / (t1 - t0),
            "in_pps": (s1["in"] - s0["in"]) / (t1 - t0),
            "delivery": (r1 - r0) / out if out else 0.0,
            "rss_kib_per_participant": (s1["rss"] - base["rss"]) / (n + 1),
            "idle_cpu_ms_per_s": idle_ms,
            "cpu_ms_per_s": (s1["cpu"] - s0["cpu"]) / (t1 - t0) * 1000,
            "c_in_share": (s1["c_in"] - s0["c_in"]) / max(1, s1["in"] - s0["in"]),
            "fast_share": (s1["fast"] - s0["fast"])
            / max(1, s1["fast"] + s1["slow"] - s0["fast"] - s0["slow"]),
        }
    finally:
        for pc in pcs:
            await pc.close()
        try:
            await asyncio.wait_for(call("stop"), 10)
        except Exception:
            pass
        server.join(5)
        if server.is_alive():
            server.kill()


async def main() -> None:
    """main parses arguments, encodes the video once and prints one table row per N (medians of --repeat runs)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1, 5, 10, 20, 40])
    ap.add_argument("--seconds", type=float, default=8.0, help="measurement window per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per N; the table shows medians and the range")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop", help="the server's event loop")
    ap.add_argument("--slow", action="store_true", help="use aiortc's awaited _send_rtp (no fast path)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    frames = encode_vp8(5.0)
    kbps = sum(len(f) for f, _ in frames) * 8 / (len(frames) / FPS) / 1000
    print(f"VP8 640x360@{FPS}: {len(frames)} frames, {kbps:.0f} kbit/s; Opus from aiortc; "
          f"path={'slow (aiortc _send_rtp)' if args.slow else 'fast (libsrtp + sendto)'}, "
          f"fan-out={'Python' if os.environ.get('BENCH_PYTHON') or not COMPILED else 'C (sfu._fanout)'}, "
          f"loop={args.loop}, median of {args.repeat} x {args.seconds:g} s")
    print(f"{'N':>4} {'µs/pkt':>8} {'range':>11} {'µs/pkt-idle':>12} {'out pkt/s':>10} {'in pkt/s':>9} "
          f"{'delivery':>9} {'RSS KiB/part':>13} {'idle ms/s':>10} {'in via C':>9}")
    for n in args.n:
        runs = [await run_one(n, not args.slow, args.seconds, frames, args.loop) for _ in range(args.repeat)]
        for r in runs:
            r["net"] = (r["cpu_ms_per_s"] - r["idle_cpu_ms_per_s"]) * 1000 / r["out_pps"] if r["out_pps"] else 0.0
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        lo, hi = min(r["us_per_packet"] for r in runs), max(r["us_per_packet"] for r in runs)
        print(f"{n:>4} {m['us_per_packet']:>8.1f} {f'{lo:.1f}-{hi:.1f}':>11} {m['net']:>12.1f} {m['out_pps']:>10.0f} "
              f"{m['in_pps']:>9.0f} {min(r['delivery'] for r in runs):>9.3f} "
              f"{m['rss_kib_per_participant']:>13.0f} {m['idle_cpu_ms_per_s']:>10.1f} {m['c_in_share']:>9.3f}",
              flush=True)


if __name__ == "__main__":
    asyncio.run(main())
