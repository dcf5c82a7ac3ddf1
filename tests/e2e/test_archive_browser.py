"""Real Chromium: the archive library and player: a recording plays, seeks from the chapter list (HTTP Range),
and an operator publishes it to learners from the library, told who will see it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser

from recorder.archive import finalize
from recorder.timeline import Timeline, TimelineEvent
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Recording, RecordingState, Role, User
from tests.e2e.browser import ARTIFACTS
from tests.e2e.conftest import LiveServer, new_context
from tests.recorder.media import recorded_directory

pytestmark = pytest.mark.browser


async def test_library_player_and_publishing(browser: Browser, live_server: LiveServer,
                                             make_user: Callable[..., Awaitable[User]],
                                             make_meeting: Callable[..., Awaitable[Any]]) -> None:
    app = live_server.app
    meeting = await make_meeting(title="Tập huấn Ngữ văn 6")
    directory = app[CONFIG].data_path / "recordings" / "rec-e2e"
    recorded_directory(directory, 6.0, floor_from=3.0)
    timeline = Timeline(directory)
    timeline.add(TimelineEvent(3.0, "floor", "p-1", "Lớp THCS Mường Tè"))
    timeline.add(TimelineEvent(4.5, "marker", title="Phần 2: thảo luận"))
    timeline.close()
    result = finalize(directory)
    async with app[DB]() as s:
        row = Recording(meeting_id=meeting.id, program_id=meeting.program_id, title="Tập huấn Ngữ văn 6 – buổi 1",
                        directory="rec-e2e", state=RecordingState.READY, file=result.file, mime=result.mime,
                        duration=result.duration, size=result.size, chapters=result.chapters,
                        originals=result.originals, recovered=True)
        busy = Recording(meeting_id=meeting.id, program_id=meeting.program_id, title="Tập huấn Ngữ văn 6 – buổi 2",
                         directory="rec-busy", state=RecordingState.PROCESSING, progress=42)
        s.add_all([row, busy])
        await s.commit()
    op = await make_user(Role.OPERATOR, display_name="Quản trị")
    for _ in range(2):
        await make_user(Role.LEARNER)  # learners of no program: only "all learners" reaches them
    ctx = await new_context(browser, live_server.url, user=op, app=app)
    try:
        page = await ctx.new_page()
        await page.goto("/archive")
        await page.wait_for_selector(f"[data-recording='{row.id}']")
        assert "42%" in await page.inner_text(f"[data-recording='{busy.id}']")
        assert "Khôi phục sau sự cố" in await page.inner_text(f"[data-recording='{row.id}']")
        await page.fill("input[name=q]", "buổi 1")
        await page.wait_for_function("() => document.querySelectorAll('[data-recording]').length === 1")
        # Publishing says who will see it: nobody is enrolled in the program, so the form warns and offers
        # wider audiences with their counts.
        await page.click(f"[data-publish='{row.id}']")
        form = page.locator(f"dialog[data-publish-form='{row.id}']")
        await form.wait_for()
        assert "Ai sẽ xem được: 0 học viên" in await form.locator("[data-publish-who]").inner_text()
        assert "chưa có học viên nào ghi danh" in await form.locator("[data-publish-warn]").inner_text()
        assert await form.locator("[data-count=all]").inner_text() == "2 học viên"
        await form.get_by_text("Mọi học viên", exact=True).click()
        assert "Ai sẽ xem được: 2 học viên" in await form.locator("[data-publish-who]").inner_text()
        assert await form.locator("[data-publish-warn]").is_hidden()
        box = await form.bounding_box()
        assert box and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 1366 \
            and box["y"] + box["height"] <= 768
        await page.screenshot(path=str(ARTIFACTS / "archive-publish.png"))
        await form.locator("[data-publish-confirm]").click()
        await page.wait_for_selector(f"[data-recording='{row.id}'] .rec-published[data-audience=all]")
        assert "Đã công bố cho mọi học viên" in await page.inner_text(f"[data-recording='{row.id}']")
        await page.screenshot(path=str(ARTIFACTS / "archive.png"), full_page=True)

        await page.goto(f"/archive/{row.id}")
        await page.wait_for_function("() => document.querySelector('[data-player-video]').readyState >= 1")
        duration = await page.evaluate("document.querySelector('[data-player-video]').duration")
        assert abs(duration - result.duration) < 0.3
        titles = await page.locator(".chapter-title").all_inner_texts()
        assert titles == ["Bắt đầu", "Phần 2: thảo luận"]  # the marker 1.5 s after the floor change renames it
        await page.click(".chapter:nth-child(2) .chapter-btn")
        await page.wait_for_function("() => document.querySelector('[data-player-video]').currentTime >= 2.9")
        await page.wait_for_selector(".chapter:nth-child(2).is-current")
        await page.screenshot(path=str(ARTIFACTS / "archive-player.png"))
        assert await page.get_attribute("[data-download]", "href") == f"/api/v1/recordings/{row.id}/media?download=1"
    finally:
        await ctx.close()
    async with app[DB]() as s:
        done = await s.get(Recording, row.id)
        assert done is not None and done.published is True and done.audience == "all"
