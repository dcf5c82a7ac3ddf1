"""server.schedule.meetings: programs and meetings: validation, reading (who sees what: `server.schedule.visibility`),
writes and status changes.

Every write goes through a function here (API and pages both call them), so later rules hook in one
place:
- `check_meeting(s, data, meeting)` validates a meeting's fields (end after start, presenters are
  trainers or leaders, classrooms and provinces exist) before create and update.
- `check_publication(s, meeting, ...)` runs before a meeting becomes published: a regional meeting needs
  a leader, then the rules of `server.schedule.rules`: 10 days' notice (overridable with a written reason) and
  no overlap with another published meeting. Every reason written is kept (`override_history`: who, when, for
  publishing or for an edit); the meeting's `publish_override_*` columns hold the last one.
- `update_meeting` re-checks both rules when a *published* meeting is edited (notice only when its time
  changes or someone is newly invited) and notifies everyone invited before or after the edit.
- `change_status(s, request, meeting, status)` is the single place a meeting's status changes
  (`publish_meeting`, `unpublish_meeting`, `cancel_meeting` call it); it notifies the invitees.
Drafts book nothing: their conflicts are only warnings (`draft_conflicts`). Every change that matters to
a calendar bumps `Meeting.sequence` (iCalendar SEQUENCE). Writes record an AuditEntry in the same
transaction; callers commit.

Times are stored in UTC; `to_local` / `parse_local` convert from and to the configured timezone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server import audit
from server.auth import Identity, identity
from server.config import CONFIG, Config
from server.db.models import (
    PRESENTER_ROLES,
    Classroom,
    Meeting,
    MeetingKind,
    MeetingStatus,
    OverrideReason,
    Program,
    Role,
    Unit,
    UnitLevel,
    User,
    utcnow,
)
from server.errors import ApiError
from server.inputs import Id
from server.schedule import notifications
from server.schedule import rules as schedule
from server.schedule.visibility import visible

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=10000)]
VideoCodec = Literal["VP8", "H264"]
MEETING_READERS = (Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM)
JOIN_EARLY = dt.timedelta(minutes=30)
DEFAULT_TZ = Config().tz
TIME_FIELDS = ("starts_at", "ends_at")


class ProgramIn(BaseModel):
    """ProgramIn: the fields of a new program."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    title: Title
    description: Text = ""


class ProgramPatch(BaseModel):
    """ProgramPatch: the program fields to change (omitted fields stay)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    title: Title | None = None
    description: Text | None = None


class MeetingIn(BaseModel):
    """MeetingIn: the fields of a meeting (times are ISO 8601 with an offset)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    program_id: Id
    title: Title
    description: Text = ""
    kind: MeetingKind = MeetingKind.LECTURE
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    presenter_ids: list[Id] = Field(default_factory=list, max_length=100)
    classroom_ids: list[Id] = Field(default_factory=list, max_length=5000)
    province_ids: list[Id] = Field(default_factory=list, max_length=100)
    video_codec: VideoCodec = "VP8"
    record: bool = True


class MeetingPatch(BaseModel):
    """MeetingPatch: the meeting fields to change (omitted fields stay)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    program_id: Id | None = None
    title: Title | None = None
    description: Text | None = None
    kind: MeetingKind | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    presenter_ids: list[Id] | None = Field(default=None, max_length=100)
    classroom_ids: list[Id] | None = Field(default=None, max_length=5000)
    province_ids: list[Id] | None = Field(default=None, max_length=100)
    video_codec: VideoCodec | None = None
    record: bool | None = None
    override_reason: str | None = Field(default=None, max_length=2000)


class PublishIn(BaseModel):
    """PublishIn: the optional body of a publish request: why the 10-day rule is overridden."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    override_reason: str | None = Field(default=None, max_length=2000)


def zone(request: web.Request | None) -> ZoneInfo:
    """zone: the configured timezone (the default one without a request, e.g. in scripts and tests)."""
    return request.app[CONFIG].tz if request is not None else DEFAULT_TZ


def _actor(request: web.Request | None, actor_id: int | None) -> int | None:
    if actor_id is not None:
        return actor_id
    ident = identity(request) if request is not None else None
    return ident.user_id if ident else None


def invalid(field: str, vi: str, en: str) -> ApiError:
    """invalid: a 422 error naming the wrong field (message Vietnamese / English)."""
    return ApiError(422, "invalid", f"{field}: {vi} / {en}", field=field)


def not_found() -> ApiError:
    """not_found: the 404 error for a program or meeting the caller may not see."""
    return ApiError(404, "not-found", "Không tìm thấy. / Not found.")


def validate(model: type[MeetingIn], data: dict[str, Any]) -> MeetingIn:
    """validate: `data` as a MeetingIn, or a 422 naming the first wrong field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(422, "invalid", f"{loc}: {err['msg']}", field=loc) from None


# --- time -----------------------------------------------------------------------------------------

def to_local(value: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """to_local: an aware datetime in the configured timezone."""
    return value.astimezone(tz)


def parse_local(value: str, tz: ZoneInfo, field: str) -> dt.datetime:
    """parse_local: a form's "YYYY-MM-DDTHH:MM" in the configured timezone, as an aware datetime."""
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid(field, "ngày giờ không hợp lệ", "not a valid date and time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed


def parse_bound(value: str, tz: ZoneInfo, field: str) -> dt.datetime:
    """parse_bound: a ?from= / ?to= filter: a date (local midnight) or a datetime (local when naive)."""
    value = value.strip().replace(" ", "+")
    if len(value) == 10:
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise invalid(field, "ngày không hợp lệ", "not a valid date") from None
        return dt.datetime.combine(day, dt.time(), tzinfo=tz)
    return parse_local(value, tz, field)


# --- reading --------------------------------------------------------------------------------------

def _loaded(q: Select[Any]) -> Select[Any]:
    return q.options(selectinload(Meeting.program), selectinload(Meeting.presenters),
                     selectinload(Meeting.classrooms), selectinload(Meeting.provinces))


def can_read_meetings(ident: Identity) -> bool:
    """can_read_meetings: operators, presenters and classrooms see meetings (`MEETING_READERS`); learners and guests
    not yet."""
    return ident.role in MEETING_READERS


async def list_meetings(s: AsyncSession, ident: Identity, *, start: dt.datetime | None = None,
                        end: dt.datetime | None = None, status: MeetingStatus | None = None,
                        program_id: int | None = None, limit: int = 500) -> list[Meeting]:
    """list_meetings: meetings visible to `ident` that overlap [start, end), by start time."""
    q = visible(_loaded(select(Meeting)), ident)
    if start is not None:
        q = q.where(Meeting.ends_at > start)
    if end is not None:
        q = q.where(Meeting.starts_at < end)
    if status is not None:
        q = q.where(Meeting.status == status)
    if program_id is not None:
        q = q.where(Meeting.program_id == program_id)
    q = q.order_by(Meeting.starts_at, Meeting.id).limit(limit)
    return list((await s.scalars(q)).all())


async def upcoming_meetings(s: AsyncSession, ident: Identity, limit: int = 20,
                            include_cancelled: bool = True) -> list[Meeting]:
    """upcoming_meetings: meetings visible to `ident` that have not ended yet."""
    q = visible(_loaded(select(Meeting)), ident).where(Meeting.ends_at > utcnow())
    if not include_cancelled:
        q = q.where(Meeting.status != MeetingStatus.CANCELLED)
    q = q.order_by(Meeting.starts_at, Meeting.id).limit(limit)
    return list((await s.scalars(q)).all())


async def meeting_by_id(s: AsyncSession, meeting_id: int | None) -> Meeting | None:
    """meeting_by_id: one meeting whoever asks (None for None or an unknown id): the operators' pages, which see
    every meeting, and the meeting a material or forum topic names."""
    return await s.get(Meeting, meeting_id) if meeting_id is not None else None


async def check_program_meeting(s: AsyncSession, program_id: int, meeting_id: int | None) -> None:
    """check_program_meeting: a 422 on `meeting_id` unless it is None or a meeting of the program (a material's or
    a quiz's meeting)."""
    if meeting_id is None:
        return
    meeting = await s.get(Meeting, meeting_id)
    if meeting is None or meeting.program_id != program_id:
        raise invalid("meeting_id", "buổi học không thuộc chương trình này", "the meeting is not in this program")


async def meetings_by_id(s: AsyncSession, ids: Collection[int]) -> dict[int, Meeting]:
    """meetings_by_id: the meetings of `ids` that exist, by id."""
    return {m.id: m for m in await s.scalars(select(Meeting).where(Meeting.id.in_(list(ids))))}


async def get_meeting(s: AsyncSession, ident: Identity, meeting_id: int) -> Meeting:
    """get_meeting: one meeting visible to `ident` (with program, presenters, classrooms, provinces), or 404."""
    meeting = await s.scalar(visible(_loaded(select(Meeting)), ident).where(Meeting.id == meeting_id))
    if meeting is None:
        raise not_found()
    return meeting


def is_joinable(meeting: Meeting, now: dt.datetime | None = None) -> bool:
    """is_joinable: published, not ended, and from 30 minutes before the start until the end."""
    now = now or utcnow()
    return (meeting.status == MeetingStatus.PUBLISHED and meeting.ended_at is None
            and meeting.starts_at - JOIN_EARLY <= now < meeting.ends_at)


def is_live(meeting: Meeting, now: dt.datetime | None = None) -> bool:
    """is_live: published, not ended (server.schedule.ending) and between its start and end."""
    now = now or utcnow()
    return (meeting.status == MeetingStatus.PUBLISHED and meeting.ended_at is None
            and meeting.starts_at <= now < meeting.ends_at)


async def list_programs(s: AsyncSession) -> list[tuple[Program, int]]:
    """list_programs: every program with its number of meetings, newest first."""
    counts = (select(Meeting.program_id, func.count(Meeting.id).label("n"))
              .group_by(Meeting.program_id).subquery())
    q = (select(Program, func.coalesce(counts.c.n, 0))
         .outerjoin(counts, counts.c.program_id == Program.id)
         .order_by(Program.created_at.desc(), Program.id.desc()))
    return [(p, int(n)) for p, n in (await s.execute(q)).all()]


async def get_program(s: AsyncSession, program_id: int) -> Program:
    """get_program: one program, or 404."""
    program = await s.get(Program, program_id)
    if program is None:
        raise not_found()
    return program


async def count_meetings(s: AsyncSession, program_id: int) -> int:
    """count_meetings: how many meetings a program has."""
    return int(await s.scalar(select(func.count(Meeting.id)).where(Meeting.program_id == program_id)) or 0)


async def presenter_choices(s: AsyncSession) -> list[User]:
    """presenter_choices: active trainers and leaders, by name."""
    q = (select(User).where(User.role.in_(list(PRESENTER_ROLES)), User.disabled.is_(False))
         .order_by(User.display_name, User.id))
    return list((await s.scalars(q)).all())


async def classroom_choices(s: AsyncSession) -> list[Classroom]:
    """classroom_choices: active classrooms with their unit, by code."""
    q = (select(Classroom).options(selectinload(Classroom.unit)).where(Classroom.active.is_(True))
         .order_by(Classroom.code))
    return list((await s.scalars(q)).all())


async def province_choices(s: AsyncSession, today: dt.date) -> list[Unit]:
    """province_choices: provinces valid on `today` (the configured timezone's day, not UTC's), by name."""
    q = (select(Unit).where(Unit.level == UnitLevel.PROVINCE,
                            or_(Unit.valid_to.is_(None), Unit.valid_to >= today))
         .order_by(Unit.name))
    return list((await s.scalars(q)).all())


# --- writing programs -----------------------------------------------------------------------------

async def create_program(s: AsyncSession, request: web.Request | None, data: ProgramIn,
                         actor_id: int | None = None) -> Program:
    """create_program: add a program (audited)."""
    program = Program(title=data.title, description=data.description, created_at=utcnow(), created_by=actor_id)
    s.add(program)
    await s.flush()
    audit.record(s, request, "program.create", f"program:{program.id}", title=program.title)
    return program


async def update_program(s: AsyncSession, request: web.Request | None, program: Program,
                         data: ProgramPatch) -> Program:
    """update_program: change a program's fields (audited)."""
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    for name, value in changes.items():
        setattr(program, name, value)
    audit.record(s, request, "program.update", f"program:{program.id}", fields=sorted(changes))
    return program


async def delete_program(s: AsyncSession, request: web.Request | None, program: Program) -> None:
    """delete_program: remove a program without meetings (409 while it has any; audited)."""
    if await count_meetings(s, program.id):
        raise ApiError(409, "program-has-meetings",
                       "Chương trình còn buổi tập huấn; hãy xoá các buổi tập huấn trước. / "
                       "The program still has meetings: delete them first.")
    audit.record(s, request, "program.delete", f"program:{program.id}", title=program.title)
    await s.delete(program)


# --- writing meetings -----------------------------------------------------------------------------

async def _users(s: AsyncSession, ids: Sequence[int]) -> list[User]:
    found = {u.id: u for u in (await s.scalars(select(User).where(User.id.in_(ids)))).all()}
    out = []
    for uid in dict.fromkeys(ids):
        user = found.get(uid)
        if user is None:
            raise invalid("presenter_ids", f"không có tài khoản {uid}", f"no account {uid}")
        if user.role not in PRESENTER_ROLES:
            raise invalid("presenter_ids", f"{user.username} không phải giảng viên hay lãnh đạo",
                          f"{user.username} is not a trainer or leader")
        if user.disabled:
            raise invalid("presenter_ids", f"tài khoản {user.username} đã bị khoá",
                          f"account {user.username} is disabled")
        out.append(user)
    return out


async def _classrooms(s: AsyncSession, ids: Sequence[int]) -> list[Classroom]:
    found = {c.id: c for c in (await s.scalars(select(Classroom).where(Classroom.id.in_(ids)))).all()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise invalid("classroom_ids", f"không có phòng học {missing[0]}", f"no classroom {missing[0]}")
    return [found[i] for i in dict.fromkeys(ids)]


async def _provinces(s: AsyncSession, ids: Sequence[int]) -> list[Unit]:
    found = {u.id: u for u in (await s.scalars(select(Unit).where(Unit.id.in_(ids)))).all()}
    for i in ids:
        unit = found.get(i)
        if unit is None or unit.level != UnitLevel.PROVINCE:
            raise invalid("province_ids", f"không có tỉnh {i}", f"no province {i}")
    return [found[i] for i in dict.fromkeys(ids)]


class Resolved:
    """Resolved: a MeetingIn with its presenters, classrooms and provinces loaded."""

    def __init__(self, data: MeetingIn, presenters: list[User], classrooms: list[Classroom],
                 provinces: list[Unit]) -> None:
        self.data = data
        self.presenters = presenters
        self.classrooms = classrooms
        self.provinces = provinces


async def check_meeting(s: AsyncSession, data: MeetingIn, meeting: Meeting | None = None) -> Resolved:
    """check_meeting: validate a meeting's fields (422 naming the field); the hook for overlap rules."""
    if await s.get(Program, data.program_id) is None:
        raise invalid("program_id", f"không có chương trình {data.program_id}", f"no program {data.program_id}")
    if data.ends_at <= data.starts_at:
        raise invalid("ends_at", "giờ kết thúc phải sau giờ bắt đầu", "the end must be after the start")
    if data.ends_at - data.starts_at > dt.timedelta(hours=24):
        raise invalid("ends_at", "buổi tập huấn dài quá 24 giờ", "a meeting may last at most 24 hours")
    if data.kind == MeetingKind.LECTURE and data.province_ids:
        raise invalid("province_ids", "chỉ hội nghị vùng mới có tỉnh tham dự",
                      "only regional meetings have provinces")
    presenters = await _users(s, data.presenter_ids)
    classrooms = await _classrooms(s, data.classroom_ids)
    provinces = await _provinces(s, data.province_ids)
    return Resolved(data, presenters, classrooms, provinces)


def _apply(meeting: Meeting, r: Resolved) -> None:
    d = r.data
    meeting.program_id = d.program_id
    meeting.title = d.title
    meeting.description = d.description
    meeting.kind = d.kind
    meeting.starts_at = d.starts_at.astimezone(dt.UTC)
    meeting.ends_at = d.ends_at.astimezone(dt.UTC)
    meeting.video_codec = d.video_codec
    meeting.record = d.record
    meeting.presenters = r.presenters
    meeting.classrooms = r.classrooms
    meeting.provinces = r.provinces


def meeting_fields(meeting: Meeting) -> dict[str, Any]:
    """meeting_fields: a loaded meeting as MeetingIn data (for partial updates and forms)."""
    return {
        "program_id": meeting.program_id, "title": meeting.title, "description": meeting.description,
        "kind": meeting.kind, "starts_at": meeting.starts_at, "ends_at": meeting.ends_at,
        "presenter_ids": [u.id for u in meeting.presenters], "classroom_ids": [c.id for c in meeting.classrooms],
        "province_ids": [u.id for u in meeting.provinces], "video_codec": meeting.video_codec,
        "record": meeting.record,
    }


async def create_meeting(s: AsyncSession, request: web.Request | None, data: MeetingIn,
                         actor_id: int | None = None) -> Meeting:
    """create_meeting: add a draft meeting (validated by check_meeting; audited)."""
    resolved = await check_meeting(s, data)
    meeting = Meeting(status=MeetingStatus.DRAFT, created_at=utcnow(), created_by=actor_id,
                      presenters=[], classrooms=[], provinces=[])
    _apply(meeting, resolved)
    s.add(meeting)
    await s.flush()
    audit.record(s, request, "meeting.create", f"meeting:{meeting.id}", title=meeting.title,
                 starts_at=meeting.starts_at.isoformat())
    return meeting


def _invitees(meeting: Meeting) -> tuple[set[int], set[int]]:
    return {u.id for u in meeting.presenters}, {c.id for c in meeting.classrooms}


def _override(s: AsyncSession, meeting: Meeting, request: web.Request | None, reason: str, actor_id: int | None,
              now: dt.datetime, action: Literal["publish", "update"]) -> None:
    """_override: keep a 10-day override reason: the meeting's last one, and one more entry of its history."""
    meeting.publish_override_reason = reason
    meeting.publish_override_by = _actor(request, actor_id)
    meeting.publish_override_at = now
    s.add(OverrideReason(meeting_id=meeting.id, action=action, reason=reason, by=meeting.publish_override_by,
                         at=now))


async def override_history(s: AsyncSession, meeting_id: int) -> list[tuple[OverrideReason, User | None]]:
    """override_history: every override reason of a meeting, oldest first, with its author (None: deleted)."""
    q = (select(OverrideReason, User).outerjoin(User, User.id == OverrideReason.by)
         .where(OverrideReason.meeting_id == meeting_id).order_by(OverrideReason.at, OverrideReason.id))
    return [(row, user) for row, user in (await s.execute(q)).all()]


async def update_meeting(s: AsyncSession, request: web.Request | None, meeting: Meeting, data: MeetingIn, *,
                         override_reason: str | None = None, actor_id: int | None = None,
                         now: dt.datetime | None = None) -> Meeting:
    """update_meeting: replace a loaded meeting's fields (validated by check_meeting; audited).

    A published meeting is re-checked: no overlap (409 `overlap`), and the 10-day rule when its time
    changes or someone is newly invited (409 `too-soon` unless `override_reason`); everyone invited
    before or after the edit is notified. Any real change bumps the iCalendar sequence.
    """
    now = now or utcnow()
    tz = zone(request)
    before = meeting_fields(meeting)
    resolved = await check_meeting(s, data, meeting)
    reason = schedule.clean_reason(override_reason)
    used_override = False
    if meeting.status == MeetingStatus.PUBLISHED:
        plan = schedule.Plan(data.starts_at.astimezone(dt.UTC), data.ends_at.astimezone(dt.UTC), data.kind,
                             resolved.presenters, resolved.classrooms, resolved.provinces, meeting.id)
        await schedule.check_overlaps(s, plan, tz)
        newly_invited = (set(data.presenter_ids) - set(before["presenter_ids"])
                         or set(data.classroom_ids) - set(before["classroom_ids"])
                         or set(data.province_ids) - set(before["province_ids"]))
        moved = plan.starts_at != before["starts_at"] or plan.ends_at != before["ends_at"]
        if moved or newly_invited:
            used_override = schedule.check_notice(plan.starts_at, plan.ends_at, now, tz, reason)
    old_presenters, old_rooms = _invitees(meeting)
    _apply(meeting, resolved)
    after = meeting_fields(meeting)
    changed = sorted(k for k in after if after[k] != before[k])
    details: dict[str, Any] = {"fields": changed}
    if used_override:
        _override(s, meeting, request, reason, actor_id, now, "update")
        details["override_reason"] = reason
    if changed:
        meeting.sequence = (meeting.sequence or 0) + 1
        meeting.updated_at = now
    audit.record(s, request, "meeting.update", f"meeting:{meeting.id}", **details)
    if changed and meeting.status == MeetingStatus.PUBLISHED:
        await s.flush()
        new_presenters, new_rooms = _invitees(meeting)
        sends: list[tuple[notifications.NoticeKind, set[int], set[int]]] = [
            ("changed", new_presenters, new_rooms),
            ("uninvited", old_presenters - new_presenters, old_rooms - new_rooms)]
        for kind, users, rooms in sends:
            text = notifications.message(kind, meeting, tz, changed)
            notifications.notify(s, meeting, kind, text, user_ids=users, classroom_ids=rooms)
            await notifications.email(s, request, meeting, text, user_ids=users, classroom_ids=rooms)
    return meeting


async def delete_meeting(s: AsyncSession, request: web.Request | None, meeting: Meeting) -> None:
    """delete_meeting: remove a draft or cancelled meeting (a published one must be cancelled first)."""
    if meeting.status == MeetingStatus.PUBLISHED:
        raise ApiError(409, "meeting-published",
                       "Buổi tập huấn đã công bố: hãy huỷ trước khi xoá. / The meeting is published: cancel it first.")
    audit.record(s, request, "meeting.delete", f"meeting:{meeting.id}", title=meeting.title)
    await s.delete(meeting)


async def check_publication(s: AsyncSession, meeting: Meeting, *, tz: ZoneInfo = DEFAULT_TZ,
                            now: dt.datetime | None = None, override_reason: str = "") -> bool:
    """check_publication: may this loaded meeting be published? True when the 10-day override was used.

    A regional meeting needs a leader (422); then `server.schedule.rules`: the meeting has not ended and gives
    10 days' notice unless `override_reason` is given (409 `ended` / `too-soon`), and it overlaps no
    published meeting sharing a province, leader, presenter or classroom (409 `overlap`).
    """
    if meeting.kind == MeetingKind.REGIONAL and not any(u.role == Role.LEADER for u in meeting.presenters):
        raise invalid("presenter_ids", "hội nghị vùng cần một lãnh đạo chủ trì",
                      "a regional meeting needs a leader to chair it")
    now = now or utcnow()
    used = schedule.check_notice(meeting.starts_at, meeting.ends_at, now, tz, override_reason)
    await schedule.check_overlaps(s, schedule.Plan.of(meeting), tz)
    return used


async def draft_conflicts(s: AsyncSession, meeting: Meeting) -> list[schedule.Conflict]:
    """draft_conflicts: the published meetings a loaded, not yet published meeting would conflict with."""
    if meeting.status == MeetingStatus.PUBLISHED:
        return []
    return await schedule.find_conflicts(s, schedule.Plan.of(meeting))


_ALLOWED: dict[MeetingStatus, frozenset[MeetingStatus]] = {
    MeetingStatus.PUBLISHED: frozenset({MeetingStatus.DRAFT, MeetingStatus.CANCELLED}),
    MeetingStatus.DRAFT: frozenset({MeetingStatus.PUBLISHED, MeetingStatus.CANCELLED}),
    MeetingStatus.CANCELLED: frozenset({MeetingStatus.DRAFT, MeetingStatus.PUBLISHED}),
}
_ACTIONS = {MeetingStatus.PUBLISHED: "publish", MeetingStatus.DRAFT: "unpublish",
            MeetingStatus.CANCELLED: "cancel"}


async def change_status(s: AsyncSession, request: web.Request | None, meeting: Meeting,
                        status: MeetingStatus, *, override_reason: str | None = None, actor_id: int | None = None,
                        now: dt.datetime | None = None) -> Meeting:
    """change_status: the one place a meeting's status changes (409 when not allowed from its status).

    Publishing runs `check_publication` (an override reason is kept on the meeting and in the audit
    log); the invitees are notified when a meeting is published, cancelled or withdrawn.
    """
    if meeting.status not in _ALLOWED[status]:
        raise ApiError(409, "bad-status",
                       f"Không thể chuyển từ trạng thái {meeting.status.value} sang {status.value}. / "
                       f"Cannot go from {meeting.status.value} to {status.value}.")
    now = now or utcnow()
    tz = zone(request)
    details: dict[str, Any] = {}
    if status == MeetingStatus.PUBLISHED:
        reason = schedule.clean_reason(override_reason)
        if await check_publication(s, meeting, tz=tz, now=now, override_reason=reason):
            _override(s, meeting, request, reason, actor_id, now, "publish")
            details["override_reason"] = reason
        meeting.first_published_at = meeting.first_published_at or now
    previous = meeting.status
    meeting.status = status
    meeting.sequence = (meeting.sequence or 0) + 1
    meeting.updated_at = now
    audit.record(s, request, f"meeting.{_ACTIONS[status]}", f"meeting:{meeting.id}", previous=previous.value,
                 **details)
    kind: notifications.NoticeKind | None = None
    if status == MeetingStatus.PUBLISHED:
        kind = "published"
    elif previous == MeetingStatus.PUBLISHED:
        kind = "cancelled" if status == MeetingStatus.CANCELLED else "withdrawn"
    if kind is not None:
        presenters, rooms = _invitees(meeting)
        text = notifications.message(kind, meeting, tz)
        notifications.notify(s, meeting, kind, text, user_ids=presenters, classroom_ids=rooms)
        await notifications.email(s, request, meeting, text, user_ids=presenters, classroom_ids=rooms)
    return meeting


async def publish_meeting(s: AsyncSession, request: web.Request | None, meeting: Meeting,
                          override_reason: str | None = None) -> Meeting:
    """publish_meeting: draft (or cancelled) → published, after check_publication (override: a written reason)."""
    return await change_status(s, request, meeting, MeetingStatus.PUBLISHED, override_reason=override_reason)


async def unpublish_meeting(s: AsyncSession, request: web.Request | None, meeting: Meeting) -> Meeting:
    """unpublish_meeting: published (or cancelled) → draft."""
    return await change_status(s, request, meeting, MeetingStatus.DRAFT)


async def cancel_meeting(s: AsyncSession, request: web.Request | None, meeting: Meeting) -> Meeting:
    """cancel_meeting: draft or published → cancelled."""
    return await change_status(s, request, meeting, MeetingStatus.CANCELLED)
