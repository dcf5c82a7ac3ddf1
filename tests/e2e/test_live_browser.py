"""Real Chromium through the SFU: 1 presenter + 3 classrooms see and hear each other on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright

from server.db.models import Role, User
from tests.e2e.browser import ARTIFACTS, WAIT_MS, launch, logged_in_context, wait_quiet, wait_rising

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]


async def enter(page: Page, meeting_id: int) -> None:
    await page.goto(f"/live/{meeting_id}")
    await page.click("[data-action=join]")
    await page.wait_for_selector("[data-stage]:not([hidden])", timeout=WAIT_MS)
    await page.wait_for_function("() => window.live && window.live.up && "
                                 "window.live.up.connectionState === 'connected'", timeout=WAIT_MS)


async def participant_id(page: Page) -> str:
    return str(await page.evaluate("window.live.participantId"))


async def test_presenter_and_three_classrooms(app: web.Application, aiohttp_server: Any, make_user: Factory,
                                              make_classroom: Factory, make_meeting: Factory) -> None:
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Lan")
    rooms: list[User] = []
    for i in range(3):
        cid = await make_classroom(name=f"Lớp {i + 1}")
        rooms.append(await make_user(Role.CLASSROOM, classroom_id=cid, display_name=f"Lớp học {i + 1}"))
    meeting = await make_meeting(presenters=[trainer], classrooms=[u.classroom_id for u in rooms])

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            studio_ctx = await logged_in_context(browser, app, base, trainer)
            studio = await studio_ctx.new_page()
            await enter(studio, meeting.id)
            classes: list[Page] = []
            for user in rooms:
                ctx = await logged_in_context(browser, app, base, user)
                page = await ctx.new_page()
                await enter(page, meeting.id)
                classes.append(page)

            # Every classroom decodes the presenter's video and hears the presenter's audio.
            for page in classes:
                await wait_rising(page, "presenter-video", "frames")
                await wait_rising(page, "presenter-audio", "energy")
            # The presenter's grid receives the classrooms' video.
            for i in range(3):
                await wait_rising(studio, f"grid-{i}", "frames")
            await studio.screenshot(path=str(ARTIFACTS / "live-studio.png"))
            await classes[0].screenshot(path=str(ARTIFACTS / "live-classroom.png"))

            # Classroom 1 raises its hand; the presenter gives it the floor from the raised-hands queue.
            first = await participant_id(classes[0])
            await classes[0].click("[data-action=hand]")
            await studio.wait_for_selector(f"[data-hands] [data-participant='{first}']", timeout=WAIT_MS)
            await studio.click(f"[data-hands] [data-participant='{first}'] [data-action=give-floor]")
            await classes[0].wait_for_selector("[data-floor-note]:not([hidden])", timeout=WAIT_MS)
            for page in classes[1:]:
                await page.wait_for_selector("[data-tile=floor-video]:not([hidden])", timeout=WAIT_MS)
                await wait_rising(page, "floor-video", "frames")
                await wait_rising(page, "floor-audio", "energy")
            await classes[1].screenshot(path=str(ARTIFACTS / "live-classroom-floor.png"))

            # Taking the floor back stops forwarding the classroom's media to the others.
            await studio.click("[data-action=take-floor]")
            await classes[1].wait_for_selector("[data-tile=floor-video][hidden]", state="attached", timeout=WAIT_MS)
            await wait_quiet(classes[1], "floor-audio", "packets", most=5)  # no more floor audio

            # A closed tab disappears from the others' lists (the server notices within 10 s; a busy machine
            # may take longer to show it).
            await studio.click("[data-tab=people]")
            third = await participant_id(classes[2])
            await classes[2].context.close()
            await studio.wait_for_selector(f".person[data-participant='{third}']", state="detached", timeout=WAIT_MS)
        finally:
            await browser.close()
