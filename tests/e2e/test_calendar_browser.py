"""Real Chromium: an operator creates and publishes meetings through the pages (one 14 days ahead, one with a
written override), a classroom sees them in its calendar (month, week, phone); screenshots of the calendar
and the deadlines dashboard go to tests/artifacts/."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page

from server.auth import Identity
from server.db.engine import DB
from server.db.models import MeetingDocument, Role, Unit, UnitLevel, User
from server.schedule import meetings as svc
from tests.e2e.browser import ARTIFACTS
from tests.e2e.conftest import LiveServer, new_context

pytestmark = pytest.mark.browser
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
Factory = Callable[..., Awaitable[Any]]


async def create_through_form(page: Page, program_id: int, title: str, day: dt.date, trainer: User,
                              classroom_id: int) -> int:
    await page.goto(f"/meetings/new?program_id={program_id}")
    await page.fill("#title", title)
    await page.fill("#date", day.isoformat())
    await page.fill("#start_time", "08:00")
    await page.fill("#end_time", "10:30")
    await page.check(f"input[name=presenter_ids][value='{trainer.id}']")
    await page.check(f"input[name=classroom_ids][value='{classroom_id}']")
    await page.click("button:has-text('Tạo bản nháp'), .sticky-actions button[type=submit]")
    await page.wait_for_url("**/meetings/*?notice=meeting-created")
    return int(page.url.split("/meetings/")[1].split("?")[0])


async def test_operator_publishes_and_classroom_sees_it(browser: Browser, live_server: LiveServer,
                                                        make_user: Factory, make_classroom: Factory) -> None:
    app = live_server.app
    op = await make_user(Role.OPERATOR, username="dieuphoi", display_name="Điều phối viên")
    trainer = await make_user(Role.TRAINER, username="gv.lan", display_name="Nguyễn Thị Lan")
    leader = await make_user(Role.LEADER, username="ld.hung", display_name="Trần Văn Hùng")
    room_id = await make_classroom(code="LC-01", name="Phòng học Sa Pa")
    room_user = await make_user(Role.CLASSROOM, username="phong.sapa", classroom_id=room_id,
                                display_name="Phòng học Sa Pa")
    async with app[DB]() as s:
        program = await svc.create_program(s, None, svc.ProgramIn(title="Bồi dưỡng giáo viên 2030"))
        await s.commit()
    today = dt.datetime.now(TZ).date()
    far, soon = today + dt.timedelta(days=14), today + dt.timedelta(days=3)

    op_ctx = await new_context(browser, live_server.url, user=op, app=app)
    page = await op_ctx.new_page()
    # A meeting 14 days ahead publishes straight away.
    first = await create_through_form(page, program.id, "Chuyên đề 1: Dạy học tích hợp", far, trainer, room_id)
    await page.click("form[action$='/publish'] button:has-text('Công bố')")
    await page.wait_for_url(f"**/meetings/{first}?notice=meeting-publish")
    assert "Đã công bố" in await page.inner_text(".page-head")
    # One 3 days ahead needs a written reason.
    second = await create_through_form(page, program.id, "Chuyên đề 2: Đánh giá học sinh", soon, trainer, room_id)
    assert await page.is_visible("#override")
    await page.fill("#override_reason", "Bộ đổi lịch gấp theo công văn số 45/BGDĐT")
    await page.click("#override button:has-text('Công bố với lý do này')")
    await page.wait_for_url(f"**/meetings/{second}?notice=meeting-publish")
    assert "Bộ đổi lịch gấp theo công văn số 45/BGDĐT" in await page.inner_text(".override-note")
    await page.screenshot(path=str(ARTIFACTS / "meeting-override.png"), full_page=True)

    # A regional meeting with a received plan, for the deadlines dashboard.
    async with app[DB]() as s:
        lc = Unit(code="T10X", name="Lào Cai", level=UnitLevel.PROVINCE)
        s.add(lc)
        await s.flush()
        data = svc.MeetingIn.model_validate({
            "program_id": program.id, "title": "Hội nghị vùng Tây Bắc", "kind": "regional",
            "starts_at": dt.datetime.combine(today + dt.timedelta(days=12), dt.time(14), tzinfo=TZ),
            "ends_at": dt.datetime.combine(today + dt.timedelta(days=12), dt.time(16), tzinfo=TZ),
            "presenter_ids": [leader.id], "classroom_ids": [room_id], "province_ids": [lc.id]})
        regional = await svc.create_meeting(s, None, data)
        await s.commit()
        regional = await svc.get_meeting(s, Identity("x", Role.OPERATOR, "c"), regional.id)
        await svc.publish_meeting(s, None, regional)
        s.add(MeetingDocument(meeting_id=regional.id, kind="plan", filename="ke-hoach-vung.pdf", sha256="0" * 64,
                              size=1234, content_type="application/pdf", uploaded_at=svc.utcnow()))
        await s.commit()
    await page.goto("/deadlines")
    await page.wait_for_selector("h1:has-text('Hạn nộp tài liệu')")
    await page.screenshot(path=str(ARTIFACTS / "deadlines.png"), full_page=True)
    await page.goto(f"/calendar?date={far.isoformat()}")
    await page.wait_for_selector(".cal-grid")
    await page.screenshot(path=str(ARTIFACTS / "calendar-operator-month.png"), full_page=True)
    await op_ctx.close()

    # The classroom sees both meetings in its calendar, on the right days.
    room_ctx = await new_context(browser, live_server.url, user=room_user, app=app)
    page = await room_ctx.new_page()
    await page.goto(f"/calendar?date={far.isoformat()}")
    cell = page.locator(f".cal-day[data-date='{far.isoformat()}']")
    await cell.locator("text=Chuyên đề 1").wait_for()
    assert "08:00" in await cell.inner_text()
    if soon.month == far.month:
        assert "Chuyên đề 2" in await page.locator(f".cal-day[data-date='{soon.isoformat()}']").inner_text()
    await page.screenshot(path=str(ARTIFACTS / "calendar-month.png"), full_page=True)
    await page.click("a.seg:has-text('Tuần')")
    await page.goto(f"/calendar?view=week&date={far.isoformat()}")
    await page.wait_for_selector(".cal-week")
    assert "Chuyên đề 1: Dạy học tích hợp" in await page.inner_text(".cal-week")
    await page.screenshot(path=str(ARTIFACTS / "calendar-week.png"), full_page=True)
    await page.click(f".cal-day[data-date='{far.isoformat()}'] a.cal-ev")
    await page.wait_for_url(f"**/meetings/{first}")
    await page.goto("/")
    assert "Thay đổi lịch" in await page.inner_text("main")  # the publication notifications
    await room_ctx.close()

    phone = await new_context(browser, live_server.url, user=room_user, app=app, viewport=(390, 844))
    page = await phone.new_page()
    await page.goto(f"/calendar?date={far.isoformat()}")
    await page.wait_for_selector(".cal-agenda")
    assert await page.is_visible(".cal-agenda") and not await page.is_visible(".cal-grid")
    assert "Chuyên đề 1" in await page.inner_text(".cal-agenda")
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, width
    await page.screenshot(path=str(ARTIFACTS / "calendar-phone.png"), full_page=True)
    await page.goto("/deadlines")
    await page.screenshot(path=str(ARTIFACTS / "deadlines-phone.png"), full_page=True)
    await phone.close()


async def test_reason_history_and_overdue_documents(browser: Browser, live_server: LiveServer,
                                                    make_user: Factory, make_classroom: Factory) -> None:
    """A meeting published 3 days ahead with a reason, then moved with a second reason: its page keeps both,
    with author and time; a regional meeting whose plan is 5 days late shows on the operator's home page."""
    app = live_server.app
    op = await make_user(Role.OPERATOR, username="dieuphoi2", display_name="Điều phối viên Hà")
    trainer = await make_user(Role.TRAINER, username="gv.minh", display_name="Lê Văn Minh")
    leader = await make_user(Role.LEADER, username="ld.an", display_name="Phạm Văn An")
    room_id = await make_classroom(code="LC-09", name="Phòng học Bắc Hà")
    async with app[DB]() as s:
        program = await svc.create_program(s, None, svc.ProgramIn(title="Bồi dưỡng cán bộ quản lý"))
        lc = Unit(code="T10Y", name="Lào Cai", level=UnitLevel.PROVINCE)
        s.add(lc)
        await s.flush()
        today = dt.datetime.now(TZ).date()
        day = today + dt.timedelta(days=10)
        data = svc.MeetingIn.model_validate({
            "program_id": program.id, "title": "Hội nghị vùng Đông Bắc", "kind": "regional",
            "starts_at": dt.datetime.combine(day, dt.time(14), tzinfo=TZ),
            "ends_at": dt.datetime.combine(day, dt.time(16), tzinfo=TZ),
            "presenter_ids": [leader.id], "classroom_ids": [room_id], "province_ids": [lc.id]})
        regional = await svc.create_meeting(s, None, data)
        await s.commit()
        regional = await svc.get_meeting(s, Identity("x", Role.OPERATOR, "c"), regional.id)
        await svc.publish_meeting(s, None, regional, override_reason="Hội nghị bổ sung theo chỉ đạo của Bộ")
        await s.commit()

    ctx = await new_context(browser, live_server.url, user=op, app=app)
    page = await ctx.new_page()
    mid = await create_through_form(page, program.id, "Chuyên đề 3: Quản trị trường học",
                                    today + dt.timedelta(days=3), trainer, room_id)
    first, second = "Bộ đổi lịch gấp theo công văn số 45/BGDĐT", "Giảng viên đổi giờ vì trùng lịch họp tỉnh"
    await page.fill("#override_reason", first)
    await page.click("#override button:has-text('Công bố với lý do này')")
    await page.wait_for_url(f"**/meetings/{mid}?notice=meeting-publish")
    await page.goto(f"/meetings/{mid}/edit")
    await page.fill("#start_time", "09:00")
    await page.fill("#override_reason", second)
    await page.click(".sticky-actions button[type=submit]")
    await page.wait_for_url(f"**/meetings/{mid}?notice=meeting-saved")
    rows = page.locator("[data-override-history] tbody tr")
    assert await rows.count() == 2
    texts = await rows.all_inner_texts()
    assert first in texts[0] and second in texts[1] and all("Điều phối viên Hà" in t for t in texts)
    table = await page.locator("[data-override-history] table").bounding_box()
    assert table and table["x"] >= 0 and table["x"] + table["width"] <= 1366
    await page.screenshot(path=str(ARTIFACTS / "meeting-reasons.png"), full_page=True)

    await page.goto("/")
    overdue = page.locator("[data-overdue]")
    await overdue.wait_for()
    assert await overdue.locator(f"[data-overdue-doc='{regional.id}-plan']").count() == 1
    text = await overdue.inner_text()
    assert "Hội nghị vùng Đông Bắc" in text and "Kế hoạch của vùng" in text and "Trễ 5 ngày" in text
    box = await overdue.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 1366 and box["y"] < 768  # seen without scrolling
    await page.screenshot(path=str(ARTIFACTS / "home-overdue.png"))
    await ctx.close()
