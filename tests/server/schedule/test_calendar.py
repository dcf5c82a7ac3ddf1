"""Tests of server.schedule.calendar: month and week spans, meetings placed on local days, the iCalendar document."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from aiohttp import web

from server.db.engine import DB
from server.db.models import Role
from server.schedule import calendar as cal
from tests.server.schedule import test_rules as test_schedule
from tests.server.schedule.test_rules import at, body, create, local_day

world = test_schedule.world  # the shared fixture (an operator, people, classrooms, provinces, a program)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


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


def test_ics_document_of_nothing_is_valid() -> None:
    doc = cal.ics_document([], TZ, "http://x", "taphuan", "Trống")
    parsed = icalendar.Calendar.from_ical(doc)
    assert str(parsed["x-wr-calname"]) == "Trống" and not list(parsed.walk("VEVENT"))
