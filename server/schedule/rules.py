"""server.schedule.rules: the scheduling rules: 10-day publication notice, no overlaps, regional-meeting deadlines.

Publication (enforced by `server.schedule.meetings.change_status` and `update_meeting`):

- A meeting may be published only if it starts at least `NOTICE_DAYS` (10) calendar days later, counted
  on local dates in the configured timezone: publishing on 1 March allows a meeting on 11 March at any
  hour, not one on 10 March at 23:00. An operator may override with a written reason (kept on the
  meeting and in the audit log). A meeting that has already ended cannot be published at all.
- No overlaps: a meeting may not double-book a presenter or a classroom, and two regional meetings may
  not overlap when they share a province (or a leader/presenter or a classroom). Only *published*
  meetings take part: a draft books nothing, so the check runs when a meeting is published and on every
  edit of a published meeting; a draft's conflicts are shown as warnings. Cancelled meetings never
  conflict, and a meeting that ended early (server.schedule.ending) books nothing after its real end.
  Intervals are half-open: a meeting ending at 10:00 and one starting at 10:00 do not overlap.
  Overlaps cannot be overridden.

Deadlines of a regional meeting (local dates, inclusive): the region's plan and joint report are due
`DEADLINE_DAYS` (15) days before the day it starts; the result report within 15 days after the day it
ends. A document is *received* once one file of its kind is attached, else *due* until its day has
passed, then *overdue*.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server.db.models import Classroom, Meeting, MeetingKind, MeetingStatus, Role, Unit, User
from server.errors import ApiError

NOTICE_DAYS = 10
DEADLINE_DAYS = 15
OVERRIDE_MIN_CHARS = 10
DOCUMENT_KINDS = ("plan", "joint_report", "result_report")
DocumentKind = Literal["plan", "joint_report", "result_report"]
DeadlineState = Literal["due", "overdue", "received"]
WEEKDAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --- the 10-day rule ------------------------------------------------------------------------------

def earliest_start_day(now: dt.datetime, tz: ZoneInfo) -> dt.date:
    """earliest_start_day: the first local date a meeting published at `now` may start on."""
    return now.astimezone(tz).date() + dt.timedelta(days=NOTICE_DAYS)


def last_publish_day(starts_at: dt.datetime, tz: ZoneInfo) -> dt.date:
    """last_publish_day: the last local date a meeting starting at `starts_at` may be published without override."""
    return starts_at.astimezone(tz).date() - dt.timedelta(days=NOTICE_DAYS)


def notice_ok(starts_at: dt.datetime, now: dt.datetime, tz: ZoneInfo) -> bool:
    """notice_ok: does a meeting starting at `starts_at` give the 10 days' notice when published at `now`?"""
    return starts_at.astimezone(tz).date() >= earliest_start_day(now, tz)


def clean_reason(reason: str | None) -> str:
    """clean_reason: an override reason, stripped (422 when given but shorter than 10 characters)."""
    text = (reason or "").strip()
    if text and len(text) < OVERRIDE_MIN_CHARS:
        raise ApiError(422, "invalid", f"override_reason: hãy ghi lý do rõ ràng (ít nhất {OVERRIDE_MIN_CHARS} ký tự) / "
                                       f"write a clear reason (at least {OVERRIDE_MIN_CHARS} characters)",
                       field="override_reason")
    if len(text) > 2000:
        raise ApiError(422, "invalid", "override_reason: lý do quá dài / the reason is too long",
                       field="override_reason")
    return text


def check_notice(starts_at: dt.datetime, ends_at: dt.datetime, now: dt.datetime, tz: ZoneInfo,
                 reason: str) -> bool:
    """check_notice: apply the 10-day rule; True when the (clean) override `reason` was needed and used.

    409 `ended` for a meeting that is over; 409 `too-soon` when notice is short and no reason is given.
    """
    if ends_at <= now:
        raise ApiError(409, "ended", "Buổi tập huấn đã kết thúc, không thể công bố. / "
                                     "The meeting is over: it cannot be published.")
    if notice_ok(starts_at, now, tz):
        return False
    if reason:
        return True
    first = earliest_start_day(now, tz)
    last = last_publish_day(starts_at, tz)
    raise ApiError(409, "too-soon",
                   f"Phải công bố trước ít nhất {NOTICE_DAYS} ngày: buổi tập huấn ngày "
                   f"{starts_at.astimezone(tz):%d/%m/%Y} phải công bố chậm nhất ngày {last:%d/%m/%Y} "
                   f"(công bố hôm nay thì chỉ xếp được từ ngày {first:%d/%m/%Y}). Muốn công bố vẫn cần ghi lý do. / "
                   f"Meetings must be published at least {NOTICE_DAYS} days ahead: a meeting on "
                   f"{starts_at.astimezone(tz):%d/%m/%Y} had to be published by {last:%d/%m/%Y} (today allows "
                   f"{first:%d/%m/%Y} onwards). To publish anyway, give a reason.",
                   field="override_reason", earliest_day=first.isoformat(), last_publish_day=last.isoformat())


# --- overlaps -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shared:
    """Shared: one thing two meetings both use: a province, a leader, a trainer or a classroom."""

    kind: Literal["province", "leader", "trainer", "classroom"]
    id: int
    name: str

    def text(self, lang: str) -> str:
        """Shared.text: "trùng tỉnh Lào Cai" / "same province Lào Cai"."""
        vi = {"province": "trùng tỉnh", "leader": "trùng lãnh đạo", "trainer": "trùng giảng viên",
              "classroom": "trùng phòng học"}
        en = {"province": "same province", "leader": "same leader", "trainer": "same trainer",
              "classroom": "same classroom"}
        return f"{(vi if lang == 'vi' else en)[self.kind]} {self.name}"


@dataclass(frozen=True)
class Conflict:
    """Conflict: another published meeting that overlaps in time and shares something."""

    meeting_id: int
    title: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    shared: tuple[Shared, ...]

    def when(self, tz: ZoneInfo, lang: str) -> str:
        """Conflict.when: "Thứ Hai 10/03/2030 08:00–10:00" in the configured timezone."""
        start, end = self.starts_at.astimezone(tz), self.ends_at.astimezone(tz)
        day = (WEEKDAYS_VI if lang == "vi" else WEEKDAYS_EN)[start.weekday()]
        tail = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%d/%m/%Y %H:%M}"
        return f"{day} {start:%d/%m/%Y %H:%M}–{tail}"

    def text(self, tz: ZoneInfo, lang: str) -> str:
        """Conflict.text: the other meeting, its time and what is shared, in one language."""
        shared = ", ".join(s.text(lang) for s in self.shared)
        if lang == "vi":
            return f"trùng giờ với “{self.title}” ({self.when(tz, lang)}): {shared}"
        return f"overlaps “{self.title}” ({self.when(tz, lang)}): {shared}"


@dataclass
class Plan:
    """Plan: the facts of a meeting the overlap rule looks at (a saved meeting or one about to be saved)."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    kind: MeetingKind
    presenters: Sequence[User] = field(default_factory=list)
    classrooms: Sequence[Classroom] = field(default_factory=list)
    provinces: Sequence[Unit] = field(default_factory=list)
    meeting_id: int | None = None

    @classmethod
    def of(cls, m: Meeting) -> Plan:
        """Plan.of: a loaded meeting (presenters, classrooms and provinces loaded)."""
        return cls(m.starts_at, m.ends_at, m.kind, list(m.presenters), list(m.classrooms), list(m.provinces), m.id)


def _classroom_name(c: Classroom) -> str:
    return f"{c.code} {c.name}".strip()


def shared_between(plan: Plan, other: Meeting) -> tuple[Shared, ...]:
    """shared_between: what `plan` and `other` both use, by the rules (provinces only between regional meetings)."""
    out: list[Shared] = []
    if plan.kind == MeetingKind.REGIONAL and other.kind == MeetingKind.REGIONAL:
        theirs = {u.id for u in other.provinces}
        out += [Shared("province", u.id, u.name) for u in plan.provinces if u.id in theirs]
    theirs = {u.id for u in other.presenters}
    out += [Shared("leader" if u.role == Role.LEADER else "trainer", u.id, u.display_name or u.username)
            for u in plan.presenters if u.id in theirs]
    theirs = {c.id for c in other.classrooms}
    out += [Shared("classroom", c.id, _classroom_name(c)) for c in plan.classrooms if c.id in theirs]
    return tuple(out)


async def find_conflicts(s: AsyncSession, plan: Plan) -> list[Conflict]:
    """find_conflicts: the published meetings overlapping `plan` in time that share something with it."""
    q = (select(Meeting)
         .options(selectinload(Meeting.presenters), selectinload(Meeting.classrooms), selectinload(Meeting.provinces))
         .where(Meeting.status == MeetingStatus.PUBLISHED, Meeting.starts_at < plan.ends_at,
                func.coalesce(Meeting.ended_at, Meeting.ends_at) > plan.starts_at)  # ended: books up to its real end
         .order_by(Meeting.starts_at, Meeting.id))
    if plan.meeting_id is not None:
        q = q.where(Meeting.id != plan.meeting_id)
    out = []
    for other in (await s.scalars(q)).all():
        shared = shared_between(plan, other)
        if shared:
            out.append(Conflict(other.id, other.title, other.starts_at, other.ends_at, shared))
    return out


def conflict_error(conflicts: Sequence[Conflict], tz: ZoneInfo) -> ApiError:
    """conflict_error: 409 `overlap` naming every other meeting and what is shared (Vietnamese / English)."""
    vi = "; ".join(c.text(tz, "vi") for c in conflicts)
    en = "; ".join(c.text(tz, "en") for c in conflicts)
    details = [{"meeting_id": c.meeting_id, "title": c.title, "starts_at": c.starts_at.astimezone(tz).isoformat(),
                "ends_at": c.ends_at.astimezone(tz).isoformat(),
                "shared": [{"kind": x.kind, "id": x.id, "name": x.name} for x in c.shared]} for c in conflicts]
    return ApiError(409, "overlap", f"Lịch bị trùng: {vi}. / Schedule conflict: {en}.", conflicts=details)


async def check_overlaps(s: AsyncSession, plan: Plan, tz: ZoneInfo) -> None:
    """check_overlaps: 409 `overlap` when `plan` conflicts with a published meeting."""
    conflicts = await find_conflicts(s, plan)
    if conflicts:
        raise conflict_error(conflicts, tz)


# --- deadlines ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Deadline:
    """Deadline: one document a regional meeting expects, its due day and its state on a given day."""

    meeting_id: int
    kind: DocumentKind
    due: dt.date
    state: DeadlineState
    received_at: dt.datetime | None = None
    late: bool = False
    days_left: int = 0


def due_day(kind: DocumentKind, starts_at: dt.datetime, ends_at: dt.datetime, tz: ZoneInfo) -> dt.date:
    """due_day: the last local date `kind` may arrive: start day − 15 (plan, joint report), end day + 15 (result)."""
    if kind == "result_report":
        return ends_at.astimezone(tz).date() + dt.timedelta(days=DEADLINE_DAYS)
    return starts_at.astimezone(tz).date() - dt.timedelta(days=DEADLINE_DAYS)


def deadline_state(due: dt.date, today: dt.date, received_at: dt.datetime | None) -> DeadlineState:
    """deadline_state: received when a file is there, else due until `due` has passed, then overdue."""
    if received_at is not None:
        return "received"
    return "overdue" if today > due else "due"


def deadlines_of(m: Meeting, received: dict[str, dt.datetime], today: dt.date, tz: ZoneInfo) -> list[Deadline]:
    """deadlines_of: the three deadlines of a regional meeting (`received`: kind → first upload time)."""
    out = []
    for kind in DOCUMENT_KINDS:
        due = due_day(kind, m.starts_at, m.ends_at, tz)  # type: ignore[arg-type]
        got = received.get(kind)
        state = deadline_state(due, today, got)
        late = got is not None and got.astimezone(tz).date() > due
        out.append(Deadline(m.id, kind, due, state, got, late, (due - today).days))  # type: ignore[arg-type]
    return out


def today_in(tz: ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    """today_in: the local date now (or at `now`) in the configured timezone."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(tz).date()


def names(items: Iterable[Shared]) -> list[str]:
    """names: the names of shared things (for tests and logs)."""
    return [i.name for i in items]
