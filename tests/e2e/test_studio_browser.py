"""Real Chromium: the presenter studio: the classroom grid paged (video for one page, tiles without video for the
rest), screen sharing that reaches the classrooms, muting a classroom, locking the room (a newcomer waits in the
lobby until admitted) and removing a classroom after a confirmation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from server.config import Config
from server.db.models import Role, User
from tests.e2e.browser import WAIT_MS, launch, logged_in_context, wait_rising
from tests.e2e.test_classroom_browser import enter, joined, shot

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    """config: one grid video per page, so two classrooms already need paging."""
    return make_config(**{"sfu.grid_slots": 1})


async def test_grid_screen_share_lock_lobby_remove(app: web.Application, aiohttp_server: Any, make_user: Factory,
                                                   make_classroom: Factory, make_meeting: Factory) -> None:
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Phạm Thu Hà")
    rooms: list[User] = []
    for name in ("THCS Mường Tè", "THCS Tam Đường", "THPT Than Uyên"):
        cid = await make_classroom(name=f"Phòng {name}")
        rooms.append(await make_user(Role.CLASSROOM, classroom_id=cid, display_name=f"Lớp {name}"))
    meeting = await make_meeting(presenters=[trainer], classrooms=[u.classroom_id for u in rooms],
                                 title="Tập huấn sử dụng sách giáo khoa lớp 9")

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            studio = await (await logged_in_context(browser, app, base, trainer)).new_page()
            await enter(studio, meeting.id)
            a = await (await logged_in_context(browser, app, base, rooms[0])).new_page()
            await enter(a, meeting.id)
            b = await (await logged_in_context(browser, app, base, rooms[1])).new_page()
            await enter(b, meeting.id)
            a_id = str(await a.evaluate("window.live.participantId"))
            b_id = str(await b.evaluate("window.live.participantId"))

            # One video per page: the first classroom has video, the other is a tile without video; paging swaps.
            await studio.wait_for_selector(f"[data-tile='grid-0'][data-participant='{a_id}']:not([hidden])")
            await studio.wait_for_selector(f"[data-others] [data-participant='{b_id}']")
            assert "Lớp THCS Mường Tè" in (await studio.text_content("[data-tile='grid-0'] [data-name]") or "")
            assert (await studio.text_content("[data-tile='grid-0'] [data-unit]") or "").strip()  # the classroom's unit
            await wait_rising(studio, "grid-0", "frames")
            await studio.click("[data-action=next-page]")
            await studio.wait_for_selector(f"[data-tile='grid-0'][data-participant='{b_id}']", timeout=WAIT_MS)
            await studio.wait_for_selector(f"[data-others] [data-participant='{a_id}']")
            await wait_rising(studio, "grid-0", "frames")
            await studio.click("[data-action=prev-page]")
            await studio.wait_for_selector(f"[data-tile='grid-0'][data-participant='{a_id}']", timeout=WAIT_MS)

            # Screen sharing reaches the classrooms in the `screen` slot, larger than the presenter.
            await studio.click("[data-action=screen]")
            await studio.wait_for_selector("[data-tile='my-screen']:not([hidden])", timeout=WAIT_MS)
            for page in (a, b):
                await page.wait_for_selector("[data-tile=screen]:not([hidden])", timeout=WAIT_MS)
                await wait_rising(page, "screen", "frames")
            assert await a.is_visible("[data-action=swap]")
            await a.wait_for_timeout(800)
            await shot(a, "classroom-screen.png")
            await a.click("[data-action=swap]")
            assert await a.get_attribute("[data-theatre]", "data-swap") == "1"
            await a.click("[data-action=swap]")

            # Mute one classroom from the grid: its microphone goes off on its side.
            await studio.click(f"[data-tile='grid-0'] [data-action=mute-one][data-participant='{a_id}']")
            await a.wait_for_selector("[data-action=mic][aria-pressed='false']", timeout=WAIT_MS)
            await studio.wait_for_timeout(600)
            await shot(studio, "studio.png")

            # Lock the room: a newcomer waits in the lobby until the presenter admits it.
            await studio.click("[data-action=lock]")
            await a.wait_for_selector("[data-lockmark]:not([hidden])", timeout=WAIT_MS)
            c = await (await logged_in_context(browser, app, base, rooms[2])).new_page()
            await c.goto(f"/live/{meeting.id}")
            await c.click("[data-action=join]")
            await c.wait_for_selector("[data-lobby]:not([hidden])", timeout=WAIT_MS)
            assert "Vui lòng chờ" in (await c.text_content("[data-lobby]") or "")
            await shot(c, "lobby.png")
            await studio.wait_for_selector("[data-badge=lobby]:not([hidden])", timeout=WAIT_MS)
            await studio.click("[data-tab=lobby]")
            await studio.wait_for_selector("[data-lobby-list] [data-action=admit]")
            await shot(studio, "studio-lobby.png")
            await studio.click("[data-lobby-list] [data-action=admit]")
            await joined(c)
            await c.wait_for_selector("[data-tile=screen]:not([hidden])", timeout=WAIT_MS)
            await wait_rising(c, "screen", "frames")

            # Remove a classroom: a confirmation first; the classroom sees why it left.
            await studio.click("[data-tab=people]")
            await studio.click(f"[data-people-list] [data-participant='{b_id}'] [data-action=remove]")
            await studio.wait_for_selector("[data-confirm][open]")
            await studio.click("[data-confirm-ok]")
            await b.wait_for_selector("[data-ended]:not([hidden])", timeout=WAIT_MS)
            assert "mời ra khỏi phòng" in (await b.text_content("[data-ended]") or "")
            await studio.wait_for_selector(f"[data-people-list] [data-participant='{b_id}']", state="detached",
                                           timeout=WAIT_MS)
            # Stop sharing: the classrooms' screen tile goes away.
            await studio.click("[data-action=screen]")
            await a.wait_for_selector("[data-tile=screen]", state="hidden", timeout=WAIT_MS)
        finally:
            await browser.close()
