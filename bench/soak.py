"""soak: a real meeting in real Chromium for --minutes, so that leaks, stalls and drifts over a lecture show.

The server runs as its own process (``python -m server.cli serve``, a temporary data directory, SQLite, on
127.0.0.1) so that its CPU and RSS can be read from /proc. One headless Debian Chromium (fake camera,
microphone and screen capture) holds the pages, each in its own context: the presenter (a trainer) joins
the studio with camera and microphone and shares the screen; --classrooms classrooms (default 3) join the
classroom view; the recorder starts by itself when the room opens (a published meeting with recording on).
The presenter gives the floor to classroom 1 and takes it back in turns of --floor-period seconds (on
first). After --minutes the presenter stops the recording, the pages close, the recording is finalized by
the server and its file is measured with ffprobe. Ctrl-C stops early: the minutes so far are summed up,
browsers and server are shut down.

    .venv/bin/python bench/soak.py                        # 30 minutes, 3 classrooms, floor 60 s on / 60 s off
    .venv/bin/python bench/soak.py --minutes 180 --out soak.json
    .venv/bin/python bench/soak.py --minutes 3 --classrooms 1 --video 640x360@30

Per minute, one row per page (``studio``, ``class-1`` …) from ``getStats()`` of the page's down connection
(inbound-rtp, per slot; deltas over the minute):

    video frames   frames decoded per video slot: pv presenter camera, sc screen, fv floor holder's camera,
                   g0… the studio's classroom grid (a "!" marks a slot that should have had media)
    frz, frz s     freezes (freezeCount) and their total duration (totalFreezesDuration), expected video slots
    audio energy   totalAudioEnergy gained per audio slot: pa presenter, fa floor holder
    concl          concealed samples / samples received, expected audio slots (an empty slot conceals silence)
    jb ms          mean jitter-buffer delay of the page's main expected audio slot (a drift in latency shows here)
    lost           packetsLost gained, all slots

and one ``server`` row: the server process's CPU (% of one core over the minute), its RSS, how many seconds
of the minute classroom 1 held the floor, and the whole machine's CPU use and load average (Chromium runs on
the same machine: freezes on a saturated machine say little about the server). A classroom expects the
presenter's camera, screen and voice all the time and the floor holder's camera and voice while someone else
holds the floor; the studio expects every classroom's camera in its grid and the floor holder's camera and
voice while the floor is given (at least 10 s of the minute).

At the end: the recording's duration (ffprobe) against the meeting's (from the presenter's click on "join",
which opens the room, to the reply to record-stop), and a verdict: the exceptions to "every minute of every
page had frames and audio", all freezes, the server's RSS growth after minute 5 (a leak shows as a slope)
and recording minus meeting duration. --out FILE also writes the rows as JSON (``.json``, with settings,
recording and verdict) or CSV (one row per minute, page and slot, plus the server's). The camera is 320x240
at 15 fps by default, as in the end-to-end tests, to spare a 2-core machine that also runs the pages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from playwright.async_api import Browser, Page, async_playwright  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker  # noqa: E402

from server.auth import COOKIE  # noqa: E402
from server.config import Config, load_config  # noqa: E402
from server.db.engine import make_engine, make_sessionmaker  # noqa: E402
from server.db.models import (  # noqa: E402
    Classroom,
    LoginSession,
    Meeting,
    MeetingStatus,
    Program,
    Recording,
    RecordingState,
    Role,
    Unit,
    UnitLevel,
    User,
    meeting_classrooms,
    meeting_presenters,
)
from tests.e2e.browser import CHROMIUM, FLAGS  # noqa: E402

# Background pages must not be throttled over hours (timers of the page scripts, getStats polling).
SOAK_FLAGS = FLAGS + ["--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                      "--disable-backgrounding-occluded-windows"]
FLOOR_MIN_S = 10.0  # a minute expects the floor holder's media when the floor was given this long in it
SHORT = {"presenter-video": "pv", "screen": "sc", "floor-video": "fv", "presenter-audio": "pa", "floor-audio": "fa"}
ORDER = ["presenter-video", "screen", "floor-video", "presenter-audio", "floor-audio"]

SAMPLE = """async () => {
  const c = window.live;
  if (!c || !c.down) return null;
  const slots = {};
  for (const tr of c.down.getTransceivers()) {
    const slot = Object.keys(c.slots).find((s) => c.slots[s] === tr.mid);
    if (!slot) continue;
    const s = {frames: 0, freezes: 0, freeze_s: 0, energy: 0, concealed: 0, samples: 0, jb_delay: 0,
               jb_emitted: 0, lost: 0, packets: 0, width: 0, height: 0};
    for (const r of (await tr.receiver.getStats()).values()) {
      if (r.type !== "inbound-rtp") continue;
      s.frames = r.framesDecoded || 0; s.freezes = r.freezeCount || 0; s.freeze_s = r.totalFreezesDuration || 0;
      s.energy = r.totalAudioEnergy || 0; s.concealed = r.concealedSamples || 0;
      s.samples = r.totalSamplesReceived || 0; s.jb_delay = r.jitterBufferDelay || 0;
      s.jb_emitted = r.jitterBufferEmittedCount || 0; s.lost = r.packetsLost || 0;
      s.packets = r.packetsReceived || 0; s.width = r.frameWidth || 0; s.height = r.frameHeight || 0;
    }
    slots[slot] = s;
  }
  return {slots, down: c.down.connectionState, up: c.up ? c.up.connectionState : "none",
          reconnects: window.__soakReconnects || 0};
}"""
COUNTERS = ("frames", "freezes", "freeze_s", "energy", "concealed", "samples", "jb_delay", "jb_emitted", "lost",
            "packets")


class SoakError(Exception):
    """SoakError: the meeting could not be set up (the message says where)."""


def is_audio(slot: str) -> bool:
    """is_audio: whether a down slot carries audio."""
    return slot.endswith("-audio")


# ------------------------------------------------------------------------------------ server process


def free_port() -> int:
    """free_port: a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_figures(pid: int) -> tuple[float, float]:
    """proc_figures: (CPU seconds, RSS in MiB) of a process, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return cpu, rss


def machine_busy() -> tuple[float, float]:
    """machine_busy: (busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def write_config(directory: Path, port: int) -> Path:
    """write_config: the server's configuration file for this run (everything on 127.0.0.1)."""
    path = directory / "config.yaml"
    path.write_text(
        f"data_dir: {json.dumps(str(directory / 'data'))}\n"
        f"server: {{host: 127.0.0.1, port: {port}, shutdown_timeout: 3.0}}\n"
        "sfu: {ice_addresses: [127.0.0.1]}\n"
        "recorder: {enabled: true, auto_start: true, min_free_bytes: 500000000}\n"
        "log: {level: INFO, format: text}\n", encoding="utf-8")
    return path


def log_tail(path: Path, lines: int = 15) -> str:
    """log_tail: the last lines of the server's log, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


class ServerProcess:
    """ServerProcess: `taphuan serve` in its own process and session (Ctrl-C reaches only the bench)."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path, self.log_path = config_path, log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, url: str, within: float = 60.0) -> int:
        """ServerProcess.start: start it and wait (bounded) until /healthz answers; returns its pid."""
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "server.cli", "serve", "--config", str(self.config_path),
                cwd=str(ROOT), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise SoakError(f"the server exited ({self.proc.returncode}):\n{log_tail(self.log_path)}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return self.proc.pid
                await asyncio.sleep(0.25)
        raise SoakError(f"the server did not answer /healthz within {within:.0f} s:\n{log_tail(self.log_path)}")

    async def stop(self) -> None:
        """ServerProcess.stop: SIGTERM (a clean shutdown), SIGKILL after 15 s."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 5)

    def kill(self) -> None:
        """ServerProcess.kill: last resort when the event loop is gone (a second Ctrl-C)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)


# ----------------------------------------------------------------------------- accounts and meeting


@dataclass
class Cast:
    """Cast: the meeting and the login cookie of each page (studio first)."""

    meeting_id: int
    cookies: dict[str, str] = field(default_factory=dict)


async def create_meeting(db: async_sessionmaker[AsyncSession], classrooms: int) -> Cast:
    """create_meeting: a trainer, the classrooms' accounts, a published meeting that records, their logins."""
    now = dt.datetime.now(dt.UTC)
    async with db() as s:
        unit = Unit(code="SOAK", name="Tỉnh thử tải", level=UnitLevel.PROVINCE)
        program = Program(title="Chương trình thử tải")
        s.add_all([unit, program])
        await s.flush()
        trainer = User(username="soak-trainer", display_name="Giảng viên thử tải", role=Role.TRAINER)
        meeting = Meeting(program_id=program.id, title="Thử tải buổi tập huấn dài", status=MeetingStatus.PUBLISHED,
                          starts_at=now - dt.timedelta(minutes=5), ends_at=now + dt.timedelta(hours=4), record=True)
        s.add_all([trainer, meeting])
        await s.flush()
        await s.execute(insert(meeting_presenters).values(meeting_id=meeting.id, user_id=trainer.id))
        users = {"studio": trainer}
        for i in range(1, classrooms + 1):
            room = Classroom(code=f"SOAK{i}", name=f"Phòng thử tải {i}", unit_id=unit.id)
            s.add(room)
            await s.flush()
            user = User(username=f"soak-class-{i}", display_name=f"Lớp thử tải {i}", role=Role.CLASSROOM,
                        classroom_id=room.id)
            s.add(user)
            await s.flush()
            await s.execute(insert(meeting_classrooms).values(meeting_id=meeting.id, classroom_id=room.id))
            users[f"class-{i}"] = user
        cast = Cast(meeting.id)
        for name, user in users.items():
            login = LoginSession(id=secrets.token_urlsafe(32), user_id=user.id, csrf_token=secrets.token_urlsafe(24),
                                 created_at=now, expires_at=now + dt.timedelta(hours=12), ip="127.0.0.1",
                                 user_agent="soak")
            s.add(login)
            cast.cookies[name] = login.id
        await s.commit()
    return cast


# ------------------------------------------------------------------------------------------- pages


async def open_page(browser: Browser, base: str, cookie: str, video: dict[str, int] | None) -> Page:
    """open_page: a new context logged in with `cookie` (the camera size forced when `video`) and its page."""
    context = await browser.new_context(base_url=base, locale="vi-VN", viewport={"width": 1366, "height": 768},
                                        permissions=["camera", "microphone"])
    context.set_default_timeout(30_000)
    await context.add_cookies([{"name": COOKIE, "value": cookie, "url": base}])
    if video:
        await context.add_init_script(f"window.TAPHUAN_VIDEO = {json.dumps(video)};")
    return await context.new_page()


async def join(page: Page, meeting_id: int) -> float:
    """join: open the meeting, click join and wait until the page publishes (bounded); returns the click's time."""
    await page.goto(f"/live/{meeting_id}")
    await page.wait_for_selector("[data-action=join]:not([disabled])", timeout=30_000)
    clicked = time.monotonic()
    await page.click("[data-action=join]")
    await page.wait_for_selector("[data-stage]:not([hidden])", timeout=30_000)
    await page.wait_for_function("() => window.live && window.live.up && "
                                 "window.live.up.connectionState === 'connected'",
                                 timeout=30_000)
    await page.evaluate("window.__soakReconnects = 0; "
                        "window.live.addEventListener('reconnecting', () => { window.__soakReconnects++; });")
    return clicked


async def sample(page: Page) -> dict[str, Any] | None:
    """sample: the page's down-connection counters per slot (None when it does not answer within 20 s)."""
    try:
        result = await asyncio.wait_for(page.evaluate(SAMPLE), 20)
    except Exception:
        return None
    return result if isinstance(result, dict) else None


async def wait_media(name: str, page: Page, slots: list[str], within: float = 45.0) -> dict[str, Any]:
    """wait_media: wait (bounded) until every slot in `slots` has decoded frames or audio energy."""
    deadline = time.monotonic() + within
    missing = slots
    while time.monotonic() < deadline:
        got = await sample(page)
        if got is not None:
            counts = got["slots"]
            missing = [s for s in slots if s not in counts or
                       counts[s]["energy" if is_audio(s) else "frames"] <= 0]
            if not missing:
                return got
        await asyncio.sleep(1.0)
    raise SoakError(f"{name}: no media in {', '.join(missing)} after {within:.0f} s")


# ------------------------------------------------------------------------------------------ floor


class Floor:
    """Floor: gives classroom 1 the floor from the studio in turns of `period` s (on first); keeps the times."""

    def __init__(self, studio: Page, holder: str, period: float) -> None:
        self.studio, self.holder, self.period = studio, holder, period
        self.spans: list[list[float]] = []  # [given, taken back or inf]
        self.errors: list[str] = []

    async def give(self, on: bool) -> None:
        """Floor.give: give (on) or take back the floor through the protocol, as the studio's buttons do."""
        try:
            await asyncio.wait_for(self.studio.evaluate("(pid) => window.live.giveFloor(pid)",
                                                        self.holder if on else None), 15)
        except Exception as exc:
            self.errors.append(f"{'give' if on else 'take'} floor at {time.strftime('%H:%M:%S')}: {exc}")
            return
        now = time.monotonic()
        if on:
            self.spans.append([now, float("inf")])
        elif self.spans and self.spans[-1][1] == float("inf"):
            self.spans[-1][1] = now

    async def run(self, t0: float) -> None:
        """Floor.run: alternate until cancelled."""
        turn = 0
        while True:
            await self.give(turn % 2 == 0)
            turn += 1
            await asyncio.sleep(max(0.0, t0 + turn * self.period - time.monotonic()))

    def seconds(self, start: float, end: float) -> float:
        """Floor.seconds: how long the floor was given within [start, end]."""
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in self.spans)


# ------------------------------------------------------------------------------------------ figures


@dataclass
class SlotRow:
    """SlotRow: one slot of one page over one minute (deltas)."""

    minute: int
    page: str
    slot: str
    expected: bool
    frames: int = 0
    freezes: int = 0
    freeze_s: float = 0.0
    energy: float = 0.0
    concealed: int = 0
    samples: int = 0
    jb_delay: float = 0.0
    jb_emitted: int = 0
    lost: int = 0
    packets: int = 0

    @property
    def ok(self) -> bool:
        """SlotRow.ok: media arrived (frames for video, energy for audio)."""
        return self.energy > 0 if is_audio(self.slot) else self.frames > 0


@dataclass
class ServerRow:
    """ServerRow: the server process over one minute."""

    minute: int
    cpu_pct: float
    rss_mib: float
    floor_s: float
    machine_pct: float  # the whole machine's CPU use (all cores): the bench's own Chromium and anyone else's
    load: float


def deltas(minute: int, page: str, before: dict[str, Any] | None, after: dict[str, Any], expected: set[str]
           ) -> list[SlotRow]:
    """deltas: per-slot gains between two samples (a counter that went down restarted: a new connection)."""
    rows = []
    old = before["slots"] if before else {}
    for slot, now in after["slots"].items():
        prev = old.get(slot, {})
        gains = {}
        for key in COUNTERS:
            a, b = prev.get(key, 0), now[key]
            gains[key] = b - a if b >= a else b
        rows.append(SlotRow(minute, page, slot, slot in expected, **gains))
    for slot in expected - set(after["slots"]):
        rows.append(SlotRow(minute, page, slot, True))
    return rows


def expected_slots(page: str, classrooms: int, floor_s: float, grid_slots: int = 9) -> set[str]:
    """expected_slots: the slots of `page` that must carry media in a minute with `floor_s` s of floor."""
    floor = {"floor-video", "floor-audio"} if floor_s >= FLOOR_MIN_S else set()
    if page == "studio":
        return {f"grid-{i}" for i in range(min(classrooms, grid_slots))} | floor
    return {"presenter-video", "screen", "presenter-audio"} | (floor if page != "class-1" else set())


def slot_key(slot: str) -> tuple[int, int]:
    """slot_key: the display order of slots (the fixed ones, then the grid)."""
    return (ORDER.index(slot), 0) if slot in ORDER else (len(ORDER), int(slot.removeprefix("grid-")))


def page_line(minute: int, page: str, rows: list[SlotRow], note: str) -> str:
    """page_line: one printed row of the table."""
    shown = sorted((r for r in rows if r.expected or r.frames or r.energy), key=lambda r: slot_key(r.slot))
    label = {r.slot: SHORT.get(r.slot, r.slot.replace("grid-", "g")) for r in shown}
    video = " ".join(f"{label[r.slot]} {r.frames}{'!' if r.expected and not r.ok else ''}"
                     for r in shown if not is_audio(r.slot))
    audio = " ".join(f"{label[r.slot]} {r.energy:.3g}{'!' if r.expected and not r.ok else ''}"
                     for r in shown if is_audio(r.slot))
    vids = [r for r in rows if r.expected and not is_audio(r.slot)]
    auds = [r for r in rows if r.expected and is_audio(r.slot)]  # an empty slot's receiver conceals silence
    samples = sum(r.samples for r in auds)
    concl = f"{100 * sum(r.concealed for r in auds) / samples:.1f}%" if samples else "-"
    main = max(auds, key=lambda r: r.jb_emitted, default=None)
    jb = f"{1000 * main.jb_delay / main.jb_emitted:.0f}" if main and main.jb_emitted else "-"
    return (f"{minute:>4}  {page:<8} {video:<36} {sum(r.freezes for r in vids):>4} "
            f"{sum(r.freeze_s for r in vids):>6.1f}  {audio:<22} {concl:>6} {jb:>5} {sum(r.lost for r in rows):>5}"
            f"{'  ' + note if note else ''}")


HEADER = (f"{'min':>4}  {'page':<8} {'video frames':<36} {'frz':>4} {'frz s':>6}  {'audio energy':<22} "
          f"{'concl':>6} {'jb ms':>5} {'lost':>5}")


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Result:
    """Result: everything measured, for the summary and --out."""

    settings: dict[str, Any]
    slots: list[SlotRow] = field(default_factory=list)
    server: list[ServerRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # "minute page: why" for pages without statistics
    notes: list[str] = field(default_factory=list)
    recording: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False


def parse_video(text: str) -> dict[str, int] | None:
    """parse_video: "WxH@FPS" as getUserMedia constraints; "default" keeps the product's (640x360)."""
    if text == "default":
        return None
    size, _, fps = text.partition("@")
    w, _, h = size.partition("x")
    return {"width": int(w), "height": int(h), "frameRate": int(fps or 30)}


async def soak(args: argparse.Namespace, result: Result, server: ServerProcess, config: Config) -> None:
    """soak: set the meeting up, measure every minute, end it and measure the recording."""
    base = f"http://127.0.0.1:{config.server.port}"
    pid = await server.start(base)
    engine = make_engine(config.database_url)
    db = make_sessionmaker(engine)
    try:
        cast = await create_meeting(db, args.classrooms)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=SOAK_FLAGS)
            try:
                await meeting(args, result, browser, base, cast, pid, db)
            finally:
                try:
                    await asyncio.wait_for(browser.close(), 30)
                except Exception as exc:
                    result.notes.append(f"closing Chromium: {exc!r}")
        if not result.interrupted and result.recording.get("id"):
            await measure_recording(args, result, db, config)
    finally:
        await engine.dispose()


async def recording_started(db: async_sessionmaker[AsyncSession], meeting_id: int, within: float = 15.0) -> bool:
    """recording_started: whether the server records the meeting (a row in state recording), waiting up to `within`."""
    deadline = time.monotonic() + within
    while True:
        async with db() as s:
            row = await s.scalar(select(Recording.id).where(Recording.meeting_id == meeting_id,
                                                            Recording.state == RecordingState.RECORDING))
        if row is not None or time.monotonic() > deadline:
            return row is not None
        await asyncio.sleep(0.5)


def crash_note(result: Result, name: str) -> Callable[[Page], None]:
    """crash_note: a "crash" listener of a page that notes when it crashed."""
    return lambda _page: result.notes.append(f"{name}: the page crashed at {time.strftime('%X')}")


async def meeting(args: argparse.Namespace, result: Result, browser: Browser, base: str, cast: Cast,
                  pid: int, db: async_sessionmaker[AsyncSession]) -> None:
    """meeting: the pages join, then one sample per minute until --minutes or Ctrl-C."""
    gone = asyncio.Event()  # Chromium exited (Ctrl-C reaches it too, or it crashed)
    browser.on("disconnected", lambda _b: gone.set())
    video = parse_video(args.video)
    names = list(cast.cookies)
    pages = {name: await open_page(browser, base, cast.cookies[name], video) for name in names}
    for name, page in pages.items():
        page.on("crash", crash_note(result, name))
    studio = pages["studio"]
    began = await join(studio, cast.meeting_id)  # the meeting starts: its room opens and the recorder starts
    await studio.wait_for_selector("[data-action=screen]:not([disabled])", timeout=30_000)
    await studio.click("[data-action=screen]")
    await studio.wait_for_selector("[data-tile='my-screen']:not([hidden])", timeout=30_000)
    for name in names[1:]:
        await join(pages[name], cast.meeting_id)
    if not await recording_started(db, cast.meeting_id):
        result.notes.append("the recording did not start by itself within 15 s: started with record-start")
        await asyncio.wait_for(studio.evaluate("window.live.recordStart()"), 30)
    for name, page in pages.items():
        try:
            await page.wait_for_function("() => window.live.recording === true", timeout=10_000)
        except Exception:
            result.notes.append(f"{name}: the page does not know that the meeting is recorded "
                                "(window.live.recording is false)")
    for name in names[1:]:
        media = await wait_media(name, pages[name], ["presenter-video", "screen", "presenter-audio"])
    await wait_media("studio", studio, [f"grid-{i}" for i in range(min(args.classrooms, 9))])
    screen = media["slots"]["screen"]
    camera = media["slots"]["presenter-video"]
    sizes = {"camera": f"{camera['width']}x{camera['height']}", "screen": f"{screen['width']}x{screen['height']}"}
    result.settings.update(sizes)
    print(f"pages joined in {time.monotonic() - began:.1f} s; presenter camera {sizes['camera']}, "
          f"screen {sizes['screen']}; server pid {pid} on {base}", flush=True)
    holder = str(await pages["class-1"].evaluate("window.live.participantId"))

    t0 = time.monotonic()
    last = {name: await sample(page) for name, page in pages.items()}
    cpu0, _ = proc_figures(pid)
    at0 = time.monotonic()
    busy0, total0 = machine_busy()
    floor = Floor(studio, holder, args.floor_period)
    floor_task = asyncio.create_task(floor.run(t0))
    print(HEADER, flush=True)
    try:
        for minute in range(1, args.minutes + 1):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), max(0.0, t0 + 60 * minute - time.monotonic()))
            if gone.is_set():
                result.notes.append(f"Chromium closed during minute {minute} (Ctrl-C or a crash): measuring stops")
                result.interrupted = True
                return
            got_all = await asyncio.gather(*(sample(p) for p in pages.values()))
            cpu, rss = proc_figures(pid)
            at = time.monotonic()
            busy, total = machine_busy()
            floor_s = floor.seconds(t0 + 60 * (minute - 1), t0 + 60 * minute)
            for name, got in zip(pages, got_all, strict=True):
                if got is None:
                    result.missing.append(f"minute {minute} {name}: no statistics (page did not answer)")
                    print(f"{minute:>4}  {name:<8} (no statistics)", flush=True)
                    continue
                rows = deltas(minute, name, last[name], got, expected_slots(name, args.classrooms, floor_s))
                prev = last[name]
                reconnects = got["reconnects"] - (prev["reconnects"] if prev else 0)
                note = " ".join(filter(None, [
                    f"down {got['down']}" if got["down"] != "connected" else "",
                    f"up {got['up']}" if got["up"] != "connected" else "",
                    f"reconnected x{reconnects}" if reconnects else ""]))
                if note:
                    result.notes.append(f"minute {minute} {name}: {note}")
                result.slots.extend(rows)
                last[name] = got
                print(page_line(minute, name, rows, note), flush=True)
            row = ServerRow(minute, 100 * (cpu - cpu0) / (at - at0), rss, floor_s,
                            100 * (busy - busy0) / max(1.0, total - total0), os.getloadavg()[0])
            cpu0, at0, busy0, total0 = cpu, at, busy, total
            result.server.append(row)
            print(f"{minute:>4}  {'server':<8} cpu {row.cpu_pct:.1f} %, rss {rss:.1f} MiB, "
                  f"floor to class-1 {floor_s:.0f} s; machine busy {row.machine_pct:.0f} %, load {row.load:.1f}",
                  flush=True)
    except asyncio.CancelledError:
        result.interrupted = True
        raise
    finally:
        floor_task.cancel()
        result.notes.extend(floor.errors)
    reply = await asyncio.wait_for(studio.evaluate("window.live.recordStop()"), 30)
    result.recording.update(id=int(reply["recording_id"]), meeting_s=time.monotonic() - began)


async def measure_recording(args: argparse.Namespace, result: Result, db: async_sessionmaker[AsyncSession],
                            config: Config) -> None:
    """measure_recording: wait (bounded) for the finalized file and read its duration with ffprobe."""
    rid = result.recording["id"]
    waited = time.monotonic()
    deadline = waited + 120 + 2 * args.minutes
    row = None
    while time.monotonic() < deadline:
        async with db() as s:
            row = await s.get(Recording, rid)
        if row is not None and row.state in (RecordingState.READY, RecordingState.FAILED):
            break
        await asyncio.sleep(1.0)
    if row is None or row.state != RecordingState.READY:
        result.recording["error"] = f"not ready after {time.monotonic() - waited:.0f} s: " + (
            f"{row.state.value} {row.error}" if row else "no row")
        return
    result.recording.update(ready_after_s=time.monotonic() - waited, file=row.file)
    if row.ended_at is not None:
        result.recording["server_span_s"] = (row.ended_at - row.started_at).total_seconds()
    path = config.data_path / "recordings" / row.directory / row.file
    proc = await asyncio.create_subprocess_exec("ffprobe", "-v", "error", "-show_entries", "format=duration",
                                                "-of", "json", str(path), stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    try:
        result.recording["file_s"] = float(json.loads(out)["format"]["duration"])
    except (ValueError, KeyError):
        result.recording["error"] = f"ffprobe could not read {path.name}"


# ------------------------------------------------------------------------------------------ summary


def verdict(result: Result) -> dict[str, Any]:
    """verdict: the exceptions, freezes, RSS growth and recording drift."""
    exceptions = list(result.missing)
    for r in result.slots:
        if r.expected and not r.ok:
            exceptions.append(f"minute {r.minute} {r.page}: no {'audio' if is_audio(r.slot) else 'frames'} "
                              f"in {r.slot}")
    pages = {(r.minute, r.page) for r in result.slots}
    rss = {s.minute: s.rss_mib for s in result.server}
    last = max(rss, default=0)
    growth = 100 * (rss[last] - rss[5]) / rss[5] if last > 5 else None
    first = 100 * (rss[last] - rss[1]) / rss[1] if last > 1 else None
    rec = result.recording
    drift = rec["file_s"] - rec["meeting_s"] if "file_s" in rec else None
    return {"page_minutes": len(pages) + len(result.missing), "exceptions": exceptions,
            "freezes": sum(r.freezes for r in result.slots if r.expected),
            "freeze_s": round(sum(r.freeze_s for r in result.slots if r.expected), 3),
            "rss_growth_after_5_pct": None if growth is None else round(growth, 2),
            "rss_growth_after_1_pct": None if first is None else round(first, 2),
            "recording_minus_meeting_s": None if drift is None else round(drift, 2)}


def summary(result: Result) -> dict[str, Any]:
    """summary: print the recording figures and the verdict; returns the verdict."""
    v = verdict(result)
    rec = result.recording
    print()
    if "file_s" in rec:
        span = f", server's recording span {rec['server_span_s']:.1f} s" if "server_span_s" in rec else ""
        print(f"recording: {rec['file']} {rec['file_s']:.1f} s (ffprobe), ready {rec['ready_after_s']:.1f} s after "
              f"the stop; meeting {rec['meeting_s']:.1f} s (presenter's join to record-stop){span}")
    elif rec.get("error"):
        print(f"recording: {rec['error']}")
    elif result.interrupted:
        print("recording: not measured (interrupted)")
    for note in result.notes:
        print(f"note: {note}")
    print("verdict:" + (" (interrupted)" if result.interrupted else ""))
    if v["exceptions"]:
        print(f"  frames and audio: {len(v['exceptions'])} exceptions in {v['page_minutes']} page-minutes:")
        for line in v["exceptions"]:
            print(f"    {line}")
    else:
        print(f"  frames and audio: every minute of every page ({v['page_minutes']} page-minutes)")
    print(f"  freezes: {v['freezes']} ({v['freeze_s']:.1f} s in all)")
    if v["rss_growth_after_5_pct"] is not None:
        print(f"  server RSS growth after minute 5: {v['rss_growth_after_5_pct']:+.2f} %")
    else:
        after1 = v["rss_growth_after_1_pct"]
        print("  server RSS growth after minute 5: n/a (run more than 5 minutes)"
              + (f"; after minute 1: {after1:+.2f} %" if after1 is not None else ""))
    drift = v["recording_minus_meeting_s"]
    print("  recording - meeting: " + (f"{drift:+.2f} s" if drift is not None else "n/a"))
    return v


def write_out(path: Path, result: Result, v: dict[str, Any]) -> None:
    """write_out: the rows as JSON (with settings, recording and verdict) or as CSV."""
    if path.suffix.lower() == ".json":
        data = {"settings": result.settings, "pages": [asdict(r) for r in result.slots],
                "server": [asdict(s) for s in result.server], "recording": result.recording, "verdict": v}
        path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        return
    columns = [f for f in SlotRow.__dataclass_fields__] + ["cpu_pct", "rss_mib", "floor_s", "machine_pct", "load"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        for r in result.slots:
            w.writerow(asdict(r))
        for s in result.server:
            w.writerow({"minute": s.minute, "page": "server", "cpu_pct": round(s.cpu_pct, 2),
                        "rss_mib": round(s.rss_mib, 2), "floor_s": round(s.floor_s, 1),
                        "machine_pct": round(s.machine_pct, 1), "load": round(s.load, 2)})


def quiet_driver_loss(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """quiet_driver_loss: an event-loop exception handler that drops Playwright's "driver gone" leftovers."""
    if "Connection closed while reading from the driver" not in str(context.get("exception", "")):
        loop.default_exception_handler(context)


async def main(args: argparse.Namespace, server_box: list[ServerProcess]) -> int:
    """main: run in a temporary directory; browsers and the server are always shut down."""
    asyncio.get_running_loop().set_exception_handler(quiet_driver_loss)
    directory = Path(tempfile.mkdtemp(prefix="taphuan-soak-"))
    config_path = write_config(directory, free_port())
    config = load_config(config_path, env={})
    server = ServerProcess(config_path, directory / "server.log")
    server_box.append(server)
    result = Result(settings={"minutes": args.minutes, "classrooms": args.classrooms,
                              "floor_period_s": args.floor_period, "video": args.video,
                              "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
    print(f"soak: presenter (camera + screen) + {args.classrooms} classrooms, floor to class-1 "
          f"{args.floor_period:g} s on / {args.floor_period:g} s off, recorder on, {args.minutes} min, "
          f"video {args.video}", flush=True)
    code = 0
    try:
        await soak(args, result, server, config)
    except asyncio.CancelledError:  # Ctrl-C
        result.interrupted = True
        raise
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        code = 1
    except Exception as exc:  # a page or the server misbehaved: say what, then shut everything down
        print(f"soak: failed: {type(exc).__name__}: {exc}\nserver log:\n{log_tail(server.log_path)}",
              file=sys.stderr)
        code = 1
    finally:
        try:
            await server.stop()
        finally:
            if result.slots or result.server:
                v = summary(result)
                if args.out:
                    write_out(Path(args.out), result, v)
                    print(f"written: {args.out}")
            elif result.interrupted:
                print("soak: interrupted before the end of the first minute")
            if args.keep:
                print(f"kept: {directory} (server log: {directory / 'server.log'})")
            else:
                shutil.rmtree(directory, ignore_errors=True)
    return code


def parse_args() -> argparse.Namespace:
    """parse_args: the command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=30, help="how long to measure (default 30)")
    parser.add_argument("--classrooms", type=int, default=3, help="classroom pages (default 3)")
    parser.add_argument("--floor-period", type=float, default=60.0,
                        help="seconds classroom 1 holds the floor, then as long without it (default 60)")
    parser.add_argument("--video", default="320x240@15",
                        help="camera WxH@FPS of every page, or 'default' for the product's 640x360 (default "
                             "320x240@15, to spare a 2-core machine)")
    parser.add_argument("--out", help="also write the rows to FILE: .json, else CSV")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and the server log")
    args = parser.parse_args()
    if args.minutes < 1 or args.classrooms < 1 or args.floor_period <= 0:
        parser.error("--minutes and --classrooms must be at least 1, --floor-period positive")
    try:
        parse_video(args.video)
    except ValueError:
        parser.error("--video: WxH@FPS (e.g. 320x240@15) or 'default'")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    box: list[ServerProcess] = []
    try:
        sys.exit(asyncio.run(main(arguments, box)))
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        for srv in box:
            srv.kill()
