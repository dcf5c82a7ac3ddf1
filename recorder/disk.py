"""disk: a recording's writer thread and its bounded queue: nothing on the event loop waits for the disk.

The event loop hands placed frames (``put``) and small file updates (``call``: timeline lines, meta.json)
to one thread per recording, which runs them in order: frames go to their slot's ``SegmentWriter``. A disk
that stalls (a full or failing device, an overloaded NAS, writeback throttling) stalls only this thread.

The queue is bounded by how far behind the disk may fall: it holds at least ``seconds`` of media
(``QUEUE_SECONDS``, 10 s): a frame is refused once the oldest one still queued arrived that long ago, or
once the queued frames reach ``max_bytes`` (``QUEUE_BYTES``, 64 MiB: 10 s of every recorded slot at 50
Mbit/s, far above what browsers send; a guard on memory only). Once it refused a frame it refuses every
frame until the disk has caught up with half of that (oldest frame under ``seconds`` / 2 old, half the
bytes), so a disk slightly too slow gives a few long gaps rather than many short ones. ``put`` never
waits; what to do with a refused frame is the caller's business (``recorder.participant``: a marked gap).
``call`` is never refused (a few per minute, a few bytes each). The thread wakes every ``WAKE_SECONDS``
and writes what came meanwhile, not once per frame: a wake-up per frame (a few hundred a second) would
cost more CPU than the writing itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from recorder.writer import SegmentWriter

log = logging.getLogger("taphuan.recorder")

QUEUE_SECONDS = 10.0
QUEUE_BYTES = 64 << 20
WAKE_SECONDS = 0.1


@dataclass(slots=True)
class _Item:
    arrival: float
    size: int
    slot: str = ""
    pts: int = 0
    keyframe: bool = False
    data: bytes = b""
    call: Callable[[], object] | None = None


class DiskWriter:
    """DiskWriter runs a recording's writes in its own thread, fed by a bounded queue; see the module doc.

    `writers` maps each slot to its SegmentWriter (used by the thread only, from ``start`` on); `clock` is
    the clock of the frames' arrivals (the recording's).
    """

    def __init__(self, name: str, writers: Mapping[str, SegmentWriter], seconds: float = QUEUE_SECONDS,
                 max_bytes: int = QUEUE_BYTES, clock: Callable[[], float] = time.monotonic,
                 on_error: Callable[[OSError], object] | None = None) -> None:
        self.writers = dict(writers)
        # called once, from the thread, at the first write the storage refused (read-only, full or failing disk)
        self.on_error = on_error
        self.failures = 0  # writes that failed (the first is logged with its traceback, the others counted)
        self._told = False  # on_error was called
        self.seconds = seconds
        self.max_bytes = max_bytes
        self._clock = clock
        self._items: deque[_Item] = deque()
        self._bytes = 0
        self._cond = threading.Condition(threading.Lock())
        self._closing = False
        self.refusing = False  # the queue refused a frame and has not caught up since
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name=f"recorder-{name}", daemon=True)

    def start(self) -> None:
        """start starts the thread."""
        self._thread.start()

    def put(self, slot: str, pts: int, keyframe: bool, data: bytes) -> bool:
        """put queues one frame of `slot` at `pts`; False when the queue is full (the frame is not written)."""
        now = self._clock()
        size = len(data)
        with self._cond:
            if self._full(now, size):
                self.refusing = True
                return False
            self.refusing = False
            self._items.append(_Item(now, size, slot, pts, keyframe, data))
            self._bytes += size
        return True

    def has_room(self) -> bool:
        """has_room: the next frame would be taken (after a refusal: the disk has caught up)."""
        with self._cond:
            return not self._full(self._clock(), 0)

    def _full(self, now: float, size: int) -> bool:
        items = self._items
        if not items:
            return False
        if self.refusing:
            return now - items[0].arrival > self.seconds / 2 or self._bytes + size > self.max_bytes // 2
        return now - items[0].arrival >= self.seconds or self._bytes + size > self.max_bytes

    def call(self, fn: Callable[[], object]) -> None:
        """call runs fn() in the thread after everything queued before it (never refused)."""
        with self._cond:
            self._items.append(_Item(self._clock(), 0, call=fn))

    async def close(self, within: float | None = None) -> bool:
        """close lets the thread write what is queued, close every segment and stop; waits for it (idempotent).

        With `within` (seconds) it waits at most that long (a server shutting down must not hang on a dead disk) and
        returns False if the thread had not finished: it goes on writing while the process lives, and what it
        could not write is lost as by a kill, the segments written so far being recovered at the next start.
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.ident is None:  # never started
            return True
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self.done)), within)
        except TimeoutError:
            with self._cond:
                queued = len(self._items)
            log.warning("recording %s: the disk did not take the last %d queued items within %.0f s",
                        self._thread.name, queued, within)
            return False
        return True

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._items and not self._closing:
                        self._cond.wait(WAKE_SECONDS)
                    if not self._items:
                        break
                    item = self._items.popleft()
                    self._bytes -= item.size
                self._handle(item)
            for writer in self.writers.values():
                writer.close()
        except BaseException:  # never silently: the recording stops being written
            log.exception("recorder writer thread failed")
        finally:
            if self.failures > 1:
                log.error("recording %s: %d writes failed in all", self._thread.name, self.failures)
            self.done.set_result(None)

    def _handle(self, item: _Item) -> None:
        try:
            if item.call is not None:
                item.call()
            else:
                writer = self.writers[item.slot]
                if writer.failed is None:
                    writer.write(item.pts, item.keyframe, item.data)
                    if writer.error is not None:  # it logged and stopped itself: its owner must hear of it
                        self._failed(writer.error)
        except Exception as exc:
            self._failed(exc)
            if self.failures == 1:  # a dead disk fails every write: one traceback, then a count
                log.exception("recorder: writing %s failed", item.slot or "a file update")

    def _failed(self, exc: Exception) -> None:
        """_failed counts a failed write; the first one the storage refused goes to `on_error`."""
        self.failures += 1
        if not self._told and isinstance(exc, OSError) and self.on_error is not None:
            self._told = True
            self.on_error(exc)
