"""broadcast: N HLS viewers of a live broadcast, driven by wrk, against the node directly and through nginx.

The server runs as its own process (`python -m server.cli serve`, a temporary data directory, SQLite, on 127.0.0.1,
the recorder off). A live broadcast in the broadcaster's layout is made by ffmpeg in real time (`-re`, testsrc2 and
a tone, H.264 720p 1.5 Mbit/s and 360p 400 kbit/s, AAC, fMP4 segments of `--segment-seconds`, 1 s like the
broadcaster's default; tests/hlsgen.py) into the current
recording of a published meeting whose public link is on, so the viewers fetch `/hls/p/{token}/…` without a login,
as on the public link (the files caches may share). The load is wrk (Debian's `wrk`, LuaJIT) with the Lua script
below: each of the N connections carries one player; half the players watch 720p, half 360p; every target
duration (each player at its own phase) a player fetches its rendition's media playlist, and each segment that
appeared since its last one, once (players start at the live edge). Each run lasts --seconds, after --warmup.

Printed per (target, N): the server's CPU (% of one core) and RSS, segments served per second, the share of
segments late for their playback time, the origin's requests per second, nginx's cache hit ratio (through nginx),
wrk's own CPU, and errors. A segment is late when its last byte arrives after the moment a player holding back
three target durations from the live edge (hls.js's default, and the watch page's) plays its first frame: the
segment's media time (`tfdt` of its body, mapped to the wall clock by the playlist's `EXT-X-PROGRAM-DATE-TIME`)
plus 3 target durations. "nginx" runs the block of docs/deploy.md (tests/nginxfront.py) with one worker.

    .venv/bin/python bench/broadcast.py                        # N = 100 and 1000, direct and through nginx
    .venv/bin/python bench/broadcast.py --viewers 100 1000 2000 --seconds 30
    .venv/bin/python bench/broadcast.py --targets direct --taskset 1   # the server pinned to CPU 1

Needs: ffmpeg, wrk and nginx (`apt-get install ffmpeg wrk nginx`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from bench.wsflood import Server, cpu_seconds, free_port  # noqa: E402
from server.config import load_config  # noqa: E402
from server.db.engine import make_engine, make_sessionmaker  # noqa: E402
from server.db.models import BroadcastLink, Meeting, MeetingStatus, Program, Recording, RecordingAudience  # noqa: E402
from server.live.watch import serializer  # noqa: E402
from tests.hlsgen import RENDITIONS, LiveHls  # noqa: E402
from tests.nginxfront import NginxFront  # noqa: E402

HOLD_BACK_TARGETS = 3  # a player plays this many target durations behind the live edge

LUA = r"""
-- One wrk connection per player; players are jobs in a time-ordered queue shared by the thread's connections.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } timespec_t;
int clock_gettime(int clk_id, timespec_t *tp);
]]
local ts = ffi.new("timespec_t")
local function now()
  ffi.C.clock_gettime(0, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

-- Each thread plays one rendition (thread 0: 720p, 1: 360p, …), so it learns that rendition's live edge only.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local base, period, t0, scale, players, heap, edge
stats = nil  -- a global: done() reads it from each thread

local function push(job)
  heap[#heap + 1] = job
  local i = #heap
  while i > 1 do
    local p = math.floor(i / 2)
    if heap[p].due <= heap[i].due then break end
    heap[p], heap[i] = heap[i], heap[p]
    i = p
  end
end

local function pop()
  local top = heap[1]
  local last = heap[#heap]
  heap[#heap] = nil
  if #heap > 0 then
    heap[1] = last
    local i = 1
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= #heap and heap[l].due < heap[m].due then m = l end
      if r <= #heap and heap[r].due < heap[m].due then m = r end
      if m == i then break end
      heap[m], heap[i] = heap[i], heap[m]
      i = m
    end
  end
  return top
end

function init(args)
  base = args[1]
  period = tonumber(args[2])
  local n = tonumber(args[3])
  t0 = {["720p"] = tonumber(args[4]), ["360p"] = tonumber(args[5])}
  scale = {["720p"] = tonumber(args[6]), ["360p"] = tonumber(args[7])}
  local hold = tonumber(args[8])
  local start = now()
  local r = (id % 2 == 0) and "720p" or "360p"
  players, heap, edge = {}, {}, {}
  stats = {segments = 0, late = 0, playlists = 0, errors = 0, bytes = 0, lag = 0, hold = hold, rendition = r}
  for b = 0, 40 do stats["a" .. b] = 0 end  -- flat: thread:get copies no nested table
  for i = 1, n do
    players[i] = {rendition = r, last = -1}
    push({due = start + period * (i - 1) / n, player = i, kind = "playlist"})
  end
end

function delay()
  local wait = heap[1].due - now()
  if wait <= 0 then return 0 end
  return math.floor(wait * 1000)
end

function request()
  local job = pop()
  local p = players[job.player]
  local late = now() - job.due
  if late > stats.lag then stats.lag = late end
  if job.kind == "playlist" then
    push({due = job.due + period, player = job.player, kind = "playlist"})
    local e = edge[p.rendition]
    if e ~= nil and e > p.last then
      if p.last < 0 then p.last = e - 1 end  -- a new player starts at the live edge
      for k = p.last + 1, e do
        push({due = job.due, player = job.player, kind = "segment", seg = k})
      end
      p.last = e
    end
    return wrk.format("GET", base .. "/" .. p.rendition .. "/index.m3u8")
  end
  return wrk.format("GET", base .. "/" .. p.rendition .. "/seg" .. job.seg .. ".m4s")
end

local function tfdt(body)
  local i = body:find("tfdt", 1, true)
  if i == nil then return nil end
  local version = body:byte(i + 4)
  local at, size = i + 8, (version == 1) and 8 or 4
  local v = 0
  for k = 0, size - 1 do v = v * 256 + body:byte(at + k) end
  return v
end

function response(status, headers, body)
  if status ~= 200 then
    stats.errors = stats.errors + 1
    return
  end
  stats.bytes = stats.bytes + #body
  if body:sub(1, 7) == "#EXTM3U" then
    stats.playlists = stats.playlists + 1
    local top = -1
    for n in body:gmatch("seg(%d+)%.m4s") do
      n = tonumber(n)
      if n > top then top = n end
    end
    local r = stats.rendition
    if top >= 0 and (edge[r] == nil or top > edge[r]) then edge[r] = top end
    return
  end
  stats.segments = stats.segments + 1
  local t = tfdt(body)
  if t ~= nil then
    local r = stats.rendition
    local age = now() - (t0[r] + t / scale[r])  -- how old the segment's first frame is when its last byte arrives
    if age > stats.hold then stats.late = stats.late + 1 end
    local b = math.max(0, math.min(40, math.floor(age * 4)))
    stats["a" .. b] = stats["a" .. b] + 1
  end
end

function done(summary, latency, requests)
  local out = {segments = 0, late = 0, playlists = 0, errors = 0, bytes = 0, lag = 0}
  local ages = {}
  for b = 0, 40 do ages[b] = 0 end
  for _, thread in ipairs(threads) do
    local s = thread:get("stats")
    for b = 0, 40 do ages[b] = ages[b] + (s["a" .. b] or 0) end
    for k, _ in pairs(out) do
      if k == "lag" then
        if s[k] > out[k] then out[k] = s[k] end
      else
        out[k] = out[k] + s[k]
      end
    end
  end
  -- the median and 90th percentile of the segments' age on arrival (0.25 s buckets)
  local function age(q)
    local seen, want = 0, q * out.segments
    for b = 0, 40 do
      seen = seen + ages[b]
      if seen >= want then return b / 4 end
    end
    return 10
  end
  io.write(string.format("RESULT segments=%d late=%d playlists=%d errors=%d bytes=%d lag=%.3f p99=%.1f ",
    out.segments, out.late, out.playlists, out.errors, out.bytes, out.lag, latency:percentile(99) / 1000))
  io.write(string.format("age50=%.2f age90=%.2f\n", age(0.5), age(0.9)))
end
"""


def box_value(data: bytes, name: bytes) -> tuple[int, int] | None:
    """box_value: (version, first value) of an ISO BMFF full box: `tfdt`'s base decode time, `mdhd`'s timescale."""
    i = data.find(name)
    if i < 0:
        return None
    version = data[i + 4]
    if name == b"tfdt":
        size = 8 if version == 1 else 4
        return version, int.from_bytes(data[i + 8:i + 8 + size], "big")
    skip = 16 if version == 1 else 8  # creation and modification times
    return version, int.from_bytes(data[i + 8 + skip:i + 12 + skip], "big")


def clock_of(hls: Path, rendition: str) -> tuple[float, int]:
    """clock_of: (wall clock of media time 0, the video timescale) of a rendition, from its playlist's last
    EXT-X-PROGRAM-DATE-TIME and that segment's tfdt."""
    playlist = (hls / rendition / "index.m3u8").read_text()
    found = re.findall(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)\n(seg\d+\.m4s)", playlist)
    when, name = found[-1]
    wall = dt.datetime.fromisoformat(when.replace("+0000", "+00:00")).timestamp()
    timescale = box_value((hls / rendition / "init.mp4").read_bytes(), b"mdhd")
    base = box_value((hls / rendition / name).read_bytes(), b"tfdt")
    assert timescale and base
    return wall - base[1] / timescale[1], timescale[1]


async def cast(database_url: str, link_key: bytes) -> tuple[int, str, str]:
    """cast: a published meeting whose recording is broadcasting, its public link on; (recording id, directory,
    public path prefix)."""
    engine = make_engine(database_url)
    db = make_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    try:
        async with db() as s:
            program = Program(title="Chương trình thử")
            s.add(program)
            await s.flush()
            meeting = Meeting(program_id=program.id, title="Phát trực tiếp thử", status=MeetingStatus.PUBLISHED,
                              starts_at=now - dt.timedelta(minutes=5), ends_at=now + dt.timedelta(hours=2))
            s.add(meeting)
            await s.flush()
            row = Recording(meeting_id=meeting.id, program_id=program.id, title=meeting.title,
                            directory="bench-live", audience=RecordingAudience.ENROLLED)
            nonce = secrets.token_urlsafe(12)
            s.add_all([row, BroadcastLink(meeting_id=meeting.id, nonce=nonce)])
            await s.commit()
            token = serializer(link_key).dumps([meeting.id, nonce])
            return row.id, row.directory, f"/hls/p/{token}/{row.id}"
    finally:
        await engine.dispose()


async def origin_requests(base: str) -> float:
    """origin_requests: the node's count of HLS file requests answered so far (its /metrics)."""
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as r:
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("taphuan_http_requests_total{") and "/hls/p/" in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def rss_mib(pid: int) -> float:
    """rss_mib: a process's resident memory (MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_wrk(url_base: str, n: int, seconds: float, threads: int, clocks: dict[str, tuple[float, int]],
            script: Path, segment: float) -> tuple[dict[str, float], float]:
    """run_wrk: wrk with the players' script; its RESULT figures and its own CPU seconds."""
    prefix = "/" + url_base.split("://", 1)[1].split("/", 1)[1]
    args = ["wrk", "-t", str(threads), "-c", str(n), "-d", f"{int(seconds)}s", "--timeout", "10s", "-s", str(script),
            url_base, "--", prefix, f"{segment:g}", str(n // threads),
            f"{clocks['720p'][0]:.3f}", f"{clocks['360p'][0]:.3f}", str(clocks["720p"][1]), str(clocks["360p"][1]),
            str(HOLD_BACK_TARGETS * segment)]
    start = os.times()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60)
    end = os.times()
    match = re.search(r"RESULT (.*)", proc.stdout)
    if match is None:
        raise RuntimeError(f"wrk: {proc.stdout[-1000:]} {proc.stderr[-1000:]}")
    figures = {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    return figures, (end.children_user + end.children_system) - (start.children_user + start.children_system)


async def one(target: str, base: str, prefix: str, n: int, args: argparse.Namespace, server_pid: int,
              clocks: dict[str, tuple[float, int]], script: Path, front: NginxFront | None) -> dict[str, Any]:
    """one: one (target, N) run: the figures."""
    threads = max(1, min(args.threads, n))
    before_cpu, before_req = cpu_seconds(server_pid), await origin_requests(args.origin)
    statuses = front.cache_statuses() if front else {}
    figures, wrk_cpu = await asyncio.to_thread(run_wrk, base + prefix, n - n % threads, args.seconds, threads,
                                               clocks, script, args.segment_seconds)
    cpu = (cpu_seconds(server_pid) - before_cpu) / args.seconds
    origin = (await origin_requests(args.origin) - before_req) / args.seconds
    after = front.cache_statuses() if front else {}
    hits = after.get("HIT", 0) - statuses.get("HIT", 0) + after.get("UPDATING", 0) - statuses.get("UPDATING", 0)
    total = sum(after.values()) - sum(statuses.values())
    return {"target": target, "n": n, "cpu": cpu * 100, "rss": rss_mib(server_pid),
            "seg_s": figures["segments"] / args.seconds, "late": figures["late"] / max(1.0, figures["segments"]),
            "origin_s": origin, "hit": hits / total if front and total else None,
            "wrk_cpu": wrk_cpu / args.seconds * 100,
            "errors": int(figures["errors"]), "mbit": figures["bytes"] * 8 / args.seconds / 1e6,
            "p99": figures["p99"], "lag": figures["lag"], "age50": figures["age50"], "age90": figures["age90"]}


def report(rows: list[dict[str, Any]]) -> None:
    """report: the table."""
    print(f"{'target':>7} {'N':>5} {'server CPU':>10} {'RSS MiB':>8} {'seg/s':>7} {'late':>6} {'origin req/s':>12} "
          f"{'hit ratio':>9} {'Mbit/s':>7} {'p99 ms':>7} {'age s':>9} {'wrk CPU':>8} {'errors':>6}")
    for r in rows:
        hit = f"{r['hit'] * 100:.1f} %" if r["hit"] is not None else "—"
        print(f"{r['target']:>7} {r['n']:>5} {r['cpu']:>8.1f} % {r['rss']:>8.1f} {r['seg_s']:>7.1f} "
              f"{r['late'] * 100:>5.1f}% {r['origin_s']:>12.1f} {hit:>9} {r['mbit']:>7.0f} {r['p99']:>7.0f} "
              f"{r['age50']:>4.1f}/{r['age90']:<4.1f} "
              f"{r['wrk_cpu']:>6.0f} % {r['errors']:>6}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--viewers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--targets", nargs="+", default=["direct", "nginx"], choices=["direct", "nginx"])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--segment-seconds", type=float, default=1.0, help="segment length (the target duration)")
    parser.add_argument("--taskset", default="", help="pin the server to these CPUs (taskset -c)")
    parser.add_argument("--json", default="", help="also write the rows to this file")
    args = parser.parse_args()
    for tool in ("ffmpeg", "wrk", "nginx"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin") is None:
            raise SystemExit(f"needs {tool}: apt-get install {tool}")
    with tempfile.TemporaryDirectory(prefix="taphuan-broadcast-") as tmp:
        server = Server(Path(tmp), {"recorder.enabled": "false", "log.level": "WARNING"}, ROOT)
        pid = await server.start()
        if args.taskset:
            await asyncio.to_thread(subprocess.run, ["taskset", "-a", "-p", "-c", args.taskset, str(pid)], check=True,
                                    capture_output=True)
        live: LiveHls | None = None
        front: NginxFront | None = None
        try:
            data = Path(tmp) / "data"
            rid, directory, prefix = await cast(load_config(server.config_path, env={}).database_url,
                                                (data / "secrets" / "link.key").read_bytes().strip())
            live = LiveHls(data / "recordings" / directory / "hls", renditions=RENDITIONS,
                           segment=args.segment_seconds)
            await asyncio.to_thread(live.start)
            args.origin = server.base
            script = Path(tmp) / "players.lua"
            script.write_text(LUA)
            if "nginx" in args.targets:
                front = NginxFront(Path(tmp) / "nginx", f"127.0.0.1:{server.port}", free_port()).start()
            await asyncio.sleep(args.warmup)  # (LiveHls.start returned once a segment was listed)
            clocks = {name: clock_of(live.hls, name) for name in ("720p", "360p")}
            ffmpeg_start = cpu_seconds(live.proc.pid) if live.proc else 0.0
            started = time.monotonic()
            rows = []
            for target in args.targets:
                base = server.base if target == "direct" else f"http://127.0.0.1:{front.port}"  # type: ignore[union-attr]
                for n in args.viewers:
                    rows.append(await one(target, base, prefix, n, args, pid, clocks, script,
                                          front if target == "nginx" else None))
                    report(rows[-1:])
            ffmpeg_cpu = (cpu_seconds(live.proc.pid) - ffmpeg_start) / (time.monotonic() - started) if live.proc \
                else 0.0
            print(f"\nbroadcast: {len(RENDITIONS)} renditions ({', '.join(r[0] for r in RENDITIONS)}), "
                  f"{args.segment_seconds:g} s segments, late past {HOLD_BACK_TARGETS * args.segment_seconds:g} s; "
                  f"ffmpeg {ffmpeg_cpu * 100:.0f} % of a core; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
            report(rows)
            if args.json:
                await asyncio.to_thread(Path(args.json).write_text, json.dumps(rows, indent=1))
        finally:
            if front is not None:
                front.stop()
            if live is not None:
                live.stop()
            await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
