"""Real Chromium publishing simulcast through the SFU: the presenter's camera arrives in 3 layers, a classroom
decodes the one it is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright

from server.db.models import Role, User
from server.live.rooms import open_rooms
from server.live.service import LIVE
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
    await page.wait_for_function("window.live && window.live.up && "
                                 "window.live.up.connectionState === 'connected'", timeout=WAIT_MS)


def camera_layers(app: web.Application, meeting_id: int, participant_id: str) -> list[ProducerStats]:
    """camera_layers: the server's figures of the participant's camera layers, lowest first."""
    room = open_rooms(app[LIVE], [meeting_id]).get(meeting_id)
    if room is None:
        return []
    mine = next((p for p in room.stats.participants if p.participant_id == participant_id), None)
    return [s for s in (mine.producers if mine else ()) if s.source == "camera"]


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
            studio_ctx = await logged_in_context(browser, app, base, trainer, small_video=False)
            await studio_ctx.add_init_script(PRESENTER_VIDEO)
            studio = await studio_ctx.new_page()
            await enter(studio, meeting.id)
            presenter = str(await studio.evaluate("window.live.participantId"))
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
            # The classroom's presenter slot (a large one: the highest layer arriving) decodes frames.
            await wait_rising(classroom, "presenter-video", "frames")
            assert camera_layers(app, meeting.id, presenter)[2].consumers >= 1
        finally:
            await browser.close()
