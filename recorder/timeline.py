"""timeline: what happened during a recording (program switches, floor, screen, markers, gaps) and its chapters.

The recorder appends one JSON line per event to ``timeline.jsonl`` in the recording's directory, flushed at
once, so a crash keeps it. ``chapters()`` turns the events into chapters: the start, every floor change,
every screen-share start, every marker a trainer set, and every gap (media the disk could not take: a
chapter of its own from ``gap`` to ``resume``, after which the chapter it interrupted goes on); ``webvtt()``
writes them as a WebVTT chapters file for the player.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("taphuan.recorder")

TIMELINE_FILE = "timeline.jsonl"
MIN_CHAPTER_SECONDS = 2.0  # closer events merge into one chapter (the later title wins)
GAP_TITLE = "Gián đoạn ghi hình"


@dataclass(frozen=True)
class TimelineEvent:
    """TimelineEvent is one line of timeline.jsonl: seconds since the recording started, kind, details."""

    t: float
    kind: str  # program | floor | screen | marker | presenter | gap | resume | stop
    participant_id: str | None = None
    name: str = ""
    title: str = ""
    source: str | None = None


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


def chapters(events: list[TimelineEvent], duration: float) -> list[Chapter]:
    """chapters builds the chapter list of a recording of `duration` seconds (at least one chapter)."""
    marks: list[tuple[float, str]] = [(0.0, "Bắt đầu")]
    interrupted = ""  # the chapter a gap interrupted
    for e in sorted(events, key=lambda e: e.t):
        if e.t >= duration:
            continue
        if e.kind == "floor" and e.participant_id:
            marks.append((e.t, f"Phát biểu: {e.name or e.participant_id}"))
        elif e.kind == "floor":
            marks.append((e.t, "Người trình bày"))
        elif e.kind == "screen":
            marks.append((e.t, f"Chia sẻ màn hình: {e.name}" if e.name else "Chia sẻ màn hình"))
        elif e.kind == "marker" and e.title:
            marks.append((e.t, e.title))
        elif e.kind == "gap":
            interrupted = marks[-1][1]
            marks.append((e.t, GAP_TITLE))
        elif e.kind == "resume" and interrupted:
            marks.append((e.t, interrupted))
    merged: list[tuple[float, str]] = []
    for t, title in marks:
        if merged and t - merged[-1][0] < MIN_CHAPTER_SECONDS:
            merged[-1] = (merged[-1][0], title)  # keep the earlier start, the later title
        else:
            merged.append((t, title))
    out = []
    for i, (t, title) in enumerate(merged):
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
