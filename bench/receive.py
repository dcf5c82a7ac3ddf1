"""receive: benchmark of the media sockets' receive path: the event loop's UDP transport against ours (recvmmsg).

K sockets each receive one publisher's SRTP video (1 kB VP8 packets, --rate packets/s per socket, paced by a
sender process on the other core, as a lecture's classrooms send); the receiving process runs the SFU's
receive path for them (a ForwardingReceiver and its Producer per socket, no sinks; the C Demux keeps the
steady-state packets) and reads the sockets one of two ways, alternated within one run:

* ``loop`` - the event loop's own transport (uvloop: a ``recvmsg`` per datagram plus one more per wake-up that
  finds the socket empty, a bytes object and an address tuple per datagram, the Demux called from Python);
* ``reader`` - ``sfu.hooks.reader.SocketTransport`` (``sfu/_reader.c``: ``recvmmsg`` until a short batch, the
  Demux called from C, no Python object for a datagram C keeps).

Each round prints the receiving process's CPU per datagram (process CPU time over the window / datagrams the
Producers counted), the share of all datagrams C handled, datagrams per CPU-second and, with --perf (Linux
``perf`` installed), per datagram the system calls, the receive calls (recvmsg, recvfrom, recvmmsg), the event
loop's waits (epoll) and the context switches counted by ``perf stat`` on the receiving process over the same
window. A round whose receive rate fell under 95 % of the offered one (the sender starved by other work on a
shared host) is flagged ``starved`` and left out of the medians.

    .venv/bin/python bench/receive.py                          # 40 sockets x 150 packets/s, 3 rounds
    .venv/bin/python bench/receive.py --sockets 86 --rounds 5 --perf
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pylibsrtp  # noqa: E402
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport  # noqa: E402

from server.cli import loop_factory  # noqa: E402
from sfu.hooks.demux import MEDIA_DEMUX, MediaDemux  # noqa: E402
from sfu.hooks.guard import COMPILED_PATH  # noqa: E402
from sfu.hooks.reader import take_over  # noqa: E402
from sfu.hooks.receiver import ForwardingReceiver  # noqa: E402
from sfu.producer import Producer  # noqa: E402

KEY = bytes(range(30))
VP8 = 96
PER_FRAME = 4  # packets per video frame
# what --perf counts: all system calls, the receive calls, the event loop's waits, context switches
EVENTS = ("raw_syscalls:sys_enter", "syscalls:sys_enter_recvmsg", "syscalls:sys_enter_recvfrom",
          "syscalls:sys_enter_recvmmsg", "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_epoll_pwait",
          "context-switches")
STARVED = 0.95  # a round whose receive rate is under this share of the offered one is flagged and not counted


def sender(addresses: list[tuple[str, int]], rate: float, seconds: float, ready: Any, start: Any) -> None:
    """sender sends each address its SRTP stream at `rate` packets/s, every 2 ms, for `seconds` (protected first)."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    payload = os.urandom(1000)
    count = int(rate * seconds) + 1
    streams = []
    for i in range(len(addresses)):
        session = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
        packets = []
        for seq in range(count):
            frame, index = divmod(seq, PER_FRAME)
            marker = 0x80 if index == PER_FRAME - 1 else 0
            head = struct.pack("!BBHII", 0x80, marker | VP8, seq & 0xFFFF, frame * 3000, 0x1000 + i)
            vp8 = bytes((0x10 if index == 0 else 0x00, 0x00 if seq == 0 else 0x01))  # one keyframe, first
            packets.append(session.protect(head + vp8 + payload))
        streams.append(packets)
    sent = [0] * len(addresses)
    owed = [0.0] * len(addresses)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ready.set()
    start.wait()
    t0 = last = time.monotonic()
    while (now := time.monotonic()) - t0 < seconds:
        for i, address in enumerate(addresses):
            owed[i] += rate * (now - last)
            while owed[i] >= 1 and sent[i] < count:
                owed[i] -= 1
                sock.sendto(streams[i][sent[i]], address)
                sent[i] += 1
        last = now
        time.sleep(0.002)
    sock.close()


class Endpoint(asyncio.DatagramProtocol):
    """Endpoint is a datagram protocol that keeps its transport, as aioice's StunProtocol does."""

    transport: Any = None

    def __init__(self, callback: Any) -> None:
        self.datagram_received = callback  # type: ignore[method-assign]

    def connection_made(self, transport: Any) -> None:
        self.transport = transport


class Stream:
    """Stream is one socket's receive path: an SRTP session, a ForwardingReceiver, its Producer and the Demux."""

    def __init__(self, index: int, certificate: RTCCertificate) -> None:
        self.dtls: Any = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [certificate])
        self.dtls._rx_srtp = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
        self.receiver = ForwardingReceiver("video", self.dtls)
        r: Any = self.receiver
        r._enabled = True
        r.clock_rates = {VP8: 90000}
        r.media_ssrc = 0x1000 + index
        self.demux = MediaDemux(self.dtls) if COMPILED_PATH else None
        setattr(self.dtls, MEDIA_DEMUX, self.demux)
        self.producer = Producer("p", "camera", "video", "video/vp8", self.receiver)
        self.producer.set_sinks(())
        # what install_sync_rtp_receive does to aioice's protocol: an instance attribute, the C Demux first
        self.protocol = Endpoint(self.demux.wrap(self.python_path) if self.demux is not None else self.python_path)

    def endpoint(self) -> Endpoint:
        """endpoint: the protocol factory of this stream's socket."""
        return self.protocol

    def python_path(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """python_path: install_sync_rtp_receive's Python branch for a Producer's media (before C arms)."""
        try:
            plain = self.dtls._rx_srtp.unprotect(data)
        except pylibsrtp.Error:
            return
        self.receiver.direct_packets += 1
        self.receiver.handle_plain(plain, time.time())


def kept(streams: list[Stream]) -> int:
    """kept: the datagrams the C Demuxes took since the last call (0 without the C extension)."""
    return sum(d.take_counts()[0] for s in streams if s.demux is not None for d in s.demux.demuxes)


def perf_stat(pid: int) -> subprocess.Popen[str] | None:
    """perf_stat starts counting `pid`'s system calls and context switches (None without perf)."""
    if shutil.which("perf") is None:
        return None
    return subprocess.Popen(["perf", "stat", "-x,", "-e", ",".join(EVENTS), "-p", str(pid)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)


def perf_counts(proc: subprocess.Popen[str] | None) -> dict[str, int]:
    """perf_counts stops `proc` and returns its counts by event name."""
    if proc is None:
        return {}
    proc.send_signal(2)
    _, err = proc.communicate(timeout=10)
    counts = {}
    for line in err.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].strip().isdigit():
            counts[fields[2]] = int(fields[0])
    return counts


async def round_(way: str, sockets: int, rate: float, seconds: float, warmup: float, perf: bool) -> dict[str, float]:
    """round_ measures one way of reading for `seconds` after `warmup`."""
    loop = asyncio.get_running_loop()
    certificate = RTCCertificate.generateCertificate()
    streams = [Stream(i, certificate) for i in range(sockets)]
    for s in streams:
        await loop.create_datagram_endpoint(s.endpoint, local_addr=("127.0.0.1", 0))
        if way == "reader":
            take_over(s.protocol, s.demux.demuxes[-1] if s.demux is not None else None, COMPILED_PATH)
    addresses = [s.protocol.transport.get_extra_info("sockname") for s in streams]
    ctx = mp.get_context("spawn")
    ready, start = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=sender, args=(addresses, rate, warmup + seconds + 1.0, ready, start))
    proc.start()
    await loop.run_in_executor(None, ready.wait)  # it protects its packets first
    start.set()
    await asyncio.sleep(warmup)
    counter = perf_stat(os.getpid()) if perf else None
    if counter is not None:
        await asyncio.sleep(0.2)  # perf attached
    packets0 = sum(s.producer.packets for s in streams)
    kept(streams)
    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = time.process_time() - cpu0
    elapsed = time.monotonic() - t0
    packets = sum(s.producer.packets for s in streams) - packets0
    in_c = kept(streams)
    counts = perf_counts(counter)
    await loop.run_in_executor(None, proc.join)
    for s in streams:
        s.protocol.transport.close()
    await asyncio.sleep(0.1)
    result = {"cpu": cpu, "elapsed": elapsed, "packets": packets, "us": cpu / max(packets, 1) * 1e6,
              "per_cpu_s": packets / max(cpu, 1e-9),
              "via_c": in_c / max(packets, 1)}
    if counts:
        scale = (elapsed + 0.2) / max(elapsed, 1e-9)  # perf counted from 0.2 s before the window
        per = scale * max(packets, 1)
        result["syscalls"] = counts.get("raw_syscalls:sys_enter", 0) / per
        calls = {name.removeprefix("syscalls:sys_enter_"): n for name, n in counts.items()}
        result["receives"] = sum(calls.get(n, 0) for n in ("recvmsg", "recvfrom", "recvmmsg")) / per
        result["waits"] = sum(calls.get(n, 0) for n in ("epoll_wait", "epoll_pwait")) / per
        result["switches"] = counts.get("context-switches", 0) / per
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=40, help="sockets, one publisher stream each")
    parser.add_argument("--rate", type=float, default=150.0, help="packets/s per socket")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per round")
    parser.add_argument("--warmup", type=float, default=1.5, help="seconds before the window (arming)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of loop / reader, alternated")
    parser.add_argument("--perf", action="store_true", help="count system calls with Linux perf")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})
    print(f"{args.sockets} sockets x {args.rate:g} packets/s, {args.seconds:g} s windows, "
          f"C path {'on' if COMPILED_PATH else 'off'}, loop=uvloop")
    print("round  way      load   pkt/s  via C  µs/datagram  datagrams/CPU-s  per datagram: syscalls  receives  "
          "waits  switches")
    results: dict[str, list[float]] = {"loop": [], "reader": []}
    us: dict[str, float | None] = {}
    for r in range(1, args.rounds + 1):
        for way in ("loop", "reader"):
            load = os.getloadavg()[0]
            with asyncio.Runner(loop_factory=loop_factory("uvloop")) as runner:
                res = runner.run(round_(way, args.sockets, args.rate, args.seconds, args.warmup, args.perf))
            rate = res["packets"] / res["elapsed"]
            starved = rate < STARVED * args.sockets * args.rate
            us[way] = None if starved else res["us"]
            if not starved:
                results[way].append(res["us"])
            sys_s = (f"{res['syscalls']:22.2f} {res['receives']:9.2f} {res['waits']:6.2f} {res['switches']:9.3f}"
                     if "syscalls" in res else "")
            print(f"{r:5}  {way:6} {load:6.1f} {rate:7.0f} {res['via_c']:6.3f} {res['us']:12.2f} "
                  f"{res['per_cpu_s']:16.0f}  {sys_s}{'  starved' if starved else ''}", flush=True)
        if us["loop"] and us["reader"]:
            print(f"       round {r}: reader / loop = {us['reader'] / us['loop']:.2f}")
    if results["loop"] and results["reader"]:
        print(f"median µs/datagram of the rounds not starved: loop {statistics.median(results['loop']):.2f}, "
              f"reader {statistics.median(results['reader']):.2f}")


if __name__ == "__main__":
    main()
