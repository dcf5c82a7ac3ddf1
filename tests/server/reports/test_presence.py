"""Tests of server.reports.presence: intervals from events, floor intervals, open intervals, merging."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from server.db.models import AttendanceEvent
from server.reports.presence import Span, meeting_attendance, merge, participant_spans

T0 = dt.datetime(2025, 9, 15, 1, 0, tzinfo=dt.UTC)  # 08:00 in Hà Nội


def ev(at: float, kind: str, participant: str = "p1", classroom_id: int | None = None, user_id: int | None = None,
       i: list[int] = [0], **data: Any) -> AttendanceEvent:  # noqa: B006 - a counter for ids
    i[0] += 1
    return AttendanceEvent(id=i[0], meeting_id=1, at=T0 + dt.timedelta(seconds=at), kind=kind,
                           participant=participant, classroom_id=classroom_id, user_id=user_id,
                           role="classroom" if classroom_id else "trainer", name=participant, data=data)


def test_join_drop_resume_leave_gives_two_intervals() -> None:
    events = [ev(0, "join"), ev(600, "drop"), ev(660, "resume"), ev(1800, "leave")]
    spans, floors = participant_spans(events, None)
    assert [(s.seconds, s.how) for s in spans] == [(600, "drop"), (1140, "leave")]
    assert floors == []


def test_floor_ends_at_floor_end_or_when_the_holder_drops() -> None:
    events = [ev(0, "join"), ev(100, "floor-start"), ev(160, "floor-end"), ev(200, "floor-start"),
              ev(260, "drop"), ev(300, "resume"), ev(320, "floor-end"), ev(400, "leave")]
    _, floors = participant_spans(events, None)
    assert [(f.seconds, f.how) for f in floors] == [(60, "floor-end"), (60, "drop")]


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

