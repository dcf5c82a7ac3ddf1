"""Tests of server.schedule.reminders: a regional meeting's missing documents are reminded 3 and 1 days before their
due day, once each, by notification and e-mail; a received document is not; an overdue one is listed on the
operators' home page (server.pages.home) instead."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import FormData, web
from sqlalchemy import select, update

from server.config import CONFIG
from server.db.engine import DB
from server.db.models import DeadlineReminder, Notification, User
from server.mail import MAILER
from server.schedule.reminders import send_reminders
from tests.server.mailtest import Inbox, config, smtp  # noqa: F401  (fixtures)
from tests.server.schedule import test_rules
from tests.server.schedule.test_rules import API, TZ, create, local_day, publish, regional

world = test_rules.world  # the shared fixture (an operator, people, classrooms, provinces, a program)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=TZ)


async def test_reminders_before_due_days_sent_once(app: web.Application, world: dict[str, Any],
                                                   login_as: Callable[..., Awaitable[Any]],
                                                   smtp: tuple[Inbox, int]) -> None:  # noqa: F811 (fixture)
    inbox, _port = smtp
    m = await create(world, regional(world, classroom_ids=[world["rooms"][0].id]))  # 20 days ahead: plan due in 5
    assert (await publish(world, m["id"])).status == 200
    async with app[DB]() as s:
        await s.execute(update(User).where(User.id.in_([world["leader"].id, world["room_user"].id]))
                        .values(email="nhac.han@example.edu.vn"))
        await s.execute(Notification.__table__.delete())  # the publication's own notices
        await s.commit()
    db, mailer, days = app[DB], app[MAILER], app[CONFIG].deadlines.reminder_days
    assert days == [3, 1]

    async def run(day: dt.date) -> int:
        return await send_reminders(db, mailer, TZ, days, noon(day))

    plan_due = local_day(5)
    assert await run(local_day(0)) == 0  # 5 days left: not yet
    assert await run(local_day(2)) == 2  # 3 days left: the plan and the joint report
    assert await run(local_day(2)) == 0  # once
    assert await run(local_day(3)) == 0  # 2 days left: the 3-day reminder was sent, the 1-day one not yet
    # The plan arrives; the joint report is still missing at 1 day.
    r = await world["op"].post(f"{API}/meetings/{m['id']}/documents", data=_upload("plan"))
    assert r.status == 201, await r.text()
    assert await run(local_day(4)) == 1
    assert await run(local_day(5)) == 0  # the due day: the 1-day reminder covered it
    assert await run(local_day(6)) == 0  # overdue: no reminder (the home page lists it)

    async with app[DB]() as s:
        notes = (await s.scalars(select(Notification).where(Notification.kind == "reminder")
                                 .order_by(Notification.id))).all()
        sent = sorted((r.kind, r.days_before) for r in (await s.scalars(select(DeadlineReminder))).all())
    assert sent == [("joint_report", 1), ("joint_report", 3), ("plan", 3)]
    assert {(n.user_id, n.classroom_id) for n in notes} == {(world["leader"].id, None),
                                                            (None, world["rooms"][0].id)}
    assert len(notes) == 6  # three reminders, each to the leader and to the invited classroom
    assert "Kế hoạch của vùng" in notes[0].text and f"{plan_due:%d/%m/%Y}" in notes[0].text
    assert "còn 3 ngày" in notes[0].text and "còn 1 ngày" in notes[-1].text and "Báo cáo liên tịch" in notes[-1].text
    await mailer.drain(10)
    assert len(inbox.messages) == 3 and all(rcpts == ["nhac.han@example.edu.vn"] for rcpts, _ in inbox.messages)


async def test_a_meeting_published_late_gets_the_nearest_reminder_only(
        app: web.Application, world: dict[str, Any]) -> None:
    m = await create(world, regional(world, classroom_ids=[world["rooms"][0].id]))
    assert (await publish(world, m["id"])).status == 200
    days = app[CONFIG].deadlines.reminder_days
    # First pass 1 day before the due day: one reminder per document (the 1-day one), never the 3-day one later.
    assert await send_reminders(app[DB], None, TZ, days, noon(local_day(4))) == 2
    assert await send_reminders(app[DB], None, TZ, days, noon(local_day(4))) == 0
    assert await send_reminders(app[DB], None, TZ, [], noon(local_day(4))) == 0  # reminders switched off
    async with app[DB]() as s:
        sent = sorted((r.kind, r.days_before) for r in (await s.scalars(select(DeadlineReminder))).all())
    assert sent == [("joint_report", 1), ("joint_report", 3), ("plan", 1), ("plan", 3)]


def _upload(kind: str) -> FormData:
    form = FormData()
    form.add_field("kind", kind)
    form.add_field("file", PDF, filename=f"{kind}.pdf", content_type="application/pdf")
    return form
