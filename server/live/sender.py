"""server.live.sender: what the server sends on one signalling WebSocket: a bounded queue and the task that writes it.

Handlers never wait for another participant's socket: `Sender.put` queues a message and returns, and the
connection's own writer task writes the queue in order. A socket that stops taking data (its client does not read,
or its link is far too slow) only fills its own queue: when more than `limits.ws_send_queue_messages` messages or
`limits.ws_send_queue_bytes` bytes wait behind a write it has not taken, or it takes nothing at all of a message
for `limits.ws_send_timeout_seconds`, the connection is cut (`too-slow`): what waits is dropped, a `closed` message
and a close frame (1013, try again later) are tried for `POLICY_CLOSE_WAIT`, then the TCP connection is aborted.
Messages to it meanwhile are dropped. Closing for any other reason (`Sender.close`) writes what is queued, then
`closed`, then the close frame, all within a bounded time. The wire format is docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import json
import logging
import struct
import termios
from typing import Any

from aiohttp import WSCloseCode, web

from server.config import LimitsSection
from server.metrics import Metrics

log = logging.getLogger("taphuan.signalling")

POLICY_CLOSE_WAIT = 1.0  # s a connection closed by a limit has to take its `closed` message and close frame
CLOSE_WAIT = 5.0  # s any other closing connection has to take what is queued, `closed` and the close frame
TAKEN_POLL, TAKEN_POLL_MAX = 0.01, 0.2  # s between looks at a socket whose kernel buffer is full (doubling)
PROGRESS_LOOK = 0.5  # s between looks at whether a socket took some of what waits for it (at most)
TOO_SLOW = ("Kết nối quá chậm, không nhận kịp tin nhắn; hãy kết nối lại. / The connection did not keep up with "
            "its messages: reconnect.")


def encode(message: dict[str, Any]) -> tuple[str, int]:
    """encode: a message as JSON text and its size in UTF-8 bytes (a lone surrogate from elsewhere than the socket
    it goes to, which UTF-8 cannot carry, is written escaped: still JSON)."""
    text = json.dumps(message, ensure_ascii=False)
    try:
        return text, len(text.encode())
    except UnicodeEncodeError:
        log.warning("a message with a lone surrogate was sent escaped", extra={"type": message.get("type")})
        text = json.dumps(message)
        return text, len(text)


class Sender:
    """Sender: one signalling WebSocket's outgoing queue, its writer task and its closing."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, limits: LimitsSection, metrics: Metrics,
                 who: str = "") -> None:
        self.request, self.ws, self.metrics, self.who = request, ws, metrics, who
        self.max_messages = limits.ws_send_queue_messages
        self.max_bytes = limits.ws_send_queue_bytes
        self.timeout = limits.ws_send_timeout_seconds
        self.look = min(PROGRESS_LOOK, self.timeout / 4)
        self.queue: collections.deque[tuple[str, int]] = collections.deque()  # (JSON text, UTF-8 bytes)
        self.queued_bytes = 0
        self.too_slow = False  # cut for not taking its messages (`too-slow`)
        self._accepting = True  # false once closing or stopped: what is put is dropped
        self._writing = False  # the writer waits for the socket to take a message: the socket is not keeping up
        self._wake = asyncio.Event()  # something is queued
        self._idle = asyncio.Event()  # the writer wrote all that was queued
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sender.start: start the writer task (the socket is prepared)."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued(), name=f"ws-writer-{self.who}")

    def put(self, message: dict[str, Any]) -> None:
        """Sender.put: queue one message and return at once; dropped once closing, and cuts the connection when it
        makes the queue exceed its bounds while the socket is not taking data."""
        if not self._accepting:
            return
        self._append(message)
        if self._writing and (len(self.queue) > self.max_messages or self.queued_bytes > self.max_bytes):
            self.cut()

    def _append(self, message: dict[str, Any]) -> None:
        text, size = encode(message)
        self.queue.append((text, size))
        self.queued_bytes += size
        self._idle.clear()
        self._wake.set()

    def _clear(self) -> None:
        self.queue.clear()
        self.queued_bytes = 0

    async def _write_queued(self) -> None:
        try:
            while True:
                await self._wake.wait()
                while self.queue:
                    text, size = self.queue.popleft()
                    self.queued_bytes -= size
                    self._writing = True
                    try:
                        await self._send(text)
                    except TimeoutError:
                        self.cut()
                        return
                    finally:
                        self._writing = False
                    self.metrics.ws_message("out")
                self._wake.clear()
                self._idle.set()
        except (ConnectionError, RuntimeError):  # the socket is gone: nothing more can be written
            self._accepting = False
            self._clear()
        except asyncio.CancelledError:
            if _cancelled():
                raise
            self.cut()  # aiohttp's drain waiter was cancelled under it (an earlier write cut short): stuck
        finally:
            self._idle.set()

    def _buffered(self) -> int:
        """Sender._buffered: the bytes handed to the socket that its kernel has not taken yet."""
        transport = self.request.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def _untaken(self) -> int:
        """Sender._untaken: the bytes handed to the socket that its client has not taken yet: the transport's
        buffer and the kernel's send queue (the kernel makes room in bursts, half its buffer at a time, so only its
        queue shows a slow reader taking some)."""
        left = self._buffered()
        transport = self.request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            with contextlib.suppress(OSError, ValueError):
                left += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
        return left

    async def _send(self, text: str) -> None:
        """Sender._send: hand one message to the socket and wait until its kernel took it all (aiohttp itself waits
        only for a transport over its high-water mark, every 64 KiB written); TimeoutError when the socket takes
        nothing at all for the time-out (a slow reader that takes some goes on)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout) as deadline:
            last: int | None = None  # first measured at the first look: a message taken at once costs no system call
            watch: asyncio.TimerHandle | None = None

            def look() -> None:  # it took some since the last look: the time-out starts again
                nonlocal last, watch
                left = self._untaken()
                if last is not None and left < last:
                    deadline.reschedule(loop.time() + self.timeout)
                last = left
                watch = loop.call_later(self.look, look)

            watch = loop.call_later(self.look, look)
            try:
                await self.ws.send_str(text)
                step = TAKEN_POLL
                while self._buffered() > 0:
                    await asyncio.sleep(step)
                    step = min(2 * step, TAKEN_POLL_MAX)
            finally:
                if watch is not None:
                    watch.cancel()

    def cut(self) -> None:
        """Sender.cut: the socket does not keep up: drop what waits, count it, and close it (`too-slow`, 1013)."""
        if not self._accepting:
            return
        self.too_slow = True
        self.metrics.ws_policy.labels("too-slow").inc()
        log.warning("signalling connection too slow: closed",
                    extra={"login": self.who, "queued": len(self.queue), "queued_bytes": self.queued_bytes})
        self._clear()
        self._begin_close({"type": "closed", "reason": "too-slow", "message": TOO_SLOW},
                          WSCloseCode.TRY_AGAIN_LATER, POLICY_CLOSE_WAIT, stuck=True)

    def close(self, closed: dict[str, Any], code: int = WSCloseCode.OK, wait: float = CLOSE_WAIT) -> None:
        """Sender.close: write what is queued, then `closed`, then the close frame with `code`, within `wait`
        seconds (then the connection is aborted); returns at once (`wait_closed` waits)."""
        if self._accepting:
            self._begin_close(closed, code, wait, stuck=False)

    def _begin_close(self, closed: dict[str, Any], code: int, wait: float, stuck: bool) -> None:
        self._accepting = False
        if stuck:  # the writer is stuck on the socket: the closer writes `closed` itself
            self._stop_writer()
        self._append(closed)
        self._closer = asyncio.create_task(self._close(code, wait), name=f"ws-close-{self.who}")

    def _stop_writer(self) -> None:
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()  # a message it was writing is already in the socket's buffer: order is kept

    async def _close(self, code: int, wait: float) -> None:
        try:
            async with asyncio.timeout(wait):
                if self._writer is not None and not self._writer.done():
                    await self._idle.wait()  # it writes what is queued, `closed` last
                while self.queue and not self.ws.closed:  # the writer was stuck, or is gone
                    text, _ = self.queue.popleft()
                    await self.ws.send_str(text)
                    self.metrics.ws_message("out")
                await self.ws.close(code=code)
        except TimeoutError:
            self.abort()
        except (ConnectionError, RuntimeError):
            pass
        except asyncio.CancelledError:
            if _cancelled():
                raise
            self.abort()  # aiohttp's drain waiter was cancelled with a write cut short: the socket is stuck
        finally:
            self._clear()
            self._stop_writer()

    def abort(self) -> None:
        """Sender.abort: cut the TCP connection at once, dropping what it has not taken."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def wait_closed(self) -> None:
        """Sender.wait_closed: wait until a close begun by `close` or `cut` is done (bounded by its wait)."""
        if self._closer is not None:
            await asyncio.shield(self._closer)

    async def stop(self) -> None:
        """Sender.stop: the socket's read loop ended: finish a close under way, else stop writing (the client
        closed the socket or it was lost); from now on what is put is dropped."""
        if self._closer is not None:
            await asyncio.shield(self._closer)
            return
        self._accepting = False
        self._clear()
        self._stop_writer()
        if self._writer is not None:
            await asyncio.wait([self._writer])


def _cancelled() -> bool:
    """_cancelled: the current task was cancelled (not merely handed the CancelledError of a future someone else
    cancelled, as aiohttp's shared drain waiter does to every writer once one write waiting on it is cut short)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
