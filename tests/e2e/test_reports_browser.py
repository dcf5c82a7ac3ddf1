"""Real Chromium: the report pages draw their charts (canvas pixels), the monthly report prints, a classroom
enters its headcount. Screenshots go to tests/artifacts/reports-*.png."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from sqlalchemy import insert, select

from server.db.engine import DB
from server.db.models import (
    AttendanceEvent,
    Classroom,
    Headcount,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    Unit,
    UnitLevel,
    User,
    meeting_classrooms,
)
from tests.e2e.browser import ARTIFACTS, WAIT_MS
from tests.e2e.conftest import LiveServer, new_context

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]
DAY = dt.datetime(2025, 9, 9, 1, 30, tzinfo=dt.UTC)  # 08:30 in Hà Nội

INKED = """(id) => {
  const canvas = document.getElementById(id);
  if (!canvas || canvas.dataset.drawn !== "1") return 0;
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""


async def seed(app: Any) -> dict[str, Any]:
    """seed: communes under four 2025 provinces, eight classrooms, three meetings with drops and samples."""
    rng = random.Random(8)
    async with app[DB]() as s:
        provinces = {u.code: u for u in (await s.scalars(select(Unit).where(
            Unit.level == UnitLevel.PROVINCE, Unit.valid_from == dt.date(2025, 7, 1)))).all()}
        provinces.update({u.code: u for u in (await s.scalars(select(Unit).where(
            Unit.code.in_(["04", "11"]), Unit.level == UnitLevel.PROVINCE))).all()})
        plan = [("08", ["Xã Minh Tân", "Xã Yên Minh"]), ("15", ["Xã Bắc Hà", "Xã Mường Khương"]),
                ("04", ["Xã Bảo Lạc", "Xã Trùng Khánh"]), ("11", ["Xã Mường Nhé", "Xã Tủa Chùa"])]
        rooms: list[Classroom] = []
        for i, (code, communes) in enumerate(plan):
            for j, name in enumerate(communes):
                commune = Unit(code=f"E{code}{j}", name=name, level=UnitLevel.COMMUNE, parent_id=provinces[code].id,
                               valid_from=dt.date(2025, 7, 1))
                s.add(commune)
                await s.flush()
                room = Classroom(code=f"DC{i}{j}", name=f"Điểm cầu {name.removeprefix('Xã ')}", unit_id=commune.id)
                s.add(room)
                rooms.append(room)
        program = Program(title="Bồi dưỡng giáo viên THCS 2025")
        s.add(program)
        await s.flush()
        meetings = []
        for k, title in enumerate(["Dạy học Toán theo chương trình 2018", "Đánh giá học sinh THCS",
                                   "Ứng dụng CNTT trong dạy học"]):
            start = DAY + dt.timedelta(days=7 * k)
            m = Meeting(program_id=program.id, title=title, status=MeetingStatus.PUBLISHED, starts_at=start,
                        ends_at=start + dt.timedelta(hours=2))
            s.add(m)
            await s.flush()
            meetings.append(m)
            for n, room in enumerate(rooms):
                await s.execute(insert(meeting_classrooms).values(meeting_id=m.id, classroom_id=room.id))
                if rng.random() < 0.15:
                    continue  # absent
                pid = f"m{m.id}r{room.id}"
                join = rng.randint(-10, 12)
                rows = [(join, "join", pid, {})]
                if rng.random() < 0.4:
                    cut = rng.randint(30, 70)
                    rows += [(cut, "drop", pid, {}), (cut + rng.randint(1, 6), "resume", pid, {})]
                rows += [(rng.randint(112, 125), "leave", pid, {})]
                loss = [0.004, 0.012, 0.03, 0.07][n // 2]
                rows += [(t, "quality", pid, {"loss": round(loss * rng.uniform(.6, 1.4), 4),
                                              "up_bitrate": rng.randint(250_000, 600_000),
                                              "down_bitrate": rng.randint(500_000, 1_200_000)})
                         for t in range(join + 1, 110, 10)]
                rows += [(rng.randint(15, 100), "hand-up", pid, {}) for _ in range(rng.randint(0, 2))]
                rows += [(rng.randint(5, 100), "chat", pid, {}) for _ in range(rng.randint(0, 3))]
                for minute, kind, participant, data in rows:
                    s.add(AttendanceEvent(meeting_id=m.id, at=start + dt.timedelta(minutes=minute), kind=kind,
                                          participant=participant, classroom_id=room.id, role="classroom",
                                          name=room.name, data=data))
                s.add(Headcount(meeting_id=m.id, classroom_id=room.id, count=rng.randint(8, 35), names=[]))
        await s.commit()
        return {"meetings": [m.id for m in meetings], "rooms": [r.id for r in rooms], "program": program.id}


async def wait_charts(page: Page, ids: list[str]) -> None:
    """wait_charts: every chart canvas has been drawn and holds ink."""
    for chart in ids:
        await page.wait_for_function(f"() => ({INKED})('{chart}') > 200", timeout=WAIT_MS)


async def test_report_pages_draw_their_charts(browser: Browser, live_server: LiveServer, make_user: Factory,
                                              make_classroom: Factory, make_meeting: Factory) -> None:
    app, base = live_server.app, live_server.url
    data = await seed(app)
    operator: User = await make_user(Role.OPERATOR, display_name="Điều hành viên Bộ GD&ĐT")
    page = await (await new_context(browser, base, user=operator, app=app)).new_page()

    await page.goto("/reports?from=2025-09-01&to=2025-09-30")
    await wait_charts(page, ["chart-days", "chart-province", "chart-quality"])
    assert await page.get_attribute("#chart-days", "data-points") == "3"
    assert await page.get_attribute("#chart-province", "data-points") == "4"
    nav = await page.evaluate("""() => { const n = document.querySelector('.mainnav');
        return {scroll: n.scrollWidth, client: n.clientWidth,
                links: Array.from(n.children).map((a) => Math.round(a.getBoundingClientRect().width))}; }""")
    assert nav["scroll"] <= nav["client"] + 1, nav  # every menu entry is visible at 1366 px
    await page.screenshot(path=str(ARTIFACTS / "reports-overview.png"), full_page=True)

    await page.goto(f"/reports/meetings/{data['meetings'][0]}")
    await wait_charts(page, ["chart-timeline", "chart-quality"])
    assert int(await page.get_attribute("#chart-timeline", "data-points") or 0) > 50
    await page.screenshot(path=str(ARTIFACTS / "reports-meeting.png"), full_page=True)

    await page.goto("/reports/monthly?month=2025-09")
    await wait_charts(page, ["chart-days", "chart-province", "chart-quality"])
    assert await page.text_content("[data-stat=meetings]") == "3"
    await page.screenshot(path=str(ARTIFACTS / "reports-monthly.png"), full_page=True)
    await page.emulate_media(media="print")
    await page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
    assert not await page.is_visible(".topbar") and not await page.is_visible("[data-print]")
    await page.set_viewport_size({"width": 1123, "height": 794})  # A4 landscape at 96 dpi
    await page.screenshot(path=str(ARTIFACTS / "reports-monthly-print.png"), full_page=True)
    pdf = await page.pdf(format="A4", landscape=True)
    assert pdf[:4] == b"%PDF"

    phone = await (await new_context(browser, base, user=operator, app=app, viewport=(390, 844))).new_page()
    await phone.goto("/reports?from=2025-09-01&to=2025-09-30")
    await wait_charts(phone, ["chart-days", "chart-province", "chart-quality"])
    await phone.screenshot(path=str(ARTIFACTS / "reports-phone.png"), full_page=True)


async def test_classroom_enters_its_headcount(browser: Browser, live_server: LiveServer, make_user: Factory,
                                              make_classroom: Factory, make_meeting: Factory) -> None:
    app, base = live_server.app, live_server.url
    room_id = await make_classroom(name="Điểm cầu THCS Mường Tè")
    room: User = await make_user(Role.CLASSROOM, classroom_id=room_id, display_name="Lớp THCS Mường Tè")
    meeting = await make_meeting(classrooms=[room_id], title="Bồi dưỡng giáo viên Ngữ văn")
    page = await (await new_context(browser, base, user=room, app=app)).new_page()
    await page.goto(f"/meetings/{meeting.id}/headcount")
    await page.fill("input[name=count]", "21")
    await page.fill("textarea[name=names]", "Nguyễn Văn An\nTrần Thị Bình\nLò Văn Cường")
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/headcount?saved=1")
    assert await page.input_value("input[name=count]") == "21"
    await page.screenshot(path=str(ARTIFACTS / "reports-headcount.png"), full_page=True)
    async with app[DB]() as s:
        row = await s.scalar(select(Headcount).where(Headcount.meeting_id == meeting.id))
        assert row is not None and row.count == 21 and len(row.names) == 3
