"""weaknet: classrooms on weak links in one real meeting: what each receives, how fast it recovers from cuts, TURN.

Root only: the classrooms' Chromium runs in network namespaces whose links are capped with `tc tbf`
(tests/netlab.py: a DSL/3G-like bottleneck, 200 ms of queue, no added delay since this kernel has no netem).
The server runs as its own process (``python -m server.cli serve``, a temporary data directory, SQLite) on the
lab's address, ICE on that address, TURN handed out from a coturn started for the run. One headless Chromium on
the host holds the presenter (camera --video, microphone, screen share) and a classroom holding the floor; one
Chromium per cap holds a classroom in its namespace (camera 320x240@15), all in the same meeting. The presenter's
camera (--camera) plays a picture made with ffmpeg that is as hard to encode as a real camera's (the capped-link
test's, `tests.e2e.browser.detailed_camera`), in a Chromium of its own.

    .venv/bin/python bench/weaknet.py                       # caps 250k 500k 1M 2M uncapped, 60 s, cuts 5 10 25 s
    .venv/bin/python bench/weaknet.py --duration 120 --cuts 10 --cut-classroom 500
    .venv/bin/python bench/weaknet.py --caps 300,1000,0 --cuts '' --no-turn

0. Baseline (unless --no-baseline): the same meeting with the uncapped classroom alone, measured the same way,
   for its keyframes per minute (presenter camera and screen) without weak classrooms beside it (printed last,
   with the figures beside them: a weak classroom's keyframe requests must not make the publisher send keyframes
   to everyone).
1. Steady state: after the pages joined and --settle seconds, --duration seconds are measured. One row per
   classroom (figures over the window, from its getStats() and the server's statistics of its consumers):

       layer      presenter camera received: the server's spatial (L) and temporal (T) layer when its
                  statistics name them, and the resolution decoded (median over the window)
       fps        presenter camera, screen and floor holder's camera frames decoded per second
       freezes    presenter camera: freezeCount and totalFreezesDuration gained
       concealed  presenter's audio: concealedSamples / totalSamplesReceived
       resend     retransmitted packets per new packet, every video consumer of the classroom (server)
       kf/min     keyframes decoded per minute (presenter camera); PLI/min: the classroom's keyframe requests
       REMB       the classroom's own estimate (REMB, kbit/s, server); est: the server's estimate of its
                  downlink, when the server reports one; recv: what the classroom received (kbit/s)
       drop       packets dropped by the downlink's cap (tc), % of what reached it

2. Cuts: the --cut-classroom classroom's link (both directions) drops to 1 kbit/s for each of --cuts seconds,
   then comes back; printed: seconds from the link's return to the first presenter audio packets (audio back)
   and to the first new presenter frame decoded (video back), and whether the page had to reconnect.
3. TURN: a classroom whose namespace drops all UDP joins (TURN over TCP/TLS on port 443 of the lab's address):
   time from its click on "join" to its first presenter frame, the transport of its selected pair, and the
   presenter's audio concealed over 20 s.

The machine's load average is printed with the table: on a 2-core machine Chromium's own CPU adaptation lowers
the presenter's resolution under load, which the layer column then shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import Browser, Page, Playwright, async_playwright  # noqa: E402

from bench.soak import (  # noqa: E402
    ServerProcess,
    SoakError,
    create_meeting,
    free_port,
    log_tail,
    open_page,
    parse_video,
    quiet_driver_loss,
)
from server.config import load_config  # noqa: E402
from server.db.engine import make_engine, make_sessionmaker  # noqa: E402
from tests import netlab  # noqa: E402
from tests.e2e.browser import CHROMIUM, FLAGS, camera_file_args, detailed_camera, media_stats  # noqa: E402
from tests.netlab import Lab, Netns, Shape  # noqa: E402

BROWSER_FLAGS = FLAGS + ["--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                         "--disable-backgrounding-occluded-windows"]
CLASSROOM_VIDEO = {"width": 320, "height": 240, "frameRate": 15}
RECOVERY_LIMIT_S = 60.0
TURN_WINDOW_S = 20.0


def cap_label(kbit: int) -> str:
    """cap_label: 250 -> "250k", 1000 -> "1M", 0 -> "uncapped"."""
    if kbit == 0:
        return "uncapped"
    return f"{kbit // 1000}M" if kbit % 1000 == 0 else f"{kbit}k"


@dataclass
class Classroom:
    """Classroom: one classroom page, its namespace, and what it measured."""

    kbit: int
    ns: Netns
    page: Page | None = None
    participant: str = ""
    joined_at: float = 0.0
    first_frame_s: float | None = None
    sizes: list[tuple[int, int]] = field(default_factory=list)  # presenter camera decoded, one per second

    @property
    def label(self) -> str:
        """Classroom.label: its cap."""
        return cap_label(self.kbit)


async def enter(page: Page, meeting_id: int) -> float:
    """enter: open the meeting, let the device check finish, join with video; returns the click's time."""
    await page.goto(f"/live/{meeting_id}")
    await page.wait_for_function("() => window.TaphuanLive && window.TaphuanLive.check && window.TaphuanLive.check.net",
                                 timeout=90_000)
    await page.evaluate("const b = document.querySelector('[data-join-audio-only]'); if (b) b.checked = false;")
    clicked = time.monotonic()
    await page.click("[data-action=join]")
    await page.wait_for_selector("[data-stage]:not([hidden])", timeout=90_000)
    return clicked


def slot(sample: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """slot: one slot's counters of a MEDIA_STATS sample ({} when absent)."""
    return dict((sample or {}).get("slots", {}).get(name, {}))


async def first_frame(page: Page, since: float, within: float = 90.0) -> float | None:
    """first_frame: seconds from `since` to the page's first decoded presenter frame (None: not within)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if slot(await media_stats(page), "presenter-video").get("frames", 0) > 0:
            return time.monotonic() - since
        await asyncio.sleep(0.1)
    return None


# The presenter's video senders as its Chromium sees them: per encoding (rid) the size and frames sent, the bytes,
# its target and what limits it; and the up connection's send estimate (availableOutgoingBitrate).
PUBLISHED = """async () => {
  const up = window.live && window.live.up;
  if (!up) return null;
  const screen = window.TaphuanLive && window.TaphuanLive.screenTrack;
  const out = {at: performance.now() / 1000, layers: [], available: null};
  for (const sender of up.getSenders()) {
    if (!sender.track || sender.track.kind !== "video") continue;
    for (const r of (await sender.getStats()).values()) {
      if (r.type !== "outbound-rtp") continue;
      out.layers.push({source: sender.track === screen ? "screen" : "camera", rid: r.rid || "",
                       width: r.frameWidth || 0, height: r.frameHeight || 0, frames: r.framesSent || 0,
                       bytes: r.bytesSent || 0, target: r.targetBitrate || 0, keyframes: r.keyFramesEncoded || 0,
                       plis: r.pliCount || 0, limit: r.qualityLimitationReason || "", active: r.active !== false});
    }
  }
  for (const r of (await up.getStats()).values()) {
    if (r.type === "candidate-pair" && r.nominated && r.availableOutgoingBitrate) {
      out.available = r.availableOutgoingBitrate;
    }
  }
  return out;
}"""


def published_text(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str]:
    """published_text: the presenter's layers over the window (size, fps, kbit/s sent, target, keyframes encoded and
    keyframe requests received per minute, limitation) and its Chromium's send estimate at the end.

    Keyframes per layer show whose requests the publisher answered: a weak classroom on the lowest layer should
    cost keyframes of that layer only (per-layer PLI), never of the top one the uncapped classroom decodes."""
    if not a or not b:
        return ["presenter sends: (no statistics)"]
    at = max(b["at"] - a["at"], 1e-3)
    before = {(x["source"], x["rid"]): x for x in a["layers"]}
    parts = []
    for x in b["layers"]:
        y = before.get((x["source"], x["rid"]), {})
        fps = (x["frames"] - y.get("frames", 0)) / at
        kbit = (x["bytes"] - y.get("bytes", 0)) * 8 / 1000 / at
        size = f"{x['width']}x{x['height']}" if x["height"] and fps > 0 else "off"
        kf = 60 * (x.get("keyframes", 0) - y.get("keyframes", 0)) / at
        plis = 60 * (x.get("plis", 0) - y.get("plis", 0)) / at
        parts.append(f"{x['source']} {x['rid'] or '-'} {size} {fps:.0f} fps {kbit:.0f}k"
                     + (f" (target {x['target'] / 1000:.0f}k)" if x["target"] else "")
                     + f" kf {kf:.1f}/min (PLI {plis:.1f}/min)"
                     + (f" [{x['limit']}]" if x["limit"] not in ("", "none") else ""))
    available = b.get("available")
    return ["presenter sends: " + "; ".join(parts),
            "presenter's send estimate: " + (f"{available / 1000:.0f} kbit/s" if available else "-")]


async def server_stats(studio: Page) -> dict[str, dict[str, Any]]:
    """server_stats: per participant its consumers by slot and, under "", its downlink (when the server reports
    one: the estimate its allocation uses), from the studio's `stats` request."""
    reply = await asyncio.wait_for(studio.evaluate("window.live.stats()"), 60)
    return {p["participant_id"]: {**{c["slot"]: c for c in p["consumers"]}, "": p.get("downlink") or {},
                                  "^": p.get("uplink") or {}}
            for p in reply["participants"]}


def layer_text(consumer: dict[str, Any], sizes: list[tuple[int, int]]) -> str:
    """layer_text: the server's spatial (L) and temporal (T) layer when it names them, and the size decoded
    (the median by height)."""
    ordered = sorted(sizes, key=lambda wh: wh[1])
    size = "x".join(map(str, ordered[len(ordered) // 2])) if ordered else "none"
    layer = consumer.get("layer")
    temporal = consumer.get("max_temporal", -1)
    return (f"L{layer}" if layer is not None else "") + (f"T{temporal}" if temporal >= 0 else "") + \
        (" " if layer is not None or temporal >= 0 else "") + size


def delta(a: dict[str, Any], b: dict[str, Any], key: str) -> float:
    """delta: b[key] - a[key], a counter that restarted (a new connection) counting from zero."""
    x, y = float(a.get(key, 0)), float(b.get(key, 0))
    return y - x if y >= x else y


def record_kf(args: argparse.Namespace, label: str, per_minute: float) -> float:
    """record_kf: keep a classroom's keyframes per minute (`label`: its presenter camera's, "<label> screen": the
    screen's) for the baseline comparison; returns it."""
    args.keyframes[label] = per_minute
    return per_minute


async def steady(args: argparse.Namespace, studio: Page, rooms: list[Classroom]) -> list[str]:
    """steady: measure --duration seconds; returns the table's lines."""
    first = {r.label: await media_stats(r.page) for r in rooms if r.page}
    srv0 = await server_stats(studio)
    pub0 = await studio.evaluate(PUBLISHED)
    drops0 = {r.label: r.ns.counters() for r in rooms}
    t0 = time.monotonic()
    trace = args.trace.open("w", encoding="utf-8") if args.trace else None
    try:
        while time.monotonic() - t0 < args.duration:
            for r in rooms:
                pv = slot(await media_stats(r.page), "presenter-video") if r.page else {}
                if pv.get("height"):
                    r.sizes.append((int(pv["width"]), int(pv["height"])))
            if trace is not None:
                await trace_row(trace, time.monotonic() - t0, studio, rooms)
            await asyncio.sleep(1.0)
    finally:
        if trace is not None:
            trace.close()
    last = {r.label: await media_stats(r.page) for r in rooms if r.page}
    srv1 = await server_stats(studio)
    pub1 = await studio.evaluate(PUBLISHED)
    span = time.monotonic() - t0
    lines = [f"{'cap':<9} {'layer':<14} {'fps pv/sc/fv':<14} {'freezes':<10} {'concealed':>9} {'resend':>7} "
             f"{'kf/min':>6} {'PLI/min':>7} {'REMB':>6} {'est':>6} {'recv':>6} {'drop':>6}"]
    for r in rooms:
        a, b = first.get(r.label), last.get(r.label)
        if a is None or b is None:
            lines.append(f"{r.label:<9} (no statistics)")
            continue
        at = max(b["at"] - a["at"], 1e-3)
        pv0, pv1 = slot(a, "presenter-video"), slot(b, "presenter-video")
        fps = "/".join(f"{delta(slot(a, s), slot(b, s), 'frames') / at:.1f}"
                       for s in ("presenter-video", "screen", "floor-video"))
        au0, au1 = slot(a, "presenter-audio"), slot(b, "presenter-audio")
        samples = delta(au0, au1, "samples")
        concealed = f"{100 * delta(au0, au1, 'concealed') / samples:.1f} %" if samples else "-"
        recv = sum(delta(slot(a, s), slot(b, s), "bytes") for s in b["slots"]) * 8 / 1000 / at
        c0, c1 = srv0.get(r.participant, {}), srv1.get(r.participant, {})
        video = [s for s in c1 if s not in ("", "^") and not s.endswith("-audio")]
        new = sum(delta(c0.get(s, {}), c1[s], "packets_sent") for s in video)
        resent = sum(delta(c0.get(s, {}), c1[s], "retransmitted") for s in video)
        plis = sum(delta(c0.get(s, {}), c1[s], "keyframe_requests") for s in ["presenter-video"] if s in c1)
        remb = c1.get("presenter-video", {}).get("remb_bitrate")
        layer = layer_text(c1.get("presenter-video", {}), r.sizes)
        estimate = c1[""].get("estimate") if "" in c1 else None
        d0, d1 = drops0[r.label], r.ns.counters()
        reached = (d1.sent_packets - d0.sent_packets) + (d1.dropped - d0.dropped)
        drop = f"{100 * (d1.dropped - d0.dropped) / reached:.0f} %" if r.kbit and reached else "-"
        freezes = f"{int(delta(pv0, pv1, 'freezes'))} / {delta(pv0, pv1, 'freeze_s'):.1f} s"
        record_kf(args, f"{r.label} screen", 60 * delta(slot(a, "screen"), slot(b, "screen"), "keyframes") / at)
        lines.append(
            f"{r.label:<9} {layer:<14} {fps:<14} {freezes:<10} {concealed:>9} {resent / new if new else 0:>7.2f} "
            f"{record_kf(args, r.label, 60 * delta(pv0, pv1, 'keyframes') / at):>6.1f} {60 * plis / span:>7.1f} "
            f"{remb / 1000 if remb else 0:>6.0f} {f'{estimate / 1000:.0f}' if estimate else '-':>6} {recv:>6.0f} "
            f"{drop:>6}")
    me = str(await studio.evaluate("window.live.participantId"))
    up0, up1 = srv0.get(me, {}).get("^", {}), srv1.get(me, {}).get("^", {})
    return lines + published_text(pub0, pub1) + [
        f"presenter's uplink (server): REMB {up1.get('remb', 0) / 1000:.0f} kbit/s, "
        f"{int(delta(up0, up1, 'falls'))} falls in the window, {'calm' if up1.get('calm') else 'held'} at the end"]


async def trace_row(out: Any, at: float, studio: Page, rooms: list[Classroom]) -> None:
    """trace_row: one JSON line per capped classroom (--trace): its cap's counters (bytes, drops, backlog), the
    server's view of its downlink and, per slot, the consumer's counters and layer."""
    stats = await server_stats(studio)
    for r in rooms:
        if not r.kbit:
            continue
        c = r.ns.counters()
        mine = stats.get(r.participant, {})
        slots = {name: {k: v.get(k) for k in ("bytes_sent", "packets_sent", "retransmitted", "layer", "max_temporal",
                                              "remb_bitrate", "rtt", "fraction_lost", "keyframe_requests",
                                              "keyframe_requests_throttled", "repairs", "keyframe_retries")}
                 for name, v in mine.items() if name not in ("", "^")}
        out.write(json.dumps({"t": round(at, 2), "cap": r.label, "tc_bytes": c.sent_bytes, "tc_drops": c.dropped,
                              "tc_backlog": c.backlog, "downlink": mine.get(""), "slots": slots}) + "\n")
    out.flush()


async def trace_cut(args: argparse.Namespace, studio: Page, rooms: list[Classroom], offset: float) -> None:
    """trace_cut: --trace rows every 0.5 s while a cut and its recovery last (until cancelled)."""
    t0 = time.monotonic()
    with args.trace.open("a", encoding="utf-8") as out:
        while True:
            await trace_row(out, offset + time.monotonic() - t0, studio, rooms)
            await asyncio.sleep(0.5)


async def recovery(page: Page, ended: float) -> tuple[float | None, float | None, int]:
    """recovery: seconds from `ended` to presenter audio packets and to a new presenter frame; reconnections.

    Audio is back when 3 new presenter audio packets arrived within 0.1 s of polling (the tail of the queue
    the cut left behind is one or two); a counter that goes down means a new down connection (counted).
    """
    before = await media_stats(page)
    audio = video = None
    reconnects = 0
    last_audio = slot(before, "presenter-audio").get("packets", 0)
    last_frames = slot(before, "presenter-video").get("frames", 0)
    while time.monotonic() - ended < RECOVERY_LIMIT_S and (audio is None or video is None):
        await asyncio.sleep(0.1)
        got = await media_stats(page)
        if got is None:
            continue
        packets, frames = slot(got, "presenter-audio").get("packets", 0), slot(got, "presenter-video").get("frames", 0)
        if packets < last_audio or frames < last_frames:
            reconnects += 1
            last_audio, last_frames = 0, 0
        now = time.monotonic() - ended
        if audio is None and packets - last_audio >= 3:
            audio = now
        if video is None and frames > last_frames:
            video = now
        last_audio, last_frames = packets, frames
    return audio, video, reconnects


async def cuts(args: argparse.Namespace, studio: Page, rooms: list[Classroom]) -> list[str]:
    """cuts: cut the --cut-classroom classroom's link for each of --cuts seconds; the recovery lines (with --trace,
    each cut and its recovery are traced too, every 0.5 s, their times from the cut's start plus 1000 x its rank)."""
    if not args.cuts:
        return []
    target = next((r for r in rooms if r.kbit == args.cut_classroom), None)
    if target is None or target.page is None:
        return [f"cuts: no classroom capped at {args.cut_classroom} kbit/s"]
    lines = []
    for rank, seconds in enumerate(args.cuts, 1):
        await asyncio.sleep(args.settle)
        print(f"cut {seconds:g} s on {target.label} ...", flush=True)
        tracing = asyncio.create_task(trace_cut(args, studio, [target], 1000.0 * rank)) if args.trace else None
        try:
            ended = await target.ns.cut(seconds)
            audio, video, reconnects = await recovery(target.page, ended)
        finally:
            if tracing is not None:
                tracing.cancel()
        show = lambda v: f"{v:.1f} s" if v is not None else f"> {RECOVERY_LIMIT_S:g} s"  # noqa: E731
        lines.append(f"cut {seconds:>4g} s on {target.label:<8}: audio back {show(audio)}, video back {show(video)}"
                     + (f", reconnected ({reconnects})" if reconnects else ""))
    return lines


async def turn_classroom(args: argparse.Namespace, pw: Playwright, lab: Lab, coturn: netlab.Coturn, base: str,
                         cookie: str, meeting_id: int, browsers: list[Browser]) -> str:
    """turn_classroom: a classroom without UDP joins through TURN; its time to first frame and concealment."""
    ns = lab.add(block_udp=True)
    browser = await pw.chromium.launch(executable_path=ns.chromium(), headless=True,
                                       args=BROWSER_FLAGS + netlab.insecure_origin_args(base) + coturn.browser_args())
    browsers.append(browser)
    page = await open_page(browser, base, cookie, CLASSROOM_VIDEO)
    clicked = await enter(page, meeting_id)
    ttff = await first_frame(page, clicked)
    if ttff is None:
        return "TURN: no presenter frame within 90 s"
    a = await media_stats(page)
    await asyncio.sleep(TURN_WINDOW_S)
    b = await media_stats(page)
    au0, au1 = slot(a, "presenter-audio"), slot(b, "presenter-audio")
    samples = delta(au0, au1, "samples")
    pair = (b or {}).get("pair") or {}
    return (f"TURN (UDP dropped): first presenter frame {ttff:.1f} s after join, pair {pair.get('type')} over "
            f"{pair.get('relay_protocol') or pair.get('protocol')}, audio concealed "
            + (f"{100 * delta(au0, au1, 'concealed') / samples:.1f} %" if samples else "-")
            + f" over {TURN_WINDOW_S:g} s")


async def bench(args: argparse.Namespace, lab: Lab, directory: Path) -> list[str]:
    """bench: the server, the meeting, the three phases; the report's lines."""
    secret = secrets.token_urlsafe(16)
    coturn = lab.turn(secret) if args.turn else None
    port = free_port()
    config_path = directory / "config.yaml"
    sfu: dict[str, Any] = {"ice_addresses": [lab.server_ip]}
    if coturn:
        sfu["turn"] = {"urls": coturn.urls, "secret": secret}
    config_path.write_text(json.dumps({
        "data_dir": str(directory / "data"), "server": {"host": lab.server_ip, "port": port, "shutdown_timeout": 3.0},
        "sfu": sfu, "recorder": {"enabled": False}, "log": {"level": "WARNING", "format": "text"}}), encoding="utf-8")
    config = load_config(config_path, env={})
    base = f"http://{lab.server_ip}:{port}"
    server = ServerProcess(config_path, directory / "server.log")
    lines: list[str] = []
    await server.start(base)
    engine = make_engine(config.database_url)
    try:
        cast = await create_meeting(make_sessionmaker(engine), len(args.caps) + 2)
        names = list(cast.cookies)  # studio, class-1 (the floor holder), one per cap, the TURN classroom
        rooms = [Classroom(kbit, lab.add(down=Shape(kbit) if kbit else None)) for kbit in args.caps]
        async with async_playwright() as pw:
            browsers: list[Browser] = []
            try:
                flags = BROWSER_FLAGS + netlab.insecure_origin_args(base)
                host = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
                browsers.append(host)
                presenter = host
                if args.camera == "detailed":  # its own Chromium: the camera file would be the floor holder's too
                    size = parse_video(args.video) or {"width": 1280, "height": 720, "frameRate": 30}  # the studio's
                    camera = detailed_camera(directory, size["width"], size["height"], size["frameRate"])
                    presenter = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                         args=flags + camera_file_args(camera))
                    browsers.append(presenter)
                studio = await open_page(presenter, base, cast.cookies["studio"], parse_video(args.video))
                await enter(studio, cast.meeting_id)
                await studio.click("[data-action=screen]")
                await studio.wait_for_selector("[data-tile='my-screen']:not([hidden])", timeout=60_000)
                floor = await open_page(host, base, cast.cookies[names[1]], CLASSROOM_VIDEO)
                await enter(floor, cast.meeting_id)
                await studio.evaluate("(pid) => window.live.giveFloor(pid)",
                                      await floor.evaluate("window.live.participantId"))
                for r, name in zip(rooms, names[2:], strict=False):
                    b = await pw.chromium.launch(executable_path=r.ns.chromium(), headless=True,
                                                 args=flags + (coturn.browser_args() if coturn else []))
                    browsers.append(b)
                    r.page = await open_page(b, base, cast.cookies[name], CLASSROOM_VIDEO)

                async def join(r: Classroom) -> None:
                    assert r.page is not None
                    r.joined_at = await enter(r.page, cast.meeting_id)
                    r.participant = str(await r.page.evaluate("window.live.participantId"))
                    r.first_frame_s = await first_frame(r.page, r.joined_at)

                await asyncio.gather(*(join(r) for r in rooms))
                print("joined; first presenter frame after join: " + ", ".join(
                    f"{r.label} {r.first_frame_s:.1f} s" if r.first_frame_s is not None else f"{r.label} none"
                    for r in rooms), flush=True)
                await asyncio.sleep(args.settle)
                print(f"measuring {args.duration:g} s ...", flush=True)
                lines += await steady(args, studio, rooms)
                lines.append(f"(load average {os.getloadavg()[0]:.1f} at the end of the window)")
                print("\n".join(lines), flush=True)
                try:
                    lines += await cuts(args, studio, rooms)
                except Exception as exc:  # a page gone in a cut still leaves the table and TURN to report
                    lines.append(f"cuts: failed: {type(exc).__name__}: {exc}")
                if coturn:
                    lines.append(await turn_classroom(args, pw, lab, coturn, base, cast.cookies[names[-1]],
                                                      cast.meeting_id, browsers))
            finally:
                for b in browsers:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(b.close(), 30)
    finally:
        await engine.dispose()
        await server.stop()
    return lines


def parse_args() -> argparse.Namespace:
    """parse_args: the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--caps", default="250,500,1000,2000,0",
                        help="classroom downlinks in kbit/s, 0 for uncapped (default 250,500,1000,2000,0)")
    parser.add_argument("--duration", type=float, default=60.0, help="steady-state seconds measured (default 60)")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds after joining, and between cuts, before measuring (default 10)")
    parser.add_argument("--cuts", default="5,10,25", help="cut lengths in seconds, '' for none (default 5,10,25)")
    parser.add_argument("--cut-classroom", type=int, default=1000,
                        help="the cap (kbit/s) of the classroom whose link is cut (default 1000)")
    parser.add_argument("--no-turn", dest="turn", action="store_false", help="skip the TURN classroom")
    parser.add_argument("--video", default="960x540@15",
                        help="presenter camera WxH@FPS (default 960x540@15: three layers)")
    parser.add_argument("--camera", choices=("detailed", "pattern"), default="detailed",
                        help="the presenter's camera picture: detailed (default: a moving pattern under noise, "
                             "made with ffmpeg, hard to encode like a real camera: each layer takes its whole "
                             "target) or pattern (Chromium's own fake camera, so easy that its 960x540 layer "
                             "takes under half its target)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and the server log")
    parser.add_argument("--trace", type=Path, default=None,
                        help="write one JSON line per second and capped classroom (its cap's counters, the "
                             "server's view of its downlink and slots) to this file")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the first meeting with the uncapped classroom alone (its keyframes per minute "
                             "without weak classrooms)")
    args = parser.parse_args()
    args.keyframes = {}
    try:
        args.caps = [int(x) for x in args.caps.split(",") if x.strip()]
        args.cuts = [float(x) for x in args.cuts.split(",") if x.strip()]
        parse_video(args.video)
    except ValueError:
        parser.error("--caps and --cuts: numbers separated by commas; --video: WxH@FPS")
    if not args.caps or any(c < 0 for c in args.caps) or args.duration <= 0:
        parser.error("--caps: at least one cap, none negative; --duration positive")
    return args


async def main(args: argparse.Namespace) -> int:
    """main: make the lab, run, print; everything is removed at the end."""
    asyncio.get_running_loop().set_exception_handler(quiet_driver_loss)
    reason = netlab.unavailable()
    if reason:
        print(f"weaknet: {reason}", file=sys.stderr)
        return 2
    directory = Path(tempfile.mkdtemp(prefix="taphuan-weaknet-"))
    print(f"weaknet: presenter (camera {args.video} {args.camera} + screen) and a floor holder on the host; "
          f"classrooms capped at "
          f"{', '.join(cap_label(c) for c in args.caps)}; {args.duration:g} s; cuts {args.cuts or 'none'} on "
          f"{cap_label(args.cut_classroom)}; TURN {'on' if args.turn else 'off'}", flush=True)
    try:
        with Lab() as lab:
            baseline: list[str] = []
            if args.baseline and 0 in args.caps and len(args.caps) > 1:
                # the same meeting with its uncapped classroom alone: the keyframes a weak classroom adds
                alone = argparse.Namespace(**{**vars(args), "caps": [0], "cuts": [], "turn": False, "keyframes": {}})
                print("baseline: the uncapped classroom alone ...", flush=True)
                (directory / "baseline").mkdir()
                await bench(alone, lab, directory / "baseline")
                kf = alone.keyframes
                baseline = [f"keyframes per minute, uncapped classroom (presenter camera / screen): "
                            f"{kf.get('uncapped', 0):.1f} / {kf.get('uncapped screen', 0):.1f} alone"]
            lines = await bench(args, lab, directory)
            if baseline:
                kf = args.keyframes
                baseline[0] += (f", {kf.get('uncapped', 0):.1f} / {kf.get('uncapped screen', 0):.1f} beside the "
                                "capped classrooms")
                lines += baseline
    except (SoakError, netlab.NetlabError) as exc:
        print(f"weaknet: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"weaknet: failed: {type(exc).__name__}: {exc}\nserver log:\n{log_tail(directory / 'server.log')}",
              file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept: {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main(parse_args())))
    except KeyboardInterrupt:
        sys.exit(130)
