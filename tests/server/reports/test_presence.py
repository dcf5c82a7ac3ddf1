"""Tests of server.reports.presence: intervals from events (drop, resume, closed at a restart), floor intervals,
open intervals, merging, attendees and their counts, quality medians, the classrooms' timeline."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from server.db.models import AttendanceEvent
from server.reports.presence import (
    Span,
    meeting_attendance,
    merge,
    participant_spans,
    quality_summary,
    seconds_within,
)

T0 = dt.datetime(2025, 9, 15, 1, 0, tzinfo=dt.UTC)  # 08:00 in Hà Nội


def ev(at: float, kind: str, participant: str = "p1", classroom_id: int | None = None, user_id: int | None = None,
       i: list[int] = [0], **data: Any) -> AttendanceEvent:  # noqa: B006 - a counter for ids
    i[0] += 1
    return AttendanceEvent(id=i[0], meeting_id=1, at=T0 + dt.timedelta(seconds=at), kind=kind,
                           participant=participant, classroom_id=classroom_id, user_id=user_id,
                           role="classroom" if classroom_id else "trainer", name=participant, data=data)


def test_a_drop_and_its_resume_are_one_interval_a_drop_without_resume_ends_it() -> None:
    events = [ev(0, "join"), ev(600, "drop"), ev(660, "resume"), ev(1800, "leave")]
    spans, floors = participant_spans(events, None)
    assert [(s.seconds, s.how) for s in spans] == [(1800, "leave")]  # reconnecting within the window
    assert floors == []
    events = [ev(0, "join"), ev(600, "drop"), ev(700, "join"), ev(1800, "leave")]  # a fresh join: a new one
    spans, _ = participant_spans(events, None)
    assert [(s.seconds, s.how) for s in spans] == [(600, "drop"), (1100, "leave")]


def test_floor_ends_at_floor_end_or_when_the_holder_drops_for_good() -> None:
    events = [ev(0, "join"), ev(100, "floor-start"), ev(160, "floor-end"), ev(200, "floor-start"),
              ev(260, "drop"), ev(300, "resume"), ev(320, "floor-end"), ev(400, "floor-start"), ev(450, "drop")]
    _, floors = participant_spans(events, None)
    assert [(f.seconds, f.how) for f in floors] == [(60, "floor-end"), (120, "floor-end"), (50, "drop")]
    events = [ev(0, "join"), ev(100, "floor-start"), ev(160, "drop"), ev(170, "floor-end"), ev(180, "resume"),
              ev(200, "leave")]  # the floor was taken back while it was reconnecting
    spans, floors = participant_spans(events, None)
    assert [(f.seconds, f.how) for f in floors] == [(70, "floor-end")]
    assert [(s.seconds, s.how) for s in spans] == [(200, "leave")]


def test_open_interval_counts_to_now_when_live_else_to_the_last_known_moment() -> None:
    events = [ev(0, "join"), ev(300, "quality", loss=0.01)]
    now = T0 + dt.timedelta(seconds=900)
    live = meeting_attendance(1, T0, T0 + dt.timedelta(hours=1), events, now=now, live=True)
    assert live.attendees[0].seconds == 900 and live.attendees[0].spans[0].how == "now"
    dead = meeting_attendance(1, T0, T0 + dt.timedelta(hours=1), events, now=now, live=False)
    assert dead.attendees[0].seconds == 300 and dead.attendees[0].spans[0].how == "last-seen"


def test_two_pcs_of_one_classroom_are_not_counted_twice_and_share_uses_the_schedule() -> None:
    events = [ev(-600, "join", "a", classroom_id=7), ev(300, "join", "b", classroom_id=7),
              ev(900, "leave", "a", classroom_id=7), ev(1200, "leave", "b", classroom_id=7),
              ev(10, "quality", "a", classroom_id=7, loss=0.02, up_bitrate=300000),
              ev(20, "quality", "b", classroom_id=7, loss=0.10, up_bitrate=500000),
              ev(30, "quality", "a", classroom_id=7, loss=0.04, up_bitrate=400000)]
    att = meeting_attendance(1, T0, T0 + dt.timedelta(seconds=2400), events, now=T0, live=False)
    (room,) = att.attendees
    assert room.key == "classroom:7" and sorted(room.participants) == ["a", "b"]
    assert room.seconds == 1800  # -600 .. 1200, once
    assert room.scheduled_seconds == 1200 and room.share == pytest.approx(0.5)
    assert room.quality.loss == pytest.approx(0.04) and room.quality.up_bitrate == 400000
    assert room.quality.samples == 3


def test_merge_joins_overlapping_and_touching_spans() -> None:
    a = Span(T0, T0 + dt.timedelta(minutes=10), "leave")
    b = Span(T0 + dt.timedelta(minutes=10), T0 + dt.timedelta(minutes=20), "drop")
    c = Span(T0 + dt.timedelta(minutes=30), T0 + dt.timedelta(minutes=31), "leave")
    assert [(s.seconds, s.how) for s in merge([c, b, a])] == [(1200, "drop"), (60, "leave")]


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_a_restart_closes_the_interval_and_counts_as_a_drop() -> None:
    events = [ev(0, "join", classroom_id=3), ev(100, "floor-start", classroom_id=3),
              ev(300, "closed-at-restart", classroom_id=3), ev(400, "join", classroom_id=3),
              ev(900, "leave", classroom_id=3)]
    spans, floors = participant_spans(events, None)
    assert [(s.seconds, s.how) for s in spans] == [(300, "closed-at-restart"), (500, "leave")]
    assert [(f.seconds, f.how) for f in floors] == [(200, "closed-at-restart")]
    (room,) = meeting_attendance(1, T0, at(3600), events, now=at(3600), live=False).attendees
    assert room.drops == 1 and room.seconds == 800 and room.floor_seconds == 200


def test_repeated_and_unmatched_events_change_nothing() -> None:
    events = [ev(0, "leave"), ev(5, "floor-end"), ev(10, "join"), ev(20, "resume"),  # already present
              ev(30, "floor-start"), ev(40, "floor-start"), ev(60, "floor-end"), ev(70, "floor-end"),
              ev(100, "drop"), ev(110, "drop"), ev(120, "hand-down")]
    spans, floors = participant_spans(events, None)
    assert [(s.start, s.end, s.how) for s in spans] == [(at(10), at(100), "drop")]
    assert [(f.start, f.end) for f in floors] == [(at(30), at(60))]


def test_an_open_floor_ends_with_the_open_interval() -> None:
    events = [ev(0, "join"), ev(50, "floor-start"), ev(80, "chat")]
    spans, floors = participant_spans(events, at(200))
    assert [(s.seconds, s.how) for s in spans] == [(200, "now")]
    assert [(f.seconds, f.how) for f in floors] == [(150, "now")]
    spans, floors = participant_spans(events, at(-10))  # "now" before the last event: an empty interval, not < 0
    assert [s.seconds for s in spans + floors] == [0, 0]


def test_events_are_taken_in_time_order_whatever_order_they_come_in() -> None:
    events = [ev(600, "leave"), ev(0, "join"), ev(300, "drop"), ev(360, "join")]
    (who,) = meeting_attendance(1, T0, at(600), events, now=at(600), live=False).attendees
    assert [(s.start, s.end) for s in who.spans] == [(at(0), at(300)), (at(360), at(600))]
    assert who.drops == 1 and who.seconds == 540


def test_attendees_their_counts_and_order() -> None:
    events = [ev(0, "join", "guest-1"), ev(0, "join", "t", user_id=9), ev(0, "join", "b", classroom_id=2),
              ev(0, "join", "a", classroom_id=1), ev(10, "hand-up", "a", classroom_id=1),
              ev(20, "hand-up", "a", classroom_id=1), ev(30, "chat", "a", classroom_id=1),
              ev(40, "poll-answer", "b", classroom_id=2), ev(50, "chat", "t", user_id=9)]
    events[0].role = "guest"  # a guest's events name no account and no classroom
    att = meeting_attendance(1, T0, at(60), events, now=at(60), live=True)
    assert [a.key for a in att.attendees] == ["classroom:1", "classroom:2", "user:9", "participant:guest-1"]
    a, b, trainer, guest = att.attendees
    assert (a.hands, a.chat, a.poll_answers) == (2, 1, 0)
    assert (b.hands, b.chat, b.poll_answers) == (0, 0, 1)
    assert (trainer.chat, trainer.role) == (1, "trainer")
    assert (guest.role, guest.classroom_id, guest.user_id, guest.seconds) == ("guest", None, None, 60)
    assert [r.key for r in att.classrooms()] == ["classroom:1", "classroom:2"]


def test_share_is_of_the_scheduled_time_only() -> None:
    events = [ev(-600, "join", classroom_id=1), ev(1200, "leave", classroom_id=1)]
    (room,) = meeting_attendance(1, T0, at(600), events, now=at(1200), live=False).attendees
    assert room.seconds == 1800 and room.scheduled_seconds == 600 and room.share == 1.0  # capped
    (room,) = meeting_attendance(1, T0, T0, events, now=at(1200), live=False).attendees
    assert room.share == 0.0  # a meeting of no length: no share, no division by zero


def test_seconds_within_clips_to_the_window() -> None:
    spans = [Span(at(-100), at(100), "leave"), Span(at(200), at(300), "drop"), Span(at(900), at(1000), "now")]
    assert seconds_within(spans, T0, at(250)) == 150
    assert seconds_within(spans, at(400), at(800)) == 0


def test_quality_medians_skip_what_is_not_a_number() -> None:
    q = quality_summary([{"loss": 0.1, "rtt": 0.05, "up_bitrate": 300_000}, {"loss": 0.3, "rtt": True},
                         {"loss": None, "rtt": "0.2"}, {"loss": 0.2, "down_bitrate": 900_000}])
    assert q.samples == 4
    assert q.loss == pytest.approx(0.2) and q.rtt == pytest.approx(0.05)
    assert (q.up_bitrate, q.down_bitrate, q.up_loss) == (300_000, 900_000, None)


def test_timeline_counts_connected_classrooms_and_shows_short_visits() -> None:
    events = [ev(0, "join", "a", classroom_id=1), ev(1800, "leave", "a", classroom_id=1),
              ev(600, "join", "b", classroom_id=2), ev(3600, "leave", "b", classroom_id=2),
              ev(1000, "join", "c", classroom_id=3), ev(1001, "drop", "c", classroom_id=3),  # one second
              ev(0, "join", "t", user_id=9), ev(3600, "leave", "t", user_id=9)]  # not a classroom
    att = meeting_attendance(1, T0, at(3600), events, now=at(3600), live=False)
    line = dict(att.timeline(points=13))  # every 5 minutes
    assert len(line) <= 13 + 3 and min(line) == T0 and max(line) == at(3600)
    assert (line[T0], line[at(900)], line[at(2100)], line[at(3600)]) == (1, 2, 1, 0)
    assert line[at(1000)] == 3  # an arrival between two samples is a moment of its own
