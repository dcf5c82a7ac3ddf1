"""Real Chromium at 1366×768: the end of a meeting. The presenter is warned at the scheduled end and extends the
meeting, then ends it for everyone after a confirmation; the classroom's page becomes the closing page with the
recording's link, and opening the live page again shows that page instead of the room."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page

from server.config import Config
from server.db.engine import DB
from server.db.models import Meeting, Role, User
from server.live.recordings import RECORDERS
from tests.e2e.browser import ARTIFACTS, WAIT_MS, logged_in_context
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(recorder__min_free_bytes=0, meetings__check_seconds=0.2)


async def enter(page: Page, meeting_id: int) -> None:
    await page.goto(f"/live/{meeting_id}")
    await page.click("[data-action=join]")
    await page.wait_for_selector("[data-stage]:not([hidden])", timeout=WAIT_MS)
    await page.wait_for_function("() => window.live && window.live.participantId", timeout=WAIT_MS)


async def inside_viewport(page: Page, selector: str) -> dict[str, float]:
    box = await page.locator(selector).bounding_box()
    assert box is not None, selector
    assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 1366 and box["y"] + box["height"] <= 768, \
        (selector, box)
    return box


async def test_presenter_ends_the_meeting_and_the_classroom_sees_the_closing_page(
        app: web.Application, live_server: LiveServer, browser: Any, make_user: Factory, make_classroom: Factory,
        make_meeting: Factory) -> None:
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Nguyễn Thị Lan")
    cid = await make_classroom(name="Phòng THCS Mường Tè")
    room_user: User = await make_user(Role.CLASSROOM, classroom_id=cid, display_name="Lớp THCS Mường Tè")
    meeting = await make_meeting(presenters=[trainer], classrooms=[cid], title="Bài 3: Dạy học tích hợp")
    studio = await (await logged_in_context(browser, app, live_server.url, trainer)).new_page()
    room = await (await logged_in_context(browser, app, live_server.url, room_user)).new_page()
    await enter(studio, meeting.id)
    await enter(room, meeting.id)
    rid = await app[RECORDERS].start(meeting.id, None)

    # The scheduled end passes: the presenter is warned (the classroom is not) and extends by 15 minutes.
    async with app[DB]() as s:
        m = await s.get(Meeting, meeting.id)
        assert m is not None
        m.ends_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10)
        await s.commit()
    await studio.wait_for_selector("[data-ending-banner]:not([hidden])")
    assert "tự kết thúc lúc" in (await studio.text_content("[data-ending-text]") or "")
    banner = await inside_viewport(studio, "[data-ending-banner]")
    head = await studio.locator(".lv-head").bounding_box()
    assert head is not None and banner["y"] >= head["y"] + head["height"] - 1  # below the header, not over it
    await inside_viewport(studio, "[data-ending-banner] [data-action=extend][data-minutes='15']")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await studio.screenshot(path=str(ARTIFACTS / "ending-warning-studio.png"))
    assert await room.locator("[data-ending-banner]").count() == 0
    await studio.click("[data-ending-banner] [data-action=extend][data-minutes='15']")
    await studio.wait_for_selector("[data-ending-banner]", state="hidden")
    await studio.wait_for_selector(".lv-toast:has-text('Đã gia hạn')")
    async with app[DB]() as s:
        m = await s.get(Meeting, meeting.id)
        assert m is not None and m.ends_at > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=14)

    # "Rời phòng" asks whether only the presenter leaves or the meeting ends for everyone; "Kết thúc cho mọi người"
    # is confirmed first: cancelling changes nothing, confirming ends it for everyone.
    for confirm in (False, True):
        await studio.click(".lv-head [data-action=leave]")
        await studio.wait_for_selector("[data-leave-choice][open]")
        choices = [await inside_viewport(studio, f"[data-leave-choice] button[value={v}]")
                   for v in ("cancel", "leave", "end")]
        dialog = await inside_viewport(studio, "[data-leave-choice]")
        for i, box in enumerate(choices):  # every choice whole, inside the dialog, none over another
            assert dialog["x"] <= box["x"] and box["x"] + box["width"] <= dialog["x"] + dialog["width"], box
            for other in choices[i + 1:]:
                assert box["x"] + box["width"] <= other["x"] or other["x"] + other["width"] <= box["x"] \
                    or box["y"] + box["height"] <= other["y"], (box, other)
        end_button = studio.locator("[data-leave-choice] [data-leave-end]")
        assert (await end_button.text_content() or "").strip() == "Kết thúc cho mọi người"
        if confirm:
            await studio.screenshot(path=str(ARTIFACTS / "ending-choice-studio.png"))
        await end_button.click()
        await studio.wait_for_selector("[data-confirm][open]")
        assert "Kết thúc buổi tập huấn cho mọi người?" in (await studio.text_content("[data-confirm-title]") or "")
        if confirm:
            await studio.click("[data-confirm-ok]")
        else:
            await studio.click("[data-confirm] button[value=cancel]")
            await studio.wait_for_timeout(300)
            assert await room.locator("[data-ended]").is_hidden() and await studio.locator("[data-ended]").is_hidden()

    for page in (room, studio):
        await page.wait_for_selector("[data-ended]:not([hidden])")
        assert (await page.text_content("[data-ended-title]") or "").strip() == "Buổi tập huấn đã kết thúc"
        assert "Giảng viên Nguyễn Thị Lan đã kết thúc buổi tập huấn" in (await page.text_content("[data-ended-msg]")
                                                                          or "")
        link = page.locator("[data-ended-archive] [data-archive-link]")
        assert await link.is_visible() and await link.get_attribute("href") == f"/archive/{rid}"
        assert await page.locator("[data-action=reload]").is_hidden()  # no "join again"
        await inside_viewport(page, "[data-ended] .lv-lobby-card")
    await room.screenshot(path=str(ARTIFACTS / "ending-closed-classroom.png"))

    # Opening the live page again: the closing page, not the device check.
    await room.goto(f"/live/{meeting.id}")
    await room.wait_for_selector("[data-closing]")
    assert "Buổi tập huấn đã kết thúc" in (await room.text_content("[data-closing] h1") or "")
    assert await room.locator("[data-join]").count() == 0
    assert await room.locator("[data-archive-link]").get_attribute("href") == f"/archive/{rid}"
    await inside_viewport(room, "[data-closing]")
    await room.screenshot(path=str(ARTIFACTS / "ending-closed-page.png"))
