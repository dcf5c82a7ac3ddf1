"""Real Chromium: recording from the live room: the presenter starts it, every classroom (also one joining later)
sees "● Đang ghi" and the recording notice, the recorder is never listed as a participant, a chapter marker is
added, and stopping takes the indicator away; a refusal for lack of disk space stays on the presenter's screen."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright
from sqlalchemy import select

from server.config import CONFIG, Config
from server.db.engine import DB
from server.db.models import Recording, Role, User
from tests.e2e.browser import WAIT_MS, launch, logged_in_context, wait_rising
from tests.e2e.test_classroom_browser import enter, joined, shot

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]
NOTICE = "Buổi tập huấn này đang được ghi hình"


@pytest.fixture
def config(make_config: Callable[..., Config], request: pytest.FixtureRequest) -> Config:
    """config: the test configuration, with a test's own overrides (indirect parametrization)."""
    return make_config(**getattr(request, "param", {}))


async def recording_shown(page: Page) -> None:
    """recording_shown: the page shows the indicator and the notice."""
    await page.wait_for_selector("[data-recmark]:not([hidden])", timeout=WAIT_MS)
    assert "Đang ghi" in (await page.text_content("[data-recmark]") or "")
    await page.wait_for_selector("[data-rec-notice]:not([hidden])", timeout=WAIT_MS)
    assert NOTICE in (await page.text_content("[data-rec-notice]") or "")


async def no_recorder_listed(page: Page) -> None:
    """no_recorder_listed: the recorder is in no list of the page, nor in its client's participants."""
    assert await page.evaluate("Array.from(window.live.participants.values()).every((p) => p.role !== 'recorder')")
    assert await page.evaluate("window.live.recorders.size") == 1
    for sel in ("[data-people-list]", "[data-hands]", "[data-others]", "[data-chat-to]", "[data-grid]"):
        if await page.query_selector(sel):
            assert "Ghi hình" not in (await page.text_content(sel) or ""), sel


async def test_presenter_records_and_everyone_is_told(app: web.Application, aiohttp_server: Any, make_user: Factory,
                                                      make_classroom: Factory, make_meeting: Factory) -> None:
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Lê Minh Châu")
    rooms: list[User] = []
    for name in ("THCS Phong Thổ", "THCS Sìn Hồ"):
        cid = await make_classroom(name=f"Phòng {name}")
        rooms.append(await make_user(Role.CLASSROOM, classroom_id=cid, display_name=f"Lớp {name}"))
    meeting = await make_meeting(presenters=[trainer], classrooms=[u.classroom_id for u in rooms],
                                 title="Tập huấn dạy học tích hợp — ghi hình")

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            studio = await (await logged_in_context(browser, app, base, trainer)).new_page()
            await enter(studio, meeting.id)
            a = await (await logged_in_context(browser, app, base, rooms[0])).new_page()
            await enter(a, meeting.id)
            assert await a.is_hidden("[data-recmark]") and await a.is_hidden("[data-rec-notice]")
            assert await studio.is_hidden("[data-action=marker]")

            # The presenter starts recording: everyone sees the indicator and the notice.
            await studio.wait_for_selector("[data-action=record]:not([disabled])", timeout=WAIT_MS)
            await studio.click("[data-action=record]")
            await studio.wait_for_selector("[data-action=record][aria-pressed='true']", timeout=WAIT_MS)
            assert "Dừng ghi" in (await studio.text_content("[data-action=record]") or "")
            await recording_shown(studio)
            await recording_shown(a)

            # A classroom joining later learns it from the recorder participant and is told too.
            b = await (await logged_in_context(browser, app, base, rooms[1])).new_page()
            await enter(b, meeting.id)
            await recording_shown(b)

            # The recorder is not a participant anywhere: counts, lists, grid, chat recipients.
            await studio.wait_for_function("() => document.querySelector('[data-class-count]').textContent === '2'",
                                           timeout=WAIT_MS)
            for page in (studio, a):  # each page counts once it has heard of b (a's news may come later)
                await page.wait_for_function("() => document.querySelector('[data-people]').textContent.trim() === '3'",
                                             timeout=WAIT_MS)
            await studio.click("[data-tab=people]")
            await studio.wait_for_function("() => document.querySelectorAll('[data-people-list] > li').length === 3",
                                           timeout=WAIT_MS)
            for page in (studio, a, b):
                await no_recorder_listed(page)

            # A chapter marker.
            await studio.click("[data-action=marker]")
            await studio.wait_for_selector("[data-marker-dialog][open]")
            await studio.fill("[data-marker-title]", "Phần 2: hỏi đáp")
            await studio.click("[data-marker-ok]")
            await studio.wait_for_selector(".lv-toast:has-text('Đã thêm mốc')", timeout=WAIT_MS)

            # An operator viewing as a classroom (the console's link) is told too, and publishes nothing.
            operator: User = await make_user(Role.OPERATOR, display_name="Quản trị Vũ Lan")
            watcher = await (await logged_in_context(browser, app, base, operator)).new_page()
            await watcher.goto(f"/live/{meeting.id}?view=classroom")
            await watcher.click("[data-action=join]")
            await joined(watcher)
            await recording_shown(watcher)
            assert await watcher.is_visible("[data-observer]") and await watcher.is_hidden("[data-action=record]")
            assert await watcher.evaluate("window.live.up === null && window.live.local === null")
            await wait_rising(watcher, "presenter-video", "frames")
            await watcher.close()

            await a.click("[data-action=rec-notice-ok]")
            assert await a.is_hidden("[data-rec-notice]") and await a.is_visible("[data-recmark]")
            await studio.wait_for_timeout(700)
            await shot(studio, "recording-studio.png")
            await shot(b, "recording-classroom.png")

            # Stop (after a confirmation): the indicator goes away everywhere.
            await studio.click("[data-action=record]")
            await studio.wait_for_selector("[data-confirm][open]")
            await studio.click("[data-confirm-ok]")
            for page in (studio, a, b):
                await page.wait_for_selector("[data-recmark]", state="hidden", timeout=WAIT_MS)
                assert await page.is_hidden("[data-rec-notice]")
            await studio.wait_for_selector("[data-action=record][aria-pressed='false']")
            assert await studio.is_hidden("[data-action=marker]")
            assert await b.evaluate("window.live.recording") is False
        finally:
            await browser.close()

    async with app[DB]() as s:
        rows = (await s.scalars(select(Recording).where(Recording.meeting_id == meeting.id))).all()
    assert len(rows) == 1 and rows[0].started_by == trainer.id and rows[0].ended_at is not None


@pytest.mark.parametrize("config", [{"recorder.min_free_bytes": 10**18}], indirect=True)
async def test_a_full_disk_is_shown_to_the_presenter(app: web.Application, aiohttp_server: Any, make_user: Factory,
                                                     make_meeting: Factory) -> None:
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Đỗ Hải")
    meeting = await make_meeting(presenters=[trainer])
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            studio = await (await logged_in_context(browser, app, base, trainer)).new_page()
            await enter(studio, meeting.id)
            await studio.wait_for_selector("[data-action=record]:not([disabled])", timeout=WAIT_MS)
            await studio.click("[data-action=record]")
            await studio.wait_for_selector("[data-rec-error]:not([hidden])", timeout=WAIT_MS)
            text = await studio.text_content("[data-rec-error]") or ""
            assert "Không đủ dung lượng đĩa" in text and " / " not in text, text
            assert await studio.is_hidden("[data-recmark]")
            assert await studio.get_attribute("[data-action=record]", "aria-pressed") == "false"
            await shot(studio, "recording-disk-full.png")
            await studio.click("[data-action=rec-error-close]")
            assert await studio.is_hidden("[data-rec-error]")
        finally:
            await browser.close()


@pytest.mark.parametrize("config", [{"recorder.segment_seconds": 1.0, "recorder.min_free_bytes": 0}], indirect=True)
async def test_chromium_meeting_recording_plays(app: web.Application, aiohttp_server: Any, make_user: Factory,
                                                make_meeting: Factory) -> None:
    """A meeting published by real Chromium is recorded; ffprobe reads VP8 + Opus, the right length, seekable."""
    import asyncio
    import time

    from server.db.models import RecordingState
    from tests.recorder.media import ffprobe, ffprobe_seek

    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Phạm Thu")
    meeting = await make_meeting(presenters=[trainer])
    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            studio = await (await logged_in_context(browser, app, base, trainer)).new_page()
            await enter(studio, meeting.id)
            asked = time.monotonic()
            reply = await studio.evaluate("window.live.recordStart()")
            began = time.monotonic()
            await asyncio.sleep(10)
            stopping = time.monotonic()
            await studio.evaluate("window.live.recordStop()")
            ended = time.monotonic()
        finally:
            await browser.close()
    rid = reply["recording_id"]
    deadline = time.monotonic() + 90
    while True:
        async with app[DB]() as s:
            row = await s.get(Recording, rid)
        assert row is not None
        if row.state in (RecordingState.READY, RecordingState.FAILED) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert row.state == RecordingState.READY, (row.state, row.error)
    path = app[CONFIG].data_path / "recordings" / row.directory / row.file
    info = ffprobe(path)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["opus", "vp8"]
    duration = float(info["format"]["duration"])
    assert row.ended_at is not None and row.duration is not None
    # The server started and stopped recording while the page's requests were under way: the meeting lasted
    # at least from the start's answer to the stop's request and at most from the start's request to the
    # stop's answer (round trips take longer on a busy machine), give or take a frame (0.1 s).
    shortest, longest = stopping - began - 0.1, ended - asked + 0.1
    recorded = (row.ended_at - row.started_at).total_seconds()  # the server's start and stop
    assert shortest <= recorded <= longest, (shortest, recorded, longest)
    assert shortest <= duration <= longest, (shortest, duration, longest)
    assert abs(duration - row.duration) <= 0.1, (duration, row.duration)  # the file is what the recorder wrote
    assert ffprobe_seek(path, duration / 2) > 0
