"""Real Chromium classrooms on capped links (tests/netlab.py): one presenter on the host (camera, microphone and
screen share), a classroom in a network namespace whose downlink is capped at 300 kbit/s by `tc tbf`, one
uncapped, and a floor holder whose uplink is capped at 300 kbit/s, in one meeting: four Chromiums.

The meeting runs once (the first test of the module to need it runs it, in about two minutes) and each test
checks one of the issue's promises on the figures measured over `WINDOW_S` seconds, from `SETTLE_S` after the
classrooms joined or once the uncapped one decodes the top layer (`reach_top`), whichever is later: per classroom
the presenter's audio concealed (concealedSamples / totalSamplesReceived), the presenter's video frames decoded,
the longest time without a new frame, freezes (freezeCount, totalFreezesDuration), the resolution decoded, the
bitrate received, and the server's statistics of the consumer sending the presenter's video to that classroom.

The 1 Mbit/s classroom is tests/e2e/test_middlelayer_browser.py's: Chromium's own camera pattern is so easy to
encode that its top layer fits that link whole, and a camera that takes each layer's target is too dear for this
meeting on this host. It was a fifth Chromium here until the fourteenth session: beside `stress-ng --cpu 2` five
starved the host (the uncapped classroom concealed 14 % of its audio and its own REMB held it at 135p).

Root only (network namespaces); skipped elsewhere with the reason. A promise not kept yet would be marked xfail
with the reason: strict where the test fails every run (a pass then fails the run, as a reminder to remove the
marker), not strict where runs differ; remove a marker when a change makes the test pass every run.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

from server.config import Config
from server.db.models import Role, User
from server.live.connection import jsonable
from server.live.service import LIVE
from sfu.consumer import Consumer
from tests import netlab
from tests.e2e.browser import (
    CHROMIUM,
    FLAGS,
    WAIT_MS,
    camera_file_args,
    detailed_camera,
    logged_in_context,
    media_stats,
)
from tests.e2e.labpages import enter
from tests.netlab import Lab, Shape

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(netlab.unavailable() is not None, reason=f"netlab: {netlab.unavailable()}")]

Factory = Callable[..., Awaitable[Any]]
CAPS: dict[str, Shape | None] = {"c300": Shape(300), "uncapped": None}  # downlinks
FLOOR_UP = Shape(300)  # the floor holder's uplink
PRESENTER_SIZE = (960, 540, 15)  # its camera: three layers (libwebrtc's simulcast table: 3 from 960x540)
PRESENTER_VIDEO = "window.TAPHUAN_VIDEO = {{width: {}, height: {}, frameRate: {}}};".format(*PRESENTER_SIZE)
WINDOW_S = 40.0  # the measurement, after the classrooms have joined, SETTLE_S more and the uncapped one's climb
SETTLE_S = 10.0
REACH_S = 60.0  # from its first presenter frame, the time the uncapped classroom has to reach the top layer
SAMPLE_S = 0.5
DETAILED_CAMERA = os.environ.get("TAPHUAN_DETAILED_CAMERA", "")  # "1" or "moving": see presenter_camera


@pytest.fixture
def config(make_config: Callable[..., Config], lab: Lab) -> Config:
    """config: ICE gathers on the lab's address, which the namespaces and the host both reach."""
    return make_config(sfu__ice_addresses=[lab.server_ip])


class ScenarioError(Exception):
    """ScenarioError: the meeting could not be set up (not a broken promise: never an expected failure)."""


@dataclass
class Figures:
    """Figures: what one classroom received over the window (presenter slots) and what the server sent it."""

    name: str
    concealed_share: float = 1.0  # presenter's audio
    floor_concealed_share: float = 1.0  # the floor holder's audio
    frames: int = 0  # presenter's video frames decoded in the window
    longest_stall_s: float = 0.0  # longest time without a new presenter frame (the page's own watch, STALL_WATCH)
    freezes: int = 0
    freeze_s: float = 0.0
    kbps: float = 0.0  # every down slot
    heights: list[int] = field(default_factory=list)  # decoded presenter heights, one per sample
    top_heights: list[int] = field(default_factory=list)  # the presenter camera's best sent height, same samples
    layers_sent: list[int] = field(default_factory=list)  # the presenter camera's active encodings, same samples
    consumer: dict[str, Any] = field(default_factory=dict)  # server: the presenter-video consumer, at the end
    published_kbps: list[float] = field(default_factory=list)  # server: the presenter camera's layers over the
    # window (kbit/s received from the presenter, lowest layer first; the same for every classroom)
    stall_at: float = 0.0  # seconds into the window when the longest stall began
    trace: list[str] = field(default_factory=list)  # server: its downlink every TRACE_S (trace_line), the window's
    audio_lost: int = 0  # the presenter's audio packets lost over the window (the page's packetsLost)
    audio_packets: int = 0  # and received
    reached_top_s: float | None = None  # the uncapped classroom: seconds from its first frames to the top layer
    concealments: list[str] = field(default_factory=list)  # per sample that concealed audio: when, how much, lost

    def audio(self, traced: bool = True) -> str:
        """Figures.audio: the presenter audio's loss and when it was concealed, with the server's trace then (unless
        not `traced`)."""
        got = self.audio_packets + self.audio_lost
        lines = [f"{self.name}: presenter audio {self.audio_lost} packets lost of {got}; concealed (s into the "
                 "window: presenter's samples/floor's, packets lost):", *self.concealments]
        for event in self.concealments[:6] if traced else []:
            at = float(event.split()[0])
            lines += [f"-- trace near {at:.1f} s", self.trace_near(at, 1.0, 0.5)]
        return "\n".join(lines)

    def trace_near(self, at: float, before: float = 3.0, after: float = 4.0) -> str:
        """Figures.trace_near: the trace's lines from `before` seconds before `at` to `after` seconds after."""
        return "\n".join(line for line in self.trace if at - before <= float(line.split()[0]) <= at + after)

    @property
    def height(self) -> float:
        """Figures.height: the median decoded height over the window (0: nothing decoded)."""
        return statistics.median(self.heights) if self.heights else 0

    def __str__(self) -> str:
        return (f"{self.name}: audio concealed {100 * self.concealed_share:.1f} % (floor's "
                f"{100 * self.floor_concealed_share:.1f} %), {self.frames} frames, longest "
                f"stall {self.longest_stall_s:.1f} s, {self.freezes} freezes ({self.freeze_s:.1f} s), height "
                f"{self.height:g} (presenter sends {statistics.median(self.top_heights or [0]):g}), "
                f"{self.kbps:.0f} kbit/s received (presenter camera's layers: "
                f"{', '.join(f'{k:.0f}' for k in self.published_kbps)} kbit/s); "
                + (f"top layer reached {self.reached_top_s} s after its first frames; "
                   if self.reached_top_s is not None and self.name == "uncapped" else "")
                + "server: "
                + ", ".join(f"{k} {self.consumer.get(k)}" for k in (
                    "layer", "send_bitrate", "remb_bitrate", "packets_sent", "retransmitted", "nacks",
                    "keyframe_requests", "downlink")))


RESULT: dict[str, dict[str, Figures] | BaseException] = {}  # the scenario's figures, measured once per session


async def presenter_frames(page: Page) -> int:
    got = await media_stats(page)
    return int(got["slots"].get("presenter-video", {}).get("frames", 0)) if got else 0


async def wait_frames(page: Page, name: str) -> None:
    """wait_frames: wait (bounded) until the page has decoded presenter frames and decodes more."""
    deadline = time.monotonic() + WAIT_MS / 1000
    first = 0
    while time.monotonic() < deadline:
        frames = await presenter_frames(page)
        if first and frames > first:
            return
        first = first or frames
        await asyncio.sleep(0.5)
    raise ScenarioError(f"{name} decoded no presenter video within {WAIT_MS / 1000:g} s")


async def reach_top(studio: Page, page: Page) -> float | None:
    """reach_top: wait (at most REACH_S) until `page` decodes the presenter camera at the best height it sends;
    the seconds it took, None if it did not.

    A link the server knows nothing of starts at START_ESTIMATE (300 kbit/s) and climbs as the classroom's own
    REMB allows: Chromium's receive-side estimate grows by at most ~8 % a second, so the climb to a 540p top layer
    beside a screen share takes 10-30 s, longer on a busy host (a window that started 10 s after the join found it
    still climbing once in a full run). That climb is the bench's figure; the test's promise is that the top
    layer, once reached, is kept while the weak classrooms share the meeting."""
    start = time.monotonic()
    while time.monotonic() - start < REACH_S:
        sent = ((await media_stats(studio)) or {}).get("sent", [])
        top = max((x["height"] for x in sent if x["source"] == "camera" and x["active"]), default=0)
        got = await media_stats(page)
        height = ((got or {}).get("slots", {}).get("presenter-video") or {}).get("height") or 0
        if top and height >= top:
            return round(time.monotonic() - start, 1)
        await asyncio.sleep(SAMPLE_S)
    return None


def camera_layer_bytes(app: web.Application, meeting_id: int, participant: str) -> dict[int, int]:
    """camera_layer_bytes: the bytes the server received so far of `participant`'s camera, per layer index."""
    room = app[LIVE].sfu.rooms.get(str(meeting_id))
    if room is None:
        return {}
    return {int(s["layer"]): int(s["bytes"]) for p in jsonable(room.stats())["participants"]
            if p["participant_id"] == participant for s in p["producers"] if s["source"] == "camera"}


# Installed in each classroom's page when the window opens: every STALL_POLL_MS the presenter camera's framesDecoded,
# and the longest time between two polls that saw it grow. In the page, not from the test's samples: a loaded host
# makes each round of samples take seconds, and a stall between two samples was not seen (a run reported no stall
# beside 17 s of freezes).
STALL_POLL_MS = 100
STALL_WATCH = """([poll, span]) => {
  const c = window.live;
  const start = performance.now();
  const w = window.__stallWatch = {frames: -1, last: start, longest: 0, at: 0, start, end: start + span};
  const tick = async () => {
    const tr = c.down && c.down.getTransceivers().find((t) => t.mid === c.slots["presenter-video"]);
    let frames = 0;
    for (const r of tr ? (await tr.receiver.getStats()).values() : []) {
      if (r.type === "inbound-rtp") frames = r.framesDecoded || 0;
    }
    const now = Math.min(performance.now(), w.end);
    if (frames !== w.frames) { w.frames = frames; w.last = now; }
    if (now - w.last > w.longest) { w.longest = now - w.last; w.at = w.last - start; }
    if (now < w.end) w.timer = setTimeout(tick, poll);
  };
  tick();
}"""
# the longest stall within the window (the watch ends with it: reading every page afterwards took seconds on a loaded
# host, and the time after the window counted as a stall) and when it began, seconds into the window
STALL_READ = "() => { const w = window.__stallWatch; clearTimeout(w.timer); " \
             "const now = Math.min(performance.now(), w.end); " \
             "if (now - w.last > w.longest) { w.longest = now - w.last; w.at = w.last - w.start; } " \
             "return [w.longest / 1000, w.at / 1000]; }"


TRACE_S = 0.1  # the downlink trace's period (trace_line)
TRACED = tuple(CAPS)  # the classrooms whose downlinks are traced


def trace_line(app: web.Application, meeting_id: int, participant: str, at: float) -> str | None:
    """trace_line: one line of `participant`'s downlink as the server sees it, `at` seconds into the window: its
    estimate (kbit/s), congested (C) / video waiting (Q) / overfull (O), REMB, the loss and the video sent (kbit/s)
    its latest period measured, pacing rate, what waits in its pacer
    (packets, how long the oldest of each class waited (the cameras' + the screen's) in s, dropped so far) and per
    video slot the layer it is sent (spatial.temporal, - paused) with the kilobytes sent, NACKs, keyframe requests
    and packets its pacer dropped so far (None: no such downlink)."""
    room = app[LIVE].sfu.rooms.get(str(meeting_id))
    p = room.participants.get(participant) if room is not None else None
    link = room.downlinks.links.get(participant) if room is not None else None
    if p is None or link is None:
        return None
    videos = [c for c in p.consumers.values() if isinstance(c, Consumer) and c.kind == "video"]
    wire = next((c.wire for c in videos if c.wire is not None), None)
    pacer = wire.pacer if wire is not None else None
    remb = max((c.remb_bitrate or 0 for c in videos), default=0)
    flags = "".join(f for f, on in (("C", link.congested), ("Q", link.queued), ("O", link.overfull)) if on) or "."
    slots = []
    for c in sorted(videos, key=lambda c: c.slot):
        option = link.choice.get(c.slot)
        chosen = "?" if c.slot not in link.choice else "-" if option is None else f"{option.spatial}.{option.temporal}"
        slots.append(f"{c.slot.split('-')[0]}={chosen}:{c.bytes_sent // 1000}kB/{c.nacked}n/{c.keyframe_requests}k"
                     f"/{c.pacer_dropped}d")
    queue = (f"q{pacer.bucket.queued}/" + "+".join(f"{d:.2f}" for d in pacer.queue_delays) + f"s/d{pacer.dropped}"
             if pacer is not None else "q-")
    fb = link.feedback
    seen = (f"loss {100 * fb.loss:3.0f}% sent {fb.sent / 1000:4.0f} rtt "
            + (f"{1000 * fb.rtt:3.0f}" if fb.rtt is not None else "  -")) if fb is not None else \
        "loss   - sent    - rtt   -"
    return (f"{at:6.2f} est {link.estimate / 1000:4.0f} {flags:3} remb {remb / 1000:4.0f} {seen} "
            f"pace {(pacer.rate if pacer is not None else 0) / 1000:5.0f} {queue} " + " ".join(slots))


async def trace(app: web.Application, meeting_id: int, participant: str, start: float, out: list[str]) -> None:
    """trace: `participant`'s downlink every TRACE_S into `out` (trace_line) until cancelled."""
    while True:
        line = trace_line(app, meeting_id, participant, time.monotonic() - start)
        if line is not None:
            out.append(line)
        await asyncio.sleep(TRACE_S)


def consumer_stats(app: web.Application, meeting_id: int, participant: str) -> dict[str, Any]:
    """consumer_stats: the server's statistics of the consumer sending the presenter's video to `participant`."""
    room = app[LIVE].sfu.rooms.get(str(meeting_id))
    if room is None:
        return {}
    for p in jsonable(room.stats())["participants"]:
        if p["participant_id"] == participant:
            for c in p["consumers"]:
                if c["slot"] == "presenter-video":
                    return {**c, "downlink": p["downlink"]}
    return {}


async def run_meeting(app: web.Application, aiohttp_server: Any, lab: Lab, make_user: Factory,
                      make_classroom: Factory, make_meeting: Factory, camera: Path | None) -> dict[str, Figures]:
    """run_meeting: the presenter on the host (its camera plays `camera`), one classroom per cap in its namespace;
    the figures per classroom."""
    server = await aiohttp_server(app, host=lab.server_ip)
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Hà")
    rooms: dict[str, User] = {}
    for name in [*CAPS, "floor"]:
        cid = await make_classroom(name=f"Lớp {name}")
        rooms[name] = await make_user(Role.CLASSROOM, classroom_id=cid, display_name=f"Lớp học {name}")
    meeting = await make_meeting(presenters=[trainer], classrooms=[u.classroom_id for u in rooms.values()])
    args = FLAGS + netlab.insecure_origin_args(base)
    async with async_playwright() as pw:
        browsers: list[Browser] = []
        try:
            host = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=args + (camera_file_args(camera) if camera else []))
            browsers.append(host)
            ctx = await logged_in_context(host, app, base, trainer, small_video=False)
            await ctx.add_init_script(PRESENTER_VIDEO)
            studio = await ctx.new_page()
            await enter(studio, meeting.id)
            await studio.click("[data-action=screen]")
            await studio.wait_for_selector("[data-tile='my-screen']:not([hidden])", timeout=WAIT_MS)
            pages: dict[str, Page] = {}
            nets: dict[str, netlab.Netns] = {}
            for name in rooms:
                ns = nets[name] = lab.add(down=CAPS[name]) if name in CAPS else lab.add(up=FLOOR_UP)
                b = await pw.chromium.launch(executable_path=ns.chromium(), headless=True, args=args)
                browsers.append(b)
                pages[name] = await (await logged_in_context(b, app, base, rooms[name])).new_page()
            await asyncio.gather(*(enter(page, meeting.id) for page in pages.values()))
            floor = pages.pop("floor")
            await studio.evaluate("(pid) => window.live.giveFloor(pid)",
                                  await floor.evaluate("window.live.participantId"))
            await wait_frames(pages["uncapped"], "uncapped")
            joined = time.monotonic()
            reached = await reach_top(studio, pages["uncapped"])
            await asyncio.sleep(max(0.0, joined + SETTLE_S - time.monotonic()))
            figures = await measure(app, meeting.id, studio, pages, nets)
            figures["uncapped"].reached_top_s = reached
            return figures
        finally:
            for b in browsers:
                await b.close()


def slot_delta(a: dict[str, Any], b: dict[str, Any], slot: str, key: str) -> float:
    """slot_delta: how much a slot's statistic `key` grew from the page's sample `a` to its later sample `b`."""
    return float(b["slots"].get(slot, {}).get(key, 0) - a["slots"].get(slot, {}).get(key, 0))


async def measure(app: web.Application, meeting_id: int, studio: Page, pages: dict[str, Page],
                  nets: dict[str, netlab.Netns]) -> dict[str, Figures]:
    """measure: sample every page each SAMPLE_S seconds over WINDOW_S seconds; the figures per classroom."""
    ids = {name: str(await page.evaluate("window.live.participantId")) for name, page in pages.items()}
    presenter = str(await studio.evaluate("window.live.participantId"))
    published, started = camera_layer_bytes(app, meeting_id, presenter), time.monotonic()
    first: dict[str, dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}
    figures = {name: Figures(name) for name in pages}
    for page in pages.values():
        await page.evaluate(STALL_WATCH, [STALL_POLL_MS, WINDOW_S * 1000])
    window = time.monotonic()
    tracers = [asyncio.ensure_future(trace(app, meeting_id, ids[name], window, figures[name].trace)) for name in TRACED]
    end = window + WINDOW_S
    while time.monotonic() < end:
        sent = ((await media_stats(studio)) or {}).get("sent", [])
        camera = [s["height"] for s in sent if s["source"] == "camera" and s["active"]]
        top, layers = max(camera, default=0), len(camera)
        for name, page in pages.items():
            got = await media_stats(page)
            if got is None:
                continue
            pv = got["slots"].get("presenter-video", {})
            f = figures[name]
            if pv.get("height"):
                f.heights.append(int(pv["height"]))
                f.top_heights.append(int(top))
                f.layers_sent.append(layers)
            first.setdefault(name, got)
            before = last.get(name)
            if before is not None:
                hidden = (slot_delta(before, got, "presenter-audio", "concealed"),
                          slot_delta(before, got, "floor-audio", "concealed"))
                if any(hidden):
                    cap = nets[name].counters() if CAPS.get(name) else None
                    figures[name].concealments.append(
                        f"{time.monotonic() - window:6.2f} {hidden[0]:g}/{hidden[1]:g} lost "
                        f"{slot_delta(before, got, 'presenter-audio', 'lost'):g}/"
                        f"{slot_delta(before, got, 'floor-audio', 'lost'):g}"
                        + (f"; the cap: {cap.dropped} dropped so far, {cap.backlog} B waiting" if cap else ""))
            last[name] = got
        await asyncio.sleep(SAMPLE_S)
    for tracer in tracers:
        tracer.cancel()
    kbps = {layer: (octets - published.get(layer, 0)) * 8 / 1000 / (time.monotonic() - started)
                 for layer, octets in camera_layer_bytes(app, meeting_id, presenter).items()}
    for name, f in figures.items():
        f.published_kbps = [kbps[layer] for layer in sorted(kbps)]
        f.longest_stall_s, f.stall_at = (float(v) for v in await pages[name].evaluate(STALL_READ))
        a, b = first.get(name), last.get(name)
        if a is None or b is None:
            raise ScenarioError(f"{name} gave no statistics")

        def delta(slot: str, key: str, a: dict[str, Any] = a, b: dict[str, Any] = b) -> float:
            return slot_delta(a, b, slot, key)

        samples = delta("presenter-audio", "samples")
        f.concealed_share = delta("presenter-audio", "concealed") / samples if samples > 0 else 1.0
        f.audio_lost = int(delta("presenter-audio", "lost"))
        f.audio_packets = int(delta("presenter-audio", "packets"))
        samples = delta("floor-audio", "samples")
        f.floor_concealed_share = delta("floor-audio", "concealed") / samples if samples > 0 else 1.0
        f.frames = int(delta("presenter-video", "frames"))
        f.freezes = int(delta("presenter-video", "freezes"))
        f.freeze_s = delta("presenter-video", "freeze_s")
        f.kbps = sum(delta(slot, "bytes") for slot in b["slots"]) * 8 / 1000 / max(b["at"] - a["at"], 1e-3)
        f.consumer = consumer_stats(app, meeting_id, ids[name])
    for f in figures.values():
        print(f)
        print(f.audio(traced=False))
    for name in TRACED:
        traced = figures[name]
        print(f"{name}'s downlink (the longest stall began {traced.stall_at:.1f} s into the window):", *traced.trace,
              sep="\n")
    return figures


@pytest.fixture(scope="session")
def presenter_camera(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    """presenter_camera: the presenter's camera picture: Chromium's own pattern (None) unless DETAILED_CAMERA, a
    picture made with ffmpeg (`detailed_camera`, made once a session): "1" a moving test pattern under temporal
    noise, as hard to encode as a real camera's; "moving" the moving pattern alone (half the encoder's work, each
    layer still at its encoder's target: ~130 / ~300 / ~850 kbit/s at 960x540, a scale model of the studio's
    camera). On this 2-core machine either starves the meeting beside `stress-ng --cpu 2` (twelfth session: the
    uncapped classroom's own REMB stayed under ~1 Mbit/s and it was sent the middle layer; the seventh: load 16 from
    the noisy picture alone), so the suite keeps the pattern and the bench (`--camera detailed`) the picture."""
    if DETAILED_CAMERA not in ("", "1", "moving"):
        raise pytest.UsageError(f"TAPHUAN_DETAILED_CAMERA={DETAILED_CAMERA!r}: use 1 (noisy picture) or moving")
    if not DETAILED_CAMERA:
        return None
    noise = 30 if DETAILED_CAMERA == "1" else 0
    return detailed_camera(tmp_path_factory.mktemp("camera"), *PRESENTER_SIZE, noise=noise)


@pytest.fixture
async def figures(app: web.Application, aiohttp_server: Any, lab: Lab, make_user: Factory, make_classroom: Factory,
                  make_meeting: Factory, presenter_camera: Path | None) -> dict[str, Figures]:
    """figures: the meeting's figures per classroom (the meeting runs in the first test that asks)."""
    if "figures" not in RESULT:
        try:
            RESULT["figures"] = await run_meeting(app, aiohttp_server, lab, make_user, make_classroom, make_meeting,
                                                  presenter_camera)
        except Exception as exc:
            RESULT["figures"] = exc
    result = RESULT["figures"]
    if isinstance(result, BaseException):
        raise ScenarioError(f"the weak-link meeting failed: {result}") from result
    return result


def test_every_classroom_joins_and_the_uncapped_one_keeps_the_top_layer(figures: dict[str, Figures]) -> None:
    """The uncapped classroom reaches the best layer the presenter sends (within REACH_S of its first frames: its
    own REMB's climb, `reach_top`) and keeps it over the window the weak classrooms share with it."""
    free = figures["uncapped"]
    assert free.reached_top_s is not None, f"the top layer was not decoded within {REACH_S:g} s\n{free}"
    assert free.frames > WINDOW_S * 3, str(free)  # 15 fps sent: frames keep coming
    assert free.height >= statistics.median(free.top_heights), str(free)  # the best the presenter sends
    assert free.concealed_share < 0.05, str(free)
    for f in figures.values():
        assert f.consumer, f"no server statistics for {f.name}"


def test_a_300_kbit_classroom_keeps_98_percent_of_audio(figures: dict[str, Figures]) -> None:
    """The 300 kbit/s link costs the classroom at most 2 % of the presenter's samples concealed. What the host
    itself costs (four Chromiums on two cores starve each other's audio rendering) is measured apart in the same
    run: the uncapped classroom's concealment of the same stream, 0.1-0.5 % on a quiet host (the first test
    bounds it under 5 %); the capped one may exceed it by 2 % at most. On failure: the presenter audio's packets
    lost, each sample that concealed some (with the cap's drops and queue then) and the server's downlink around it
    (a full cap queues the audio behind video: tenth session, docs/sfu.md)."""
    f, free = figures["c300"], figures["uncapped"]
    assert f.concealed_share <= free.concealed_share + 0.02, f"{f}\n{free}\n{f.audio()}"


def test_a_300_kbit_classroom_keeps_decoding_presenter_video_without_long_freezes(figures: dict[str, Figures]) -> None:
    """The 300 kbit/s classroom's presenter camera never stalls over 2 s (the page's own watch, every 100 ms). Its
    packets leave the pacer before the screen share's (sfu.pacer.pace_class): in one queue they waited behind the
    screen's keyframes, 1.2-5.3 s stalls in runs before; a keyframe drops its stream's older packets waiting there
    (sfu.pacer.TokenBucket.supersede); our own holes are not read as the link's loss a period later
    (sfu.downlinks.Holes: 5.9-12.8 s stalls when they were, the estimate cut to the floor); a frozen picture's
    repeated keyframe request does not wait for the track's gate (sfu.consumer.FROZEN_AFTER: 26 s when it did).
    On failure the server's trace of that downlink around the stall says where video waited (docs/sfu.md, ninth
    session)."""
    f = figures["c300"]
    assert f.frames > WINDOW_S, str(f)  # at least ~1 fps over the window
    assert f.longest_stall_s <= 2.0, f"{f}\nthe longest stall began {f.stall_at:.1f} s into the window; " \
                                     f"the server's downlink then:\n{f.trace_near(f.stall_at)}"


def test_a_floor_holder_on_a_300_kbit_uplink_is_heard(figures: dict[str, Figures]) -> None:
    """The floor holder's 300 kbit/s uplink costs the others at most 2 % of its samples concealed. What the host
    itself costs any stream is measured apart in the same page and window: the presenter's audio (an uncapped
    uplink) concealed there, 0.1-0.5 % on a quiet host, 1.3 % in one full run on a busy one (the floor's 2.1 %
    then); the floor's may exceed it by 2 % at most (the first test bounds the host's share)."""
    f = figures["uncapped"]
    assert f.floor_concealed_share <= f.concealed_share + 0.02, str(f)
