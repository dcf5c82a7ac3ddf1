"""server.reports: attendance computed from AttendanceEvents, and the reports built on it.

Attendance is never stored as totals: every figure is recomputed from the events of `server.attendance`
(join, resume, leave, drop, closed-at-restart, hand-up, floor-start, floor-end, chat, poll-answer, quality),
so a report can be recomputed after a fix and a restart mid-meeting changes nothing but a marker.

Rules (`meeting_attendance`):
- Presence of one participant: an interval opens at join or resume and closes at leave, drop or
  closed-at-restart (an opening while open, or a closing while closed, changes nothing). An interval
  still open counts up to `now` when the meeting is live now; otherwise (the server lost track) up to
  the participant's last known moment (its last event or quality sample).
- An attendee is a classroom (all its participants: a second PC, a drop and a rejoin under a new
  participant id), else an account, else a guest participant. Its intervals are the union of its
  participants' intervals, so two PCs of one classroom are not counted twice.
- Minutes present: the length of that union. Share: the part of the meeting's scheduled time
  (starts_at..ends_at) covered by it, 0..1 (joining early or staying late adds minutes, not share).
- Floor: floor-start until floor-end, or until the holder's leave, drop or closed-at-restart.
- Hands raised, chat messages, poll answers: counts of hand-up, chat and poll-answer events.
- Connection quality: medians of the `quality` samples (worst download loss, upload loss, bitrates, RTT).

Reports (`collect` then `summarise_*`): per meeting, a list of meetings, per program, per unit and per
month, with filters by date range and by unit (a province, district or commune: the classrooms under
it). Classrooms are grouped by their unit's province and by the unit just below the province (a district
before 1 July 2025, a commune after), so both structures work. Learner progress is rolled up from
`server.selfstudy` per program and per district or commune of the learner's unit.

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

from server import keys
from server.auth import Identity
from server.db.models import (
    AttendanceEvent,
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

OPENING = frozenset({"join", "resume"})
CLOSING = frozenset({"leave", "drop", "closed-at-restart"})
CLOCK: web.AppKey[Callable[[], dt.datetime]] = web.AppKey("reports_clock")
TIMELINE_POINTS = 240


def now_of(app: web.Application) -> dt.datetime:
    """now_of: the reports' clock: `app[CLOCK]()` when a test or a tool set one, else utcnow()."""
    clock = app.get(CLOCK)
    return clock() if clock is not None else utcnow()


def live_meeting_ids(app: web.Application) -> set[int]:
    """live_meeting_ids: meetings whose room is open in this process now (their open intervals count to now)."""
    live = app.get(keys.LIVE)
    out: set[int] = set()
    if live is None:
        return out
    for room_id in list(live.sfu.rooms):
        try:
            out.add(int(room_id))
        except ValueError:
            continue
    return out


# --- attendance of one meeting ----------------------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """Span: one interval [start, end) and how it ended (leave, drop, closed-at-restart, now or last-seen)."""

    start: dt.datetime
    end: dt.datetime
    how: str

    @property
    def seconds(self) -> float:
        """Span.seconds: its length."""
        return max(0.0, (self.end - self.start).total_seconds())


def _ordered(events: Iterable[AttendanceEvent]) -> list[AttendanceEvent]:
    return sorted(events, key=lambda e: (e.at, e.id or 0))


def participant_spans(events: Sequence[AttendanceEvent], open_end: dt.datetime | None) -> tuple[list[Span], list[Span]]:
    """participant_spans: the presence intervals and floor intervals of ONE participant's ordered events.

    Intervals still open end at `open_end` ("now") when given, else at the last event ("last-seen").
    """
    present: dt.datetime | None = None
    floor: dt.datetime | None = None
    spans: list[Span] = []
    floors: list[Span] = []
    last: dt.datetime | None = None
    for ev in events:
        last = ev.at
        if ev.kind in OPENING:
            present = present or ev.at
        elif ev.kind in CLOSING:
            if present is not None:
                spans.append(Span(present, ev.at, ev.kind))
                present = None
            if floor is not None:
                floors.append(Span(floor, ev.at, ev.kind))
                floor = None
        elif ev.kind == "floor-start":
            floor = floor or ev.at
        elif ev.kind == "floor-end" and floor is not None:
            floors.append(Span(floor, ev.at, ev.kind))
            floor = None
    end, how = (open_end, "now") if open_end is not None else (last, "last-seen")
    for since, out in ((present, spans), (floor, floors)):
        if since is not None and end is not None:
            out.append(Span(since, max(since, end), how))
    return spans, floors


def merge(spans: Iterable[Span]) -> list[Span]:
    """merge: the union of intervals, as disjoint intervals in time order (touching ones are joined)."""
    out: list[Span] = []
    for sp in sorted(spans, key=lambda x: (x.start, x.end)):
        if out and sp.start <= out[-1].end:
            if sp.end > out[-1].end:
                out[-1] = Span(out[-1].start, sp.end, sp.how)
        else:
            out.append(sp)
    return out


def seconds_within(spans: Iterable[Span], start: dt.datetime, end: dt.datetime) -> float:
    """seconds_within: how much of disjoint `spans` falls inside [start, end)."""
    total = 0.0
    for sp in spans:
        a, b = max(sp.start, start), min(sp.end, end)
        if b > a:
            total += (b - a).total_seconds()
    return total


def _median(values: Iterable[Any]) -> float | None:
    nums = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return statistics.median(nums) if nums else None


@dataclass(frozen=True)
class Quality:
    """Quality: medians of an attendee's quality samples (loss 0..1, bitrates in bit/s, RTT in seconds)."""

    samples: int = 0
    loss: float | None = None
    up_loss: float | None = None
    up_bitrate: float | None = None
    down_bitrate: float | None = None
    rtt: float | None = None


def quality_summary(samples: Sequence[dict[str, Any]]) -> Quality:
    """quality_summary: the medians of quality samples (each a dict as stored by server.attendance)."""
    return Quality(samples=len(samples), loss=_median(q.get("loss") for q in samples),
                   up_loss=_median(q.get("up_loss") for q in samples),
                   up_bitrate=_median(q.get("up_bitrate") for q in samples),
                   down_bitrate=_median(q.get("down_bitrate") for q in samples),
                   rtt=_median(q.get("rtt") for q in samples))


@dataclass
class Attendee:
    """Attendee: the figures of one classroom (or account, or guest) in one meeting."""

    key: str
    classroom_id: int | None = None
    user_id: int | None = None
    role: str = ""
    name: str = ""
    participants: list[str] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    floor_spans: list[Span] = field(default_factory=list)
    seconds: float = 0.0
    scheduled_seconds: float = 0.0
    share: float = 0.0
    hands: int = 0
    chat: int = 0
    poll_answers: int = 0
    quality: Quality = field(default_factory=Quality)
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def minutes(self) -> float:
        """Attendee.minutes: minutes present."""
        return self.seconds / 60

    @property
    def floor_seconds(self) -> float:
        """Attendee.floor_seconds: time with the floor."""
        return sum(s.seconds for s in self.floor_spans)

    @property
    def drops(self) -> int:
        """Attendee.drops: intervals that ended with a network drop or a server restart."""
        return sum(1 for s in self.spans if s.how in ("drop", "closed-at-restart"))


@dataclass
class MeetingAttendance:
    """MeetingAttendance: the attendees of one meeting, computed from its events at `now`."""

    meeting_id: int
    starts_at: dt.datetime
    ends_at: dt.datetime
    now: dt.datetime
    live: bool
    attendees: list[Attendee]

    @property
    def scheduled_seconds(self) -> float:
        """MeetingAttendance.scheduled_seconds: the meeting's scheduled length."""
        return max(0.0, (self.ends_at - self.starts_at).total_seconds())

    def classrooms(self) -> list[Attendee]:
        """MeetingAttendance.classrooms: the attendees that are classrooms."""
        return [a for a in self.attendees if a.classroom_id is not None]

    def timeline(self, points: int = TIMELINE_POINTS) -> list[tuple[dt.datetime, int]]:
        """MeetingAttendance.timeline: how many classrooms were connected, sampled evenly over the meeting."""
        rooms = self.classrooms()
        start = min([self.starts_at] + [s.start for a in rooms for s in a.spans])
        end = max([self.ends_at] + [s.end for a in rooms for s in a.spans])
        step = max(1.0, (end - start).total_seconds() / max(1, points - 1))
        moments = {start + dt.timedelta(seconds=i * step) for i in range(points)}
        moments = {t for t in moments if t <= end}
        edges = {s.start for a in rooms for s in a.spans}
        if len(edges) <= 4 * points:  # every arrival, so short visits show too
            moments |= edges
        return [(t, sum(1 for a in rooms if any(s.start <= t < s.end for s in a.spans))) for t in sorted(moments)]


def attendee_key(ev: AttendanceEvent) -> str | None:
    """attendee_key: "classroom:<id>", "user:<id>", or None when the event names neither."""
    if ev.classroom_id is not None:
        return f"classroom:{ev.classroom_id}"
    if ev.user_id is not None:
        return f"user:{ev.user_id}"
    return None


def meeting_attendance(meeting_id: int, starts_at: dt.datetime, ends_at: dt.datetime,
                       events: Iterable[AttendanceEvent], *, now: dt.datetime, live: bool) -> MeetingAttendance:
    """meeting_attendance: every attendee's figures from a meeting's events (see the module's rules)."""
    by_participant: dict[str, list[AttendanceEvent]] = defaultdict(list)
    for ev in _ordered(events):
        by_participant[ev.participant].append(ev)
    attendees: dict[str, Attendee] = {}
    for pid, evs in by_participant.items():
        key = next((k for k in map(attendee_key, evs) if k), f"participant:{pid}")
        who = next((e for e in evs if e.role), evs[0])
        a = attendees.get(key)
        if a is None:
            a = attendees[key] = Attendee(key=key, classroom_id=who.classroom_id, user_id=who.user_id,
                                          role=who.role, name=who.name)
        a.participants.append(pid)
        spans, floors = participant_spans(evs, now if live else None)
        a.spans += spans
        a.floor_spans += floors
        for ev in evs:
            if ev.kind == "hand-up":
                a.hands += 1
            elif ev.kind == "chat":
                a.chat += 1
            elif ev.kind == "poll-answer":
                a.poll_answers += 1
            elif ev.kind == "quality":
                a.samples.append(dict(ev.data or {}))
    scheduled = max(0.0, (ends_at - starts_at).total_seconds())
    for a in attendees.values():
        a.spans = merge(a.spans)
        a.floor_spans = merge(a.floor_spans)
        a.seconds = sum(s.seconds for s in a.spans)
        a.scheduled_seconds = seconds_within(a.spans, starts_at, ends_at)
        a.share = min(1.0, a.scheduled_seconds / scheduled) if scheduled else 0.0
        a.quality = quality_summary(a.samples)
    order = {"classroom": 0, "user": 1, "participant": 2}
    ranked = sorted(attendees.values(), key=lambda x: (order[x.key.split(":")[0]], x.name, x.key))
    return MeetingAttendance(meeting_id, starts_at, ends_at, now, live, ranked)


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
    out = []
    for m in meetings:
        att = meeting_attendance(m.id, m.starts_at, m.ends_at, events.get(m.id, []), now=now,
                                 live=m.id in live_ids or m.starts_at <= now < m.ends_at)
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
        out.append(MeetingFacts(m, att, rows, others))
    return out


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
    from server import selfstudy

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
    from server.meetings import get_meeting

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
