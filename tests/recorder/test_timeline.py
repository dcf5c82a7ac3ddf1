"""Tests of recorder/timeline.py: the timeline file and its chapters (WebVTT)."""

from __future__ import annotations

from pathlib import Path

from recorder.timeline import GAP_TITLE, Timeline, TimelineEvent, chapters, load, webvtt


def test_timeline_survives_a_cut_line_and_becomes_chapters(tmp_path: Path) -> None:
    t = Timeline(tmp_path)
    t.add(TimelineEvent(0.4, "floor", None))
    t.add(TimelineEvent(12.0, "screen", "p-1", "Nguyễn Văn A"))
    t.add(TimelineEvent(13.0, "marker", title="Phần 1: mở đầu"))
    t.add(TimelineEvent(40.5, "floor", "p-2", "Lớp THCS Mường Tè"))
    t.add(TimelineEvent(50.0, "program", "p-2"))
    t.add(TimelineEvent(80.0, "floor", None))
    t.add(TimelineEvent(95.0, "marker", title="after the end"))
    t.close()
    with (tmp_path / "timeline.jsonl").open("a") as f:
        f.write('{"t": 99, "kind": "mar')  # a crash in the middle of a line
    events = load(tmp_path)
    assert len(events) == 7
    items = chapters(events, 90.0)
    assert [(c.start, c.title) for c in items] == [
        (0.0, "Người trình bày"), (12.0, "Phần 1: mở đầu"), (40.5, "Phát biểu: Lớp THCS Mường Tè"),
        (80.0, "Người trình bày")]
    assert items[-1].end == 90.0 and items[0].end == 12.0
    vtt = webvtt(items)
    assert vtt.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:12.000\nNgười trình bày\n")
    assert "00:00:40.500 --> 00:01:20.000" in vtt


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
