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
from tests.server.people.test_accounts import login_csrf, new_client, new_link, open_link, token_of
from tests.server.schedule import test_rules as test_schedule
from tests.server.schedule.test_rules import API, HTML, body, create, local_day, publish

world = test_schedule.world  # the shared fixture (an operator, people, classrooms, provinces, a program)
__all__ = ["new_client", "world"]  # fixtures, used by name


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


async def _link_login(world: dict[str, Any], new_client: Any, meeting_id: int) -> Any:
    """_link_login: a browser logged in by a classroom join link of `meeting_id` (classroom 1's account)."""
    link = await new_link(world["op"], meeting_id, classroom_id=world["rooms"][0].id)
    pc = await new_client()
    assert (await open_link(pc, token_of(link["url"]))).status == 303
    return pc


async def test_a_join_link_login_sees_its_meeting_only_and_no_feed(app: web.Application, world: dict[str, Any],
                                                                   login_as: Callable[..., Awaitable[Any]],
                                                                   new_client: Any) -> None:
    ours = await create(world, body(world, title="Buổi của liên kết"))
    other = await create(world, body(world, days=21, title="Buổi khác của lớp"))
    for m in (ours, other):
        assert (await publish(world, m["id"])).status == 200
    span = f"from={local_day(19).isoformat()}&to={local_day(23).isoformat()}"
    account = await login_as(user=world["room_user"])  # the classroom account's own password login
    assert {e["title"] for e in await (await account.get(f"{API}/calendar?{span}")).json()} == \
        {"Buổi của liên kết", "Buổi khác của lớp"}
    feed_path = "/" + (await (await account.get(f"{API}/calendar/feed")).json())["url"].split("/", 3)[3]
    assert {n["meeting_id"] for n in await (await account.get(f"{API}/notifications")).json()} == \
        {ours["id"], other["id"]}

    pc = await _link_login(world, new_client, ours["id"])
    assert [e["title"] for e in await (await pc.get(f"{API}/calendar?{span}")).json()] == ["Buổi của liên kết"]
    assert {n["meeting_id"] for n in await (await pc.get(f"{API}/notifications")).json()} == {ours["id"]}
    resp = await pc.get(f"{API}/calendar/feed")  # the account's secret URL would list the other meeting
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "link-login"
    csrf = await login_csrf(app, pc)
    resp = await pc.post(f"{API}/calendar/feed", headers={"X-CSRF-Token": csrf})  # nor replace it
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "link-login"
    assert (await pc.get(feed_path)).status == 200  # not replaced: the account's subscriptions keep working


async def test_notifications_unread_is_1_or_0(login_as: Any) -> None:
    learner = await login_as(Role.LEARNER)
    for value, status in (("1", 200), ("0", 200), ("", 200), ("yes", 422), ("2", 422)):
        r = await learner.get("/api/v1/notifications", params={"unread": value})
        assert r.status == status, value
    assert (await r.json())["error"]["field"] == "unread"
