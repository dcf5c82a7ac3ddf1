"""Tests of server.api.calendar: the calendar per role (learners by their programs) and the secret iCalendar feed
(parsed with the icalendar library)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import icalendar
from aiohttp import web
from sqlalchemy import insert, update

from server.db.engine import DB
from server.db.models import Role, User, program_learners
from tests.server.schedule import test_rules as test_schedule
from tests.server.schedule.test_rules import API, HTML, body, create, local_day, publish

world = test_schedule.world  # the shared fixture (an operator, people, classrooms, provinces, a program)


async def test_learners_see_their_programs(app: web.Application, world: dict[str, Any],
                                           login_as: Callable[..., Awaitable[Any]]) -> None:
    m = await create(world, body(world, title="Cho học viên"))
    assert (await publish(world, m["id"])).status == 200
    await create(world, body(world, title="Nháp học viên", start="14:00", end="15:00"))
    learner = await login_as(Role.LEARNER)
    r = await learner.get(f"{API}/calendar?from={local_day(19).isoformat()}&to={local_day(21).isoformat()}")
    assert await r.json() == []
    async with app[DB]() as s:
        await s.execute(insert(program_learners).values(program_id=world["program"], user_id=learner.user.id))
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
