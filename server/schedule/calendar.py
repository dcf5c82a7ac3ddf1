"""server.schedule.calendar: month and week views of the meetings each role may see, and the iCalendar feed.

A calendar shows the meetings its owner sees (`server.schedule.visibility`, the rule the API, the pages and the
live room use too): drafts (to operators and to their presenters) are marked as such.

The feed (`/api/v1/calendar/feed/{token}.ics`) is reached by a secret URL: a random token per account
(`CalendarFeed`), regenerable by its owner, so calendar apps can subscribe without a login cookie.
Events carry a stable UID per meeting, local times with their TZID (and a VTIMEZONE), the live-room URL
as LOCATION, SEQUENCE from `Meeting.sequence`, and STATUS CONFIRMED, TENTATIVE (drafts) or CANCELLED.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server.auth import Identity
from server.db.models import (
    CalendarFeed,
    Meeting,
    MeetingStatus,
    User,
    utcnow,
)
from server.schedule.visibility import visible

View = Literal["month", "week"]
FEED_PAST = dt.timedelta(days=90)
FEED_FUTURE = dt.timedelta(days=400)
MONTHS_VI = ("Tháng 1", "Tháng 2", "Tháng 3", "Tháng 4", "Tháng 5", "Tháng 6", "Tháng 7", "Tháng 8", "Tháng 9",
             "Tháng 10", "Tháng 11", "Tháng 12")


async def meetings_between(s: AsyncSession, ident: Identity, start: dt.datetime, end: dt.datetime,
                           limit: int = 2000) -> list[Meeting]:
    """meetings_between: the calendar meetings of `ident` overlapping [start, end), by start time."""
    q = (visible(select(Meeting), ident)
         .options(selectinload(Meeting.program), selectinload(Meeting.presenters))
         .where(Meeting.ends_at > start, Meeting.starts_at < end)
         .order_by(Meeting.starts_at, Meeting.id).limit(limit))
    return list((await s.scalars(q)).all())


# --- month and week views -------------------------------------------------------------------------

@dataclass
class Day:
    """Day: one day cell of a calendar view with the meetings on it (a meeting over midnight is on both days)."""

    date: dt.date
    in_range: bool
    is_today: bool
    meetings: list[Meeting] = field(default_factory=list)


@dataclass
class CalendarView:
    """CalendarView: a month (whole weeks, Monday first) or a week of days, with navigation anchors."""

    view: View
    anchor: dt.date
    today: dt.date
    days: list[Day]
    prev: dt.date
    next: dt.date

    @property
    def weeks(self) -> list[list[Day]]:
        """CalendarView.weeks: the days in rows of seven."""
        return [self.days[i:i + 7] for i in range(0, len(self.days), 7)]

    @property
    def first(self) -> dt.date:
        """CalendarView.first: the first day shown."""
        return self.days[0].date

    @property
    def last(self) -> dt.date:
        """CalendarView.last: the last day shown."""
        return self.days[-1].date

    @property
    def count(self) -> int:
        """CalendarView.count: how many meetings are in the period (each once)."""
        return len({m.id for d in self.days if d.in_range for m in d.meetings})


def monday(day: dt.date) -> dt.date:
    """monday: the Monday of `day`'s week."""
    return day - dt.timedelta(days=day.weekday())


def _add_months(day: dt.date, n: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def span(view: View, anchor: dt.date) -> tuple[dt.date, dt.date, dt.date, dt.date]:
    """span: (first day shown, last day shown, previous anchor, next anchor) of a view around `anchor`."""
    if view == "week":
        first = monday(anchor)
        return first, first + dt.timedelta(days=6), first - dt.timedelta(days=7), first + dt.timedelta(days=7)
    month_start = anchor.replace(day=1)
    month_end = _add_months(month_start, 1) - dt.timedelta(days=1)
    first = monday(month_start)
    last = monday(month_end) + dt.timedelta(days=6)
    return first, last, _add_months(month_start, -1), _add_months(month_start, 1)


def local_bounds(first: dt.date, last: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """local_bounds: local midnight of `first` and of the day after `last`, as aware datetimes."""
    return (dt.datetime.combine(first, dt.time(), tzinfo=tz),
            dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz))


async def build_view(s: AsyncSession, ident: Identity, view: View, anchor: dt.date, today: dt.date,
                     tz: ZoneInfo) -> CalendarView:
    """build_view: the month or week around `anchor` with the meetings `ident` may see on each local day."""
    first, last, prev, nxt = span(view, anchor)
    start, end = local_bounds(first, last, tz)
    meetings = await meetings_between(s, ident, start, end)
    days = []
    day = first
    while day <= last:
        in_range = view == "week" or day.month == anchor.month
        days.append(Day(day, in_range, day == today))
        day += dt.timedelta(days=1)
    by_date = {d.date: d for d in days}
    for m in meetings:
        d0 = m.starts_at.astimezone(tz).date()
        d1 = (m.ends_at - dt.timedelta(microseconds=1)).astimezone(tz).date()
        day = max(d0, first)
        while day <= min(d1, last):
            by_date[day].meetings.append(m)
            day += dt.timedelta(days=1)
    return CalendarView(view, anchor, today, days, prev, nxt)


def parse_anchor(value: str | None, today: dt.date) -> dt.date:
    """parse_anchor: ?date=YYYY-MM-DD (or YYYY-MM) as a date; today when missing or wrong."""
    value = (value or "").strip()
    try:
        if len(value) == 7:
            return dt.date.fromisoformat(value + "-01")
        return dt.date.fromisoformat(value) if value else today
    except ValueError:
        return today


# --- the secret feed URL --------------------------------------------------------------------------

async def feed_token(s: AsyncSession, user_id: int, *, regenerate: bool = False) -> str:
    """feed_token: the account's feed token, made on first use; `regenerate` replaces it (old URL stops working)."""
    row = await s.get(CalendarFeed, user_id)
    if row is not None and not regenerate:
        return row.token
    if row is not None:
        await s.execute(delete(CalendarFeed).where(CalendarFeed.user_id == user_id))
    token = secrets.token_urlsafe(32)
    s.add(CalendarFeed(user_id=user_id, token=token, created_at=utcnow()))
    await s.flush()
    return token


async def feed_user(s: AsyncSession, token: str) -> User | None:
    """feed_user: the active account a feed token belongs to, or None."""
    if not token or len(token) > 64:
        return None
    row = await s.scalar(select(CalendarFeed).where(CalendarFeed.token == token))
    if row is None:
        return None
    user = await s.get(User, row.user_id)
    if user is None or user.disabled or not secrets.compare_digest(row.token, token):
        return None
    return user


def identity_of(user: User) -> Identity:
    """identity_of: the Identity a feed is built for (the account's role and classroom)."""
    return Identity(login_id="feed", role=user.role, csrf_token="", user_id=user.id, username=user.username,
                    display_name=user.display_name, classroom_id=user.classroom_id, language=user.language)


# --- iCalendar ------------------------------------------------------------------------------------

def uid_host(public_url: str) -> str:
    """uid_host: the host part of event UIDs (the public URL's host, else "taphuan")."""
    return urlsplit(public_url).hostname or "taphuan"


def _status(m: Meeting) -> str:
    return {MeetingStatus.PUBLISHED: "CONFIRMED", MeetingStatus.CANCELLED: "CANCELLED"}.get(m.status, "TENTATIVE")


def event_of(m: Meeting, tz: ZoneInfo, base_url: str, host: str, now: dt.datetime) -> Event:
    """event_of: a meeting as a VEVENT (program and presenters loaded)."""
    url = f"{base_url.rstrip('/')}/live/{m.id}"
    ev = Event()
    ev.add("uid", f"meeting-{m.id}@{host}")
    ev.add("dtstamp", now.astimezone(dt.UTC))
    ev.add("dtstart", m.starts_at.astimezone(tz))
    ev.add("dtend", m.ends_at.astimezone(tz))
    title = m.title if m.status != MeetingStatus.CANCELLED else f"[Đã huỷ / Cancelled] {m.title}"
    ev.add("summary", title)
    ev.add("location", url)
    ev.add("url", url)
    lines = [f"Chương trình / Program: {m.program.title}"]
    if m.presenters:
        lines.append("Trình bày / Presenters: " + ", ".join(u.display_name or u.username for u in m.presenters))
    lines.append(f"Phòng trực tuyến / Live room: {url}")
    if m.description:
        lines += ["", m.description]
    ev.add("description", "\n".join(lines))
    ev.add("sequence", m.sequence or 0)
    ev.add("status", _status(m))
    ev.add("created", m.created_at.astimezone(dt.UTC))
    ev.add("last-modified", (m.updated_at or m.created_at).astimezone(dt.UTC))
    ev.add("categories", ["Hội nghị vùng" if m.kind.value == "regional" else "Bài giảng"])
    return ev


def ics_document(meetings: list[Meeting], tz: ZoneInfo, base_url: str, host: str, name: str,
                 now: dt.datetime | None = None) -> bytes:
    """ics_document: an iCalendar file (VCALENDAR with a VTIMEZONE and one VEVENT per meeting)."""
    now = now or utcnow()
    cal = Calendar()
    cal.add("prodid", "-//Taphuan//Lich tap huan truc tuyen//VI")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", tz.key)
    cal.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", "PT1H")
    for m in meetings:
        cal.add_component(event_of(m, tz, base_url, host, now))
    if meetings:
        cal.add_missing_timezones()
    return bytes(cal.to_ical())


async def feed_for(s: AsyncSession, user: User, tz: ZoneInfo, base_url: str, host: str,
                   now: dt.datetime | None = None) -> bytes:
    """feed_for: the iCalendar feed of an account: its calendar meetings from 90 days ago to 400 days ahead."""
    now = now or utcnow()
    meetings = await meetings_between(s, identity_of(user), now - FEED_PAST, now + FEED_FUTURE)
    return ics_document(meetings, tz, base_url, host, f"Taphuan – {user.display_name or user.username}", now)
