"""server.live.recordings: the recording service: one recorder per live room, finalizing, recovery, access rules.

Who owns what:
- `Recorders` (one per app, under `RECORDERS`, started by a cleanup context after the live side's)
  owns the active `recorder.participant.RecordingParticipant`s (one per meeting's room) and the queue of
  recordings to finalize. Finalizing runs one recording at a time in a child process
  (`recorder.worker`, niced), so the live rooms keep the CPU.
- Recording rows (`server.db.models.Recording`) carry state and progress: recording → processing (percent)
  → ready | failed (reason), and `gaps`, the number of times the disk fell too far behind while recording
  (media is missing there; see docs/recorder.md). Pages poll the API for them.
- One meeting is one archive entry. A recording that starts less than `recorder.continue_gap_minutes` after the
  meeting's last one stopped (the room stood empty, a moderator stopped it, the room dropped the recorder) continues
  it: the same row and directory, the new media placed right after the old (the wait is cut out; a `continue`
  event in the timeline makes the chapter "Tiếp tục sau gián đoạn"), and the whole recording is finalized again.
  Meanwhile a stopped recording is finalized at once but keeps its segments (`open_parts`); they go when the wait
  is over (`_release`). After a longer wait, a new recording is the meeting's next `part` (the archive shows a
  meeting's parts as one entry). `finish_meeting` is the one way to say the meeting is over: its recording stops
  and nothing continues it. Whoever comes back to an emptied room before it closes is recorded again
  (`_watch_return`: no new room announces them). A meeting's starts and stops take turns (`turns`, one lock a
  meeting while any holds or awaits it); a recorder's own stop (its room emptied or dropped it, its disk failed)
  stops only itself, never a take that replaced it in a room made again.
- At start, recordings left `recording` or `processing` by a killed server are finalized from their
  segments and flagged `recovered`. A clean shutdown stops the recorders and hands the finalizing (it may take
  longer than a shutdown may) to a process of its own that outlives the server (server.live.finisher).
- Retention (`recorder.retention_days`, 0 = keep) deletes nothing silently: each deletion is audit-logged
  and logged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import json
import logging
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, false, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from recorder.archive import free_bytes, has_segments, read_result
from recorder.participant import RecorderOptions, RecordingParticipant
from recorder.worker import WorkerError, release, run_worker
from server.audit import record
from server.auth import Identity
from server.bus import keep_renewing
from server.config import CONFIG, Config
from server.db.engine import DB, update_row
from server.db.models import (
    Meeting,
    MeetingStatus,
    Recording,
    RecordingState,
    Role,
    meeting_classrooms,
    meeting_presenters,
    program_learners,
    program_trainers,
    utcnow,
)
from server.live.audience import reaches_recording
from server.live.broadcast import BROADCASTS
from server.live.cluster import CLUSTER
from server.live.recording_claims import claim
from server.live.service import LIVE
from sfu.errors import SfuError
from sfu.room import Room

log = logging.getLogger("taphuan.recordings")
SHUTDOWN_DISK_SECONDS = 10.0  # at shutdown, wait at most this for a recording's writer thread (a dead disk)
CONTINUE_PAD_SECONDS = 0.1  # a continuation's media starts this long after the last frame before the pause
RETURN_POLL_SECONDS = 1.0  # how often an emptied room the recorder left is checked for people coming back
CONTINUABLE = frozenset({"stopped", "empty", "lost"})  # stop reasons after which the meeting may continue it

DISK_MESSAGE = ("Không đủ dung lượng đĩa để ghi hình ({free} MB còn trống, cần {need} MB). / "
                "Not enough disk space to record ({free} MB free, {need} MB required).")
STORAGE_MESSAGE = ("Máy chủ không ghi được bản ghi ({reason}); hãy báo quản trị viên máy chủ. / "
                   "The server cannot write the recording ({reason}): tell its administrator.")
MODERATOR_ROLES = frozenset({"operator", "trainer", "leader"})


class RecordingRefused(Exception):
    """RecordingRefused: a recording cannot start or stop; `code` as in docs/protocol.md, `message` bilingual."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Active:
    """Active: one meeting being recorded now."""

    recording_id: int
    meeting_id: int
    participant: RecordingParticipant
    empty_timer: asyncio.TimerHandle | None = None


@dataclass
class OpenPart:
    """OpenPart: a stopped recording its meeting may still continue (until `timer` releases its segments)."""

    meeting_id: int
    end: float  # where its media ended (seconds): a continuation starts right after
    stopped: float  # loop time of the stop
    timer: asyncio.TimerHandle | None = None


@dataclass
class Turns:
    """Turns: one meeting's starts and stops, one at a time (`Recorders._one_at_a_time`)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # holding or awaiting the lock


@dataclass
class Recorders:
    """Recorders: the app's recorders and finalize queue; see the module doc."""

    app: web.Application
    active: dict[int, Active] = field(default_factory=dict)
    queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    progress: dict[int, int] = field(default_factory=dict)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    closing: bool = False
    open_parts: dict[int, OpenPart] = field(default_factory=dict)  # recording → its meeting may continue it
    pending: collections.Counter[int] = field(default_factory=collections.Counter)  # queued or being finalized
    resuming: set[int] = field(default_factory=set)  # recordings a start is continuing (not yet active)
    stopping: set[int] = field(default_factory=set)  # recordings a stop has taken from `active`, not yet queued
    # meeting → why its recording could not start, until one starts: told to the moderators who join later (an
    # automatic start fails while the first of them is still entering the room)
    refusals: dict[int, str] = field(default_factory=dict)
    # meeting → the turns its starts and stops take: an automatic start (a room made), a moderator's start and a
    # stop (the room emptied, dropped the recorder) may come at once; removed when nobody holds or awaits it
    turns: dict[int, Turns] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """root is the directory holding every recording."""
        return self.app[CONFIG].data_path / "recordings"

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------------------------ start / stop

    @contextlib.asynccontextmanager
    async def _one_at_a_time(self, meeting_id: int) -> AsyncIterator[None]:
        """_one_at_a_time: the meeting's starts and stops run one after the other, each seeing what the one before
        left (`active`, the Recording row's state, `open_parts`)."""
        turns = self.turns.setdefault(meeting_id, Turns())
        turns.users += 1
        try:
            async with turns.lock:
                yield
        finally:
            turns.users -= 1
            if not turns.users:
                del self.turns[meeting_id]

    def room_created(self, room: Room) -> None:
        """room_created (an Sfu listener): start recording the meeting if it is to be recorded."""
        if not self.closing:
            self._spawn(self._auto_start(room), f"recorder-auto-{room.id}")

    async def _auto_start(self, room: Room) -> None:
        cfg = self.app[CONFIG].recorder
        if not (cfg.enabled and cfg.auto_start) or not room.id.isdigit():
            return
        async with self.app[DB]() as s:
            meeting = await s.get(Meeting, int(room.id))
        if meeting is None or not meeting.record or meeting.status != MeetingStatus.PUBLISHED:
            return
        try:
            await self.start(meeting.id, None, room)
        except RecordingRefused as exc:
            if exc.code != "state":
                log.warning("meeting %s: automatic recording refused: %s", meeting.id, exc.message)
        except Exception:
            log.exception("meeting %s: automatic recording failed to start", meeting.id)

    async def start(self, meeting_id: int, by: Identity | None, room: Room | None = None) -> int:
        """start records the meeting's open room; returns the Recording id. Raises RecordingRefused."""
        if not self.app[CONFIG].recorder.enabled:
            raise RecordingRefused("forbidden", "Máy chủ không bật ghi hình. / Recording is turned off on this server.")
        async with self._one_at_a_time(meeting_id):
            room = room or self.app[LIVE].sfu.rooms.get(str(meeting_id))
            if room is None or room.closed:
                raise RecordingRefused("state", "Phòng của buổi tập huấn chưa mở. / The meeting's room is not open.")
            active = self.active.get(meeting_id)
            if active is not None and active.participant.room.closed:
                # the meeting's room was made again (the old one closed, empty for its grace) before the recorder
                # left the old one: that recording stops as dropped and this start continues it in the new room
                del self.active[meeting_id]
                await self._stopping(meeting_id, active, None, "lost")
            elif active is not None:
                raise RecordingRefused("state",
                                       "Buổi tập huấn đang được ghi hình. / The meeting is already being recorded.")
            return await self._start(meeting_id, by, room)

    async def _start(self, meeting_id: int, by: Identity | None, room: Room) -> int:
        cfg = self.app[CONFIG]
        free = free_bytes(self.root)
        if free < cfg.recorder.min_free_bytes:
            message = DISK_MESSAGE.format(free=free // 1_000_000, need=cfg.recorder.min_free_bytes // 1_000_000)
            await self._refused(meeting_id, by, message, "disk-full")
            raise RecordingRefused("disk-full", message)
        async with self.app[DB]() as s:
            meeting = await s.get(Meeting, meeting_id)
            if meeting is None:
                raise RecordingRefused("not-found", "Không có buổi tập huấn này. / No such meeting.")
            codec = room.snapshot().video_codec
            last = await s.scalar(select(Recording).where(Recording.meeting_id == meeting_id)
                                  .order_by(Recording.part.desc(), Recording.id.desc()).limit(1))
            orphan = None
            if last is not None and last.state == RecordingState.RECORDING and CLUSTER in self.app \
                    and last.id not in self.held() and not await claim(self.app[CLUSTER], [last.id]):
                # several nodes: the node that recorded this meeting died (its room is ours now): its part is
                # finalized from its segments, flagged `recovered`, and this recording is the meeting's next part
                orphan = last.id
                last.recovered, last.state = True, RecordingState.PROCESSING
                last.ended_at = last.ended_at or utcnow()
                record(s, None, "recording.recovered", f"recording:{last.id}", meeting_id=meeting_id)
                log.warning("recording %s: its node stopped abruptly: recovering it", last.id)
            part = self.open_parts.get(last.id) if last is not None else None
            offset = 0.0
            if last is not None and part is not None and last.video_codec == codec \
                    and last.state != RecordingState.FAILED:
                self._forget(last.id)  # continued: its segments stay
                self.resuming.add(last.id)
                row, offset = last, part.end + CONTINUE_PAD_SECONDS
                waited = asyncio.get_running_loop().time() - part.stopped
                row.state, row.ended_at, row.progress = RecordingState.RECORDING, None, 0
                record(s, None, "recording.continue", f"recording:{row.id}", actor_id=by.user_id if by else None,
                       meeting_id=meeting_id, automatic=by is None, after_seconds=round(waited))
            else:
                for rid, other in list(self.open_parts.items()):
                    if other.meeting_id == meeting_id:  # a new part: the earlier one can no longer continue
                        self._spawn(self._release(rid), f"recording-release-{rid}")
                now = utcnow()
                row = Recording(meeting_id=meeting_id, program_id=meeting.program_id, title=meeting.title,
                                directory=f"{meeting_id}-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}",
                                video_codec=codec, started_at=now, started_by=by.user_id if by else None,
                                part=last.part + 1 if last is not None else 1)
                s.add(row)
                await s.flush()
                record(s, None, "recording.start", f"recording:{row.id}", actor_id=by.user_id if by else None,
                       meeting_id=meeting_id, automatic=by is None, part=row.part)
            await s.commit()
            recording_id, directory = row.id, row.directory
        if orphan is not None:
            self._enqueue(orphan)
        options = RecorderOptions(segment_seconds=cfg.recorder.segment_seconds)
        participant = RecordingParticipant(
            room, self.root / directory, options, offset=offset,
            on_people=lambda n: self._people(meeting_id, n, participant),
            on_lost=lambda: self._spawn(self._dropped(meeting_id, participant, "lost"), f"recorder-lost-{meeting_id}"),
            on_gap=lambda n: self._spawn(self._set(recording_id, gaps=n), f"recording-gap-{recording_id}"),
            on_error=lambda exc: self._spawn(self._write_failed(meeting_id, recording_id, participant, exc),
                                             f"recording-error-{recording_id}"),
        )
        self.active[meeting_id] = Active(recording_id, meeting_id, participant)
        self.resuming.discard(recording_id)
        try:
            await participant.start()
        except (SfuError, OSError) as exc:
            del self.active[meeting_id]
            await participant.stop()
            if offset:  # what the meeting recorded before stays: finalized as it was
                await self._set(recording_id, state=RecordingState.PROCESSING, ended_at=utcnow())
                self._enqueue(recording_id)
            elif room.closed:  # the room closed (empty for its grace) while this start set up: nothing recorded,
                async with self.app[DB]() as s:  # no part to list; a new room's start makes the part
                    made = await s.get(Recording, recording_id)
                    if made is not None:
                        await delete_recording(s, self.root, made, None, reason="the room closed before it began")
                    await s.commit()
                raise RecordingRefused("state", "Phòng của buổi tập huấn đã đóng. / The meeting's room closed.") \
                    from exc
            else:
                await self._set(recording_id, state=RecordingState.FAILED, error=str(exc), ended_at=utcnow())
            if isinstance(exc, OSError):  # the storage refused: the moderators must know (an automatic start too)
                log.error("meeting %s: recording %s cannot be written: %s", meeting_id, recording_id, exc)
                await self._refused(meeting_id, by, STORAGE_MESSAGE.format(reason=exc.strerror or exc), "storage")
                raise RecordingRefused("storage", STORAGE_MESSAGE.format(reason=exc.strerror or exc)) from exc
            raise RecordingRefused("state", f"Không ghi hình được: {exc} / Cannot record: {exc}") from exc
        broadcasts = self.app.get(BROADCASTS)
        if broadcasts is not None:
            broadcasts.begin(meeting_id, recording_id, self.root / directory, participant)
        if not any(p.role != "recorder" for p in room.snapshot().participants):
            self._people(meeting_id, 0, participant)  # nobody else yet: it stops after the room's grace if none come
        self.refusals.pop(meeting_id, None)
        log.info("meeting %s: recording %s %s in %s", meeting_id, recording_id,
                 f"continued at {offset:.1f} s" if offset else "started", directory)
        await self.broadcast(meeting_id, {"type": "recording", "state": "recording", "recording_id": recording_id,
                                          "by": by.user_id if by else None})
        return recording_id

    async def _refused(self, meeting_id: int, by: Identity | None, message: str, reason: str) -> None:
        log.warning("meeting %s: recording refused: %s", meeting_id, message)
        self.refusals[meeting_id] = message
        async with self.app[DB]() as s:
            record(s, None, "recording.refused", f"meeting:{meeting_id}", actor_id=by.user_id if by else None,
                   reason=reason)
            await s.commit()
        await self.broadcast(meeting_id, {"type": "recording", "state": "refused", "reason": message},
                             roles=MODERATOR_ROLES)

    async def _write_failed(self, meeting_id: int, recording_id: int, participant: RecordingParticipant,
                            exc: OSError) -> None:
        """_write_failed: the disk refused the running recording's writes: it stops (reason `storage`: everyone
        sees it stop, the moderators' pages say why) and keeps the error; what was written is finalized."""
        active = self.active.get(meeting_id)
        if active is None or active.participant is not participant:
            return
        log.error("meeting %s: recording %s cannot be written: %s", meeting_id, recording_id, exc)
        await self._set(recording_id, error=STORAGE_MESSAGE.format(reason=exc.strerror or exc))
        await self._dropped(meeting_id, participant, "storage")

    def _people(self, meeting_id: int, count: int, participant: RecordingParticipant) -> None:
        active = self.active.get(meeting_id)
        if active is None or active.participant is not participant:
            return  # an earlier take's recorder (its room closed) counting the people it still sees
        if active.empty_timer is not None:
            active.empty_timer.cancel()
            active.empty_timer = None
        if count == 0:
            grace = self.app[CONFIG].sfu.room_grace_seconds
            active.empty_timer = asyncio.get_running_loop().call_later(
                grace, lambda: self._spawn(self._dropped(meeting_id, participant, "empty"),
                                           f"recorder-empty-{meeting_id}"))

    async def stop(self, meeting_id: int, by: Identity | None, reason: str = "stopped") -> int:
        """stop ends the meeting's recording and queues it for finalizing; returns its id."""
        async with self._one_at_a_time(meeting_id):
            active = self.active.pop(meeting_id, None)
            if active is None:
                raise RecordingRefused("state",
                                       "Buổi tập huấn không được ghi hình. / The meeting is not being recorded.")
            return await self._stopping(meeting_id, active, by, reason)

    async def _dropped(self, meeting_id: int, participant: RecordingParticipant, reason: str) -> None:
        """_dropped: the recorder's own stop (its room emptied or dropped it, the disk refused its writes): none if
        the meeting's recording is another recorder's by its turn (a start replaced it)."""
        async with self._one_at_a_time(meeting_id):
            active = self.active.get(meeting_id)
            if active is not None and active.participant is participant:
                del self.active[meeting_id]
                await self._stopping(meeting_id, active, None, reason)

    async def _stopping(self, meeting_id: int, active: Active, by: Identity | None, reason: str) -> int:
        # until it is queued, a finalizing of an earlier take that ends meanwhile is stale (``_superseded``): its
        # READY, with the earlier takes only, was what a continued meeting's page was shown (the full suite
        # beside stress-ng: the participant's stop drains and flushes for a while on a loaded host)
        self.stopping.add(active.recording_id)
        try:
            return await self._stop(meeting_id, active, by, reason)
        finally:
            self.stopping.discard(active.recording_id)

    async def _stop(self, meeting_id: int, active: Active, by: Identity | None, reason: str) -> int:
        if active.empty_timer is not None:
            active.empty_timer.cancel()
        await active.participant.stop(SHUTDOWN_DISK_SECONDS if self.closing else None)
        broadcasts = self.app.get(BROADCASTS)
        if broadcasts is not None:  # its broadcast ends with it (ENDLIST)
            await broadcasts.end(meeting_id)
        async with self.app[DB]() as s:
            row = await s.get(Recording, active.recording_id)
            if row is not None:
                row.state = RecordingState.PROCESSING
                row.ended_at = utcnow()
                row.duration = round(active.participant.duration, 3)
                record(s, None, "recording.stop", f"recording:{row.id}", actor_id=by.user_id if by else None,
                       meeting_id=meeting_id, reason=reason)
            await s.commit()
        log.info("meeting %s: recording %s stopped (%s)", meeting_id, active.recording_id, reason)
        await self.broadcast(meeting_id, {"type": "recording", "state": "stopped",
                                          "recording_id": active.recording_id, "reason": reason})
        if not self.closing:
            minutes = self.app[CONFIG].recorder.continue_gap_minutes
            if reason in CONTINUABLE and minutes > 0:  # the meeting may continue it: its segments stay until then
                loop = asyncio.get_running_loop()
                rid = active.recording_id
                self.open_parts[rid] = OpenPart(meeting_id, active.participant.duration, loop.time(), loop.call_later(
                    minutes * 60, lambda: self._spawn(self._release(rid), f"recording-release-{rid}")))
            self._enqueue(active.recording_id)
            if reason == "empty":
                self._spawn(self._watch_return(meeting_id, active.participant.room), f"recorder-return-{meeting_id}")
        return active.recording_id

    async def _watch_return(self, meeting_id: int, room: Room) -> None:
        """_watch_return: the recorder left an empty room, which stays open for its own grace: whoever comes back
        before it closes is recorded again (no new room announces it), as automatic starts would be."""
        while not room.closed and not self.closing and meeting_id not in self.active:
            if any(p.role != "recorder" for p in room.snapshot().participants):
                await self._auto_start(room)
                return
            await asyncio.sleep(RETURN_POLL_SECONDS)

    async def finish_meeting(self, meeting_id: int, by: Identity | None = None) -> int | None:
        """finish_meeting: the meeting is over (ended for everyone, or at its end): its recording stops if it runs
        (reason `meeting-ended`) and is finalized, and nothing continues it any more (a later recording of the
        meeting is its next part). Returns the id of the recording finished (None when none was running or
        continuable)."""
        finished = None
        if meeting_id in self.active:
            finished = await self.stop(meeting_id, by, "meeting-ended")
        for rid, part in list(self.open_parts.items()):
            if part.meeting_id == meeting_id:
                await self._release(rid)
                finished = finished or rid
        return finished

    def _enqueue(self, recording_id: int) -> None:
        self.pending[recording_id] += 1
        self.queue.put_nowait(recording_id)

    def _forget(self, recording_id: int) -> OpenPart | None:
        """_forget: the recording can no longer be continued (or is being continued): stop its wait."""
        part = self.open_parts.pop(recording_id, None)
        if part is not None and part.timer is not None:
            part.timer.cancel()
        return part

    async def _release(self, recording_id: int) -> None:
        """_release: the wait for a continuation is over: the recording's segments go (once it is finalized)."""
        if self._forget(recording_id) is None or self.pending[recording_id] > 0:
            return  # its finalizing removes them
        async with self.app[DB]() as s:
            row = await s.get(Recording, recording_id)
        if row is not None:
            await asyncio.to_thread(release, self.root / row.directory)

    def _superseded(self, recording_id: int) -> bool:
        """_superseded: the recording is being continued, stopped or queued again: an earlier finalizing's result is
        stale."""
        return self.pending[recording_id] > 1 or recording_id in self.resuming or recording_id in self.stopping \
            or any(a.recording_id == recording_id for a in self.active.values())

    def marker(self, meeting_id: int, title: str) -> None:
        """marker adds a chapter marker to the meeting's recording; raises RecordingRefused when none runs."""
        active = self.active.get(meeting_id)
        if active is None:
            raise RecordingRefused("state", "Buổi tập huấn không được ghi hình. / The meeting is not being recorded.")
        active.participant.marker(title)

    async def broadcast(self, meeting_id: int, message: dict[str, Any], roles: frozenset[str] | None = None) -> None:
        """broadcast sends a message to the meeting's joined connections (of `roles` only, when given)."""
        live = self.app.get(LIVE)
        if live is None:
            return
        for conn in live.in_meeting(meeting_id):
            if roles is None or conn.ident.role.value in roles:
                await conn.send(message)

    # ------------------------------------------------------------------------------- finalizing

    async def _set(self, recording_id: int, **values: Any) -> None:
        await update_row(self.app[DB], Recording, recording_id, **values)

    async def _finalizer(self) -> None:
        while True:
            recording_id = await self.queue.get()
            try:
                await self.finalize(recording_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("finalizing recording %s failed", recording_id)
            finally:
                self.pending[recording_id] -= 1
                if self.pending[recording_id] <= 0:
                    del self.pending[recording_id]

    async def finalize(self, recording_id: int) -> None:
        """finalize builds the recording's files in the worker process and marks it ready or failed (several nodes:
        unless another living node holds it, server.live.recording_claims)."""
        async with self.app[DB]() as s:
            row = await s.get(Recording, recording_id)
            if row is None:
                return
            directory = self.root / row.directory
        cluster = self.app.get(CLUSTER)
        if cluster is not None:
            try:
                others = await claim(cluster, [recording_id])
            except Exception:  # Redis away for a moment: finalize (the worker's lock keeps two from colliding)
                log.warning("recording %s: could not claim it in Redis; finalizing it anyway", recording_id,
                            exc_info=True)
                others = set()
            if others:
                log.info("recording %s: another node finalizes it", recording_id)
                return
        if self._superseded(recording_id):
            return  # continued meanwhile: finalized once it stops again
        keep = recording_id in self.open_parts  # the meeting may still continue it: its segments stay
        async with self.app[DB]() as s:  # (not over a continuation that began meanwhile)
            await s.execute(update(Recording).where(Recording.id == recording_id,
                                                    Recording.state != RecordingState.RECORDING)
                            .values(state=RecordingState.PROCESSING, progress=0))
            await s.commit()
        self.progress[recording_id] = 0
        result = read_result(directory)
        if result is None or not (directory / result.file).exists() or has_segments(directory):
            last_saved = [0]

            def on_progress(percent: int) -> None:
                self.progress[recording_id] = percent
                if percent - last_saved[0] >= 5 and not self._superseded(recording_id):
                    last_saved[0] = percent
                    self._spawn(self._set(recording_id, progress=percent), f"recording-progress-{recording_id}")

            def on_lecture(_result: dict[str, object]) -> None:  # watchable now; the originals follow
                self._spawn(self._ready(recording_id, directory), f"recording-ready-{recording_id}")

            try:
                await run_worker(directory, self.app[CONFIG].recorder.worker_nice, on_progress, on_lecture, keep)
            except WorkerError as exc:
                log.error("recording %s failed: %s", recording_id, exc)
                if read_result(directory) is None and not self._superseded(recording_id):
                    await self._set(recording_id, state=RecordingState.FAILED, error=str(exc)[:2000])
                self.progress.pop(recording_id, None)
                return
            if keep and recording_id not in self.open_parts and not self._superseded(recording_id):
                await asyncio.to_thread(release, directory)  # its wait ended while it was being finalized
        await self._ready(recording_id, directory)

    async def _ready(self, recording_id: int, directory: Path) -> None:
        """_ready marks the recording ready from its result.json (again once the originals are written)."""
        if self._superseded(recording_id):
            self.progress.pop(recording_id, None)
            return
        result = read_result(directory)
        if result is None:
            await self._set(recording_id, state=RecordingState.FAILED, error="no result")
            return
        await self._set(recording_id, state=RecordingState.READY, progress=100, file=result.file, mime=result.mime,
                        duration=result.duration, size=result.size, chapters=result.chapters,
                        originals=result.originals, error="")
        broadcasts = self.app.get(BROADCASTS)
        if result.originals and self.app[CONFIG].broadcast.archive:  # fully finalized: the archive's renditions
            if broadcasts is not None:
                await broadcasts.archive(recording_id, directory)
            else:  # the finisher (no broadcasts): the next server start makes them (Broadcasts.resume)
                await self._set(recording_id, hls_state="queued")
        self.progress.pop(recording_id, None)
        log.info("recording %s ready: %s (%.1f s) in %.1f s; %d originals", recording_id, result.file,
                 result.duration, result.seconds, len(result.originals))

    async def recover(self) -> None:
        """recover queues recordings a killed server left behind (flagged `recovered`) and unfinished ones; with
        several nodes only those no other living node holds (records, finalizes, keeps: recording_claims)."""
        async with self.app[DB]() as s:
            rows = list((await s.scalars(select(Recording).where(Recording.state.in_(
                (RecordingState.RECORDING, RecordingState.PROCESSING))).order_by(Recording.id))).all())
            cluster = self.app.get(CLUSTER)
            for row in list(rows):
                if row.state == RecordingState.RECORDING and cluster is not None and row.meeting_id is not None \
                        and await cluster.owner(row.meeting_id) is not None:
                    rows.remove(row)  # several nodes: another living node records this meeting now
            if cluster is not None:
                others = await claim(cluster, [row.id for row in rows])
                rows = [row for row in rows if row.id not in others]
            for row in rows:
                if row.state == RecordingState.RECORDING:
                    row.recovered = True
                    row.state = RecordingState.PROCESSING
                    row.ended_at = row.ended_at or utcnow()
                    record(s, None, "recording.recovered", f"recording:{row.id}", meeting_id=row.meeting_id)
                    log.warning("recording %s was interrupted (server stopped abruptly): recovering it", row.id)
            await s.commit()
            ready = {rid: name for rid, name in (await s.execute(select(Recording.id, Recording.directory).where(
                Recording.state == RecordingState.READY))).all()}
        for row in rows:
            self._enqueue(row.id)
        kept = await asyncio.to_thread(lambda: [rid for rid, name in ready.items() if has_segments(self.root / name)])
        if cluster is not None and kept:  # not the segments a living node keeps for its meeting's continuation
            others = await claim(cluster, kept)
            kept = [rid for rid in kept if rid not in others]
        await asyncio.to_thread(self._sweep, [ready[rid] for rid in kept])

    def _sweep(self, directories: list[str]) -> None:
        """_sweep removes the segments finalized recordings kept for a continuation that can no longer come (the
        server stopped meanwhile; blocking: run in a thread)."""
        for name in directories:
            log.info("recording %s: removing the segments kept for a continuation", name)
            release(self.root / name)

    def held(self) -> set[int]:
        """held: the recordings this node holds: recording or stopping, queued or being finalized, kept for a
        continuation."""
        return {a.recording_id for a in self.active.values()} | set(self.pending) | set(self.progress) \
            | set(self.open_parts) | self.resuming | self.stopping

    # -------------------------------------------------------------------------------- retention

    async def retention(self) -> int:
        """retention deletes finished recordings older than recorder.retention_days (audit-logged); returns n."""
        days = self.app[CONFIG].recorder.retention_days
        if days <= 0:
            return 0
        cutoff = utcnow() - dt.timedelta(days=days)
        async with self.app[DB]() as s:
            rows = list((await s.scalars(select(Recording).where(
                Recording.started_at < cutoff,
                Recording.state.in_((RecordingState.READY, RecordingState.FAILED))))).all())
            for row in rows:
                await delete_recording(s, self.root, row, None, reason=f"retention ({days} days)")
            await s.commit()
        return len(rows)

    async def _retention_pass(self) -> None:
        try:
            await self.retention()
        except Exception:
            log.exception("recording retention failed")

    async def _retention_loop(self) -> None:
        while True:  # the first pass ran in open(): one pass at a time, never two racing over the same rows
            await asyncio.sleep(6 * 3600)
            await self._retention_pass()

    # --------------------------------------------------------------------------------- lifetime

    async def open(self) -> None:
        """open recovers leftovers, starts the finalizer and retention, and listens for new rooms."""
        self.root.mkdir(parents=True, exist_ok=True)
        await self.recover()
        await self._retention_pass()
        self._spawn(self._finalizer(), "recordings-finalizer")
        self._spawn(self._retention_loop(), "recordings-retention")
        cluster = self.app.get(CLUSTER)
        if cluster is not None:  # several nodes: what this node holds stays its own while it lives
            self._spawn(keep_renewing(cluster.lease / 3, lambda: claim(cluster, self.held()),
                                      "this node's recordings"), "recordings-claims")
        self.app[LIVE].sfu.on_room_created.append(self.room_created)

    async def close(self) -> None:
        """close stops every recorder and the finalizer, and hands what is left to finalize (the recordings just
        stopped, the queue, the one being finalized) to a process that outlives the server (server.live.finisher)."""
        self.closing = True
        with contextlib.suppress(ValueError):
            self.app[LIVE].sfu.on_room_created.remove(self.room_created)
        for rid in list(self.open_parts):  # their segments go at the next start (recover)
            self._forget(rid)
        left: list[int] = []
        for meeting_id in list(self.active):
            with contextlib.suppress(Exception):
                left.append(await self.stop(meeting_id, None, "server-shutdown"))
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)  # the worker of the one being finalized is killed
        left[:0] = list(self.progress)  # being finalized (its progress is known until it is ready or failed)
        while not self.queue.empty():
            left.append(self.queue.get_nowait())
        left = list(dict.fromkeys(left))
        if left:
            hand_over(self.app[CONFIG], left)
            log.info("recordings %s: finalizing continues after the shutdown", left)


def hand_over(config: Config, recording_ids: list[int]) -> subprocess.Popen[bytes]:
    """hand_over: start server.live.finisher for `recording_ids`, the configuration and the ids on its standard input;
    returns at once (the process outlives the server)."""
    proc = subprocess.Popen([sys.executable, "-m", "server.live.finisher"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"config": config.model_dump(mode="json"), "recordings": recording_ids}).encode())
    proc.stdin.close()
    return proc


def refusal_for(app: web.Application, meeting_id: int, role: str) -> list[dict[str, Any]]:
    """refusal_for: for a moderator who just joined, the `recording` `refused` message of a recording of the meeting
    that could not start (and has not started since); nothing for others."""
    recorders = app.get(RECORDERS)
    reason = recorders.refusals.get(meeting_id) if recorders is not None else None
    if reason is None or role not in MODERATOR_ROLES:
        return []
    return [{"type": "recording", "state": "refused", "reason": reason}]


async def delete_recording(s: AsyncSession, root: Path, row: Recording, request: web.Request | None,
                           reason: str = "deleted") -> None:
    """delete_recording removes a recording's files and row, with an audit entry and a log line."""
    record(s, request, "recording.delete", f"recording:{row.id}", title=row.title, meeting_id=row.meeting_id,
           directory=row.directory, reason=reason)
    log.warning("recording %s (%s) deleted: %s", row.id, row.title, reason)
    await asyncio.to_thread(_remove_directory, root, row.directory)
    await s.delete(row)


def _remove_directory(root: Path, name: str) -> None:
    target = (root / name).resolve()
    if name and target.parent == root.resolve():
        shutil.rmtree(target, ignore_errors=True)


# ------------------------------------------------------------------------------------ access rules


def visible(ident: Identity) -> ColumnElement[bool]:
    """visible: the SQL condition for recordings `ident` may list and watch.

    Operators: all. Trainers and leaders: every recording of meetings they present, and published ones of
    programs they learn in or train (whose self-study lists them). Classrooms: published recordings of
    meetings they were invited to. Learners: published recordings whose audience reaches them
    (`server.live.audience`: enrolled in the program, of the meeting's units, or everyone). Guests: none.
    """
    if ident.role == Role.OPERATOR:
        return true()
    uid = ident.user_id or 0
    published = Recording.published.is_(True) & (Recording.state == RecordingState.READY)
    enrolled = Recording.program_id.in_(select(program_learners.c.program_id).where(program_learners.c.user_id == uid))
    if ident.role in (Role.TRAINER, Role.LEADER):
        presented = Recording.meeting_id.in_(
            select(meeting_presenters.c.meeting_id).where(meeting_presenters.c.user_id == uid))
        trained = Recording.program_id.in_(select(program_trainers.c.program_id)
                                           .where(program_trainers.c.user_id == uid))
        return or_(presented, published & (enrolled | trained))
    if ident.role == Role.CLASSROOM and ident.classroom_id is not None:
        invited = Recording.meeting_id.in_(select(meeting_classrooms.c.meeting_id)
                                           .where(meeting_classrooms.c.classroom_id == ident.classroom_id))
        return published & invited
    if ident.role == Role.LEARNER:
        return published & reaches_recording(uid)
    return false()


async def may_view(s: AsyncSession, ident: Identity, recording_id: int) -> bool:
    """may_view tells whether `ident` may watch the recording (see `visible`)."""
    found = await s.scalar(select(Recording.id).where(Recording.id == recording_id, visible(ident)))
    return found is not None


async def _recorders_ctx(app: web.Application) -> AsyncIterator[None]:
    recorders = Recorders(app)
    app[RECORDERS] = recorders
    await recorders.open()
    yield
    await recorders.close()


def setup(app: web.Application) -> None:
    """setup: the recorders' cleanup context (after the live side's, so it stops first)."""
    app.cleanup_ctx.append(_recorders_ctx)

RECORDERS: web.AppKey[Recorders] = web.AppKey("recorders")
