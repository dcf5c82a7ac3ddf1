"""server.reports.headcount: how many teachers each classroom says were present at a meeting (and optionally who).

A classroom account invited to a published meeting enters its headcount during or after the meeting:
from 30 minutes before the start (when the room opens) until `EDIT_DAYS` days after the end. Operators
may enter or correct it for any invited classroom at any time. Rules (`HeadcountIn`):
- 0 ≤ count ≤ 500;
- names are optional: at most 500, each at most 200 characters (blank lines dropped, spaces trimmed); a
  CSV list of names (`names_csv`: one name per line, or a column headed "name" / "họ tên" / "ho_ten")
  is added to them;
- the count may not be smaller than the number of names (every named teacher is present; people may be
  present without being named), so a count below the names is refused with 422.
Every write replaces the classroom's one row for the meeting and is audited. Trainers and leaders of the
meeting and operators read every classroom's headcount with the total; a classroom reads its own only.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.auth import Identity
from server.db.models import Classroom, Headcount, Meeting, MeetingStatus, Role, utcnow
from server.errors import ApiError
from server.inputs import Id

MAX_COUNT = 500
MAX_NAMES = 500
MAX_NAME = 200
EDIT_EARLY = dt.timedelta(minutes=30)
EDIT_DAYS = 30
NAME_HEADERS = {"name", "names", "ho_ten", "họ_tên", "ho ten", "họ tên", "tên", "ten", "full_name", "họ và tên"}
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_NAME)]


def parse_names_csv(text: str) -> list[str]:
    """parse_names_csv: names from CSV text: the column headed like "name" / "họ tên", else the first column."""
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count) if first.strip() else ","
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        return []
    column = 0
    header = [c.strip().lower() for c in rows[0]]
    for i, cell in enumerate(header):
        if cell in NAME_HEADERS or cell.replace(" ", "_") in NAME_HEADERS:
            column = i
            rows = rows[1:]
            break
    else:
        if header and header[0] in ("stt", "no", "#") and len(header) > 1:
            column, rows = 1, rows[1:]
    return [r[column].strip() for r in rows if len(r) > column and r[column].strip()]


class HeadcountIn(BaseModel):
    """HeadcountIn: teachers present (0–500), optionally their names (≤ 500, ≤ 200 characters each) or a CSV list.

    `classroom_id` is for operators entering a classroom's figure; a classroom account enters its own.
    """

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    count: int = Field(ge=0, le=MAX_COUNT)
    names: list[Name] = Field(default_factory=list, max_length=MAX_NAMES)
    names_csv: str = Field(default="", max_length=MAX_NAMES * (MAX_NAME + 2))
    classroom_id: Id | None = None

    @model_validator(mode="after")
    def _check(self) -> HeadcountIn:
        names = [n for n in self.names if n]
        if self.names_csv.strip():
            names += parse_names_csv(self.names_csv)
        if any(len(n) > MAX_NAME for n in names):
            raise ValueError(f"names: mỗi tên tối đa {MAX_NAME} ký tự / each name at most {MAX_NAME} characters")
        if len(names) > MAX_NAMES:
            raise ValueError(f"names: tối đa {MAX_NAMES} tên / at most {MAX_NAMES} names")
        if self.count < len(names):
            raise ValueError(f"count: sĩ số ({self.count}) nhỏ hơn số tên đã nhập ({len(names)}) / the count "
                             f"({self.count}) is smaller than the number of names ({len(names)})")
        self.names = names
        self.names_csv = ""
        return self


@dataclass(frozen=True)
class Entry:
    """Entry: one classroom's headcount at a meeting (count None: not entered yet)."""

    classroom_id: int
    code: str
    name: str
    count: int | None
    names: list[str]
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class Summary:
    """Summary: the headcounts of a meeting's classrooms, with the total and how many reported."""

    meeting_id: int
    total: int
    reported: int
    invited: int
    entries: list[Entry]


def may_read_all(ident: Identity) -> bool:
    """may_read_all: operators and presenters see every classroom's figure (the meeting is already visible)."""
    return ident.role in (Role.OPERATOR, Role.TRAINER, Role.LEADER)


def editable_window(meeting: Meeting) -> tuple[dt.datetime, dt.datetime]:
    """editable_window: when a classroom may enter its headcount: from the room's opening to EDIT_DAYS after."""
    return meeting.starts_at - EDIT_EARLY, meeting.ends_at + dt.timedelta(days=EDIT_DAYS)


def edit_problem(ident: Identity, meeting: Meeting, classroom_id: int | None,
                 now: dt.datetime | None = None) -> ApiError | None:
    """edit_problem: why `ident` may not enter a headcount for `classroom_id` now (None: it may)."""
    now = now or utcnow()
    invited = {c.id for c in meeting.classrooms}
    if ident.role == Role.CLASSROOM:
        if ident.classroom_id is None or classroom_id not in (None, ident.classroom_id):
            return ApiError(403, "forbidden", "Lớp học chỉ nhập sĩ số của mình. / A classroom enters its own "
                                              "headcount only.")
        classroom_id = ident.classroom_id
    elif ident.role != Role.OPERATOR:
        return ApiError(403, "forbidden", "Vai trò của bạn không được phép làm việc này. / Your role may not do this.")
    if classroom_id is None:
        return ApiError(422, "invalid", "classroom_id: cần chọn lớp học / choose a classroom", field="classroom_id")
    if classroom_id not in invited:
        return ApiError(422, "invalid", "classroom_id: lớp học không được mời vào buổi tập huấn này / the classroom is "
                                        "not invited to this meeting", field="classroom_id")
    if meeting.status != MeetingStatus.PUBLISHED:
        return ApiError(409, "not-published", "Buổi tập huấn chưa công bố hoặc đã huỷ. / The meeting is not published "
                                              "or was cancelled.")
    if ident.role == Role.CLASSROOM:
        opens, closes = editable_window(meeting)
        if now < opens:
            return ApiError(409, "too-early", "Chưa đến giờ nhập sĩ số (mở 30 phút trước giờ bắt đầu). / The "
                                              "headcount opens 30 minutes before the start.")
        if now > closes:
            return ApiError(409, "closed", f"Đã hết hạn nhập sĩ số ({EDIT_DAYS} ngày sau buổi tập huấn). / "
                                           f"The headcount closed {EDIT_DAYS} days after the meeting.")
    return None


async def save(s: AsyncSession, request: web.Request | None, ident: Identity, meeting: Meeting,
               data: HeadcountIn, now: dt.datetime | None = None) -> Headcount:
    """save: check and store a classroom's headcount (replacing an earlier one; audited; caller commits)."""
    problem = edit_problem(ident, meeting, data.classroom_id, now)
    if problem is not None:
        raise problem
    classroom_id = ident.classroom_id if ident.role == Role.CLASSROOM else data.classroom_id
    assert classroom_id is not None
    row = await s.scalar(select(Headcount).where(Headcount.meeting_id == meeting.id,
                                                 Headcount.classroom_id == classroom_id))
    before = row.count if row is not None else None
    if row is None:
        row = Headcount(meeting_id=meeting.id, classroom_id=classroom_id, count=data.count)
        s.add(row)
    row.count = data.count
    row.names = list(data.names)
    row.updated_at = now or utcnow()
    row.updated_by = ident.user_id
    audit.record(s, request, "headcount.save", f"meeting:{meeting.id}", classroom_id=classroom_id,
                 count=data.count, names=len(data.names), before=before)
    await s.flush()
    return row


async def summary(s: AsyncSession, ident: Identity, meeting: Meeting) -> Summary:
    """summary: the meeting's headcounts as `ident` may see them (a classroom: its own row only)."""
    rooms = sorted(meeting.classrooms, key=lambda c: c.code)
    if not may_read_all(ident):
        rooms = [c for c in rooms if c.id == ident.classroom_id]
    rows = {h.classroom_id: h for h in (await s.scalars(select(Headcount).where(
        Headcount.meeting_id == meeting.id))).all()}
    extra = [cid for cid in rows if cid not in {c.id for c in meeting.classrooms}]
    if extra and may_read_all(ident):
        rooms += list((await s.scalars(select(Classroom).where(Classroom.id.in_(extra)))).all())
    entries = []
    for c in rooms:
        h = rows.get(c.id)
        entries.append(Entry(c.id, c.code, c.name, h.count if h else None, list(h.names) if h else [],
                             h.updated_at if h else None))
    reported = [e for e in entries if e.count is not None]
    return Summary(meeting.id, sum(e.count or 0 for e in reported), len(reported), len(entries), entries)
