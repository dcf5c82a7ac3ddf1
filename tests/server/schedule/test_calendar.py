"""Tests of server.schedule.calendar, server.api.calendar and server.pages.calendar: views per role, navigation, the
secret iCalendar feed (parsed with the icalendar library) and the calendar catalog."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from aiohttp import web
from babel.messages.pofile import read_po
from sqlalchemy import insert, update

from server.db.engine import DB
from server.db.models import Role, User
from server.i18n import LOCALE_DIR, Translations
from server.schedule import calendar as cal
from tests.server.schedule import test_rules as test_schedule
from tests.server.schedule.test_rules import API, HTML, at, body, create, local_day, publish

world = test_schedule.world  # the shared fixture (an operator, people, classrooms, provinces, a program)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
TEMPLATES = Path(__file__).resolve().parents[3] / "web" / "templates"


def test_spans() -> None:
    first, last, prev, nxt = cal.span("month", dt.date(2030, 3, 14))
    assert (first, last) == (dt.date(2030, 2, 25), dt.date(2030, 3, 31))  # whole weeks, Monday first
    assert (prev, nxt) == (dt.date(2030, 2, 1), dt.date(2030, 4, 1))
    assert cal.span("month", dt.date(2030, 12, 5))[3] == dt.date(2031, 1, 1)
    first, last, prev, nxt = cal.span("week", dt.date(2030, 3, 14))
    assert (first, last, prev, nxt) == (dt.date(2030, 3, 11), dt.date(2030, 3, 17), dt.date(2030, 3, 4),
                                        dt.date(2030, 3, 18))
    assert cal.parse_anchor("2030-03", dt.date(2000, 1, 1)) == dt.date(2030, 3, 1)
    assert cal.parse_anchor("nonsense", dt.date(2000, 1, 1)) == dt.date(2000, 1, 1)


async def test_view_places_meetings_on_local_days(app: web.Application, world: dict[str, Any]) -> None:
    m = await create(world, body(world, days=20, start="22:00", end="23:59"))
    night = await create(world, {**body(world, days=21), "starts_at": at(local_day(21), "23:00"),
                                 "ends_at": at(local_day(22), "01:00"), "title": "Qua đêm"})
    async with app[DB]() as s:
        from server.auth import Identity
        ident = Identity("x", Role.OPERATOR, "c")
        view = await cal.build_view(s, ident, "week", local_day(21), local_day(21), TZ)
    by_day = {d.date: [x.id for x in d.meetings] for d in view.days}
    if local_day(20) in by_day:
        assert by_day[local_day(20)] == [m["id"]]  # 22:00 local is 15:00 UTC: still the 20th locally
    assert night["id"] in by_day[local_day(21)]
    if local_day(22) in by_day:
        assert night["id"] in by_day[local_day(22)]
    assert [d.is_today for d in view.days].count(True) == 1


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


async def test_learners_see_their_programs(app: web.Application, world: dict[str, Any],
                                           login_as: Callable[..., Awaitable[Any]]) -> None:
    table = cal.learners_table()
    if table is None:
        pytest.skip("no program_learners table yet")
    m = await create(world, body(world, title="Cho học viên"))
    assert (await publish(world, m["id"])).status == 200
    await create(world, body(world, title="Nháp học viên", start="14:00", end="15:00"))
    learner = await login_as(Role.LEARNER)
    r = await learner.get(f"{API}/calendar?from={local_day(19).isoformat()}&to={local_day(21).isoformat()}")
    assert await r.json() == []
    async with app[DB]() as s:
        await s.execute(insert(table).values(program_id=world["program"], user_id=learner.user.id))
        await s.commit()
    r = await learner.get(f"{API}/calendar?from={local_day(19).isoformat()}&to={local_day(21).isoformat()}")
    assert [e["title"] for e in await r.json()] == ["Cho học viên"]
    html = await (await learner.client.get(f"/calendar?date={local_day(20).isoformat()}", headers=HTML)).text()
    assert "Cho học viên" in html and 'href="/meetings/' not in html  # learners have no meeting page


async def test_ics_feed(app: web.Application, client: Any, world: dict[str, Any],
                        login_as: Callable[..., Awaitable[Any]]) -> None:
    m = await create(world, body(world, title="Buổi đồng bộ", description="Chuẩn bị loa"))
    assert (await publish(world, m["id"])).status == 200
    room = await login_as(user=world["room_user"])
    r = await room.get(f"{API}/calendar/feed")
    feed = await r.json()
    assert feed["url"].endswith(".ics") and feed["webcal_url"].startswith("webcal://")
    path = "/" + feed["url"].split("/", 3)[3]
    assert (await room.get(f"{API}/calendar/feed")).status == 200
    assert (await (await room.get(f"{API}/calendar/feed")).json())["url"] == feed["url"]  # stable

    r = await client.get(path)  # no login cookie
    assert r.status == 200 and r.content_type == "text/calendar"
    parsed = icalendar.Calendar.from_ical(await r.read())
    events = list(parsed.walk("VEVENT"))
    assert len(events) == 1
    ev = events[0]
    assert str(ev["summary"]) == "Buổi đồng bộ"
    start = ev.decoded("dtstart")
    assert start.tzinfo is not None and start.astimezone(dt.UTC) == dt.datetime.fromisoformat(m["starts_at"])
    assert ev["dtstart"].params["TZID"] == "Asia/Ho_Chi_Minh"
    assert ev.decoded("dtend").astimezone(dt.UTC) == dt.datetime.fromisoformat(m["ends_at"])
    assert str(ev["uid"]) == f"meeting-{m['id']}@taphuan"
    assert str(ev["location"]).endswith(f"/live/{m['id']}")
    assert "Chuẩn bị loa" in str(ev["description"]) and "Nguyễn Văn A" in str(ev["description"])
    assert str(ev["status"]) == "CONFIRMED" and int(ev["sequence"]) == 1
    assert list(parsed.walk("VTIMEZONE"))

    await world["op"].patch(f"{API}/meetings/{m['id']}", json={"title": "Buổi đồng bộ (mới)"})
    await world["op"].post(f"{API}/meetings/{m['id']}/cancel")
    ev = next(iter(icalendar.Calendar.from_ical(await (await client.get(path)).read()).walk("VEVENT")))
    assert str(ev["uid"]) == f"meeting-{m['id']}@taphuan" and int(ev["sequence"]) == 3
    assert str(ev["status"]) == "CANCELLED" and "Buổi đồng bộ (mới)" in str(ev["summary"])

    assert (await client.get(path.replace(".ics", "x.ics"))).status == 404
    assert (await client.get(f"{API}/calendar/feed/{'a' * 200}.ics")).status == 404
    r = await room.post(f"{API}/calendar/feed")
    new = (await r.json())["url"]
    assert new != feed["url"] and (await client.get(path)).status == 404
    r = await client.get("/" + new.split("/", 3)[3])
    assert r.status == 200
    async with app[DB]() as s:
        await s.execute(update(User).where(User.id == world["room_user"].id).values(disabled=True))
        await s.commit()
    assert (await client.get("/" + new.split("/", 3)[3])).status == 404


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


def test_ics_document_of_nothing_is_valid() -> None:
    doc = cal.ics_document([], TZ, "http://x", "taphuan", "Trống")
    parsed = icalendar.Calendar.from_ical(doc)
    assert str(parsed["x-wr-calname"]) == "Trống" and not list(parsed.walk("VEVENT"))


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


