"""Real Chromium: the archive library and player: a recording plays, seeks from the chapter list (HTTP Range),
and an operator publishes it to learners from the library, told who will see it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser

from recorder.archive import finalize
from recorder.timeline import CONTINUE_TITLE, Timeline, TimelineEvent
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
                         directory="rec-busy", state=RecordingState.PROCESSING, progress=42, part=2)
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
        assert titles == ["Bắt đầu", "Phần 2: thảo luận"]  # a floor change the program does not show: no chapter
        await page.click(".chapter:nth-child(2) .chapter-btn")
        await page.wait_for_function("() => document.querySelector('[data-player-video]').currentTime >= 4.4")
        await page.wait_for_selector(".chapter:nth-child(2).is-current")
        await page.screenshot(path=str(ARTIFACTS / "archive-player.png"))
        assert await page.get_attribute("[data-download]", "href") == f"/api/v1/recordings/{row.id}/media?download=1"
    finally:
        await ctx.close()
    async with app[DB]() as s:
        done = await s.get(Recording, row.id)
        assert done is not None and done.published is True and done.audience == "all"


async def test_one_entry_per_meeting_with_its_parts_and_chapters(browser: Browser, live_server: LiveServer,
                                                                make_user: Callable[..., Awaitable[User]],
                                                                make_meeting: Callable[..., Awaitable[Any]]) -> None:
    """A meeting recorded in two parts (the first continued once after a short pause) is one entry of the library,
    its parts and their chapters inside; the player of a part links to the other."""
    app = live_server.app
    meeting = await make_meeting(title="Bài 3: Dạy học tích hợp")
    other = await make_meeting(title="Bài 4: Đánh giá")
    rows = []
    for name, seconds, events in (
            ("rec-part-1", 6.0, [TimelineEvent(0.3, "shown", "a", "Nguyễn Văn A", source="presenter-video"),
                                 TimelineEvent(3.0, "continue"),
                                 TimelineEvent(4.5, "marker", title="Phần 2: Thực hành")]),
            ("rec-part-2", 3.0, [TimelineEvent(0.3, "shown", "a", "Nguyễn Văn A", source="screen")]),
            ("rec-other", 3.0, [])):
        directory = app[CONFIG].data_path / "recordings" / name
        recorded_directory(directory, seconds)
        timeline = Timeline(directory)
        for event in events:
            timeline.add(event)
        timeline.close()
        result = finalize(directory)
        target = other if name == "rec-other" else meeting
        rows.append(Recording(meeting_id=target.id, program_id=target.program_id, title=target.title, directory=name,
                              state=RecordingState.READY, file=result.file, mime=result.mime, duration=result.duration,
                              size=result.size, chapters=result.chapters, originals=result.originals,
                              part=2 if name == "rec-part-2" else 1))
    async with app[DB]() as s:
        s.add_all(rows)
        await s.commit()
    one, two, _ = rows
    op = await make_user(Role.OPERATOR, display_name="Quản trị")
    ctx = await new_context(browser, live_server.url, user=op, app=app)
    try:
        page = await ctx.new_page()
        await page.goto("/archive")
        entry = page.locator(f"[data-entry='{meeting.id}']")
        await entry.wait_for()
        assert await page.locator(".rec-entry").count() == 2  # two meetings, two entries
        assert await entry.locator(".rec-title").inner_text() == meeting.title
        assert await entry.locator("[data-part-count]").inner_text() == "2 phần"
        parts = entry.locator(".rec-part")
        assert await parts.count() == 2
        assert [await parts.nth(i).locator(".rec-part-title").inner_text() for i in range(2)] == ["Phần 1", "Phần 2"]
        for i in range(2):
            await parts.nth(i).locator(".rec-chapters summary").click()
        chapters = await parts.nth(0).locator(".rec-chapters li").all_inner_texts()
        assert [c.split("\n")[-1] for c in chapters] == ["Người trình bày: Nguyễn Văn A", CONTINUE_TITLE,
                                                          "Phần 2: Thực hành"], chapters
        assert (await parts.nth(1).locator(".rec-chapters li").all_inner_texts())[0].endswith(
            "Chia sẻ màn hình: Nguyễn Văn A")
        box = await entry.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1366
        boxes = [await parts.nth(i).bounding_box() for i in range(2)]
        assert boxes[0] is not None and boxes[1] is not None
        assert boxes[0]["y"] + boxes[0]["height"] <= boxes[1]["y"]  # one under the other, not overlapping
        assert boxes[1]["x"] + boxes[1]["width"] <= box["x"] + box["width"]
        assert await page.inner_text("[data-archive-status]") == "2 bản ghi"  # entries, not recordings
        await page.evaluate("() => window.scrollTo(0, 0)")
        await page.screenshot(path=str(ARTIFACTS / "archive-parts.png"), full_page=True)

        await parts.nth(0).locator(".rec-chapters li:nth-child(2) a").click()  # the continuation, in the player
        await page.wait_for_url(f"**/archive/{one.id}#t=*")
        await page.wait_for_function("() => document.querySelector('[data-player-video]').currentTime >= 2.9")
        nav = page.locator("[data-parts]")
        await nav.locator("a.part-link").wait_for()
        assert await nav.locator(".part-link.is-current").inner_text() == "Phần 1"
        await nav.locator("a.part-link").click()
        await page.wait_for_url(f"**/archive/{two.id}")
        await page.wait_for_selector("[data-parts] .part-link.is-current")
        assert await page.locator("[data-parts] .part-link.is-current").inner_text() == "Phần 2"
        await page.screenshot(path=str(ARTIFACTS / "archive-player-parts.png"))
    finally:
        await ctx.close()
