"""Tests of server.pages.reports: the report pages with their charts, the headcount form and table."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp

from server.db.engine import DB
from server.db.models import Classroom, Role, User
from tests.server.api.test_reports import T0, Clock, add_events, app, clock, past_meeting
from tests.server.livetest import Factory, classroom_login

__all__ = ["app", "clock"]  # fixtures, used by name

HTML = {"Accept": "text/html"}


async def test_report_pages_render_with_their_charts(app: Any, clock: Clock, login_as: Factory,
                                                     make_classroom: Factory, make_user: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    a_id = await make_classroom(name="Lớp trang")
    m = await past_meeting(app, [a_id])
    await add_events(app, m, [(0, "join", "p1", a_id), (30, "drop", "p1", a_id), (32, "join", "p2", a_id),
                        (90, "leave", "p2", a_id)])
    clock.at = T0 + dt.timedelta(days=3)
    html = await (await op.get("/reports?from=2025-09-01&to=2025-09-30", headers=HTML)).text()
    for text in ("Báo cáo", "Tham dự theo thời gian", "Số phút theo tỉnh", "Chất lượng kết nối theo huyện/xã",
                 'id="report-charts"', "charts.js", "Buổi có khởi động lại", "export.xlsx?report=meetings"):
        assert text in html, text
    html = await (await op.get(f"/reports/meetings/{m}", headers=HTML)).text()
    assert "rớt mạng" in html and "chart-timeline" in html and "Lớp trang" in html
    html = await (await op.get("/reports/monthly?month=2025-09", headers=HTML)).text()
    assert "Báo cáo tháng 09/2025" in html and 'data-stat="meetings">1<' in html and "@media print" not in html
    assert "reports.css" in html
    program_id = (await (await op.get(f"/api/v1/reports/meetings/{m}")).json())["program_id"]
    assert (await op.get(f"/reports/programs/{program_id}", headers=HTML)).status == 200
    assert (await op.get("/api/v1/reports/programs/999999")).status == 404
    async with app[DB]() as s:
        unit_id = (await s.get(Classroom, a_id)).unit_id  # type: ignore[union-attr]
    html = await (await op.get(f"/reports/units/{unit_id}?from=2025-09-01&to=2025-09-30", headers=HTML)).text()
    assert "Lớp trang" in html and "Báo cáo đơn vị" in html
    r = await op.get(f"/api/v1/reports/units/{unit_id}", params={"from": "2025-09-01", "to": "2025-09-30"})
    data = await r.json()
    assert data["totals"]["minutes"] == 88 and data["per_classroom"][0]["totals"]["attended"] == 1


async def test_headcount_page_form_for_a_classroom_and_table_for_staff(
        login_as: Factory, make_user: Factory, make_classroom: Factory, make_meeting: Factory) -> None:
    trainer: User = await make_user(Role.TRAINER)
    a, a_id = await classroom_login(login_as, make_user, make_classroom, "Điểm cầu Hà Giang")
    meeting = await make_meeting(presenters=[trainer], classrooms=[a_id])
    page = f"/meetings/{meeting.id}/headcount"
    html = await (await a.get(page, headers=HTML)).text()
    assert "Số giáo viên có mặt" in html and 'name="count"' in html
    r = await a.client.post(page, data={"csrf_token": a.csrf, "count": "2", "names": "An\nBình\nCường"},
                            headers=HTML, allow_redirects=False)
    assert r.status == 422
    assert "nhỏ hơn số tên" in await r.text()
    r = await a.client.post(page, data={"csrf_token": a.csrf, "count": "abc"}, headers=HTML, allow_redirects=False)
    assert r.status == 422 and "Hãy nhập số giáo viên" in await r.text()
    r = await a.client.post(page, data={"csrf_token": a.csrf, "count": "18", "names": "An\nBình"},
                            headers=HTML, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].endswith("?saved=1")
    html = await (await a.get(page + "?saved=1", headers=HTML)).text()
    assert "Đã lưu sĩ số" in html and 'value="18"' in html
    form = aiohttp.FormData()
    form.add_field("count", "20")
    form.add_field("names_file", "Họ tên\nLò Văn Cường\n".encode(), filename="ds.csv", content_type="text/csv")
    r = await a.client.post(page, params={"csrf_token": a.csrf}, data=form, headers=HTML, allow_redirects=False)
    assert r.status == 303  # a multipart form carries its CSRF token in the query string
    t = await login_as(user=trainer)
    data = await (await t.get(f"/api/v1/meetings/{meeting.id}/headcount")).json()
    assert data["entries"][0]["names"] == ["Lò Văn Cường"] and data["total"] == 20
    html = await (await t.get(page, headers=HTML)).text()
    assert "Tổng số giáo viên có mặt" in html and "data-total>20<" in html and "Điểm cầu Hà Giang" in html
    learner = await login_as(Role.LEARNER)
    assert (await learner.get(page, headers=HTML)).status == 403


async def test_report_pages_write_numbers_and_dates_in_the_readers_language(
        app: Any, clock: Clock, login_as: Factory, make_classroom: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    a_id = await make_classroom(name="Lớp số liệu")
    m = await past_meeting(app, [a_id])
    await add_events(app, m, [(0, "join", "p1", a_id), (90, "leave", "p1", a_id)])  # 90 of 120 minutes
    clock.at = T0 + dt.timedelta(days=3)
    async with app[DB]() as s:
        unit_id = (await s.get(Classroom, a_id)).unit_id  # type: ignore[union-attr]
    unit_page = f"/reports/units/{unit_id}?from=2025-09-01&to=2025-09-30"
    html = await (await op.get(unit_page, headers=HTML)).text()
    assert '<span class="rp-stat-num">1,5</span>' in html and '<span class="rp-stat-num">75%</span>' in html
    assert "01/09/2025 – 30/09/2025" in html and "2025-09-01 →" not in html
    html = await (await op.get(f"/reports/meetings/{m}", headers=HTML)).text()
    assert '<span class="rp-stat-num">75%</span>' in html and "75.0 %" not in html
    await op.client.get("/lang/en", headers=HTML)
    html = await (await op.get(unit_page, headers=HTML)).text()
    assert '<span class="rp-stat-num">1.5</span>' in html and '<span class="rp-stat-num">75%</span>' in html
