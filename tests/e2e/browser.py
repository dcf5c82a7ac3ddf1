"""browser: helpers for the real-Chromium tests: launch, log a context in, read WebRTC statistics, check frames.

Every context these helpers (and tests/e2e/conftest.py's `new_context`) make is watched: each frame its pages
send or receive on `/ws` is checked against docs/protocol.schema.json, and the `protocol_frames` fixture
(autouse) fails the test if one breaks it; a Content-Security-Policy violation in a page's console fails the test
too (`csp_violations`, autouse).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright, WebSocket

from server.auth import COOKIE, create_login
from server.db.engine import DB
from server.db.models import User
from tests.protocol_schema import Direction, check_text

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--disable-gpu",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
    "--allow-loopback-in-peer-connection",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

# Small video to spare the two cores of the test machine.
SMALL_VIDEO = "window.TAPHUAN_VIDEO = {width: 320, height: 240, frameRate: 15};"
# How long a page may take to reach a state (Playwright's waits, in ms). Generous on purpose: on a busy
# machine (two cores shared by Chromium, the server and other work) joining a meeting alone can take tens
# of seconds; the tests wait for outcomes and never assert speed.
WAIT_MS = 90_000


@dataclass
class FrameCheck:
    """FrameCheck: what the watched contexts' `/ws` frames showed during the current test."""

    frames: int = 0
    problems: list[str] = field(default_factory=list)

    def note(self, direction: Direction, payload: str | bytes) -> None:
        """FrameCheck.note: check one frame (`client`: the page sent it; `server`: the page received it)."""
        self.frames += 1
        problem = check_text(direction, payload)
        if problem is not None:
            self.problems.append(problem)


FRAMES = FrameCheck()  # reset by the `protocol_frames` fixture before each test
# Content-Security-Policy violations the watched pages reported in their console (Chromium logs each one as an
# error "Refused to … because it violates the following Content Security Policy directive …"); reset and checked
# by the `csp_violations` fixture (autouse).
CSP_VIOLATIONS: list[str] = []


def watch_protocol(context: BrowserContext) -> None:
    """watch_protocol: check every `/ws` frame of the context's pages (see FRAMES) and collect every
    Content-Security-Policy violation in their consoles (see CSP_VIOLATIONS)."""

    def on_websocket(ws: WebSocket) -> None:
        if urlsplit(ws.url).path != "/ws":
            return
        ws.on("framesent", lambda payload: FRAMES.note("client", payload))
        ws.on("framereceived", lambda payload: FRAMES.note("server", payload))

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            CSP_VIOLATIONS.append(f"{message.location.get('url', '')}: {message.text}")

    def on_page(page: Page) -> None:
        page.on("websocket", on_websocket)
        page.on("console", on_console)

    context.on("page", on_page)


async def launch(pw: Playwright) -> Browser:
    """launch: headless Debian Chromium with fake camera and microphone."""
    return await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)


def detailed_camera(directory: Path, width: int = 960, height: int = 540, frame_rate: int = 15,
                    seconds: float = 2.0, noise: int = 30) -> Path:
    """detailed_camera: a camera picture that is hard to encode, as a y4m file in `directory` (made once with the
    ffmpeg CLI, reused while it exists), for a Chromium launched with `camera_file_args`.

    Chromium's own fake camera (a still pattern and a moving dot) is so easy to encode that its 960x540 layer takes
    380-430 kbit/s of its ~1 Mbit/s target; a real camera's noise and detail take the whole target. This one is a
    moving test pattern (testsrc2) under temporal noise: every frame differs everywhere, so each simulcast layer
    uses the rate its encoder is given. Chromium plays the file at its own size and frame rate, looped; 960x540 at
    15 fps for 2 s is 23 MB. `noise` 0: the moving test pattern alone (half the encoder's work of the noisy one
    measured with libvpx in real time, and still 94 % of a 900 kbit/s target at 960x540).
    """
    path = directory / f"detailed-{width}x{height}-{frame_rate}-{noise}.y4m"
    source = f"testsrc2=size={width}x{height}:rate={frame_rate}" + (f",noise=alls={noise}:allf=t+u" if noise else "")
    if not path.exists():
        partial = path.with_suffix(".partial")
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi",
             "-i", source,
             "-t", f"{seconds:g}", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(partial)],
            check=True, capture_output=True, timeout=120)
        partial.rename(path)
    return path


def camera_file_args(path: Path) -> list[str]:
    """camera_file_args: Chromium flags making its fake camera play `path` (a y4m file, e.g. `detailed_camera`)
    instead of its built-in pattern; to add to FLAGS (which keep the fake devices on)."""
    return [f"--use-file-for-fake-video-capture={path}"]


class _Req:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.headers = {"User-Agent": "playwright"}
        self.remote = "127.0.0.1"


async def logged_in_context(browser: Browser, app: web.Application, base_url: str, user: User,
                            small_video: bool = True) -> BrowserContext:
    """logged_in_context: a browser context (own cookies) logged in as `user`."""
    async with app[DB]() as s:
        login = await create_login(s, _Req(app), user=user, hours=2)  # type: ignore[arg-type]
        await s.commit()
    context = await browser.new_context(base_url=base_url, viewport={"width": 1366, "height": 768},
                                        permissions=["camera", "microphone"])
    context.set_default_timeout(WAIT_MS)
    watch_protocol(context)
    await context.add_cookies([{"name": COOKIE, "value": login.id, "url": base_url}])
    if small_video:
        await context.add_init_script(SMALL_VIDEO)
    return context


SLOT_STATS = """async (slot) => {
  const c = window.live;
  if (!c || !c.down || !c.slots[slot]) return null;
  const tr = c.down.getTransceivers().find((t) => t.mid === c.slots[slot]);
  if (!tr) return null;
  const stats = await tr.receiver.getStats();
  for (const r of stats.values()) {
    if (r.type === "inbound-rtp") {
      return {frames: r.framesDecoded || 0, energy: r.totalAudioEnergy || 0, bytes: r.bytesReceived || 0,
              packets: r.packetsReceived || 0};
    }
  }
  return {frames: 0, energy: 0, bytes: 0, packets: 0};
}"""


async def slot_stats(page: Page, slot: str) -> dict[str, Any]:
    """slot_stats: inbound-rtp figures of one down slot of the page's client."""
    result = await page.evaluate(SLOT_STATS, slot)
    return result or {"frames": 0, "energy": 0.0, "bytes": 0, "packets": 0}


async def wait_rising(page: Page, slot: str, key: str, within: float = WAIT_MS / 1000) -> tuple[float, float]:
    """wait_rising: wait until stats[key] of `slot` is positive and then rises again; returns both values."""
    import asyncio
    import time

    deadline = time.monotonic() + within
    first: float | None = None
    while time.monotonic() < deadline:
        value = float((await slot_stats(page, slot))[key])
        if first is None and value > 0:
            first = value
        elif first is not None and value > first:
            return first, value
        await asyncio.sleep(0.5)
    raise AssertionError(f"{slot}.{key} did not rise (first={first}, last={await slot_stats(page, slot)})")


async def wait_quiet(page: Page, slot: str, key: str, most: float, window: float = 2.0,
                     within: float = WAIT_MS / 1000) -> tuple[float, float]:
    """wait_quiet: wait until stats[key] of `slot` grows by at most `most` over `window` seconds; returns both.

    For "this stopped": what was already on its way (or queued in a starved decoder) may still trickle in
    for a while after the change; the slot must then go quiet.
    """
    import asyncio
    import time

    deadline = time.monotonic() + within
    before = float((await slot_stats(page, slot))[key])
    while True:
        await asyncio.sleep(window)
        after = float((await slot_stats(page, slot))[key])
        if after - before <= most:
            return before, after
        if time.monotonic() > deadline:
            raise AssertionError(f"{slot}.{key} still growing after {within} s ({before} -> {after})")
        before = after


# Every down slot's inbound-rtp counters, the heights the page sends (camera and screen, per layer), and the down
# connection's selected candidate pair: what the weak-link tests and bench/weaknet.py sample.
MEDIA_STATS = """async () => {
  const c = window.live;
  const pc = c && c.down;  // the page may replace or drop it while this runs (a reconnection)
  if (!pc) return null;
  const slots = {};
  for (const tr of pc.getTransceivers()) {
    const slot = Object.keys(c.slots).find((s) => c.slots[s] === tr.mid);
    if (!slot) continue;
    const s = {frames: 0, keyframes: 0, freezes: 0, freeze_s: 0, concealed: 0, samples: 0, bytes: 0, packets: 0,
               lost: 0, retransmitted: 0, nacks: 0, plis: 0, width: 0, height: 0};
    for (const r of (await tr.receiver.getStats()).values()) {
      if (r.type !== "inbound-rtp") continue;
      s.frames = r.framesDecoded || 0; s.keyframes = r.keyFramesDecoded || 0; s.freezes = r.freezeCount || 0;
      s.freeze_s = r.totalFreezesDuration || 0; s.concealed = r.concealedSamples || 0;
      s.samples = r.totalSamplesReceived || 0; s.bytes = r.bytesReceived || 0; s.packets = r.packetsReceived || 0;
      s.lost = r.packetsLost || 0; s.retransmitted = r.retransmittedPacketsReceived || 0; s.nacks = r.nackCount || 0;
      s.plis = r.pliCount || 0; s.width = r.frameWidth || 0; s.height = r.frameHeight || 0;
    }
    slots[slot] = s;
  }
  const sent = [];
  const screen = window.TaphuanLive && window.TaphuanLive.screenTrack;
  const up = c.up;
  for (const sender of up ? up.getSenders() : []) {
    if (!sender.track || sender.track.kind !== "video") continue;
    for (const r of (await sender.getStats()).values()) {
      if (r.type === "outbound-rtp" && r.frameHeight) {
        sent.push({source: sender.track === screen ? "screen" : "camera", rid: r.rid || "", height: r.frameHeight,
                   active: r.active !== false});
      }
    }
  }
  let pair = null;
  const down = await pc.getStats();
  for (const r of down.values()) {
    if (r.type !== "transport" || !r.selectedCandidatePairId) continue;
    const p = down.get(r.selectedCandidatePairId);
    const local = p && down.get(p.localCandidateId);
    if (local) {
      pair = {type: local.candidateType, protocol: local.protocol, relay_protocol: local.relayProtocol || "",
              address: local.address || ""};
    }
  }
  return {at: performance.now() / 1000, slots, sent, pair, down: pc.connectionState};
}"""


async def media_stats(page: Page) -> dict[str, Any] | None:
    """media_stats: the page's MEDIA_STATS sample (None before it has a down connection)."""
    result = await page.evaluate(MEDIA_STATS)
    return result if isinstance(result, dict) else None
