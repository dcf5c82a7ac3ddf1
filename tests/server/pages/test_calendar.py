"""Tests of server.pages.calendar: the calendar per role with its navigation, the feed address and its renewal,
the deadlines dashboard, the schedule import page, and the calendar catalog."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import FormData, web
from babel.messages.pofile import read_po

from server.db.engine import DB
from server.db.models import Role
from server.i18n import LOCALE_DIR, Translations
from tests.server.people.test_accounts import login_csrf, new_client, new_link, open_link, token_of
from tests.server.schedule import test_rules as test_schedule
from tests.server.schedule.test_deadlines import PDF, published_regional, upload
from tests.server.schedule.test_importer import HEADER, count
from tests.server.schedule.test_rules import API, HTML, body, create, local_day, publish

world = test_schedule.world  # the shared fixture (an operator, people, classrooms, provinces, a program)
__all__ = ["new_client", "world"]  # fixtures, used by name

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TEMPLATES = Path(__file__).resolve().parents[3] / "web" / "templates"


async def test_calendar_pages_per_role(world: dict[str, Any], login_as: Callable[..., Awaitable[Any]]) -> None:
    op = world["op"]
    pub = await create(world, body(world, title="Công bố", days=15))
    assert (await publish(world, pub["id"])).status == 200
    await create(world, body(world, title="Bản nháp", days=15, start="14:00", end="15:00"))
    other = await create(world, body(world, title="Phòng khác", days=16, classroom_ids=[world["rooms"][1].id],
                                     presenter_ids=[world["trainer2"].id]))
    assert (await publish(world, other["id"])).status == 200
    gone = await create(world, body(world, title="Đã huỷ sau khi công bố", days=17))
    assert (await publish(world, gone["id"])).status == 200
    await op.post(f"{API}/meetings/{gone['id']}/cancel")
    never = await create(world, body(world, title="Huỷ khi còn nháp", days=18))
    await op.post(f"{API}/meetings/{never['id']}/cancel")

    async def titles(who: Any, days: int = 15, view: str = "month") -> str:
        r = await who.client.get(f"/calendar?view={view}&date={local_day(days).isoformat()}", headers=HTML)
        assert r.status == 200
        return str(await r.text())

    html = await titles(op)
    for t in ("Công bố", "Bản nháp", "Phòng khác"):
        assert t in html
    assert 'aria-current="date"' in html or local_day(15).month != dt.datetime.now(TZ).month
    room = await login_as(user=world["room_user"])
    html = await titles(room)
    assert "Công bố" in html and "Bản nháp" not in html and "Phòng khác" not in html
    if local_day(17).month == local_day(15).month:
        assert "Đã huỷ sau khi công bố" in html
    assert "Huỷ khi còn nháp" not in html
    trainer2 = await login_as(user=world["trainer2"])
    html = await titles(trainer2, 16, "week")
    assert "Phòng khác" in html and "Công bố" not in html and "cal-week" in html
    # Navigation links, and "today" somewhere in the current month.
    html = await titles(room, 0)
    assert 'aria-current="date"' in html and 'rel="prev"' in html and 'rel="next"' in html
    assert "Lịch" in html and "Theo dõi lịch trên điện thoại" in html

    # The API gives the same per-role answer.
    start, end = local_day(14).isoformat(), local_day(19).isoformat()
    r = await room.get(f"{API}/calendar?from={start}&to={end}")
    assert sorted(e["title"] for e in await r.json()) == ["Công bố", "Đã huỷ sau khi công bố"]
    r = await op.get(f"{API}/calendar?from={start}&to={end}")
    assert len(await r.json()) == 5
    r = await op.get(f"{API}/calendar?from={start}&to=2099-01-01")
    assert r.status == 422


async def test_feed_page_regenerate_and_roles(app: web.Application, client: Any, world: dict[str, Any]) -> None:
    op = world["op"]
    html = await (await op.client.get("/calendar", headers=HTML)).text()
    url = re.search(r'value="(http[^"]+\.ics)"', html)
    assert url
    r = await op.client.post("/calendar/feed", data={"csrf_token": op.csrf}, allow_redirects=False)
    assert r.status == 303 and "notice=feed-new" in r.headers["Location"]
    html = await (await op.client.get("/calendar?notice=feed-new", headers=HTML)).text()
    assert url.group(1) not in html and "địa chỉ cũ không còn dùng được" in html
    r = await client.get("/" + url.group(1).split("/", 3)[3])
    assert r.status == 404
    # Anonymous: 401 JSON on the API, login redirect on the page; guests (no account): 403.
    assert (await client.get(f"{API}/calendar/feed")).status == 401
    r = await client.get("/calendar", headers=HTML, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/login")
    async with app[DB]() as s:
        from server.db.models import LoginSession, utcnow
        s.add(LoginSession(id="guest-cal", user_id=None, guest_name="Khách", csrf_token="g",
                           expires_at=utcnow() + dt.timedelta(hours=1)))
        await s.commit()
    client.session.cookie_jar.update_cookies({"taphuan_login": "guest-cal"})
    r = await client.get(f"{API}/calendar/feed")
    assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    r = await client.post(f"{API}/calendar/feed", headers={"X-CSRF-Token": "g"})
    assert r.status == 403
    assert (await client.get(f"{API}/calendar")).status == 200  # an empty calendar, not an error


def test_calendar_catalog_is_complete_and_templates_translated() -> None:
    with (LOCALE_DIR / "vi" / "LC_MESSAGES" / "calendar.po").open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    ids = [m for m in catalog if m.id]
    assert len(ids) > 40
    for m in ids:
        assert m.string, m.id
        assert sorted(re.findall(r"%\(\w+\)[sd]", str(m.id))) == sorted(re.findall(r"%\(\w+\)[sd]", str(m.string)))
    vi = Translations().get("vi")
    missing = []
    for path in [*TEMPLATES.glob("calendar*.html"), *TEMPLATES.glob("deadlines*.html"),
                 *TEMPLATES.glob("meetings*.html")]:
        for match in re.finditer(r"""_\(\s*(["'])(.+?)\1\s*\)""", path.read_text()):
            if vi.gettext(match.group(2)) == match.group(2):
                missing.append((path.name, match.group(2)))
    assert not missing, missing
    from server.pages.calendar import MONTH_NAMES, NOTICES, WEEKDAY_SHORT
    for text in (*MONTH_NAMES, *WEEKDAY_SHORT, *NOTICES.values(), "Calendar", "Deadlines"):
        assert vi.gettext(text) != text, text


async def test_deadline_pages(world: dict[str, Any], login_as: Callable[..., Awaitable[Any]]) -> None:
    m, room = await published_regional(world, login_as)
    op = world["op"]
    html = await (await op.client.get("/deadlines", headers=HTML)).text()
    assert "Hạn nộp tài liệu" in html and "Hội nghị vùng" in html and "Kế hoạch của vùng" in html
    assert "Còn" in html  # "Còn N ngày"
    page = await (await room.client.get(f"/meetings/{m['id']}", headers=HTML)).text()
    assert 'id="documents"' in page and 'enctype="multipart/form-data"' in page
    form = upload("result_report", PDF, "ket-qua.pdf")
    r = await room.client.post(f"/meetings/{m['id']}/documents?csrf_token={room.csrf}", data=form,
                               allow_redirects=False)
    assert r.status == 303
    page = await (await room.client.get(f"/meetings/{m['id']}", headers=HTML)).text()
    assert "ket-qua.pdf" in page and "Đã nhận" in page
    r = await room.client.post(f"/meetings/{m['id']}/documents?csrf_token={room.csrf}",
                               data=upload("plan", b"#!/bin/sh\nrm -rf /\n", "ke-hoach.pdf"), headers=HTML)
    assert r.status == 415 and "Chỉ nhận tệp PDF" in await r.text()
    html = await (await room.client.get("/deadlines?state=received", headers=HTML)).text()
    assert "ket-qua.pdf" in html
    learner = await login_as(Role.LEARNER)
    assert (await learner.client.get("/deadlines", headers=HTML)).status == 403


async def test_import_page(app: web.Application, world: dict[str, Any],
                           login_as: Callable[..., Awaitable[Any]]) -> None:
    op = world["op"]
    html = await (await op.client.get("/meetings/import", headers=HTML)).text()
    assert "Nhập lịch tập huấn" in html and "presenters" in html
    sample = await op.client.get("/meetings/import/sample.csv")
    assert sample.status == 200 and (await sample.text()).lstrip("\ufeff").startswith("program,title")
    form = FormData()
    form.add_field("file", (HEADER + "Bồi dưỡng 2030,Qua trang,lecture,2030-04-01,08:00,09:00,gv.a,PH-1,,\n").encode(),
                   filename="lich.csv", content_type="text/csv")
    r = await op.client.post(f"/meetings/import?csrf_token={op.csrf}", data=form, headers=HTML)
    assert r.status == 200
    html = await r.text()
    assert "Đã nhập 1 buổi tập huấn ở dạng nháp" in html and "Qua trang" in html
    form = FormData()
    form.add_field("file", (HEADER + "X,Y,lecture,2030-04-01,08:00,09:00,,,,\n").encode(), filename="lich.csv",
                   content_type="text/csv")
    r = await op.client.post(f"/meetings/import?csrf_token={op.csrf}", data=form, headers=HTML)
    assert r.status == 422 and "dòng 2: không có chương trình" in await r.text()
    assert await count(app) == 1

    for role in (Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER):
        who = await login_as(role)
        r = await who.post(f"{API}/meetings/import", data=HEADER.encode(), headers={"Content-Type": "text/csv"})
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
        assert (await who.client.get("/meetings/import", headers=HTML)).status == 403


async def test_a_join_link_login_gets_no_feed_on_the_calendar_page(app: web.Application, world: dict[str, Any],
                                                                   login_as: Callable[..., Awaitable[Any]],
                                                                   new_client: Any) -> None:
    ours = await create(world, body(world, title="Buổi của liên kết"))
    other = await create(world, body(world, days=21, title="Buổi khác của lớp"))
    for m in (ours, other):
        assert (await publish(world, m["id"])).status == 200
    page = f"/calendar?view=month&date={local_day(20).isoformat()}"
    account = await login_as(user=world["room_user"])
    html = await (await account.get(page, headers=HTML)).text()
    assert "data-feed-url" in html and "Buổi khác của lớp" in html
    link = await new_link(world["op"], ours["id"], classroom_id=world["rooms"][0].id)
    pc = await new_client()
    assert (await open_link(pc, token_of(link["url"]))).status == 303
    html = await (await pc.get(page, headers=HTML)).text()
    assert "Buổi của liên kết" in html and "Buổi khác của lớp" not in html
    assert "data-feed-url" not in html and "/calendar/feed/" not in html
    assert 'href="/me/password"' not in html  # nor its account's password
    r = await pc.post("/calendar/feed", data={"csrf_token": await login_csrf(app, pc)}, headers=HTML,
                      allow_redirects=False)
    assert r.status == 403
