"""server.reports.build: attendance computed from AttendanceEvents, and the reports built on it.

Attendance is never stored as totals: every figure is recomputed from the events of `server.live.attendance`
(join, resume, leave, drop, closed-at-restart, hand-up, floor-start, floor-end, chat, poll-answer, quality),
so a report can be recomputed after a fix and a restart mid-meeting changes nothing but a marker.

Rules (`meeting_attendance`):
- Presence of one participant: an interval opens at join or resume and closes at leave, drop or
  closed-at-restart (an opening while open, or a closing while closed, changes nothing). A drop followed by
  the same participant's resume is a network cut it came back from within the resume window (it stayed in
  the room, shown as reconnecting): the interval goes on through it, and so does the floor. An interval
  still open counts up to `now` when the meeting is live now (not ended, and its room open or within its
  scheduled time); otherwise (the server lost track) up to
  the participant's last known moment (its last event or quality sample).
- An attendee is a classroom (all its participants: a second PC, a drop and a rejoin under a new
  participant id), else an account, else a guest participant. Its intervals are the union of its
  participants' intervals, so two PCs of one classroom are not counted twice.
- Minutes present: the length of that union. Share: the part of the meeting's scheduled time
  (starts_at..ends_at) covered by it, 0..1 (joining early or staying late adds minutes, not share).
- Floor: floor-start until floor-end, or until the holder's leave, drop (not resumed) or closed-at-restart.
- Hands raised, chat messages, poll answers: counts of hand-up, chat and poll-answer events.
- Connection quality: medians of the `quality` samples (worst download loss, upload loss, bitrates, RTT).
- Viewers of the live broadcast (`MeetingFacts.viewers`): counted apart from the room's attendees, from the
  player's heartbeats (`server.live.viewers`), per unit with the minutes watched; anonymous public-link viewers as
  one line; a unit filter keeps the viewers of its units, a classroom's report has none.

Reports (`collect` then `summarise_*`): per meeting, a list of meetings, per program, per unit and per
month, with filters by date range and by unit (a province, district or commune: the classrooms under
it). Classrooms are grouped by their unit's province and by the unit just below the province (a district
before 1 July 2025, a commune after), so both structures work. Learner progress is rolled up from
`server.learning.selfstudy` per program and per district or commune of the learner's unit.

The clock is injectable: `app[CLOCK]` (a callable returning an aware UTC datetime) when set, else utcnow.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from server.auth import Identity
from server.db.models import (
    AttendanceEvent,
    BroadcastView,
    Classroom,
    ForumQuestion,
    Headcount,
    Meeting,
    MeetingStatus,
    Program,
    QuizAttempt,
    Recording,
    Role,
    StudyProgress,
    Unit,
    UnitLevel,
    User,
    meeting_presenters,
    program_learners,
    program_trainers,
    utcnow,
)
from server.errors import ApiError
from server.live import viewers
from server.live.service import LIVE
from server.live.viewers import ViewerGroup
from server.reports.presence import (
    Attendee,
    MeetingAttendance,
    meeting_attendance,
)

CLOCK: web.AppKey[Callable[[], dt.datetime]] = web.AppKey("reports_clock")


def now_of(app: web.Application) -> dt.datetime:
    """now_of: the reports' clock: `app[CLOCK]()` when a test or a tool set one, else utcnow()."""
    clock = app.get(CLOCK)
    return clock() if clock is not None else utcnow()


def live_meeting_ids(app: web.Application) -> set[int]:
    """live_meeting_ids: meetings whose room is open in this process now (their open intervals count to now)."""
    live = app.get(LIVE)
    out: set[int] = set()
    if live is None:
        return out
    for room_id in list(live.sfu.rooms):
        try:
            out.add(int(room_id))
        except ValueError:
            continue
    return out


# --- units --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    """Place: where a classroom (or a learner) is: its unit, its province and the unit just below the province."""

    unit: Unit | None
    province: Unit | None
    area: Unit | None  # the district (before 1 July 2025) or commune (after) within the province

    @property
    def province_name(self) -> str:
        """Place.province_name: the province's name ("" when unknown)."""
        return self.province.name if self.province else ""

    @property
    def area_name(self) -> str:
        """Place.area_name: the district's or commune's name ("" when the unit is a province)."""
        return self.area.name if self.area else ""


class Places:
    """Places: every unit loaded once, to place classrooms and learners without a query per row."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = {u.id: u for u in units}

    @classmethod
    async def load(cls, s: AsyncSession) -> Places:
        """Places.load: read every unit."""
        return cls(list((await s.scalars(select(Unit))).all()))

    def of(self, unit_id: int | None) -> Place:
        """Places.of: the place of a unit id (walking up its parents)."""
        unit = self.units.get(unit_id) if unit_id is not None else None
        chain: list[Unit] = []
        current = unit
        while current is not None and len(chain) < 8:
            chain.append(current)
            current = self.units.get(current.parent_id) if current.parent_id is not None else None
        province = next((u for u in chain if u.level == UnitLevel.PROVINCE), None)
        area = None
        if province is not None:
            below = chain[:chain.index(province)]
            area = below[-1] if below else None
        return Place(unit, province, area)

    def under(self, unit_id: int) -> set[int]:
        """Places.under: the unit and every unit below it (any validity)."""
        children: dict[int, list[int]] = defaultdict(list)
        for u in self.units.values():
            if u.parent_id is not None:
                children[u.parent_id].append(u.id)
        out, frontier = {unit_id}, [unit_id]
        while frontier:
            nxt = [c for p in frontier for c in children.get(p, []) if c not in out]
            out.update(nxt)
            frontier = nxt
        return out


def valid_between(unit: Unit, start: dt.date, end: dt.date) -> bool:
    """valid_between: whether a unit is valid on some day of [start, end]."""
    return (unit.valid_from is None or unit.valid_from <= end) and (unit.valid_to is None or unit.valid_to >= start)


def units_between(places: Places, start: dt.date, end: dt.date, level: UnitLevel | None = None,
                  parent_id: int | None = None) -> list[Unit]:
    """units_between: the units valid during [start, end] (the structure of those dates), by code."""
    found = [u for u in places.units.values() if valid_between(u, start, end)
             and (level is None or u.level == level) and (parent_id is None or u.parent_id == parent_id)]
    return sorted(found, key=lambda u: (u.code, u.valid_from or dt.date.min))


# --- collecting meetings -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Filters:
    """Filters: a date range [start, end) (aware datetimes) and optionally a unit, a program, one classroom."""

    start: dt.datetime
    end: dt.datetime
    unit_id: int | None = None
    program_id: int | None = None
    classroom_id: int | None = None  # a classroom's own figures only
    meeting_ids: frozenset[int] | None = None  # e.g. the meetings a trainer presents


@dataclass
class ClassroomRow:
    """ClassroomRow: one classroom in one meeting: invited or not, its attendance, place and headcount."""

    classroom: Classroom
    place: Place
    invited: bool
    attendee: Attendee | None
    headcount: Headcount | None

    @property
    def attended(self) -> bool:
        """ClassroomRow.attended: it was connected at some moment."""
        return self.attendee is not None and self.attendee.seconds > 0

    @property
    def teachers(self) -> int:
        """ClassroomRow.teachers: the headcount it entered (0 when none)."""
        return self.headcount.count if self.headcount else 0


@dataclass
class MeetingFacts:
    """MeetingFacts: one meeting with its attendance and its classroom rows (after the filters)."""

    meeting: Meeting
    attendance: MeetingAttendance
    rows: list[ClassroomRow]
    others: list[Attendee]  # presenters, operators, guests (not classrooms)
    # viewers of its live broadcast per unit, anonymous public-link viewers last (server.live.viewers)
    viewers: list[ViewerGroup] = field(default_factory=list)

    @property
    def held(self) -> bool:
        """MeetingFacts.held: published and begun."""
        return self.meeting.status == MeetingStatus.PUBLISHED and self.meeting.starts_at <= self.attendance.now

    @property
    def hours(self) -> float:
        """MeetingFacts.hours: scheduled length in hours."""
        return self.attendance.scheduled_seconds / 3600

    def attended(self) -> list[ClassroomRow]:
        """MeetingFacts.attended: the classroom rows that were connected."""
        return [r for r in self.rows if r.attended]


async def load_events(s: AsyncSession, meeting_ids: Sequence[int]) -> dict[int, list[AttendanceEvent]]:
    """load_events: the attendance events of some meetings, by meeting."""
    out: dict[int, list[AttendanceEvent]] = defaultdict(list)
    ids = list(meeting_ids)
    for i in range(0, len(ids), 500):
        q = (select(AttendanceEvent).where(AttendanceEvent.meeting_id.in_(ids[i:i + 500]))
             .order_by(AttendanceEvent.at, AttendanceEvent.id))
        for ev in (await s.scalars(q)).all():
            out[ev.meeting_id].append(ev)
    return out


async def collect(s: AsyncSession, filters: Filters, *, now: dt.datetime, live_ids: set[int],
                  places: Places | None = None) -> tuple[list[MeetingFacts], Places]:
    """collect: the published meetings starting in the range, with attendance and classroom rows (filtered)."""
    places = places or await Places.load(s)
    q = (select(Meeting).where(Meeting.status == MeetingStatus.PUBLISHED, Meeting.starts_at >= filters.start,
                               Meeting.starts_at < filters.end)
         .options(selectinload(Meeting.program), selectinload(Meeting.classrooms),
                  selectinload(Meeting.presenters), selectinload(Meeting.provinces))
         .order_by(Meeting.starts_at, Meeting.id))
    if filters.program_id is not None:
        q = q.where(Meeting.program_id == filters.program_id)
    if filters.meeting_ids is not None:
        q = q.where(Meeting.id.in_(list(filters.meeting_ids)))
    meetings = list((await s.scalars(q)).all())
    return await facts_of(s, meetings, filters, now=now, live_ids=live_ids, places=places), places


async def facts_of(s: AsyncSession, meetings: Sequence[Meeting], filters: Filters | None, *, now: dt.datetime,
                   live_ids: set[int], places: Places) -> list[MeetingFacts]:
    """facts_of: attendance and classroom rows of loaded meetings (classrooms, program loaded)."""
    events = await load_events(s, [m.id for m in meetings])
    heads: dict[tuple[int, int], Headcount] = {}
    ids = [m.id for m in meetings]
    for i in range(0, len(ids), 500):
        for h in (await s.scalars(select(Headcount).where(Headcount.meeting_id.in_(ids[i:i + 500])))).all():
            heads[(h.meeting_id, h.classroom_id)] = h
    room_ids = {ev.classroom_id for evs in events.values() for ev in evs if ev.classroom_id is not None}
    room_ids |= {c.id for m in meetings for c in m.classrooms}
    rooms: dict[int, Classroom] = {}
    listed = list(room_ids)
    for i in range(0, len(listed), 500):
        rooms.update({c.id: c for c in (await s.scalars(select(Classroom).where(
            Classroom.id.in_(listed[i:i + 500])))).all()})
    allowed = places.under(filters.unit_id) if filters and filters.unit_id is not None else None
    views = await viewers.load(s, ids)
    out = []
    for m in meetings:
        att = meeting_attendance(m.id, m.starts_at, m.ends_at, events.get(m.id, []), now=now,
                                 live=m.ended_at is None and (m.id in live_ids or m.starts_at <= now < m.ends_at))
        by_room = {a.classroom_id: a for a in att.classrooms() if a.classroom_id is not None}
        invited = {c.id for c in m.classrooms}
        rows = []
        for cid in sorted(invited | set(by_room), key=lambda c: rooms[c].code if c in rooms else str(c)):
            room = rooms.get(cid)
            if room is None:
                continue
            if filters and filters.classroom_id is not None and cid != filters.classroom_id:
                continue
            if allowed is not None and room.unit_id not in allowed:
                continue
            rows.append(ClassroomRow(room, places.of(room.unit_id), cid in invited, by_room.get(cid),
                                     heads.get((m.id, cid))))
        others = [a for a in att.attendees if a.classroom_id is None]
        if filters and (filters.unit_id is not None or filters.classroom_id is not None):
            if not rows:
                continue
            others = []
        seen = [v for v in views.get(m.id, []) if allowed is None or v.unit_id in allowed]
        if filters and filters.classroom_id is not None:
            seen = []
        out.append(MeetingFacts(m, att, rows, others, viewer_groups(seen, places)))
    return out


def viewer_groups(rows: Sequence[BroadcastView], places: Places) -> list[ViewerGroup]:
    """viewer_groups: a meeting's broadcast viewers per unit, named "unit (province)" (server.live.viewers)."""
    names: dict[int | None, str] = {}
    for row in rows:
        if row.unit_id is not None and row.unit_id not in names:
            place = places.of(row.unit_id)
            unit = place.unit
            name = unit.name if unit is not None else ""
            if place.province is not None and unit is not None and place.province.id != unit.id:
                name = f"{name} ({place.province.name})"
            names[row.unit_id] = name
    return viewers.summary(rows, names)


# --- summaries ---------------------------------------------------------------------------------------

@dataclass
class Totals:
    """Totals: figures summed over classroom rows."""

    meetings: int = 0
    hours: float = 0.0
    invited: int = 0
    attended: int = 0
    classrooms_reached: int = 0
    teachers: int = 0
    minutes: float = 0.0
    hands: int = 0
    floor_minutes: float = 0.0
    chat: int = 0
    poll_answers: int = 0
    share_sum: float = 0.0
    loss_samples: list[float] = field(default_factory=list)
    bitrate_samples: list[float] = field(default_factory=list)
    reached: set[int] = field(default_factory=set)

    def add_row(self, row: ClassroomRow) -> None:
        """Totals.add_row: count one classroom row."""
        self.invited += int(row.invited)
        self.teachers += row.teachers
        a = row.attendee
        if a is None:
            return
        self.minutes += a.minutes
        self.hands += a.hands
        self.floor_minutes += a.floor_seconds / 60
        self.chat += a.chat
        self.poll_answers += a.poll_answers
        if row.attended:
            self.attended += 1
            self.reached.add(row.classroom.id)
            self.classrooms_reached = len(self.reached)
            self.share_sum += a.share
        self.loss_samples += [float(q["loss"]) for q in a.samples if isinstance(q.get("loss"), int | float)]
        self.bitrate_samples += [float(q["up_bitrate"]) for q in a.samples
                                 if isinstance(q.get("up_bitrate"), int | float)]

    def add_meeting(self, facts: MeetingFacts) -> None:
        """Totals.add_meeting: count one meeting and its rows."""
        self.meetings += 1
        self.hours += facts.hours
        for row in facts.rows:
            self.add_row(row)

    @property
    def average_share(self) -> float | None:
        """Totals.average_share: the mean share of the attending classroom rows."""
        return self.share_sum / self.attended if self.attended else None

    @property
    def median_loss(self) -> float | None:
        """Totals.median_loss: the median download loss over every sample."""
        return statistics.median(self.loss_samples) if self.loss_samples else None

    @property
    def median_bitrate(self) -> float | None:
        """Totals.median_bitrate: the median upload bitrate over every sample."""
        return statistics.median(self.bitrate_samples) if self.bitrate_samples else None


def totals(facts: Iterable[MeetingFacts]) -> Totals:
    """totals: the Totals of several meetings."""
    t = Totals()
    for f in facts:
        t.add_meeting(f)
    return t


def by_group(facts: Iterable[MeetingFacts], key: Callable[[ClassroomRow], str]) -> dict[str, Totals]:
    """by_group: Totals per group of classroom rows (e.g. per province), groups sorted by name."""
    groups: dict[str, Totals] = defaultdict(Totals)
    seen: dict[str, set[int]] = defaultdict(set)
    for f in facts:
        for row in f.rows:
            name = key(row) or "—"
            t = groups[name]
            if f.meeting.id not in seen[name]:
                seen[name].add(f.meeting.id)
                t.meetings += 1
                t.hours += f.hours
            t.add_row(row)
    return dict(sorted(groups.items()))


def by_day(facts: Iterable[MeetingFacts], tz: ZoneInfo) -> dict[dt.date, Totals]:
    """by_day: Totals per local day of the meetings' start."""
    days: dict[dt.date, Totals] = defaultdict(Totals)
    for f in facts:
        days[f.meeting.starts_at.astimezone(tz).date()].add_meeting(f)
    return dict(sorted(days.items()))


# --- learner progress --------------------------------------------------------------------------------

@dataclass
class ProgressGroup:
    """ProgressGroup: learners of one program in one district or commune (or province), rolled up."""

    program_id: int
    program_title: str
    province: str
    area: str
    learners: int = 0
    percent_sum: int = 0
    completed: int = 0
    videos_watched: int = 0
    videos_total: int = 0
    materials_opened: int = 0
    materials_total: int = 0
    quizzes_passed: int = 0
    quizzes_total: int = 0
    scores: list[int] = field(default_factory=list)
    packages_completed: int = 0
    packages_passed: int = 0
    packages_total: int = 0
    package_seconds: float = 0.0
    package_scores: list[int] = field(default_factory=list)

    @property
    def package_score(self) -> float | None:
        """ProgressGroup.package_score: the mean of the learners' SCORM package scores."""
        return sum(self.package_scores) / len(self.package_scores) if self.package_scores else None

    @property
    def average_percent(self) -> float:
        """ProgressGroup.average_percent: the learners' mean overall progress."""
        return self.percent_sum / self.learners if self.learners else 0.0

    @property
    def average_score(self) -> float | None:
        """ProgressGroup.average_score: the mean of the learners' average best quiz scores."""
        return sum(self.scores) / len(self.scores) if self.scores else None


async def progress_rollup(s: AsyncSession, program_ids: Sequence[int], places: Places, *,
                          unit_id: int | None = None, user_id: int | None = None) -> list[ProgressGroup]:
    """progress_rollup: learner progress per program and district/commune (self-study videos, materials, quizzes).

    `unit_id` keeps the learners whose unit is under that unit; `user_id` keeps one learner (their own figures).
    """
    from server.learning import selfstudy

    allowed = places.under(unit_id) if unit_id is not None else None
    out: list[ProgressGroup] = []
    titles = dict((await s.execute(select(Program.id, Program.title).where(Program.id.in_(list(program_ids))))).all())
    for pid in program_ids:
        users = await selfstudy.enrolled_users(s, pid)
        users = [u for u in users if (user_id is None or u.id == user_id)
                 and (allowed is None or u.unit_id in allowed)]
        groups: dict[tuple[str, str], ProgressGroup] = {}
        unit_of = {u.id: u.unit_id for u in users}
        for p in await selfstudy.program_progress(s, pid, users):
            place = places.of(unit_of.get(p.user_id))
            g = groups.setdefault((place.province_name, place.area_name),
                                  ProgressGroup(pid, titles.get(pid, ""), place.province_name, place.area_name))
            g.learners += 1
            g.percent_sum += p.percent
            g.completed += int(p.total > 0 and p.done >= p.total)
            g.videos_watched += p.videos_watched
            g.videos_total += p.videos_total
            g.materials_opened += p.materials_opened
            g.materials_total += p.materials_total
            g.quizzes_passed += p.quizzes_passed
            g.quizzes_total += p.quizzes_total
            if p.average_score is not None:
                g.scores.append(p.average_score)
            g.packages_completed += p.packages_completed
            g.packages_passed += p.packages_passed
            g.packages_total += p.packages_total
            g.package_seconds += p.package_seconds
            if p.package_score is not None:
                g.package_scores.append(p.package_score)
        out += [groups[k] for k in sorted(groups)]
    return out


async def learner_programs(s: AsyncSession, user_id: int | None = None) -> list[int]:
    """learner_programs: programs with enrolled learners (or those of one learner), by id."""
    q = select(program_learners.c.program_id).distinct()
    if user_id is not None:
        q = q.where(program_learners.c.user_id == user_id)
    return sorted(int(x) for x in (await s.scalars(q)).all())


# --- monthly summary ---------------------------------------------------------------------------------

@dataclass
class Monthly:
    """Monthly: the monthly summary: meetings, reach, hours, recordings, forum, learners, and breakdowns."""

    month: str
    start: dt.datetime
    end: dt.datetime
    unit: Unit | None
    facts: list[MeetingFacts]
    totals: Totals
    per_province: dict[str, Totals]
    per_area: dict[str, Totals]
    per_day: dict[dt.date, Totals]
    per_program: dict[str, Totals]
    recordings_published: int
    forum_answered: int
    forum_asked: int
    active_learners: int
    items_completed: int
    quizzes_passed: int
    progress: list[ProgressGroup]


def month_range(month: str, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """month_range: "YYYY-MM" as [first day 00:00, next month's first day) in the local timezone (ValueError)."""
    year, mon = (int(p) for p in month.split("-"))
    start = dt.datetime(year, mon, 1, tzinfo=tz)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=tz)
    return start, end


async def monthly(s: AsyncSession, month: str, tz: ZoneInfo, *, now: dt.datetime, live_ids: set[int],
                  unit_id: int | None = None) -> Monthly:
    """monthly: the monthly summary of `month` ("YYYY-MM"), for every unit or for the classrooms under one."""
    start, end = month_range(month, tz)
    facts, places = await collect(s, Filters(start, end, unit_id=unit_id), now=now, live_ids=live_ids)
    facts = [f for f in facts if f.held]
    allowed = places.under(unit_id) if unit_id is not None else None
    meeting_ids = [f.meeting.id for f in facts]
    rec = select(func.count()).select_from(Recording).where(Recording.published.is_(True))
    if allowed is None:
        rec = rec.where(Recording.started_at >= start, Recording.started_at < end)
    else:
        rec = rec.where(Recording.meeting_id.in_(meeting_ids or [-1]))
    recordings = int(await s.scalar(rec) or 0)

    def by_author(q: Any) -> Any:
        if allowed is None:
            return q
        return q.join(User, User.id == ForumQuestion.author_id).where(User.unit_id.in_(list(allowed)))

    answered = int(await s.scalar(by_author(select(func.count(ForumQuestion.id)).where(
        ForumQuestion.answered_at >= start, ForumQuestion.answered_at < end))) or 0)
    asked = int(await s.scalar(by_author(select(func.count(ForumQuestion.id)).where(
        ForumQuestion.created_at >= start, ForumQuestion.created_at < end))) or 0)

    def learners(q: Any, col: Any) -> Any:
        if allowed is None:
            return q
        return q.join(User, User.id == col).where(User.unit_id.in_(list(allowed)))

    studied = set((await s.scalars(learners(select(StudyProgress.user_id).where(
        StudyProgress.last_at >= start, StudyProgress.last_at < end), StudyProgress.user_id))).all())
    tried = set((await s.scalars(learners(select(QuizAttempt.user_id).where(
        QuizAttempt.at >= start, QuizAttempt.at < end), QuizAttempt.user_id))).all())
    completed = int(await s.scalar(learners(select(func.count(StudyProgress.id)).where(
        StudyProgress.completed.is_(True), StudyProgress.last_at >= start, StudyProgress.last_at < end),
        StudyProgress.user_id)) or 0)
    passed = int(await s.scalar(learners(select(func.count(func.distinct(
        QuizAttempt.user_id.concat(":").concat(QuizAttempt.quiz_id)))).where(
        QuizAttempt.passed.is_(True), QuizAttempt.at >= start, QuizAttempt.at < end), QuizAttempt.user_id)) or 0)
    study_programs = set((await s.scalars(select(StudyProgress.program_id).where(
        StudyProgress.last_at >= start, StudyProgress.last_at < end).distinct())).all())
    program_ids = sorted({f.meeting.program_id for f in facts} | study_programs)
    progress = await progress_rollup(s, program_ids, places, unit_id=unit_id)
    per_program: dict[str, Totals] = defaultdict(Totals)
    for f in facts:
        per_program[f.meeting.program.title].add_meeting(f)
    return Monthly(month=month, start=start, end=end, unit=places.units.get(unit_id) if unit_id else None,
                   facts=facts, totals=totals(facts), per_province=by_group(facts, lambda r: r.place.province_name),
                   per_area=by_group(facts, lambda r: r.place.area_name or r.place.province_name),
                   per_day=by_day(facts, tz), per_program=dict(sorted(per_program.items())),
                   recordings_published=recordings, forum_answered=answered, forum_asked=asked,
                   active_learners=len(studied | tried), items_completed=completed, quizzes_passed=passed,
                   progress=progress)


def child_under(places: Places, ancestor_id: int, unit_id: int | None) -> Unit | None:
    """child_under: the unit just below `ancestor_id` on the way up from `unit_id` (None: not under it, or itself)."""
    current = places.units.get(unit_id) if unit_id is not None else None
    for _ in range(8):
        if current is None or current.parent_id is None:
            return None
        if current.parent_id == ancestor_id:
            return current
        current = places.units.get(current.parent_id)
    return None


# --- who sees what -----------------------------------------------------------------------------------

async def scope(s: AsyncSession, ident: Identity, filters: Filters) -> Filters:
    """scope: `filters` narrowed to what `ident` may see (403 for roles without reports).

    Operators see everything; trainers and leaders the meetings they present; a classroom its own figures
    in the meetings it was invited to or attended (a join-link login: that one meeting).
    """
    from dataclasses import replace

    if ident.role == Role.OPERATOR:
        return filters
    if ident.role in (Role.TRAINER, Role.LEADER):
        mine = set((await s.scalars(select(meeting_presenters.c.meeting_id).where(
            meeting_presenters.c.user_id == ident.user_id))).all())
        return replace(filters, meeting_ids=frozenset(mine))
    if ident.role == Role.CLASSROOM and ident.classroom_id is not None:
        ids = frozenset({ident.meeting_id}) if ident.meeting_id is not None else filters.meeting_ids
        return replace(filters, classroom_id=ident.classroom_id, meeting_ids=ids)
    raise ApiError(403, "forbidden", "Vai trò của bạn không được phép làm việc này. / Your role may not do this.")


async def meeting_facts(s: AsyncSession, ident: Identity, meeting_id: int, *, now: dt.datetime,
                        live_ids: set[int]) -> MeetingFacts:
    """meeting_facts: one meeting's report as `ident` may see it (404 when it may not see the meeting)."""
    from server.schedule.meetings import get_meeting

    meeting = await get_meeting(s, ident, meeting_id)  # 404 unless visible to ident
    filters = await scope(s, ident, Filters(meeting.starts_at, meeting.starts_at + dt.timedelta(seconds=1)))
    places = await Places.load(s)
    found = await facts_of(s, [meeting], filters, now=now, live_ids=live_ids, places=places)
    if found:
        return found[0]
    att = meeting_attendance(meeting.id, meeting.starts_at, meeting.ends_at, [], now=now, live=False)
    return MeetingFacts(meeting, att, [], [])


async def visible_programs(s: AsyncSession, ident: Identity) -> set[int] | None:
    """visible_programs: the programs whose reports `ident` may read (None: all; 403 for other roles)."""
    if ident.role == Role.OPERATOR:
        return None
    if ident.role in (Role.TRAINER, Role.LEADER):
        presented = select(Meeting.program_id).join(
            meeting_presenters, meeting_presenters.c.meeting_id == Meeting.id).where(
            meeting_presenters.c.user_id == ident.user_id)
        trains = select(program_trainers.c.program_id).where(program_trainers.c.user_id == ident.user_id)
        return set((await s.scalars(presented)).all()) | set((await s.scalars(trains)).all())
    raise ApiError(403, "forbidden", "Vai trò của bạn không được phép làm việc này. / Your role may not do this.")
