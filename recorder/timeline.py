"""timeline: what happened during a recording (program switches, floor, screen, markers, gaps) and its chapters.

The recorder appends one JSON line per event to ``timeline.jsonl`` in the recording's directory, flushed at
once, so a crash keeps it. ``chapters()`` turns the events into chapters that follow what the lecture video
really shows (``shown``: written when the first frame of a new picture reaches the recorder, so a screen
share that never sent a frame makes none), every presenter hand-over, every marker a trainer set (never
merged away), every gap (media the disk could not take: a chapter of its own from ``gap`` to ``resume``,
after which the chapter it interrupted goes on) and every continuation after the room stood empty
(``continue``: the wait is cut out of the video); ``webvtt()`` writes them as a WebVTT chapters file.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("taphuan.recorder")

TIMELINE_FILE = "timeline.jsonl"
MIN_CHAPTER_SECONDS = 2.0  # automatic chapters closer than this merge, or yield to a marker (see chapters)
START_TITLE = "Bắt đầu"
GAP_TITLE = "Gián đoạn ghi hình"
CONTINUE_TITLE = "Tiếp tục sau gián đoạn"  # the room stood empty (or the recording was stopped): the wait is cut
NOTHING_SHOWN_TITLE = "Chỉ âm thanh"  # no camera and no screen share to show


@dataclass(frozen=True)
class TimelineEvent:
    """TimelineEvent is one line of timeline.jsonl: seconds since the recording started, kind, details."""

    t: float
    kind: str  # shown | program | floor | screen | marker | presenter | gap | resume | continue | stop
    participant_id: str | None = None
    name: str = ""
    title: str = ""
    source: str | None = None  # shown: the slot the lecture shows (screen, presenter-video, floor-video; None:
    # nothing); program: the source chosen (camera, screen)


@dataclass(frozen=True)
class Chapter:
    """Chapter is a titled span of the lecture video (seconds)."""

    start: float
    end: float
    title: str


class Timeline:
    """Timeline appends events to a recording's timeline.jsonl (one line each, flushed)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / TIMELINE_FILE
        self.events: list[TimelineEvent] = []
        self._file = self.path.open("a", encoding="utf-8")

    def add(self, event: TimelineEvent) -> None:
        """add records an event (errors are logged: the timeline never stops a recording)."""
        self.events.append(event)
        try:
            self._file.write(json.dumps(asdict(event), ensure_ascii=False) + "\n")
            self._file.flush()
        except (OSError, ValueError) as exc:
            log.warning("timeline %s: %s", self.path, exc)

    def close(self) -> None:
        """close closes the file."""
        self._file.close()


def load(directory: Path) -> list[TimelineEvent]:
    """load reads timeline.jsonl (a line cut by a crash is skipped)."""
    path = directory / TIMELINE_FILE
    events: list[TimelineEvent] = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            raw: dict[str, Any] = json.loads(line)
            events.append(TimelineEvent(**raw))
        except (ValueError, TypeError):
            continue
    return events


def _automatic_title(e: TimelineEvent) -> str | None:
    """_automatic_title is the chapter title an event of the program gives (None: no chapter of its own)."""
    if e.kind == "shown":
        if e.source == "screen":
            return f"Chia sẻ màn hình: {e.name}" if e.name else "Chia sẻ màn hình"
        if e.source == "presenter-video":
            return f"Người trình bày: {e.name}" if e.name else "Người trình bày"
        if e.source == "floor-video":
            return f"Phát biểu: {e.name}" if e.name else "Phát biểu"
        return NOTHING_SHOWN_TITLE
    if e.kind == "presenter" and e.participant_id:
        return f"Người trình bày: {e.name}" if e.name else "Người trình bày"
    return None


def chapters(events: list[TimelineEvent], duration: float) -> list[Chapter]:
    """chapters builds the chapter list of a recording of `duration` seconds (at least one chapter).

    Automatic chapters follow what the lecture video really shows (``shown`` events: a screen share, the
    presenter's camera, the floor holder's camera, nothing), and every presenter hand-over; an event that
    repeats the current title makes none. A trainer's marker always survives: automatic chapters closer
    than ``MIN_CHAPTER_SECONDS`` to a marker, a gap or a continuation yield to it, and automatic ones closer
    than that to each other merge (the earlier start, the later title). A gap is a chapter of its own until
    ``resume``, after which the interrupted chapter goes on; a continuation after the room stood empty
    (``continue``) starts a chapter ``CONTINUE_TITLE``.
    """
    marks: list[tuple[float, str, str]] = [(0.0, START_TITLE, "auto")]  # (start, title, auto | marker | fixed)
    current = START_TITLE  # the automatic title in force
    interrupted = ""  # the chapter a gap interrupted
    for e in sorted(events, key=lambda e: e.t):
        if e.t >= duration:
            continue
        title = _automatic_title(e)
        if title is not None:
            if title != current:
                current = title
                marks.append((e.t, title, "auto"))
        elif e.kind == "marker" and e.title:
            marks.append((e.t, e.title, "marker"))
        elif e.kind == "gap":
            interrupted = marks[-1][1]
            marks.append((e.t, GAP_TITLE, "fixed"))
        elif e.kind == "resume" and interrupted:
            marks.append((e.t, interrupted, "fixed"))
            interrupted = ""
        elif e.kind == "continue":
            current = CONTINUE_TITLE
            marks.append((e.t, CONTINUE_TITLE, "fixed"))
    kept = [m for m in marks if m[2] != "auto" or not any(
        o[2] != "auto" and abs(o[0] - m[0]) < MIN_CHAPTER_SECONDS for o in marks)]
    merged: list[tuple[float, str, str]] = []
    for t, title, kind in kept:
        last = merged[-1] if merged else None
        if last is not None and kind == "auto" and last[2] == "auto" and t - last[0] < MIN_CHAPTER_SECONDS:
            merged[-1] = (last[0], title, "auto")  # keep the earlier start, the later title
        elif last is not None and kind == "auto" and last[1] == title:
            continue  # the same picture goes on
        else:
            merged.append((t, title, kind))
    if not merged:
        merged = [(0.0, START_TITLE, "auto")]
    merged[0] = (0.0, merged[0][1], merged[0][2])  # the first chapter starts with the video
    out = []
    for i, (t, title, _kind) in enumerate(merged):
        end = merged[i + 1][0] if i + 1 < len(merged) else max(duration, t)
        out.append(Chapter(round(t, 3), round(end, 3), title))
    return out


def _stamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt(items: list[Chapter]) -> str:
    """webvtt is the WebVTT chapters file of `items` (for <track kind="chapters">)."""
    lines = ["WEBVTT", ""]
    for i, c in enumerate(items, 1):
        lines += [str(i), f"{_stamp(c.start)} --> {_stamp(c.end)}", c.title.replace("-->", "→"), ""]
    return "\n".join(lines)
