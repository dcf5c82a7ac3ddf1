"""server.live.broadcast: the live HLS broadcast of recorded meetings, and the archive's renditions.

`Broadcasts` (one per app, under `BROADCASTS`) runs one worker process (`recorder.broadcast`, niced) per
meeting being recorded, while `broadcast.enabled`: the recorder (`recorder.participant`) hands it every frame it
places on the recording's timeline (`on_frame`), and the frames of the program video and of both audio slots go
down the worker's standard input as they come; it decodes them once and encodes them once per rendition into
`<data_dir>/recordings/<Recording.directory>/hls/` (layout: `recorder.hls`). So the broadcast is the program the
recorder records, and it is the same archive entry as the recording.

Why a pipe of the recorder's frames rather than its segment files: the frames are in memory already (no disk
read, no waiting for a segment to close), the worker gets each one within milliseconds, and the recorder's
timing (`recorder.timing`) and program choice are reused as they are. Nothing here waits for the worker: a
worker that falls behind (its pipe holds more than `PIPE_BYTES`) loses frames (video: up to the next keyframe,
asked of the room at most every `KEYFRAME_SECONDS`) and the room is never slowed.

The broadcast ends with the recording's stop (the meeting's end, a moderator's stop, an empty room): the worker
writes its last segment and `#EXT-X-ENDLIST`. A recording continued later continues its broadcast in the same
`hls/` (after a discontinuity); a new part has its own directory. After a recording is finalized, `archive`
completes its renditions from the lecture file (`recorder.vod`) when no live broadcast covered it all (turned
off, or cut by a killed server): one encode per rendition, its progress on the recording (`hls_state`,
`hls_progress`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select

from recorder.broadcast import END, KINDS, RECORD, TICK, VIDEO, Header
from recorder.hls import HLS_DIR, is_ended
from recorder.participant import PROGRAM, RecordingParticipant
from server.config import CONFIG, Config
from server.db.engine import DB, update_row
from server.db.models import Recording, RecordingState
from server.metrics import METRICS

log = logging.getLogger("taphuan.broadcast")

PIPE_BYTES = 8 << 20  # frames waiting in the worker's pipe beyond this are dropped (the worker is behind)
EARLY_BYTES = 16 << 20  # frames held while the worker starts
TICK_SECONDS = 0.25  # the worker hears the recording's clock this often (it emits output up to it)
KEYFRAME_SECONDS = 4.0  # after a drop, the program's source is asked for a keyframe at most this often
END_SECONDS = 30.0  # a worker gets this long to write its last segment at the end
RESTARTS = 3  # a broadcast's worker that dies is replaced this many times
RESTART_SECONDS = 1.0  # after this wait
HLS_LIVE, HLS_QUEUED, HLS_ENCODING, HLS_READY, HLS_FAILED = "live", "queued", "encoding", "ready", "failed"


async def _tail(stream: asyncio.StreamReader, keep: int = 4000) -> bytes:
    """_tail reads a worker's standard error to its end, keeping the last `keep` bytes (a long broadcast's
    warnings must not pile up in memory)."""
    kept = b""
    while chunk := await stream.read(65536):
        kept = (kept + chunk)[-keep:]
    return kept


def header(config: Config, directory: Path, participant: RecordingParticipant | None) -> Header:
    """header is a run's settings for the worker (`participant`: the recorder of a live run)."""
    cfg = config.broadcast
    values: dict[str, Any] = dict(
        directory=str(directory), renditions=[r.model_dump() for r in cfg.renditions], fps=cfg.fps,
        segment_seconds=cfg.segment_seconds, preset=cfg.preset, window_seconds=cfg.window_seconds,
        audio_kbps=cfg.audio_kbps, delay=cfg.delay_seconds)
    if participant is not None:  # (live: parts when low latency; the archive's encode makes whole segments)
        values.update(video_mime=participant.video_mime, start=participant.offset, low_latency=cfg.low_latency,
                      wall0=participant.started_wall - participant.offset)
    return Header(**values)


@dataclass
class LiveBroadcast:
    """LiveBroadcast: one meeting's broadcast worker and what feeds it."""

    meeting_id: int
    recording_id: int
    directory: Path  # the recording's directory (the files are in its hls/)
    participant: RecordingParticipant
    proc: asyncio.subprocess.Process | None = None
    early: list[bytes] = field(default_factory=list)  # records waiting for the worker to start
    early_bytes: int = 0
    waiting_key: bool = False  # video was dropped: the next video record must be a keyframe
    asked: float = 0.0  # when a keyframe was last asked for
    dropped: int = 0  # frames dropped (the worker was behind)
    master: bool = False  # the worker wrote master.m3u8
    segments: int = 0
    ended: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    on_drop: Callable[[], None] | None = None  # a frame was dropped (the metric)

    @property
    def clock(self) -> float:
        """clock is the recording's time, which stops at the recording's stop (the broadcast ends there too, not
        where the stop's wait for the last media ended)."""
        elapsed = self.participant.elapsed
        end = self.participant.stopped_at
        return elapsed if end is None else min(elapsed, end)

    @property
    def hls(self) -> Path:
        """hls is the broadcast's directory."""
        return self.directory / HLS_DIR

    def frame(self, slot: str, pts: int, keyframe: bool, data: bytes) -> None:
        """frame (the recorder's `on_frame`, on the event loop): send one placed frame to the worker."""
        kind = KINDS.get(slot)
        if kind is None or self.ended or (self.proc is not None and self.proc.returncode is not None):
            return
        if kind == VIDEO and self.waiting_key:
            if not keyframe:
                self.dropped += 1
                if self.on_drop is not None:
                    self.on_drop()
                return
            self.waiting_key = False
        if not self._send(RECORD.pack(kind, keyframe, pts, self.clock, len(data)) + data):
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()
            if kind == VIDEO:
                self.waiting_key = True
            now = time.monotonic()
            sink = self.participant.sinks.get(PROGRAM)
            if kind == VIDEO and now - self.asked >= KEYFRAME_SECONDS and sink is not None \
                    and sink.source is not None:
                self.asked = now  # optional: one subscriber's share of the track's keyframe budget
                sink.source.request_keyframe(optional=True)

    def tick(self) -> None:
        """tick tells the worker the recording's clock (it emits output up to it, media or not)."""
        if not self.ended:
            self._send(RECORD.pack(TICK, 0, 0, self.clock, 0))

    def _send(self, record: bytes) -> bool:
        proc = self.proc
        if proc is None:
            if self.early_bytes + len(record) > EARLY_BYTES:
                return False
            self.early.append(record)
            self.early_bytes += len(record)
            return True
        stdin = proc.stdin
        if stdin is None or stdin.is_closing() or proc.returncode is not None:
            return False
        if stdin.transport.get_write_buffer_size() > PIPE_BYTES:
            return False
        stdin.write(record)
        return True


class Broadcasts:
    """Broadcasts: the app's live broadcasts and archive encodes; see the module doc.

    `directory(meeting_id)` and `live(meeting_id)` are for the delivery side (/watch); the files are authoritative.
    """

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.running: dict[int, LiveBroadcast] = {}
        self.archive_queue: asyncio.Queue[tuple[int, Path]] = asyncio.Queue()
        self.progress: dict[int, int] = {}  # recording → percent of its archive encode
        self.encoding: dict[int, asyncio.subprocess.Process] = {}  # recording → its archive encode's worker
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    @property
    def config(self) -> Config:
        """config is the app's configuration."""
        return self.app[CONFIG]

    def directory(self, meeting_id: int) -> Path | None:
        """directory is the meeting's live hls/ directory once its master playlist exists (None: not live)."""
        live = self.running.get(meeting_id)
        if live is None or live.ended or not live.master:  # (its worker said it wrote master.m3u8)
            return None
        return live.hls

    def live(self, meeting_id: int) -> bool:
        """live: the meeting is being broadcast now (its master playlist exists)."""
        return self.directory(meeting_id) is not None

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # ------------------------------------------------------------------------------------ live

    def begin(self, meeting_id: int, recording_id: int, directory: Path, participant: RecordingParticipant) -> None:
        """begin broadcasts the meeting's recording as it is recorded (when broadcast.enabled)."""
        if not self.config.broadcast.enabled or self.closing or meeting_id in self.running:
            return
        encode = self.encoding.get(recording_id)
        if encode is not None and encode.returncode is None:  # continued while its archive encode ran: the
            encode.kill()  # broadcast appends from where the listed segments end, and the next stop completes it
        live = LiveBroadcast(meeting_id, recording_id, directory, participant)
        metrics = self.app.get(METRICS)
        if metrics is not None:
            live.on_drop = metrics.broadcast_dropped.inc
        self.running[meeting_id] = live
        participant.on_frame = live.frame
        live.tasks.append(self._spawn(self._run(live), f"broadcast-{meeting_id}"))

    async def _run(self, live: LiveBroadcast) -> None:
        """_run runs the broadcast's worker until the broadcast ends; a worker that dies meanwhile is replaced (at
        most `RESTARTS` times): the new one appends to the playlists behind a discontinuity."""
        restarts = 0
        while True:
            status = await self._run_worker(live)
            if status == 0 or live.ended or self.closing:
                break
            if restarts >= RESTARTS:
                log.error("meeting %s: the broadcast stops (its worker failed %d times)", live.meeting_id,
                          restarts + 1)
                await self._set(live.recording_id, hls_state=HLS_FAILED)
                return
            restarts += 1
            live.proc, live.waiting_key = None, True  # frames wait for the next worker, from a keyframe
            sink = live.participant.sinks.get(PROGRAM)
            if sink is not None:
                sink.request_keyframe()
            await asyncio.sleep(RESTART_SECONDS)
        if live.ended:
            await self._set(live.recording_id, hls_state=HLS_READY, hls_progress=100)
        if live.dropped:
            log.warning("meeting %s: the broadcast worker was behind: %d frames dropped", live.meeting_id,
                        live.dropped)

    async def _run_worker(self, live: LiveBroadcast) -> int:
        """_run_worker runs one worker process until it exits; returns its exit status."""
        cfg = self.config.broadcast
        run_header = header(self.config, live.directory, live.participant)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder.broadcast", "--nice", str(cfg.nice),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(json.dumps(asdict(run_header)).encode() + b"\n")
        for record in live.early:
            proc.stdin.write(record)
        live.early, live.early_bytes = [], 0
        live.proc = proc
        await self._set(live.recording_id, hls_state=HLS_LIVE)
        log.info("meeting %s: broadcasting recording %s (worker %s)", live.meeting_id, live.recording_id, proc.pid)
        ticker = self._spawn(self._tick(live), f"broadcast-tick-{live.meeting_id}")
        stderr = asyncio.ensure_future(_tail(proc.stderr))
        error = ""
        try:
            async for raw in proc.stdout:
                with contextlib.suppress(ValueError):
                    line = json.loads(raw)
                    if line.get("master"):
                        live.master = True
                    elif "segment" in line:
                        live.segments += 1
                    elif "error" in line:
                        error = str(line["error"])
            await proc.wait()
        finally:
            ticker.cancel()
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            text = (await stderr).decode(errors="replace").strip()
        if proc.returncode != 0:
            log.error("meeting %s: broadcast worker exited with %s: %s %s", live.meeting_id, proc.returncode, error,
                      text[-2000:])
        return proc.returncode or 0

    async def _tick(self, live: LiveBroadcast) -> None:
        while not live.ended:
            live.tick()
            await asyncio.sleep(TICK_SECONDS)

    async def end(self, meeting_id: int) -> None:
        """end ends the meeting's broadcast with its recording (after the recorder stopped): the worker writes the
        last segment and ENDLIST; waits for it (at most END_SECONDS)."""
        live = self.running.pop(meeting_id, None)
        if live is None:
            return
        live.participant.on_frame = None
        live.ended = True
        proc = live.proc
        if proc is None:  # the worker never started: nothing was written
            for task in live.tasks:
                task.cancel()
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(RECORD.pack(END, 0, 0, live.clock, 0))
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
            proc.stdin.close()
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*live.tasks, return_exceptions=True)), END_SECONDS)
        except TimeoutError:
            log.error("meeting %s: the broadcast worker did not finish within %.0f s", meeting_id, END_SECONDS)
            proc.kill()
        log.info("meeting %s: broadcast of recording %s ended (%d segments)", meeting_id, live.recording_id,
                 live.segments)

    # --------------------------------------------------------------------------------- archive

    async def archive(self, recording_id: int, directory: Path) -> None:
        """archive queues the recording's renditions from its lecture file (after finalizing; see the module doc)."""
        if self.config.broadcast.archive and not self.closing:
            await self._set(recording_id, hls_state=HLS_QUEUED)
            self.archive_queue.put_nowait((recording_id, directory))

    async def _archiver(self) -> None:
        while True:
            recording_id, directory = await self.archive_queue.get()
            try:
                await self.encode_archive(recording_id, directory)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("archive renditions of recording %s failed", recording_id)

    async def encode_archive(self, recording_id: int, directory: Path) -> bool:
        """encode_archive runs recorder.vod on the recording (progress in hls_progress); True when ready."""
        if any(live.recording_id == recording_id for live in self.running.values()):
            return False  # being broadcast again (continued): completed at its next stop
        if await asyncio.to_thread(is_ended, directory / HLS_DIR):  # broadcast live to its end
            await self._set(recording_id, hls_state=HLS_READY, hls_progress=100)
            return True
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "recorder.vod", str(directory), "--nice", str(self.config.recorder.worker_nice),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        proc.stdin.write(json.dumps(asdict(header(self.config, directory, None))).encode() + b"\n")
        proc.stdin.close()
        stderr = asyncio.ensure_future(_tail(proc.stderr))
        error, done, saved = "", False, -100
        self.progress[recording_id] = 0
        self.encoding[recording_id] = proc
        try:
            async for raw in proc.stdout:
                with contextlib.suppress(ValueError):
                    line = json.loads(raw)
                    if "progress" in line:
                        percent = min(int(line["progress"]), 99)  # 100: once the row says ready
                        self.progress[recording_id] = percent
                        if percent - saved >= 5:
                            saved = percent
                            await self._set(recording_id, hls_state=HLS_ENCODING, hls_progress=percent)
                    elif "done" in line:
                        done = True
                    elif "error" in line:
                        error = str(line["error"])
            await proc.wait()
        except BaseException:
            self.progress.pop(recording_id, None)
            raise
        finally:
            self.encoding.pop(recording_id, None)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            text = (await stderr).decode(errors="replace").strip()
        try:
            if any(live.recording_id == recording_id for live in self.running.values()):
                return False  # stopped for a continuation (see begin)
            if not done or proc.returncode != 0:
                log.error("archive renditions of recording %s failed: %s %s", recording_id, error, text[-2000:])
                await self._set(recording_id, hls_state=HLS_FAILED)
                return False
            await self._set(recording_id, hls_state=HLS_READY, hls_progress=100)
            return True
        finally:  # (only now: the row's progress may be behind the last one reported)
            self.progress.pop(recording_id, None)

    async def resume(self) -> None:
        """resume queues the archive encodes a stopped server left unfinished or queued (ready recordings only: the
        others come through their finalizing), those of recordings its finisher made ready included."""
        async with self.app[DB]() as s:
            rows = (await s.execute(select(Recording.id, Recording.directory).where(
                Recording.state == RecordingState.READY,
                Recording.hls_state.in_((HLS_LIVE, HLS_QUEUED, HLS_ENCODING))))).all()
        root = self.config.data_path / "recordings"
        for recording_id, name in rows:
            await self.archive(recording_id, root / name)

    async def _set(self, recording_id: int, **values: Any) -> None:
        await update_row(self.app[DB], Recording, recording_id, **values)

    # --------------------------------------------------------------------------------- lifetime

    async def close(self) -> None:
        """close ends every broadcast (their recorders stopped first) and the archive encodes (their work is redone
        after the next start: the recording's finalizing queues it again)."""
        self.closing = True
        for meeting_id in list(self.running):
            await self.end(meeting_id)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _broadcasts_ctx(app: web.Application) -> AsyncIterator[None]:
    broadcasts = Broadcasts(app)
    app[BROADCASTS] = broadcasts
    broadcasts._spawn(broadcasts._archiver(), "broadcast-archiver")
    metrics = app.get(METRICS)
    if metrics is not None:
        metrics.broadcasts.set_function(lambda: sum(1 for live in broadcasts.running.values() if live.proc))
    await broadcasts.resume()
    yield
    await broadcasts.close()


def setup(app: web.Application) -> None:
    """setup: the broadcasts' cleanup context (before the recorders': it closes after they stopped)."""
    app.cleanup_ctx.append(_broadcasts_ctx)


BROADCASTS: web.AppKey[Broadcasts] = web.AppKey("broadcasts")
