"""Tests of recorder/timeline.py: the timeline file and its chapters (WebVTT)."""

from __future__ import annotations

from pathlib import Path

from recorder.timeline import (
    CONTINUE_TITLE,
    GAP_TITLE,
    NOTHING_SHOWN_TITLE,
    Timeline,
    TimelineEvent,
    chapters,
    load,
    webvtt,
)

A, B, C = "Nguyễn Văn A", "Trần Thị B", "Lớp THCS Mường Tè"


def test_timeline_survives_a_cut_line_and_becomes_chapters(tmp_path: Path) -> None:
    t = Timeline(tmp_path)
    t.add(TimelineEvent(0.4, "shown", "p-1", A, source="presenter-video"))
    t.add(TimelineEvent(12.0, "shown", "p-1", A, source="screen"))
    t.add(TimelineEvent(40.5, "shown", "p-2", C, source="floor-video"))
    t.add(TimelineEvent(95.0, "marker", title="after the end"))
    t.close()
    with (tmp_path / "timeline.jsonl").open("a") as f:
        f.write('{"t": 99, "kind": "mar')  # a crash in the middle of a line
    events = load(tmp_path)
    assert len(events) == 4
    items = chapters(events, 90.0)
    assert [(c.start, c.title) for c in items] == [
        (0.0, f"Người trình bày: {A}"), (12.0, f"Chia sẻ màn hình: {A}"), (40.5, f"Phát biểu: {C}")]
    assert items[-1].end == 90.0 and items[0].end == 12.0
    vtt = webvtt(items)
    assert vtt.startswith(f"WEBVTT\n\n1\n00:00:00.000 --> 00:00:12.000\nNgười trình bày: {A}\n")
    assert "00:00:40.500 --> 00:01:30.000" in vtt


def test_a_scripted_lecture_gets_the_chapters_of_what_it_shows() -> None:
    """The lecture of issue 18: the page reserves a screen slot at 0:07 (the room sees it live, nothing is shown),
    a marker "Phần 2" 1.5 s before the floor holder's camera comes up, the screen share stopping at 10:29 and the
    leader taking over at 12:21; a floor change the program does not show makes no chapter."""
    events = [
        TimelineEvent(0.5, "program", "a", A, source="camera"), TimelineEvent(0.9, "shown", "a", A,
                                                                              source="presenter-video"),
        TimelineEvent(7.0, "screen", "a", A, source="screen"), TimelineEvent(7.0, "program", "a", A, source="screen"),
        TimelineEvent(7.4, "program", "a", A, source="camera"),  # muted again: no frame of it was ever shown
        TimelineEvent(60.0, "marker", title="Phần 1: Mở đầu"),
        TimelineEvent(274.0, "shown", "a", A, source="screen"),
        TimelineEvent(400.0, "marker", title="Phần 2: Thực hành"),
        TimelineEvent(401.5, "shown", "c", C, source="floor-video"),
        TimelineEvent(470.0, "shown", "a", A, source="screen"),
        TimelineEvent(629.0, "shown", "a", A, source="presenter-video"),
        TimelineEvent(741.0, "presenter", "b", B), TimelineEvent(741.8, "shown", "b", B, source="presenter-video"),
        TimelineEvent(800.0, "floor", "c", C),  # heard, not shown: the presenter's camera stays on
        TimelineEvent(850.0, "shown"),  # the leader turned the camera off
        TimelineEvent(870.0, "shown", "b", B, source="presenter-video"),
    ]
    assert [(c.start, c.end, c.title) for c in chapters(events, 900.0)] == [
        (0.0, 60.0, f"Người trình bày: {A}"), (60.0, 274.0, "Phần 1: Mở đầu"),
        (274.0, 400.0, f"Chia sẻ màn hình: {A}"), (400.0, 470.0, "Phần 2: Thực hành"),
        (470.0, 629.0, f"Chia sẻ màn hình: {A}"), (629.0, 741.0, f"Người trình bày: {A}"),
        (741.0, 850.0, f"Người trình bày: {B}"), (850.0, 870.0, NOTHING_SHOWN_TITLE),
        (870.0, 900.0, f"Người trình bày: {B}")]


def test_markers_always_survive() -> None:
    events = [TimelineEvent(10.0, "shown", "a", A, source="screen"), TimelineEvent(10.5, "marker", title="Phần 1"),
              TimelineEvent(11.0, "marker", title="Phần 1b"),
              TimelineEvent(11.2, "shown", "c", C, source="floor-video"),
              TimelineEvent(0.3, "marker", title="Mở đầu")]
    assert [(c.start, c.title) for c in chapters(events, 20.0)] == [
        (0.0, "Mở đầu"), (10.5, "Phần 1"), (11.0, "Phần 1b")]


def test_no_events_is_one_chapter() -> None:
    assert [(c.start, c.end, c.title) for c in chapters([], 5.0)] == [(0.0, 5.0, "Bắt đầu")]


def test_a_gap_is_a_chapter_after_which_the_interrupted_one_goes_on() -> None:
    events = [TimelineEvent(10.0, "marker", title="Phần 1"), TimelineEvent(30.0, "gap"),
              TimelineEvent(52.5, "resume"), TimelineEvent(70.0, "marker", title="Phần 2")]
    assert [(c.start, c.end, c.title) for c in chapters(events, 90.0)] == [
        (0.0, 10.0, "Bắt đầu"), (10.0, 30.0, "Phần 1"), (30.0, 52.5, GAP_TITLE), (52.5, 70.0, "Phần 1"),
        (70.0, 90.0, "Phần 2")]
    cut = [TimelineEvent(30.0, "gap")]  # the server was killed during the gap: it lasts to the end
    assert chapters(cut, 40.0)[-1].title == GAP_TITLE


def test_a_continuation_is_a_chapter_until_the_picture_changes() -> None:
    events = [TimelineEvent(0.5, "shown", "a", A, source="presenter-video"), TimelineEvent(30.0, "stop"),
              TimelineEvent(30.1, "continue"), TimelineEvent(31.0, "shown", "a", A, source="presenter-video"),
              TimelineEvent(45.0, "shown", "a", A, source="screen")]
    assert [(c.start, c.end, c.title) for c in chapters(events, 60.0)] == [
        (0.0, 30.1, f"Người trình bày: {A}"), (30.1, 45.0, CONTINUE_TITLE), (45.0, 60.0, f"Chia sẻ màn hình: {A}")]
