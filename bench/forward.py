"""forward: benchmark of the SFU's forwarding path (server CPU per outgoing and per inbound packet, delivery, memory).

One publisher sends pre-encoded VP8 (~500 kbit/s, encoded once up front, sent as av.Packet so aiortc only
packetizes, with Chromium's L1T3 temporal-layer descriptors) plus Opus; N decoder-less subscribers receive it
through the SFU. The SFU runs in its own process pinned to one core; the clients run in this process on another
core. The subscribers' receivers take the same C receive path as the SFU's (``Counter``): they count what
arrives and send RR, NACK and REMB like a browser, at a fraction of the Python path's cost.

    .venv/bin/python bench/forward.py                 # N = 1 5 10 20 40, fast path, 3 runs each
    .venv/bin/python bench/forward.py --n 20 --slow   # aiortc's awaited _send_rtp instead, for comparison
    .venv/bin/python bench/forward.py --n 20 --plain  # VP8 without temporal layers (PictureID only)
    .venv/bin/python bench/forward.py --loop asyncio  # the server on asyncio's loop instead of uvloop
    BENCH_PYTHON=1 .venv/bin/python bench/forward.py  # pure-Python fan-out even when sfu._fanout is built
    BENCH_NO_ALLOCATION=1 .venv/bin/python bench/forward.py  # sfu.allocation off: no estimate, layers, pacer
    BENCH_RECEIVE_WAIT_MS=0 .venv/bin/python bench/forward.py --classrooms 86  # sfu.receive_wait_ms (default 1):
                                                            # 0, the loop never waits between polls (sfu.batch)
    BENCH_PROFILE_IDLE=/tmp/idle .venv/bin/python bench/forward.py --n 20  # cProfile of the no-media window
    BENCH_ALLOC=1 .venv/bin/python bench/forward.py --n 20  # per window: the allocation's runs, links at rest
                                                            # skipped, room replans, their CPU, estimates, REMBs,
                                                            # temporal cuts, pacer
    .venv/bin/python bench/forward.py --classrooms 40 86   # the lecture case

Columns: server CPU µs per outgoing packet (server process CPU time / packets it forwarded, inbound
handling and RTCP included; median of --repeat runs and their range: a shared virtual machine's speed
drifts by a third between runs), the same less the CPU the connected room costs without media
(µs/pkt-idle), outgoing and inbound packets/s, the worst delivery ratio (packets the subscribers received /
packets forwarded), server RSS growth per participant, CPU ms/s of the connected room without media, and the
share of inbound media packets the C receive path handled (sfu/_ingress.c; the rest took the Python path).

The lecture case (--classrooms M): M classrooms each publish a 2-layer simulcast camera (rid q 320x180
~150 kbit/s and f 640x360 ~500 kbit/s, VP8 L1T3, crafted RTP with the rid header extensions on the clients'
real DTLS-SRTP transports) and a microphone (Opus every 20 ms); the presenter publishes as above, pages its
grid every --page-every s and gives the floor to the first classroom; the recorder runs in the server
process. The classrooms run in --client-procs client processes (default one per 25 classrooms, on the
clients' core), each with its own pipe to the SFU process, so a full lecture's fan-out is received. Each
repeat runs N = 0 (only the presenter receives: mostly inbound work) and N = M (every classroom also
receives, as in a lecture) one after the other. The server's CPU is split as a·inbound + b·outgoing packets:
b (µs per outgoing packet) = the CPU the M receiving classrooms add / the packets they add, a (µs per inbound
packet) = the rest of the N = 0 run's CPU / its inbound packets (timers, RTCP, the recorder and the layer and
allocation jobs included). The last line per M also gives the whole lecture's CPU (the N = M run). ``waits/s``:
the event loop's waits between polls a second (sfu.batch; 0 while the receive rate is under
sfu.receive_wait_above)."""

from __future__ import annotations

import argparse
import asyncio
import fractions
import gc
import multiprocessing as mp
import os
import re
import statistics
import struct
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
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

from recorder.participant import RecorderOptions, RecordingParticipant  # noqa: E402
from server.cli import loop_factory  # noqa: E402
from server.db.models import Role  # noqa: E402
from server.live.capabilities import CAPABILITIES  # noqa: E402
from sfu.config import SfuConfig  # noqa: E402
from sfu.consumer import COMPILED, Consumer  # noqa: E402
from sfu.events import Event, ServerOffer  # noqa: E402
from sfu.hooks.connection import SfuPeerConnection  # noqa: E402
from sfu.hooks.receiver import ForwardingReceiver  # noqa: E402
from sfu.hooks.simulcast import URI_MID, URI_REPAIRED_RID, URI_RID  # noqa: E402
from sfu.rtp import URI_ABS_SEND_TIME, URI_AUDIO_LEVEL  # noqa: E402
from sfu.sfu import Sfu  # noqa: E402
from sfu.stats import SequenceTracker  # noqa: E402

LOOPBACK = ["127.0.0.1"]
FPS = 30
LATE = 0.2  # s behind its schedule after which a classroom's pump skips frames instead of catching up
RID_EXT, REPAIRED_RID_EXT = 10, 11  # the rid header extension ids the bench's simulcast offers use


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


def server_entry(conns: list[Connection], fast: bool, core: int, loop: str) -> None:
    """server_entry runs the SFU, pinned to `core`, on `loop` (as server.event_loop), driven over `conns` (the
    driver's pipe first, then one per client process)."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        runner.run(serve(conns, fast))


class Server:
    """Server is the SFU process's side of the bench: one room, the recorder, and the commands it answers."""

    def __init__(self, fast: bool) -> None:
        self.sfu = Sfu(SfuConfig(ice_addresses=LOOPBACK, fast_path=fast, max_participants_per_room=1000,
                                 compiled_fanout=not os.environ.get("BENCH_PYTHON"),
                                 allocation=not os.environ.get("BENCH_NO_ALLOCATION"),
                                 receive_wait=float(os.environ.get("BENCH_RECEIVE_WAIT_MS", "1")) / 1000))
        self.room: Any = None
        self.offers: dict[str, asyncio.Future[str]] = {}
        self.profiler: Any = None
        self.recorder: RecordingParticipant | None = None
        self.recordings = tempfile.TemporaryDirectory(prefix="bench-forward-")
        self.gc_time = [0.0, 0.0, 0.0]  # seconds spent in collections of each generation (BENCH_GC)
        self.gc_runs = [0, 0, 0]
        self.reassigns = 0  # the room's slot plans (BENCH_ALLOC)
        self.alloc_cpu = [0.0, 0.0]  # CPU seconds in the downlinks' allocations and the room's slot plans
        self._gc_start = 0.0
        gc.callbacks.append(self._gc_callback)

    def _gc_callback(self, phase: str, info: dict[str, int]) -> None:
        """_gc_callback times each garbage collection, per generation (printed with BENCH_GC=1)."""
        if phase == "start":
            self._gc_start = time.process_time()
        else:
            self.gc_time[info["generation"]] += time.process_time() - self._gc_start
            self.gc_runs[info["generation"]] += 1

    def allocation(self, room: Any, consumers: list[Consumer]) -> dict[str, Any]:
        """allocation: the downlink allocation's counters (printed with BENCH_ALLOC=1)."""
        links = room.downlinks.links
        video = [c for c in consumers if c.kind == "video" and c.source is not None]
        pacers = {id(c.wire.pacer): c.wire.pacer for c in consumers if c.wire is not None}
        return {
            "runs": room.downlinks.runs, "rested": room.downlinks.rested, "reassigns": self.reassigns,
            "drain_timers": room.downlinks.drains.fired,
            "allocate_ms": round(self.alloc_cpu[0] * 1000), "reassign_ms": round(self.alloc_cpu[1] * 1000),
            "estimates": sorted(round(link.estimate / 1000) for link in links.values()),
            "rembs": sorted(round((c.remb_bitrate or 0) / 1000) for c in video),
            "temporal": sorted(-1 if c.max_temporal is None else c.max_temporal for c in video),
            "dropped": sum(p.dropped for p in pacers.values()), "queued": sum(p.sent_queued for p in pacers.values()),
            "nacked": sum(c.nacked for c in video), "resent": sum(c.retransmitted for c in video),
            "steady": sum(link.steady for link in links.values()),
            "up": sum(link.upgrades for link in links.values()),
            "down": sum(link.downgrades for link in links.values()),
        }

    def on_event_for(self, pid: str) -> Any:
        async def on_event(event: Event) -> None:
            if isinstance(event, ServerOffer) and not self.offers[pid].done():
                self.offers[pid].set_result(event.sdp)

        return on_event

    async def handle(self, cmd: tuple[Any, ...]) -> Any:
        """handle runs one join/publish/answer/stats/profile/recorder/page/floor/stop command; its reply."""
        room, op = self.room, cmd[0]
        if op == "join":
            pid, role = cmd[1], cmd[2]
            self.offers[pid] = asyncio.get_running_loop().create_future()
            await room.join(pid, role, pid, CAPABILITIES[Role(role)], self.on_event_for(pid))
            return await self.offers[pid]
        if op == "publish":
            return await room.publish(cmd[1], cmd[2], cmd[3])
        if op == "answer":
            await room.answer_down(cmd[1], cmd[2])
        elif op == "stats":
            consumers = [c for p in room.participants.values() for c in p.consumers.values()
                         if isinstance(c, Consumer)]  # the recorder's Sinks send nothing
            producers = [layer for p in room.participants.values() for pr in p.producers.values()
                         for layer in pr.layers]  # one Producer per simulcast layer
            return {
                "cpu": time.process_time(),
                "threads": thread_cpu(),
                "gc": (list(self.gc_runs), list(self.gc_time)),
                "out": sum(c.packets_sent for c in consumers),
                "in": sum(pr.packets for pr in producers),
                "rss": rss_kib(),
                "fast": sum(c.wire.fast_sent for c in consumers if c.wire),
                "slow": sum(c.wire.slow_sent for c in consumers if c.wire),
                "c_in": sum(pr.receiver.ingress.packets for pr in producers if pr.receiver.ingress is not None),
                "alloc": self.allocation(room, consumers),
                "waits": self.sfu.batching.naps if self.sfu.batching is not None else 0,
            }
        elif op == "profile":  # cProfile of the measurement window only (BENCH_PROFILE=path)
            import cProfile

            if cmd[1]:
                self.profiler = cProfile.Profile(time.process_time)  # CPU time: the host is shared
                self.profiler.enable()
            elif self.profiler is not None:
                self.profiler.disable()
                self.profiler.dump_stats(cmd[2])
        elif op == "recorder":  # the recorder, in-process as the server runs it, writing to a temporary directory
            self.recorder = RecordingParticipant(room, Path(self.recordings.name) / "rec", RecorderOptions())
            await self.recorder.start()
        elif op == "page":
            return await room.set_grid_page(cmd[1], cmd[2])
        elif op == "floor":
            return await room.give_floor(cmd[1], cmd[2])
        elif op == "stop":
            if self.recorder is not None:
                await self.recorder.stop()
            self.recordings.cleanup()
            await self.sfu.close()
        return None


async def serve(conns: list[Connection], fast: bool) -> None:
    """serve answers the commands of every pipe (each pipe's in order, the pipes concurrently) until the driver's
    stop; a client process's pipe ends when that process closes it."""
    loop = asyncio.get_running_loop()
    server = Server(fast)
    server.room = await server.sfu.room("bench")
    reassign, allocate = server.room._reassign, server.room.downlinks._allocate

    def counted() -> None:
        server.reassigns += 1
        t = time.process_time()
        reassign()
        server.alloc_cpu[1] += time.process_time() - t

    def timed(*args: Any) -> bool:
        t = time.process_time()
        changed = allocate(*args)
        server.alloc_cpu[0] += time.process_time() - t
        return bool(changed)

    server.room._reassign = counted
    server.room.downlinks._allocate = timed
    stopped: asyncio.Future[None] = loop.create_future()
    pool = ThreadPoolExecutor(len(conns), thread_name_prefix="pipe")  # one blocked recv per pipe

    async def reader(conn: Connection) -> None:
        while True:
            try:
                cmd = await loop.run_in_executor(pool, conn.recv)
            except EOFError:
                return
            conn.send(await server.handle(cmd))
            if cmd[0] == "stop":
                stopped.set_result(None)
                return

    readers = [asyncio.ensure_future(reader(conn)) for conn in conns]
    await stopped
    for task in readers:
        task.cancel()
    pool.shutdown(wait=False)


# ----------------------------------------------------------------------------------------- clients


def encode_vp8(seconds: float, bitrate: int = 500_000, size: tuple[int, int] = (640, 360)
               ) -> list[tuple[bytes, bool]]:
    """encode_vp8 encodes a moving texture once: [(frame bytes, is keyframe)].

    The texture is random 8×8-pixel blocks: libvpx holds ~500 kbit/s on it with camera-like frame sizes
    (deltas of ~1.5 KB, two RTP packets each; keyframes of ~27 KB). Per-pixel noise would not do: its
    keyframes alone (~190 KB every 2 s) take the stream to ~800 kbit/s.
    """
    ctx = av.CodecContext.create("libvpx", "w")
    (width, height), ctx.pix_fmt = size, "yuv420p"
    ctx.width, ctx.height = width, height
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
        crop = np.ascontiguousarray(texture[y:y + height, x:x + width])
        frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = i
        for pkt in ctx.encode(frame):
            out.append((bytes(pkt), bool(pkt.is_keyframe)))
    for pkt in ctx.encode(None):
        out.append((bytes(pkt), bool(pkt.is_keyframe)))
    return out


L1T3 = (0, 2, 1, 2)  # VP8 temporal layer of each frame in a group of four (Chromium's L1T3)


def vp8_descriptor(start: bool, pic: int, tl0: int, tid: int, sync: bool) -> bytes:
    """vp8_descriptor is an RFC 7741 payload descriptor as Chromium's L1T3 writes it: 15-bit PictureID,
    TL0PICIDX, TID and Y bit, partition 0 (S bit on a frame's first packet)."""
    return bytes((0x90 if start else 0x80, 0xE0, 0x80 | (pic >> 8) & 0x7F, pic & 0xFF, tl0 & 0xFF,
                  (tid << 6) | (0x20 if sync else 0)))


class L1T3Packetizer:
    """L1T3Packetizer splits VP8 frames into payloads with L1T3 descriptors (one publisher stream).

    A frame's temporal layer follows ``L1T3`` counted from the last keyframe; TL0PICIDX grows by one per TL0
    frame; the first TL1 and TL2 frames after a keyframe are layer-sync (Y) frames, as Chromium marks them.
    """

    def __init__(self, mtu: int = 1294) -> None:  # 1300-octet payloads, as aiortc packetizes
        self.mtu = mtu
        self.pic = 0
        self.tl0 = 0
        self.since_key = 0

    def packetize(self, frame: bytes, key: bool) -> list[bytes]:
        """packetize returns the payloads of the next frame."""
        if key:
            self.since_key = 0
        tid = L1T3[self.since_key % 4]
        if tid == 0:
            self.tl0 += 1
        sync = tid > 0 and self.since_key < 4
        out = [vp8_descriptor(pos == 0, self.pic & 0x7FFF, self.tl0, tid, sync) + frame[pos:pos + self.mtu]
               for pos in range(0, len(frame), self.mtu)]
        self.pic += 1
        self.since_key += 1
        return out


def send_l1t3() -> None:
    """send_l1t3 makes aiortc's VP8 packetizer (in this process: the presenter's) write L1T3 descriptors, so
    the SFU's per-consumer temporal filter and PictureID/TL0PICIDX rewriting run on every packet."""
    from aiortc.codecs.vpx import Vp8Encoder
    from aiortc.mediastreams import convert_timebase

    def pack(self: Any, packet: av.Packet) -> tuple[list[bytes], int]:
        if not hasattr(self, "bench_l1t3"):
            self.bench_l1t3 = L1T3Packetizer()
        timestamp = convert_timebase(packet.pts or 0, packet.time_base, fractions.Fraction(1, 90000))
        return self.bench_l1t3.packetize(bytes(packet), bool(packet.is_keyframe)), timestamp

    Vp8Encoder.pack = pack  # type: ignore[method-assign]


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


class Counter:
    """Counter counts the packets one subscriber receiver gets, as a Producer without sinks: the receiver arms its
    C path (sfu/_ingress.c) for it, so a client receives at the SFU's cost per packet (RR, NACK and REMB as
    before) and the client processes keep up with a lecture's fan-out."""

    ingress_ready = True
    sinks: tuple[Any, ...] = ()
    _slots = None

    def __init__(self, kind: str) -> None:
        self.kind, self.mime = kind, ""
        self.packets = self.bytes = self.keyframes_received = self.frames_received = 0
        self._seq = SequenceTracker()

    def on_fields(self, ssrc: int, seq: int, ts: int, marker: int, payload: bytes, padding: int, audio_level: int,
                  arrival: float) -> None:
        self.packets += 1  # the Python path (first packets, gaps, RTX); the C path counts the rest itself
        self.bytes += len(payload)
        self._seq.add(seq)

    def _forward_python(self, inbound: Any, rest: Any) -> None:
        pass


class Peers:
    """Peers is one process's client peers and its pipe to the SFU process (the driver's or a client process's)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = asyncio.Lock()  # one command at a time on the pipe (the paging task runs beside the window)
        self.pcs: list[SfuPeerConnection] = []
        self.counters: list[Counter] = []

    async def call(self, *cmd: Any) -> Any:
        """call sends one command to the server and waits for its reply."""
        async with self.lock:
            self.conn.send(cmd)
            return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)

    def received(self) -> int:
        """received: the RTP packets this process's subscriber receivers got."""
        return sum(c.packets for c in self.counters)

    async def down(self, pid: str, role: str, answer: bool = True) -> None:
        """down joins `pid`; with `answer` its down connection is answered by a counting, decoder-less peer."""
        offer = await self.call("join", pid, role)
        if not answer:
            return
        pc = client_pc(forwarding=True)
        self.pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for t in pc.getTransceivers():
            assert isinstance(t.receiver, ForwardingReceiver)
            counter = Counter(t.kind)
            self.counters.append(counter)
            t.receiver.on_fields = counter.on_fields
        await pc.setLocalDescription(await pc.createAnswer())
        await self.call("answer", pid, pc.localDescription.sdp)

    async def publish(self, pid: str, frames: list[tuple[bytes, bool]]) -> None:
        """publish: `pid` sends the pre-encoded VP8 (L1T3 unless --plain) and aiortc's Opus."""
        pub = client_pc(forwarding=False)
        self.pcs.append(pub)
        pub.addTransceiver(PacketTrack(frames), direction="sendonly")
        pub.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pub.setLocalDescription(await pub.createOffer())
        answer = await self.call("publish", pid, pub.localDescription.sdp, {"0": "camera", "1": "mic"})
        await pub.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        for pc in self.pcs:
            await pc.close()


def client_entry(server: Connection, driver: Connection, core: int, layers: list[list[tuple[bytes, bool]]]) -> None:
    """client_entry runs one client process of the lecture case, pinned to `core`, on uvloop when installed."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    with asyncio.Runner(loop_factory=loop_factory("uvloop")) as runner:
        runner.run(clients(server, driver, layers))


async def clients(server: Connection, driver: Connection, layers: list[list[tuple[bytes, bool]]]) -> None:
    """clients answers the driver's commands: classroom (join, answer when told, publish the layered camera),
    pump (start sending), received (the packets counted), close."""
    loop = asyncio.get_running_loop()
    peers = Peers(server)
    cameras: list[LayeredCamera] = []
    pumping: asyncio.Task[None] | None = None
    while True:
        cmd = await loop.run_in_executor(None, driver.recv)
        reply: Any = None
        if cmd[0] == "classroom":
            _, pid, answer, phase = cmd
            await peers.down(pid, "classroom", answer)
            cameras.append(await publish_layered(peers, pid, layers, phase))
        elif cmd[0] == "pump":
            pumping = asyncio.ensure_future(pump(cameras))
        elif cmd[0] == "received":
            reply = peers.received()
        elif cmd[0] == "close":
            if pumping is not None:
                pumping.cancel()
            await peers.close()
            server.close()
            driver.send(None)
            return
        driver.send(reply)


class Worker:
    """Worker is the driver's handle on one client process."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.lock = asyncio.Lock()

    async def call(self, *cmd: Any) -> Any:
        async with self.lock:
            self.conn.send(cmd)
            return await asyncio.get_running_loop().run_in_executor(None, self.conn.recv)


class Bench(Peers):
    """Bench is one run: the SFU process (driven over a pipe), this process's client peers (the driver's) and
    `procs` client processes (the lecture case's classrooms), each with its own pipe to the SFU process."""

    def __init__(self, fast: bool, loop_kind: str, procs: int = 0,
                 layers: list[list[tuple[bytes, bool]]] | None = None) -> None:
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        super().__init__(ours)
        server_ends = [theirs]
        self.workers: list[Worker] = []
        client_core = 1 if (os.cpu_count() or 1) > 1 else 0
        for _ in range(procs):
            to_server, server_end = ctx.Pipe()
            to_worker, worker_end = ctx.Pipe()
            server_ends.append(server_end)
            process = ctx.Process(target=client_entry, args=(to_server, worker_end, client_core, layers), daemon=True)
            self.workers.append(Worker(process, to_worker))
        self.server = ctx.Process(target=server_entry, args=(server_ends, fast, 0, loop_kind), daemon=True)
        self.server.start()
        for worker in self.workers:
            worker.process.start()

    async def received_all(self) -> int:
        """received_all: the packets every subscriber (this process's and the client processes') received."""
        counts = await asyncio.gather(*(w.call("received") for w in self.workers))
        return self.received() + sum(counts)

    async def window(self, seconds: float, n: int) -> tuple[dict[str, Any], dict[str, Any], float, int]:
        """window: the server's stats before and after `seconds`, the time and the packets received meanwhile
        (cProfile of the window with BENCH_PROFILE=path, per-thread CPU printed with BENCH_THREADS=1)."""
        profile = os.environ.get("BENCH_PROFILE")
        if profile:
            await self.call("profile", True)
        s0, r0, t0 = await self.call("stats"), await self.received_all(), time.monotonic()
        await asyncio.sleep(seconds)
        s1, r1, t1 = await self.call("stats"), await self.received_all(), time.monotonic()
        if profile:
            await self.call("profile", False, f"{profile}.{n}")
        if os.environ.get("BENCH_THREADS"):
            print({k: round(v - s0["threads"].get(k, 0), 3) for k, v in s1["threads"].items()})
        if os.environ.get("BENCH_ALLOC"):
            a0, a1 = s0["alloc"], s1["alloc"]
            print("     alloc:", {k: (a1[k] - a0[k]) if isinstance(a1[k], int) else a1[k] for k in a1})
        if os.environ.get("BENCH_GC"):  # the server's garbage collections in the window, per generation
            runs = [b - a for a, b in zip(s0["gc"][0], s1["gc"][0], strict=True)]
            spent = [b - a for a, b in zip(s0["gc"][1], s1["gc"][1], strict=True)]
            cpu = s1["cpu"] - s0["cpu"]
            print(f"     gc: collections per generation {runs}, CPU ms {[round(x * 1000, 1) for x in spent]}"
                  f" ({100 * sum(spent) / cpu if cpu else 0:.1f} % of the server's CPU)")
        return s0, s1, t1 - t0, r1 - r0

    async def close(self) -> None:
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.call("close"), 20)
            except Exception:
                pass
        await super().close()
        try:
            await asyncio.wait_for(self.call("stop"), 10)
        except Exception:
            pass
        for process in [w.process for w in self.workers] + [self.server]:
            process.join(5)
            if process.is_alive():
                process.kill()


def rates(s0: dict[str, Any], s1: dict[str, Any], dt: float, received: int) -> dict[str, float]:
    """rates: the server's CPU ms/s, packets/s in and out, delivery and C-path share over one window."""
    out = s1["out"] - s0["out"]
    return {
        "cpu_ms_per_s": (s1["cpu"] - s0["cpu"]) / dt * 1000,
        "us_per_packet": (s1["cpu"] - s0["cpu"]) / out * 1e6 if out else float("nan"),
        "out_pps": out / dt,
        "in_pps": (s1["in"] - s0["in"]) / dt,
        "delivery": received / out if out else 0.0,
        "c_in_share": (s1["c_in"] - s0["c_in"]) / max(1, s1["in"] - s0["in"]),
        "fast_share": (s1["fast"] - s0["fast"]) / max(1, s1["fast"] + s1["slow"] - s0["fast"] - s0["slow"]),
        "waits_per_s": (s1.get("waits", 0) - s0.get("waits", 0)) / dt,
    }


async def run_one(n: int, fast: bool, seconds: float, frames: list[tuple[bytes, bool]],
                  loop_kind: str = "uvloop", settle: float = 10.0) -> dict[str, float]:
    """run_one measures one configuration with `n` subscribers."""
    bench = Bench(fast, loop_kind)
    try:
        base = await bench.call("stats")
        await bench.down("pub", "trainer")
        for i in range(n):
            await bench.down(f"s{i}", "classroom")
        await asyncio.sleep(2.0)
        idle_profile = os.environ.get("BENCH_PROFILE_IDLE")
        if idle_profile:
            await bench.call("profile", True)
        i0, ti0 = await bench.call("stats"), time.monotonic()
        await asyncio.sleep(2.0)
        i1, ti1 = await bench.call("stats"), time.monotonic()
        if idle_profile:
            await bench.call("profile", False, f"{idle_profile}.{n}")
        idle_ms = (i1["cpu"] - i0["cpu"]) / (ti1 - ti0) * 1000  # CPU ms/s with everyone connected, no media
        await bench.publish("pub", frames)
        await asyncio.sleep(settle)  # connect, first keyframes, the allocation's ramp from its start estimate
        s0, s1, dt, received = await bench.window(seconds, n)
        return {"n": n, **rates(s0, s1, dt, received), "idle_cpu_ms_per_s": idle_ms,
                "rss_kib_per_participant": (s1["rss"] - base["rss"]) / (n + 1)}
    finally:
        await bench.close()


# ------------------------------------------------------------------------------- layered classrooms


def simulcast_offer(sdp: str, rids: tuple[str, ...]) -> str:
    """simulcast_offer turns an aiortc offer into a Chromium-like simulcast one: the video section sends `rids`
    (lowest first) with the rid header extensions and no SSRC lines (the SFU learns them from the rids)."""
    out = []
    for part in sdp.split("\r\nm=")[1:]:
        lines = [line for line in ("m=" + part).split("\r\n") if line]
        if lines[0].startswith("m=video"):
            lines = [line for line in lines if not line.startswith("a=ssrc")]
            lines += [f"a=extmap:{RID_EXT} {URI_RID}", f"a=extmap:{REPAIRED_RID_EXT} {URI_REPAIRED_RID}"]
            lines += [f"a=rid:{rid} send" for rid in rids] + ["a=simulcast:send " + ";".join(rids)]
        out.append("\r\n".join(lines))
    return "\r\n".join([sdp.split("\r\nm=")[0], *out]) + "\r\n"


def section_params(sdp: str, kind: str, codec: str) -> tuple[int, dict[str, int]]:
    """section_params: the payload type of `codec` and the header extension ids (uri -> id) of the first
    `kind` section of `sdp`."""
    part = next(p for p in sdp.split("\r\nm=")[1:] if p.startswith(kind))
    pt = int(re.search(rf"a=rtpmap:(\d+) {codec}/", part).group(1))  # type: ignore[union-attr]
    return pt, {uri: int(i) for i, uri in re.findall(r"a=extmap:(\d+) (\S+)", part)}


def rtp_packet(pt: int, marker: bool, seq: int, ts: int, ssrc: int, ext: list[tuple[int, bytes]],
               payload: bytes) -> bytes:
    """rtp_packet: an RTP packet with one-byte header extensions (RFC 8285)."""
    body = b"".join(bytes(((i << 4) | (len(v) - 1),)) + v for i, v in ext)
    body += bytes(-len(body) % 4)
    return (struct.pack("!BBHII", 0x90, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
            + struct.pack("!HH", 0xBEDE, len(body) // 4) + body + payload)


class LayeredCamera:
    """LayeredCamera is one classroom's up connection sending as Chromium does with a 2-layer camera: VP8
    simulcast (rid `q` and `f`, L1T3 descriptors, mid and rid on each stream's first packets, abs-send-time
    on all) plus Opus (20 ms packets with the audio level), crafted and sent on the client's real
    DTLS-SRTP transport (aiortc cannot send simulcast)."""

    RIDS = ("q", "f")
    OPUS = bytes((0x78,)) + bytes(range(1, 80))  # one 20 ms Opus frame (~32 kbit/s); the SFU does not decode it

    def __init__(self, pc: SfuPeerConnection, answer: str, layers: list[list[tuple[bytes, bool]]], phase: float
                 ) -> None:
        rng = np.random.default_rng()
        self.phase = phase
        self.vp8, self.video_ext = section_params(answer, "video", "VP8")
        self.opus, self.audio_ext = section_params(answer, "audio", "opus")
        self.audio_ssrc = pc.getTransceivers()[1].sender._ssrc
        dtls: Any = pc.getTransceivers()[0].sender.transport
        self.protect = dtls._tx_srtp.protect
        pair = dtls.transport._connection._nominated[1]
        self.sendto, self.addr = pair.protocol.transport.sendto, pair.remote_addr
        self.layers = layers
        self.ssrcs = [int(x) for x in rng.integers(1, 1 << 32, len(layers))]
        self.seqs = [int(x) for x in rng.integers(0, 1 << 16, len(layers) + 1)]
        self.ts0 = int(rng.integers(0, 1 << 32))
        self.packetizers = [L1T3Packetizer() for _ in layers]
        self.offset = int(rng.integers(0, 1000))  # where in the encoded frames this classroom starts

    def abs_send_time(self) -> bytes:
        return (int(time.time() * (1 << 18)) & 0xFFFFFF).to_bytes(3, "big")  # 6.18 fixed point

    def video(self, i: int) -> None:
        """video sends frame `i` of every layer."""
        mid, rid, ast = (self.video_ext[u] for u in (URI_MID, URI_RID, URI_ABS_SEND_TIME))
        for k, frames in enumerate(self.layers):
            data, key = frames[(i + self.offset) % len(frames)]
            ext = [(ast, self.abs_send_time())]
            if i < 10:  # Chromium repeats mid and rid until the SFU's feedback shows it learnt the SSRC
                ext += [(mid, b"0"), (rid, self.RIDS[k].encode())]
            payloads = self.packetizers[k].packetize(data, key or i == 0)
            for j, payload in enumerate(payloads):
                self.seqs[k] += 1
                self.sendto(self.protect(rtp_packet(self.vp8, j == len(payloads) - 1, self.seqs[k],
                                                    self.ts0 + i * (90000 // FPS), self.ssrcs[k], ext, payload)),
                            self.addr)

    def audio(self, i: int) -> None:
        """audio sends the `i`-th 20 ms Opus packet."""
        self.seqs[-1] += 1
        ext = [(self.audio_ext[URI_AUDIO_LEVEL], b"\x50")]  # -80 dBov, no voice
        if i < 10:
            ext.append((self.audio_ext[URI_MID], b"1"))
        self.sendto(self.protect(rtp_packet(self.opus, False, self.seqs[-1], self.ts0 + i * 960, self.audio_ssrc,
                                            ext, self.OPUS)), self.addr)


async def publish_layered(peers: Peers, pid: str, layers: list[list[tuple[bytes, bool]]], phase: float
                          ) -> LayeredCamera:
    """publish_layered: `pid` publishes a 2-layer simulcast camera and a microphone from a crafting client,
    sending at `phase` (a fraction of a frame period) after the others' start."""
    pc = client_pc(forwarding=False)
    peers.pcs.append(pc)
    pc.addTransceiver("video", direction="sendonly")
    pc.addTransceiver("audio", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = simulcast_offer(pc.localDescription.sdp, LayeredCamera.RIDS)
    answer = await peers.call("publish", pid, offer, {"0": "camera", "1": "mic"})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    for _ in range(200):
        if pc.connectionState == "connected":
            break
        await asyncio.sleep(0.05)
    return LayeredCamera(pc, answer, layers, phase)


async def pump(cameras: list[LayeredCamera]) -> None:
    """pump sends every camera's video at FPS and audio every 20 ms, each classroom at its own phase (as
    classrooms are not in step), in 2 ms ticks. A process held off the CPU for more than `LATE` s skips what it
    missed, as a camera drops frames, rather than sending it in a burst (a busy machine then shows as a lower
    inbound rate, not as a burst inside the measurement window)."""
    start, m = time.monotonic(), len(cameras)
    video = [0] * m
    audio = [0] * m
    while True:
        now = time.monotonic() - start
        for k, cam in enumerate(cameras):
            phase = cam.phase
            if now - (video[k] + phase) / FPS > LATE:
                video[k] = int(now * FPS - phase)
                audio[k] = int(now / 0.02 - phase)
            while (video[k] + phase) / FPS <= now:
                cam.video(video[k])
                video[k] += 1
            while (audio[k] + phase) * 0.02 <= now:
                cam.audio(audio[k])
                audio[k] += 1
        await asyncio.sleep(0.002)


async def run_lecture(m: int, n: int, fast: bool, seconds: float, frames: list[tuple[bytes, bool]],
                      layers: list[list[tuple[bytes, bool]]], loop_kind: str, page_every: float, procs: int
                      ) -> dict[str, float]:
    """run_lecture measures a lecture: `m` classrooms publishing layered cameras and microphones, of which the
    first `n` also receive (their down connections answered), spread over `procs` client processes; the
    presenter (in this process) publishing as the one-publisher case and paging the grid every `page_every` s;
    the floor to the first classroom; the recorder on."""
    bench = Bench(fast, loop_kind, procs, layers)
    tasks: list[asyncio.Task[None]] = []
    try:
        await bench.down("pub", "trainer")
        await bench.call("recorder")

        async def classrooms(k: int, worker: Worker) -> None:  # each process joins its share in order
            for i in range(k, m, procs):
                await worker.call("classroom", f"c{i}", i < n, i / m)

        await asyncio.gather(*(classrooms(k, w) for k, w in enumerate(bench.workers)))
        await bench.publish("pub", frames)
        await bench.call("floor", "pub", "c0")
        await asyncio.gather(*(w.call("pump") for w in bench.workers))

        async def paging() -> None:
            page = 0
            while True:
                await asyncio.sleep(page_every)
                shown = await bench.call("page", "pub", page + 1)
                page = shown if shown == page + 1 else -1  # past the last page: back to the first
                if page == -1:
                    page = await bench.call("page", "pub", 0)

        tasks.append(asyncio.ensure_future(paging()))
        await asyncio.sleep(4.0)  # connect, first keyframes, the layer watch and the allocation settle
        s0, s1, dt, received = await bench.window(seconds, n)
        return {"m": m, "n": n, **rates(s0, s1, dt, received)}
    finally:
        for t in tasks:
            t.cancel()
        await bench.close()


def packets_per_second(frames: list[tuple[bytes, bool]]) -> float:
    """packets_per_second: the RTP packets/s of `frames` at FPS (1294-octet fragments, as L1T3Packetizer)."""
    return statistics.mean(-(-len(f) // 1294) for f, _ in frames) * FPS


async def lecture_table(args: argparse.Namespace, frames: list[tuple[bytes, bool]],
                        layers: list[list[tuple[bytes, bool]]]) -> None:
    """lecture_table runs and prints the layered-classrooms case for each M (see main's --classrooms).

    A run whose inbound rate is under 90 % of what the clients send or whose delivery is under 95 % had a
    process starved of CPU (a busy machine): it is flagged and left out of the per-packet split and the whole
    lecture's figure. Not by delivery at N = 0: what the presenter receives there is ~150 packets a second, mostly
    the keyframes of the grid's new page every --page-every s, paced at its link's estimate and counted sent by the
    server when queued, so a window's delivery reads where it cut a page's burst (0.78-1.02 on a quiet host, no
    packet lost)."""
    print(f"{'M':>4} {'N':>4} {'in pkt/s':>9} {'out pkt/s':>10} {'CPU %core':>10} {'range':>11} "
          f"{'delivery':>9} {'in via C':>9} {'waits/s':>8}")
    classroom = sum(packets_per_second(layer) for layer in layers) + 50  # + Opus every 20 ms
    for m in args.classrooms:
        procs = max(1, args.client_procs or -(-m // 25))  # ~25 classrooms (50 peers) per client process
        nominal = m * classroom + packets_per_second(frames) + 50  # the classrooms and the presenter

        def starved(r: dict[str, float], n: int, nominal: float = nominal) -> bool:
            return r["in_pps"] < 0.9 * nominal or (n > 0 and r["delivery"] < 0.95)

        runs: dict[int, list[dict[str, float]]] = {0: [], m: []}
        for _ in range(args.repeat):  # inbound only (nobody but the presenter receives), then all receive
            for n in (0, m):
                runs[n].append(await run_lecture(m, n, not args.slow, args.seconds, frames, layers,
                                                 args.loop, args.page_every, procs))
        for n, rs in runs.items():
            cpu = [r["cpu_ms_per_s"] / 10 for r in rs]
            bad = sum(starved(r, n) for r in rs)
            print(f"{m:>4} {n:>4} {statistics.median(r['in_pps'] for r in rs):>9.0f} "
                  f"{statistics.median(r['out_pps'] for r in rs):>10.0f} {statistics.median(cpu):>10.1f} "
                  f"{f'{min(cpu):.1f}-{max(cpu):.1f}':>11} {min(r['delivery'] for r in rs):>9.3f} "
                  f"{statistics.median(r['c_in_share'] for r in rs):>9.3f} "
                  f"{statistics.median(r['waits_per_s'] for r in rs):>8.0f}"
                  f"{f'  starved: {bad} of {len(rs)}' if bad else ''}", flush=True)
        per_out, per_in = [], []
        for a, b in zip(runs[0], runs[m], strict=True):  # the runs made one after the other
            if starved(a, 0) or starved(b, m):
                continue
            out = (b["cpu_ms_per_s"] - a["cpu_ms_per_s"]) * 1000 / (b["out_pps"] - a["out_pps"])
            per_out.append(out)
            per_in.append((a["cpu_ms_per_s"] * 1000 - out * a["out_pps"]) / a["in_pps"])
        whole = [r["cpu_ms_per_s"] / 10 for r in runs[m] if not starved(r, m)]
        line = f"     M = {m} ({procs} client process{'es' if procs > 1 else ''}): "
        if whole:
            line += (f"the whole lecture {statistics.median(whole):.1f} % of a core "
                     f"({min(whole):.1f}-{max(whole):.1f})")
        if per_in:
            line += (f"; µs per inbound packet {statistics.median(per_in):.1f} ({min(per_in):.1f}-{max(per_in):.1f}), "
                     f"per outgoing packet {statistics.median(per_out):.1f} ({min(per_out):.1f}-{max(per_out):.1f})")
        print(line if whole or per_in else line + "every run starved: rerun on a quieter machine", flush=True)


async def main() -> None:
    """main parses arguments, encodes the video once and prints one table row per N (medians of --repeat runs)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1, 5, 10, 20, 40])
    ap.add_argument("--seconds", type=float, default=8.0, help="measurement window per run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per N; the table shows medians and the range")
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds from the publisher's start to the window (N case): the allocation starts every "
                         "link at its start estimate and takes ~7 s to reach the top temporal layer")
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop", help="the server's event loop")
    ap.add_argument("--slow", action="store_true", help="use aiortc's awaited _send_rtp (no fast path)")
    ap.add_argument("--plain", action="store_true", help="VP8 without temporal layers (PictureID only)")
    ap.add_argument("--classrooms", type=int, nargs="+", metavar="M",
                    help="the lecture case instead: M classrooms publishing 2-layer cameras and microphones")
    ap.add_argument("--page-every", type=float, default=3.0, help="the presenter's grid paging period (s)")
    ap.add_argument("--client-procs", type=int, metavar="K",
                    help="client processes of the lecture case (default: one per 25 classrooms)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    if not args.plain:
        send_l1t3()
    frames = encode_vp8(5.0)
    kbps = sum(len(f) for f, _ in frames) * 8 / (len(frames) / FPS) / 1000
    print(f"VP8 640x360@{FPS}: {len(frames)} frames, {kbps:.0f} kbit/s, "
          f"{'no temporal layers' if args.plain else 'L1T3'}; Opus from aiortc; "
          f"path={'slow (aiortc _send_rtp)' if args.slow else 'fast (libsrtp + sendto)'}, "
          f"fan-out={'Python' if os.environ.get('BENCH_PYTHON') or not COMPILED else 'C (sfu._fanout)'}, "
          f"loop={args.loop}, median of {args.repeat} x {args.seconds:g} s"
          f"{'' if args.classrooms else f' from {args.settle:g} s after the start'}")
    if args.classrooms:
        layers = [encode_vp8(5.0, 150_000, (320, 180)), encode_vp8(5.0, 500_000, (640, 360))]
        rates_kbps = [sum(len(f) for f, _ in fs) * 8 / (len(fs) / FPS) / 1000 for fs in layers]
        print(f"classroom cameras: q 320x180 {rates_kbps[0]:.0f} kbit/s + f 640x360 {rates_kbps[1]:.0f} kbit/s, "
              f"L1T3, Opus 20 ms; grid paged every {args.page_every:g} s; recorder on; N = 0: only the presenter "
              f"receives; N = M: every classroom receives")
        await lecture_table(args, frames, layers)
        return
    print(f"{'N':>4} {'µs/pkt':>8} {'range':>11} {'µs/pkt-idle':>12} {'out pkt/s':>10} {'in pkt/s':>9} "
          f"{'delivery':>9} {'RSS KiB/part':>13} {'idle ms/s':>10} {'in via C':>9}")
    for n in args.n:
        runs = [await run_one(n, not args.slow, args.seconds, frames, args.loop, args.settle)
                for _ in range(args.repeat)]
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
