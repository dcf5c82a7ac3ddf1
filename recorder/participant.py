"""participant: the recorder, an in-process participant of a room that writes what it receives.

It joins the room with role ``recorder`` and, instead of a down Peer, one ``sfu.sink.Sink`` per slot
(``SLOTS``): no ICE, DTLS or SRTP; the room's fan-out calls the Sinks with each packet it forwards. The
room's slot plan fills the originals ``presenter-video``, ``screen``, ``floor-video``, ``presenter-audio``
and ``floor-audio``; ``program-video``, the lecture picture, is the recorder's own choice
(``Room.choose``, see ``program_source``): the presenter's screen share if live, else the presenter's
camera, else the floor holder's camera; the room switches it at the new source's keyframe and keeps its
sequence numbers and timestamps continuous. Packets become frames (``recorder.depacketize``), frames get
their place on the recording's timeline (``recorder.timing``), and the recording's writer thread
(``recorder.disk``) remuxes them into crash-safe segments (``recorder.writer``) and writes the timeline
(``recorder.timeline``) and meta.json. Once recording, nothing here touches the disk on the event loop,
and nothing decodes or encodes media.

When the disk falls ``recorder.disk.QUEUE_SECONDS`` behind, the writer's queue refuses frames and the
recording has a gap: the recorder logs a warning once per gap, marks it in the timeline (a ``gap`` event
where it starts and a ``resume`` event where the queue takes media again: a chapter of its own) and in
meta.json (``gaps``: start, end, frames dropped), tells its owner (``on_gap``: the Recording row), and
asks each video slot's source for a keyframe: a video slot writes nothing more until its next keyframe, so
the file resumes cleanly.

The recording runs from ``start()`` to the moment ``stop()`` is called. A busy server reads packets late,
so at that moment the last media sent before it may still be on its way: ``stop()`` waits (at most
``DRAIN_SECONDS``) until every live slot that was carrying media has received a frame timed after the
stop, cuts each slot there (``SlotClock.end``), then waits for the writer thread to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from recorder.depacketize import Frame, FrameAssembler
from recorder.disk import QUEUE_SECONDS, DiskWriter
from recorder.timeline import Timeline, TimelineEvent
from recorder.timing import SlotClock
from recorder.writer import SegmentWriter
from sfu.codec import AUDIO_MIME
from sfu.errors import SfuError
from sfu.events import (
    Event,
    FloorChanged,
    ParticipantJoined,
    ParticipantLeft,
    PresenterChanged,
    SlotChanged,
)
from sfu.participant import Capabilities
from sfu.room import Room
from sfu.sink import Sink

log = logging.getLogger("taphuan.recorder")

META_FILE = "meta.json"
RECORDER_ROLE = "recorder"
RECORDER_NAME = "Ghi hình"
DRAIN_SECONDS = 2.0  # stop() waits at most this long for media sent before it (and counts as live a slot
# whose last frame came within this time)
PROGRAM = "program-video"
PROGRAM_SOURCES = ("screen", "presenter-video", "floor-video")  # the program's source: the first live one
# The lecture's program video plus every original stream.
SLOTS: tuple[tuple[str, str], ...] = (
    (PROGRAM, "video"),
    ("presenter-video", "video"),
    ("screen", "video"),
    ("floor-video", "video"),
    ("presenter-audio", "audio"),
    ("floor-audio", "audio"),
)
SlotView = tuple[str | None, str | None, str]  # participant, source, state (as SlotChanged says)
WriterFactory = Callable[[Path, str, str, float], SegmentWriter]  # directory, slot, mime, segment seconds


@dataclass(frozen=True)
class RecorderOptions:
    """RecorderOptions: how the recorder writes (from config.recorder; `queue_seconds`: recorder.disk)."""

    segment_seconds: float = 4.0
    queue_seconds: float = QUEUE_SECONDS


@dataclass
class Gap:
    """Gap: media the disk could not take (recording seconds; `end` None while it lasts)."""

    start: float
    end: float | None = None
    dropped: int = 0  # frames


def write_meta(directory: Path, **values: Any) -> None:
    """write_meta merges `values` into the recording's meta.json (written whole, then renamed)."""
    path = directory / META_FILE
    meta = read_meta(directory)
    meta.update(values)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def read_meta(directory: Path) -> dict[str, Any]:
    """read_meta reads meta.json ({} when absent or unreadable)."""
    try:
        data = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def program_source(slots: dict[str, SlotView]) -> tuple[str, str] | None:
    """program_source is the (participant, source) the lecture shows: the first live of ``PROGRAM_SOURCES``."""
    for slot in PROGRAM_SOURCES:
        pid, source, state = slots.get(slot, (None, None, "empty"))
        if state == "live" and pid is not None and source is not None:
            return pid, source
    return None


class RecordingParticipant:
    """RecordingParticipant records one room into `directory` from ``start()`` to ``stop()``.

    `on_people(n)` is called whenever the number of other (non-recorder) participants changes;
    `on_lost()` when the room dropped the recorder (it closed); `on_gap(n)` when the n-th gap begins;
    `on_error(exc)` (on the event loop) when the disk first refused a write (read-only, full or failing).
    `segment_writer` makes each slot's SegmentWriter (tests give a disk that stalls).
    """

    def __init__(
        self,
        room: Room,
        directory: Path,
        options: RecorderOptions,
        on_people: Callable[[int], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_gap: Callable[[int], None] | None = None,
        segment_writer: WriterFactory = SegmentWriter,
        on_error: Callable[[OSError], None] | None = None,
        offset: float = 0.0,
    ) -> None:
        self.room = room
        self.directory = directory
        self.options = options
        self.participant_id = f"rec-{secrets.token_hex(4)}"
        self.video_mime = room.video_mime
        self.on_people = on_people
        self.on_lost = on_lost
        self.on_gap = on_gap
        self.on_error = on_error
        self._clock = clock
        self._segment_writer = segment_writer
        self.offset = offset  # where this take starts on the recording's timeline (> 0: it continues one)
        self.t0 = clock()
        self.started_wall = time.time()  # the wall-clock time of t0 (set again by start)
        self.stopped_wall: float | None = None  # the wall-clock time stop() was called
        self.stopped_at: float | None = None  # the recording's time stop() was called (its end)
        self.sinks: dict[str, Sink] = {}
        self.assemblers: dict[str, FrameAssembler] = {}
        self.clocks: dict[str, SlotClock] = {}
        self.writers: dict[str, SegmentWriter] = {}  # written by the disk thread only
        self.disk: DiskWriter | None = None
        self.names: dict[str, str] = {}
        self.others: set[str] = set()
        self.slot_states: dict[str, SlotView] = {}
        self.program: tuple[str, str] | None = None  # the program-video source chosen last
        self.shown: tuple[str, str] | None = None  # the source whose frames program-video carries now
        self._choosing = False  # a choice is due (_choose_program)
        self.timeline: Timeline | None = None
        self.gaps: list[Gap] = []
        self.dropped = 0  # frames the disk could not take
        self.stopped = False
        self._in_room = False
        self._cut = False  # stop() cut the slots: packets are no longer taken
        self._resync: set[str] = set()  # slots that dropped frames and wait to resume (video: at a keyframe)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._draining: set[str] = set()  # slots stop() waits for
        self._drained: asyncio.Event | None = None
        # every placed frame (slot, pts, keyframe, data), disk or not, on the event loop: the live broadcast
        # (server.live.broadcast); it must not block
        self.on_frame: Callable[[str, int, bool, bytes], None] | None = None

    @property
    def elapsed(self) -> float:
        """elapsed is the time since the recording started (seconds)."""
        return self._clock() - self.t0

    @property
    def duration(self) -> float:
        """duration is the longest slot placed so far (seconds; a continued recording's start at least)."""
        return max([self.offset, *(c.duration for c in self.clocks.values())])

    async def start(self) -> None:
        """start creates the directory, joins the room (raises SfuError, OSError) and records as media flows."""
        self.t0, self.started_wall = self._clock() - self.offset, time.time()
        meta = dict(video_codec=self.room.video_codec, video_mime=self.video_mime, started_at=self.started_wall,
                    segment_seconds=self.options.segment_seconds, slots=dict(SLOTS))
        self.timeline = await asyncio.to_thread(self._prepare, meta)
        for slot, kind in SLOTS:
            mime = self.video_mime if kind == "video" else AUDIO_MIME
            self.writers[slot] = self._segment_writer(self.directory, slot, mime, self.options.segment_seconds)
            self.clocks[slot] = SlotClock(kind == "video", self.t0)
            self.assemblers[slot] = FrameAssembler(mime, on_loss=partial(self._ask_keyframe, slot))
            self.sinks[slot] = Sink(slot, kind, partial(self._on_packet, slot), on_close=self._sink_closed)
        loop = asyncio.get_running_loop()
        on_error = self.on_error
        self.disk = DiskWriter(self.participant_id, self.writers, self.options.queue_seconds, clock=self._clock,
                               on_error=None if on_error is None else
                               lambda exc: loop.call_soon_threadsafe(on_error, exc))
        self.disk.start()
        await self.room.join(self.participant_id, RECORDER_ROLE, RECORDER_NAME, Capabilities(), self._on_event,
                             admitted=True, sinks=self.sinks)  # it only receives
        self._in_room = True
        self._watchdog = asyncio.get_running_loop().create_task(self._keyframe_watchdog())

    def _prepare(self, meta: dict[str, Any]) -> Timeline:
        self.directory.mkdir(parents=True, exist_ok=True)
        take = {"started_at": meta["started_at"], "offset": round(self.offset, 3)}
        if self.offset:  # a continuation: the recording's start, its earlier takes and gaps stay
            before = read_meta(self.directory)
            meta.pop("started_at")
            meta["takes"] = [*before.get("takes", []), take]
            self.gaps = [Gap(g["start"], g["end"], g.get("dropped", 0)) for g in before.get("gaps", [])]
        else:
            meta["takes"] = [take]
        write_meta(self.directory, **meta)
        timeline = Timeline(self.directory)
        if self.offset:
            timeline.add(TimelineEvent(round(self.offset, 3), "continue"))
        return timeline

    def _event(self, event: TimelineEvent) -> None:
        if self.timeline is not None and self.disk is not None:
            self.disk.call(partial(self.timeline.add, event))

    def marker(self, title: str) -> None:
        """marker adds a trainer's chapter marker at the current time."""
        if not self.stopped:
            self._event(TimelineEvent(round(self.elapsed, 3), "marker", title=title))

    async def stop(self, disk_timeout: float | None = None) -> None:
        """stop ends the recording now: waits for the media sent before now (see the module doc), leaves the
        room, and waits for the writer thread to write what it holds and close every segment (idempotent);
        at most `disk_timeout` seconds for the writer thread when given (``DiskWriter.close``).
        """
        if self.stopped:
            return
        self.stopped = True
        end, self.stopped_wall = self.elapsed, time.time()
        self.stopped_at = end
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._drain(end)
        self._cut = True
        with contextlib.suppress(SfuError):
            await self.room.leave(self.participant_id)
        for slot, clock in self.clocks.items():
            for pts, frame in clock.release():
                self._store(slot, pts, frame)
        duration = self.duration
        if self.gaps and self.gaps[-1].end is None:  # stopped while the disk was behind: the gap lasts to the end
            self.gaps[-1].end = round(end, 3)
            self._save_gaps()
        if self.disk is not None:
            self._event(TimelineEvent(round(duration, 3), "stop"))
            if self.timeline is not None:
                self.disk.call(self.timeline.close)
            self.disk.call(partial(write_meta, self.directory, stopped_at=self.stopped_wall, duration=duration))
            await self.disk.close(disk_timeout)
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _sink_closed(self) -> None:
        if self._in_room and not self.stopped:
            self._in_room = False
            log.warning("recorder %s: the room dropped it", self.participant_id)
            if self.on_lost is not None:
                self.on_lost()

    # ----------------------------------------------------------------------------- room events

    async def _on_event(self, event: Event) -> None:
        if self.stopped:
            return
        t = round(self.elapsed, 3)
        if isinstance(event, ParticipantJoined):
            self.names[event.participant_id] = event.name
            if event.role != RECORDER_ROLE:
                self.others.add(event.participant_id)
                self._people_changed()
        elif isinstance(event, ParticipantLeft):
            if event.participant_id in self.others:
                self.others.discard(event.participant_id)
                self._people_changed()
        elif isinstance(event, FloorChanged):
            if event.by is not None or event.participant_id is not None:
                self._event(TimelineEvent(t, "floor", event.participant_id,
                                          self.names.get(event.participant_id or "", "")))
        elif isinstance(event, PresenterChanged):
            self._event(TimelineEvent(t, "presenter", event.participant_id,
                                      self.names.get(event.participant_id or "", "")))
        elif isinstance(event, SlotChanged):
            self._slot_changed(t, event)

    def _slot_changed(self, t: float, event: SlotChanged) -> None:
        before = self.slot_states.get(event.slot, (None, None, "empty"))
        self.slot_states[event.slot] = (event.participant_id, event.source, event.state)
        if event.slot == "screen" and event.state == "live" and before[2] != "live":
            name = self.names.get(event.participant_id or "", "")
            self._event(TimelineEvent(t, "screen", event.participant_id, name, source="screen"))
        if event.slot in PROGRAM_SOURCES and not self._choosing:
            self._choosing = True  # once the room's events of this change are all in (they come together)
            asyncio.get_running_loop().call_soon(self._choose_program)

    def _choose_program(self) -> None:
        self._choosing = False
        choice = program_source(self.slot_states)
        if choice != self.program and not self.stopped:
            self.program = choice
            pid, source = choice or (None, None)
            t = round(self.elapsed, 3)
            self._event(TimelineEvent(t, "program", pid, self.names.get(pid or "", ""), source=source))
            if choice is None and self.shown is not None:  # the picture stops now; a new one when its frames come
                self.shown = None
                self._event(TimelineEvent(t, "shown"))
            self._spawn(self._choose(choice))

    def _shown_changed(self, key: tuple[str, str]) -> None:
        """_shown_changed: the first packet of another source reached program-video: the lecture shows it now."""
        self.shown = key
        pid, source = key
        slot = next((s for s in PROGRAM_SOURCES if self.slot_states.get(s, (None, None, ""))[:2] == key),
                    "screen" if source == "screen" else "presenter-video")
        self._event(TimelineEvent(round(self.elapsed, 3), "shown", pid, self.names.get(pid, ""), source=slot))

    async def _choose(self, choice: tuple[str, str] | None) -> None:
        with contextlib.suppress(SfuError):  # the room closed or dropped the recorder: nothing to show
            await self.room.choose(self.participant_id, PROGRAM, *(choice or (None, None)))

    def _people_changed(self) -> None:
        if self.on_people is not None:
            self.on_people(len(self.others))

    # ------------------------------------------------------------------------------------ media

    def _on_packet(self, slot: str, seq: int, ts: int, marker: int, payload: bytes) -> None:
        if self._cut:
            return
        if slot == PROGRAM:
            src = self.sinks[PROGRAM].source
            if src is not None and (src.participant_id, src.source) != self.shown:
                self._shown_changed((src.participant_id, src.source))
        frames = self.assemblers[slot].push(seq, ts, bool(marker), payload, self._clock())
        if not frames:
            return
        clock = self.clocks[slot]
        for frame in frames:
            for pts, placed in clock.place(frame):
                self._store(slot, pts, placed)
        if clock.past_end and slot in self._draining:
            self._draining.discard(slot)
            if not self._draining and self._drained is not None:
                self._drained.set()

    def _store(self, slot: str, pts: int, frame: Frame) -> None:
        """_store hands a placed frame to the writer thread, or drops it (see the module doc on gaps), and to
        `on_frame`."""
        if self.on_frame is not None:
            self.on_frame(slot, pts, frame.keyframe, frame.data)
        disk = self.disk
        if disk is None:
            return
        if slot in self._resync and self.clocks[slot].video and not frame.keyframe:
            self._drop()  # a video slot resumes at a keyframe
            return
        if disk.put(slot, pts, frame.keyframe, frame.data):
            resumed = slot in self._resync
            self._resync.discard(slot)
            gap = self.gaps[-1] if self.gaps else None
            if gap is not None and gap.end is None:
                self._gap_ended(gap)
            elif resumed and gap is not None:
                self._save_gaps()  # what it dropped waiting for a keyframe after the gap's end counts in the gap
            return
        gap = self.gaps[-1] if self.gaps else None
        if gap is None or gap.end is not None:
            self._gap_began()
        if slot not in self._resync:
            self._resync.add(slot)
            if self.clocks[slot].video:
                self._ask_keyframe(slot)
        self._drop()

    def _drop(self) -> None:
        self.dropped += 1
        if self.gaps:
            self.gaps[-1].dropped += 1

    def _gap_began(self) -> None:
        gap = Gap(round(self.elapsed, 3))
        self.gaps.append(gap)
        log.warning("recorder %s: the disk is %.0f s behind: dropping media until it catches up (gap %d at %.1f s "
                    "of %s)", self.participant_id, self.options.queue_seconds, len(self.gaps), gap.start,
                    self.directory.name)
        self._event(TimelineEvent(gap.start, "gap"))
        self._save_gaps()
        if self.on_gap is not None:
            self.on_gap(len(self.gaps))

    def _gap_ended(self, gap: Gap) -> None:
        gap.end = round(self.elapsed, 3)
        log.info("recorder %s: the disk caught up: gap of %.1f s at %.1f s (%d frames dropped so far)",
                 self.participant_id, gap.end - gap.start, gap.start, gap.dropped)
        self._event(TimelineEvent(gap.end, "resume"))
        self._save_gaps()
        for slot in self._resync:
            if self.clocks[slot].video:
                self._ask_keyframe(slot)

    def _save_gaps(self) -> None:
        if self.disk is not None:
            gaps = [{"start": g.start, "end": g.end, "dropped": g.dropped} for g in self.gaps]
            self.disk.call(partial(write_meta, self.directory, gaps=gaps))

    async def _drain(self, end: float) -> None:
        """_drain cuts every slot at `end` and waits until each live one got a frame timed after it."""
        for clock in self.clocks.values():
            clock.end = round(end * clock.rate)
        if not self._in_room:
            return
        now = self._clock()
        self._draining = {slot for slot, c in self.clocks.items() if self.writers[slot].failed is None
                          and not c.past_end and c.last_arrival is not None and now - c.last_arrival < DRAIN_SECONDS
                          and self.slot_states.get(slot, (None, None, "live"))[2] == "live"}
        if not self._draining:
            return
        self._drained = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), DRAIN_SECONDS)
        if self._draining:
            log.info("recorder %s: stopped without the last media of %s", self.participant_id,
                     ", ".join(sorted(self._draining)))

    def _ask_keyframe(self, slot: str) -> None:
        if not self.stopped:
            self.sinks[slot].request_keyframe()

    async def _keyframe_watchdog(self) -> None:
        """_keyframe_watchdog repeats the keyframe request of a slot still waiting for one (every second): after
        a loss, and after a gap once the disk has room again."""
        while not self.stopped:
            await asyncio.sleep(1.0)
            for slot, assembler in self.assemblers.items():
                if self.sinks[slot].source is None:
                    continue
                if assembler.waiting_keyframe:
                    assembler.reset_keyframe_request()
                    self._ask_keyframe(slot)
                elif slot in self._resync and self.clocks[slot].video and self.disk is not None \
                        and self.disk.has_room():
                    self._ask_keyframe(slot)
