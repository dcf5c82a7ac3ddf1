"""server.schedule.ending: the end of a meeting as it is stored: ended for everyone, extended, overrunning.

A meeting *ends* once (`mark_ended`): a presenter or an operator ended it for everyone, or it ran past its
scheduled end by `meetings.overrun_minutes` (`reason` "overrun", no author); not before its room opens to invitees
(`check_endable`: 409 `not-started`). `Meeting.ended_at` then holds the real end; an ended meeting is no longer
live or joinable (`server.schedule.meetings.is_live`, `is_joinable`), its live room refuses `join`, and it books
nothing after its real end (`server.schedule.rules.find_conflicts`).

An *extension* (`extend`) moves the scheduled end later, from the scheduled end or from now when that has passed,
by 1 to `MAX_EXTENSION_MINUTES` minutes: the same overlap rule as scheduling applies to the longer meeting (a
published meeting may not run into another booking of its presenters, leaders or classrooms: 409 `overlap`), and
an ended or cancelled meeting cannot be extended (409 `ended`, `cancelled`). It bumps the iCalendar SEQUENCE.
Both write an AuditEntry in the caller's transaction (`meeting.end`, `meeting.extend`); callers commit.

The live side (server.live.ending) warns presenters at the scheduled end (`overdue_at`) and ends what
`overrunning` lists.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server import audit
from server.db.models import Meeting, MeetingStatus
from server.errors import ApiError
from server.schedule import rules
from server.schedule.meetings import JOIN_EARLY

MAX_EXTENSION_MINUTES = 120
EndReason = Literal["ended", "overrun"]
ENDED_MESSAGE = "Buổi tập huấn đã kết thúc. / The meeting has ended."


def auto_end_at(meeting: Meeting, overrun_minutes: float) -> dt.datetime:
    """auto_end_at: when a meeting still running ends by itself: its scheduled end plus the overrun."""
    return meeting.ends_at + dt.timedelta(minutes=overrun_minutes)


def check_endable(meeting: Meeting, now: dt.datetime) -> None:
    """check_endable: 409 `not-started` before the meeting's room opens to its invitees (`JOIN_EARLY` before the
    start): presenters preparing the room days ahead must not end tomorrow's meeting (they leave instead)."""
    if meeting.ended_at is None and now < meeting.starts_at - JOIN_EARLY:
        raise ApiError(409, "not-started", "Buổi tập huấn chưa bắt đầu nên chưa thể kết thúc. / The meeting has not "
                                           "started: it cannot be ended yet.")


def mark_ended(s: AsyncSession, meeting: Meeting, now: dt.datetime, by: int | None, reason: EndReason) -> bool:
    """mark_ended: store that the meeting ended at `now` (by `by`, None: the server); False when it had already
    ended (nothing changes: the first end stays)."""
    if meeting.ended_at is not None:
        return False
    meeting.ended_at = now
    meeting.ended_by = by
    audit.record(s, None, "meeting.end", f"meeting:{meeting.id}", actor_id=by, reason=reason,
                 scheduled_end=meeting.ends_at.isoformat())
    return True


async def extend(s: AsyncSession, meeting_id: int, minutes: int, now: dt.datetime, by: int | None,
                 tz: ZoneInfo) -> Meeting:
    """extend: move the meeting's scheduled end `minutes` later (from now when it has passed); 422 `invalid` for
    minutes out of 1..MAX_EXTENSION_MINUTES, 404, 409 `ended` / `cancelled` / `overlap` (see the module doc)."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_EXTENSION_MINUTES:
        raise ApiError(422, "invalid", f"minutes: từ 1 đến {MAX_EXTENSION_MINUTES} phút / 1 to "
                                       f"{MAX_EXTENSION_MINUTES} minutes", field="minutes")
    meeting = await s.scalar(select(Meeting).where(Meeting.id == meeting_id).options(
        selectinload(Meeting.presenters), selectinload(Meeting.classrooms), selectinload(Meeting.provinces)))
    if meeting is None:
        raise ApiError(404, "not-found", "Không có buổi tập huấn này. / No such meeting.")
    if meeting.ended_at is not None:
        raise ApiError(409, "ended", "Buổi tập huấn đã kết thúc, không thể gia hạn. / The meeting has ended: it "
                                     "cannot be extended.")
    if meeting.status == MeetingStatus.CANCELLED:
        raise ApiError(409, "cancelled", "Buổi tập huấn đã bị huỷ. / The meeting was cancelled.")
    new_end = max(meeting.ends_at, now) + dt.timedelta(minutes=minutes)
    if meeting.status == MeetingStatus.PUBLISHED:  # drafts book nothing (server.schedule.rules)
        plan = rules.Plan.of(meeting)
        plan.ends_at = new_end
        conflicts = await rules.find_conflicts(s, plan)
        if conflicts:
            error = rules.conflict_error(conflicts, tz)  # the scheduling rule's 409 `overlap`, its conflicts listed
            vi = "; ".join(c.text(tz, "vi") for c in conflicts)
            en = "; ".join(c.text(tz, "en") for c in conflicts)
            error.message = (f"Không thể gia hạn đến {new_end.astimezone(tz):%H:%M}: {vi}. / Cannot extend to "
                             f"{new_end.astimezone(tz):%H:%M}: {en}.")
            raise error
    before = meeting.ends_at
    meeting.ends_at = new_end
    meeting.sequence = (meeting.sequence or 0) + 1
    meeting.updated_at = now
    audit.record(s, None, "meeting.extend", f"meeting:{meeting.id}", actor_id=by, minutes=minutes,
                 ends_at_before=before.isoformat(), ends_at=new_end.isoformat())
    return meeting


async def among(s: AsyncSession, meeting_ids: Collection[int]) -> list[Meeting]:
    """among: the meetings of `meeting_ids` (those with an open live room), ended or not."""
    if not meeting_ids:
        return []
    return list((await s.scalars(select(Meeting).where(Meeting.id.in_(list(meeting_ids))))).all())


def overdue(meeting: Meeting, now: dt.datetime) -> bool:
    """overdue: a meeting not ended whose scheduled end has passed (its presenters are warned)."""
    return meeting.ended_at is None and meeting.ends_at <= now


def overrunning(meeting: Meeting, now: dt.datetime, overrun_minutes: float) -> bool:
    """overrunning: a meeting not ended that ran past its scheduled end plus the overrun (it ends by itself)."""
    return meeting.ended_at is None and auto_end_at(meeting, overrun_minutes) <= now
