"""Real Chromium publishing simulcast through the SFU: the presenter's camera arrives in 3 layers, a classroom
decodes the one it is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright

from server.db.models import Role, User
from server.live.rooms import open_rooms
from server.live.service import LIVE
from sfu.actions import Reallocate
from sfu.allocator import Option
from sfu.stats import ProducerStats
from tests.e2e.browser import WAIT_MS, launch, logged_in_context, wait_rising

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]
# Chromium sends three layers of a capture large enough for them (fewer for small ones: that is the point of
# "arriving" layers); the classroom keeps the tests' small video.
PRESENTER_VIDEO = "window.TAPHUAN_VIDEO = {width: 960, height: 540, frameRate: 15};"


async def enter(page: Page, meeting_id: int) -> None:
    await page.goto(f"/live/{meeting_id}")
    await page.click("[data-action=join]")
    await page.wait_for_selector("[data-stage]:not([hidden])", timeout=WAIT_MS)
    await page.wait_for_function("() => window.live && window.live.up && "
                                 "window.live.up.connectionState === 'connected'", timeout=WAIT_MS)


async def enter_studio(browser: Browser, app: web.Application, base: str, trainer: User,
                       meeting_id: int) -> tuple[Page, str]:
    """enter_studio: the trainer's page, capturing large enough for three layers, in the meeting; and its id."""
    ctx = await logged_in_context(browser, app, base, trainer, small_video=False)
    await ctx.add_init_script(PRESENTER_VIDEO)
    studio = await ctx.new_page()
    await enter(studio, meeting_id)
    return studio, str(await studio.evaluate("window.live.participantId"))


def camera_layers(app: web.Application, meeting_id: int, participant_id: str) -> list[ProducerStats]:
    """camera_layers: the server's figures of the participant's camera layers, lowest first."""
    room = open_rooms(app[LIVE], [meeting_id]).get(meeting_id)
    if room is None:
        return []
    mine = next((p for p in room.stats.participants if p.participant_id == participant_id), None)
    return [s for s in (mine.producers if mine else ()) if s.source == "camera"]


def downlinks_now(app: web.Application, meeting_id: int, but: str) -> str:
    """downlinks_now: the allocator's view of every down link but `but`'s (what a failed wait for an upgrade
    prints)."""
    room = app[LIVE].sfu.rooms.get(str(meeting_id))
    if room is None:
        return "no room"
    bursts = [f"{layer.rid} {room.downlinks.layer_burst(layer):.0f}" for p in room.participants.values()
              for producer in p.producers.values() if producer.kind == "video" for layer in producer.layers]
    return f"keyframe bursts (bits) {bursts}; " + "; ".join(
        f"{pid}: estimate {link.estimate:.0f} heard {link.heard} congested {link.congested} queued {link.queued} "
        f"unconfirmed {link.unconfirmed} hold {link.hold} up {link.upgrades} down {link.downgrades} "
        f"since up {link.clock() - link.last_up:.1f} since down {link.clock() - link.last_down:.1f}"
        for pid, link in room.downlinks.links.items() if pid != but)


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_presenter_camera_arrives_in_three_layers_and_a_classroom_decodes(
        app: web.Application, aiohttp_server: Any, make_user: Factory, make_classroom: Factory,
        make_meeting: Factory, codec: str) -> None:
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Lan")
    cid = await make_classroom(name="Lớp 1")
    room_user = await make_user(Role.CLASSROOM, classroom_id=cid, display_name="Lớp học 1")
    meeting = await make_meeting(presenters=[trainer], classrooms=[cid], video_codec=codec)

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            studio, presenter = await enter_studio(browser, app, base, trainer, meeting.id)
            encodings = await studio.evaluate("""() => window.live.up.getTransceivers()
                .filter((t) => t.sender.track && t.sender.track.kind === 'video')
                .map((t) => t.sender.getParameters().encodings.map((e) => [e.rid, e.scalabilityMode]))[0]""")
            # VP8 layers carry temporal layers; H.264 ones do not (Chromium's H.264 simulcast has none)
            temporal = "L1T3" if codec == "VP8" else None
            assert encodings == [["q", temporal], ["h", temporal], ["f", temporal]]
            classroom_ctx = await logged_in_context(browser, app, base, room_user)
            classroom = await classroom_ctx.new_page()
            await enter(classroom, meeting.id)

            # The server receives every layer: three layer Producers with packets arriving and growing.
            deadline = time.monotonic() + WAIT_MS / 1000
            first: list[int] = []
            while True:
                layers = camera_layers(app, meeting.id, presenter)
                counts = [s.packets for s in layers]
                if [s.rid for s in layers] == ["q", "h", "f"] and all(s.arriving for s in layers):
                    if not first:
                        first = counts
                    elif all(now > before for now, before in zip(counts, first, strict=True)):
                        break
                assert time.monotonic() < deadline, f"layers: {layers}"
                await asyncio.sleep(0.5)
            assert [s.layer for s in layers] == [0, 1, 2]
            # The classroom's presenter slot (a large one) decodes frames, and on this unlimited link its allocation
            # climbs above the lowest layer (from the 300 kbit/s a new downlink starts at, one step per upgrade
            # interval; how far depends on what keeps arriving: with both cores busy Chromium's encoder drops
            # frames of its top layer, whose measured rate then falls below the middle one's).
            await wait_rising(classroom, "presenter-video", "frames")
            deadline = time.monotonic() + 90
            trace: list[str] = []
            while not any(s.consumers for s in camera_layers(app, meeting.id, presenter)[1:]):
                trace = (trace + [downlinks_now(app, meeting.id, presenter)])[-12:]
                assert time.monotonic() < deadline, \
                    f"the classroom stayed on the lowest layer: {camera_layers(app, meeting.id, presenter)}; " \
                    f"its downlink every 0.5 s: {trace}"
                await asyncio.sleep(0.5)
            await wait_rising(classroom, "presenter-video", "frames")
        finally:
            await browser.close()


FREEZES = """async (slot) => {
  const c = window.live;
  const tr = c.down.getTransceivers().find((t) => t.mid === c.slots[slot]);
  for (const r of (await tr.receiver.getStats()).values()) {
    if (r.type === "inbound-rtp") return {frames: r.framesDecoded || 0, freezes: r.freezeCount || 0,
                                         frozen: r.totalFreezesDuration || 0, width: r.frameWidth || 0};
  }
  return null;
}"""


async def test_a_classroom_decodes_through_twenty_layer_switches_without_a_freeze(
        app: web.Application, aiohttp_server: Any, make_user: Factory, make_classroom: Factory,
        make_meeting: Factory) -> None:
    """The allocator's choice alternates between the top layer with every frame and the lowest with two temporal
    layers; the classroom's decoder goes on (Chromium's own freeze counter, and frames decoded every 100 ms)."""
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Lan")
    cid = await make_classroom(name="Lớp 1")
    room_user = await make_user(Role.CLASSROOM, classroom_id=cid, display_name="Lớp học 1")
    meeting = await make_meeting(presenters=[trainer], classrooms=[cid], video_codec="VP8")

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            studio, presenter = await enter_studio(browser, app, base, trainer, meeting.id)
            classroom = await (await logged_in_context(browser, app, base, room_user)).new_page()
            await enter(classroom, meeting.id)
            me = str(await classroom.evaluate("window.live.participantId"))
            await wait_rising(classroom, "presenter-video", "frames")
            room = app[LIVE].sfu.rooms[str(meeting.id)]
            track = room.participants[presenter].producers["camera"]
            deadline = time.monotonic() + WAIT_MS / 1000
            while not all(layer.arriving for layer in track.layers):
                assert time.monotonic() < deadline, "the presenter's three layers never all arrived"
                await asyncio.sleep(0.5)
            consumer = room.participants[me].consumers["presenter-video"]
            room.ticker.remove(room.downlinks.tick)  # the test chooses the layers; the room applies them
            for layer in track.layers:  # a switch every 1.5 s, each with its keyframe: no keyframe gate (the
                layer.switch_keyframe_interval = 0.0  # gate is tested in tests/sfu/test_producer.py)
            await asyncio.sleep(0.6)
            link = room.downlinks.links[me]
            top, low = track.layers[-1], track.layers[0]

            before = await classroom.evaluate(FREEZES, "presenter-video")
            longest = 0.0
            switched = 0
            for i in range(20):
                target, temporal = (low, 1) if i % 2 == 0 else (top, -1)
                link.choice["presenter-video"] = Option(0.0, target.layer, temporal)
                room.mailbox.post(Reallocate())
                # watch the decoder while the switch happens: frames must keep coming
                last_frames = (await classroom.evaluate(FREEZES, "presenter-video"))["frames"]
                last_change = until = time.monotonic()
                until += 1.5
                while time.monotonic() < until:
                    await asyncio.sleep(0.1)
                    frames = (await classroom.evaluate(FREEZES, "presenter-video"))["frames"]
                    now = time.monotonic()
                    if frames > last_frames:
                        last_frames, last_change = frames, now
                    longest = max(longest, now - last_change)
                if consumer.source is target:
                    switched += 1
            after = await classroom.evaluate(FREEZES, "presenter-video")
            assert switched >= 18, f"the slot took the chosen layer {switched} times of 20"
            assert longest < 1.0, f"frames stopped for {longest:.2f} s during the switches"
            assert after["frames"] > before["frames"] + 20 * 5
            assert after["frozen"] - before["frozen"] < 1.0, (before, after)  # Chromium's own freeze measure
        finally:
            await browser.close()
