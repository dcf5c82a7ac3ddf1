"""server.schedule.reminders: remind regional meetings of the documents they still owe, before they fall due.

A regional meeting expects a plan and a joint report 15 days before it and a result report 15 days after it
(`server.schedule.rules`). While one is missing, its presenters and invited classrooms get a reminder (a
`Notification` of kind `reminder`, and an e-mail through `server.mail` when SMTP is configured) when the due day is
`deadlines.reminder_days` days away or nearer (default 3 and 1; 0 is the due day itself).

Each reminder is sent once: a `DeadlineReminder` row (unique per meeting, document and day count) is written in the
same transaction as the notification, so a second pass, a restart or a second server process sends nothing again.
A meeting published late, already inside several windows, gets only the nearest one (the others are marked sent).
A background task (`setup`) runs `send_reminders` a minute after start-up, then every `deadlines.check_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.config import CONFIG
from server.db.engine import DB
from server.db.models import DeadlineReminder, Meeting, utcnow
from server.mail import MAILER, Mailer
from server.schedule import deadlines, notifications
from server.schedule import rules as schedule

log = logging.getLogger("taphuan.reminders")


@dataclass(frozen=True)
class Due:
    """Due: a reminder to send: a missing document, its due day, the window reached and the windows it covers."""

    meeting: Meeting
    deadline: schedule.Deadline
    days: int
    covers: tuple[int, ...]


def message(m: Meeting, d: schedule.Deadline, tz: ZoneInfo) -> str:
    """message: the "Vietnamese / English" text of a reminder about document `d` of regional meeting `m`."""
    vi_kind, en_kind = deadlines.KIND_LABELS[d.kind]
    start = m.starts_at.astimezone(tz)
    if d.days_left == 0:
        vi_left, en_left = "hạn cuối là hôm nay", "it is due today"
    else:
        vi_left, en_left = f"còn {d.days_left} ngày", f"{d.days_left} day{'s' if d.days_left > 1 else ''} left"
    return (f"Nhắc hạn: chưa nộp “{vi_kind}” của hội nghị vùng “{m.title}” ({start:%d/%m/%Y}); hạn nộp "
            f"{d.due:%d/%m/%Y}, {vi_left}. / Reminder: the {en_kind.lower()} of the regional meeting “{m.title}” "
            f"({start:%d/%m/%Y}) has not been sent; it is due on {d.due:%d/%m/%Y}, {en_left}.")


async def due_now(s: AsyncSession, today: dt.date, tz: ZoneInfo, days: list[int]) -> list[Due]:
    """due_now: the reminders not sent yet on local day `today` for reminder windows `days`."""
    if not days:
        return []
    rows = await deadlines.dashboard(s, None, today, tz, "due")
    sent = set((await s.execute(select(DeadlineReminder.meeting_id, DeadlineReminder.kind,
                                       DeadlineReminder.days_before)
                                .where(DeadlineReminder.meeting_id.in_([r.meeting.id for r in rows])))).all())
    out = []
    for row in rows:
        for d in row.deadlines:
            windows = tuple(n for n in days if d.state == "due" and d.days_left <= n)
            if windows and (row.meeting.id, d.kind, min(windows)) not in sent:
                out.append(Due(row.meeting, d, min(windows), windows))
    return out


async def send_reminders(db: async_sessionmaker[AsyncSession], mailer: Mailer | None, tz: ZoneInfo,
                         days: list[int], now: dt.datetime | None = None) -> int:
    """send_reminders: send every reminder due at `now` (one transaction each; one already written by another
    pass or process is skipped); how many were sent."""
    now = now or utcnow()
    today = schedule.today_in(tz, now)
    async with db() as s:
        todo = await due_now(s, today, tz, days)
    sent = 0
    for due in todo:
        m, d = due.meeting, due.deadline
        async with db() as s:
            marked = set((await s.execute(select(DeadlineReminder.days_before).where(
                DeadlineReminder.meeting_id == m.id, DeadlineReminder.kind == d.kind))).scalars().all())
            s.add_all([DeadlineReminder(meeting_id=m.id, kind=d.kind, days_before=n, due=d.due, sent_at=now)
                       for n in due.covers if n not in marked])
            text = message(m, d, tz)
            users, rooms = [u.id for u in m.presenters], [c.id for c in m.classrooms]
            notifications.notify(s, m, "reminder", text, user_ids=users, classroom_ids=rooms)
            await notifications.email(s, None, m, text, user_ids=users, classroom_ids=rooms, mailer=mailer)
            try:
                await s.commit()
            except IntegrityError:  # another pass or process sent it first
                await s.rollback()
                continue
        sent += 1
        log.info("deadline reminder sent: meeting %s, %s due %s (%s days)", m.id, d.kind, d.due, due.days)
    return sent


FIRST_PASS_SECONDS = 60  # after start-up, before the first pass (start-up stays quick)


async def _loop(app: web.Application) -> None:
    cfg = app[CONFIG]
    await asyncio.sleep(min(FIRST_PASS_SECONDS, cfg.deadlines.check_seconds))
    while True:
        try:
            await send_reminders(app[DB], app.get(MAILER), cfg.tz, cfg.deadlines.reminder_days)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("deadline reminders failed; trying again later")
        await asyncio.sleep(cfg.deadlines.check_seconds)


def setup(app: web.Application) -> None:
    """setup: run the reminders in the background while the app runs (after the database is open)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(_loop(app))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(ctx)
