"""server.reports.presence: who was in one meeting's live room and when, computed from its AttendanceEvents.

The rules are written at the top of server.reports.build, which builds every report on `meeting_attendance`.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.db.models import AttendanceEvent
from server.live.attendance import CLOSING, OPENING

TIMELINE_POINTS = 240


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

    Intervals still open end at `open_end` ("now") when given, else at the last event ("last-seen"). A `drop`
    followed by its `resume` (the participant came back within the resume window, shown as reconnecting and
    still in the room meanwhile) does not end the interval, nor the floor unless a `floor-end` came between.
    """
    present: dt.datetime | None = None
    floor: dt.datetime | None = None
    spans: list[Span] = []
    floors: list[Span] = []
    # at a drop: since when it was present and held the floor, and when a floor-end came before its resume
    dropped: tuple[dt.datetime, dt.datetime | None, dt.datetime | None] | None = None
    last: dt.datetime | None = None
    for ev in events:
        last = ev.at
        if ev.kind == "resume" and dropped is not None and present is None:
            present, floor, floor_end = dropped  # the cut was within the resume window: one interval
            spans.pop()
            if floor is not None:
                floors.pop()
                if floor_end is not None:
                    floors.append(Span(floor, floor_end, "floor-end"))
                    floor = None
            dropped = None
        elif ev.kind in OPENING:
            present = present or ev.at
            dropped = None
        elif ev.kind in CLOSING:
            dropped = (present, floor, None) if ev.kind == "drop" and present is not None else None
            if present is not None:
                spans.append(Span(present, ev.at, ev.kind))
                present = None
            if floor is not None:
                floors.append(Span(floor, ev.at, ev.kind))
                floor = None
        elif ev.kind == "floor-start":
            floor = floor or ev.at
            dropped = None
        elif ev.kind == "floor-end" and floor is not None:
            floors.append(Span(floor, ev.at, ev.kind))
            floor = None
        elif ev.kind == "floor-end" and dropped is not None and dropped[1] is not None and dropped[2] is None:
            dropped = (dropped[0], dropped[1], ev.at)  # the floor it kept while reconnecting ended here
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
    """quality_summary: the medians of quality samples (each a dict as stored by server.live.attendance)."""
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
