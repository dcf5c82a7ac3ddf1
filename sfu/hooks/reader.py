"""reader: an ICE socket read by a transport of ours, in batches, with the C demultiplexer first.

uvloop's UDP transport reads each datagram with its own ``recvmsg`` (plus one more that returns EAGAIN per
wake-up), makes a ``bytes`` object and an address tuple for it and calls the protocol, and it cannot pause
reading. ``take_over`` gives one aioice ``StunProtocol`` a ``SocketTransport`` on a duplicate of its socket's
descriptor and closes the loop's own transport (its end reaches a stand-in protocol, not aioice's): from then on
the loop's reader callback for the duplicate is a ``Reader`` (``sfu._fanout.Reader``, ``sfu/_reader.c``) that
reads up to 32 datagrams with one ``recvmmsg`` call per wake-up (as libuv reads) and hands each to the protocol's C
``Demux`` (``sfu/_demux.c``) without a Python object; only what C does not keep (STUN, DTLS, media not armed
yet) becomes bytes and an address for the protocol's Python path. Without the C extension the twin
(``PythonReader``) reads with ``recvmsg`` and calls the protocol's ``datagram_received`` per datagram, as
asyncio's selector transport does. aioice's STUN, aiortc's DTLS and the fast send paths send through the new
transport (``sendto``, a small write buffer when the socket is full) or its socket (``transport_socket``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from sfu.hooks.guard import CompiledReader

logger = logging.getLogger(__name__)

DATAGRAM_SIZE = 4096  # bytes read per datagram (sfu/_reader.c's READ_SIZE): media, STUN and DTLS are < 1500
READ_LIMIT = 32  # datagrams per wake-up at most (sfu/_reader.c: one batch of 32, as libuv), so timers keep their turn
WRITE_BUFFER = 256  # datagrams held while the socket's send buffer is full; more are dropped (UDP)


class PythonReader:
    """PythonReader is the Python twin of ``sfu._fanout.Reader``: one socket's datagrams to `deliver`.

    ``read`` (the loop's reader callback) reads with ``recvmsg`` until EAGAIN or `READ_LIMIT` datagrams and
    calls ``deliver(data, addr)`` for each; an error (ECONNREFUSED from an ICMP error on a socket with
    IP_RECVERR) goes to ``error_received(exc)``, the error queue is drained and reading goes on. ``close``
    stops reading at once, also between two datagrams of one wake-up. Event loop only.
    """

    def __init__(self, sock: socket.socket, deliver: Callable[[bytes, tuple[Any, ...]], None],
                 error_received: Callable[[Exception], None] | None = None) -> None:
        self._sock: socket.socket | None = sock
        self._deliver = deliver
        self._error_received = error_received
        self.datagrams = 0
        self.errors = 0
        self.truncated = 0  # datagrams over DATAGRAM_SIZE, dropped

    def read(self) -> int:
        """read takes what the socket holds (up to `READ_LIMIT` datagrams); returns how many were read."""
        count = errors = 0
        while count < READ_LIMIT:
            sock = self._sock
            if sock is None:
                break
            try:
                data, _, flags, addr = sock.recvmsg(DATAGRAM_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.errors += 1
                errors += 1
                _drain_error_queue(sock)
                if self._error_received is not None:
                    self._error_received(exc)
                if errors >= 32 or sock.fileno() < 0:
                    break
                continue
            count += 1
            self.datagrams += 1
            if flags & socket.MSG_TRUNC:
                self.truncated += 1  # larger than DATAGRAM_SIZE: nothing on an ICE socket is; dropped, as in C
                continue
            self._deliver(data, addr)
        return count

    def close(self) -> None:
        """close: never read the socket again."""
        self._sock = None


def _drain_error_queue(sock: socket.socket) -> None:
    for _ in range(32):
        try:
            sock.recvmsg(512, 0, socket.MSG_ERRQUEUE)
        except OSError:
            return


class _Ended(asyncio.DatagramProtocol):
    """_Ended receives the end of the loop's own transport once ``take_over`` replaced it (aioice must not)."""


class SocketTransport(asyncio.DatagramTransport):
    """SocketTransport is a datagram transport on a socket we own, read by a ``Reader`` (module doc).

    What aioice and aiortc use of a transport: ``sendto``, ``close`` (the protocol's ``connection_lost`` comes
    on the next loop iteration, then the socket is closed), ``abort``, ``is_closing``, ``get_extra_info``
    (``socket``, ``sockname``, ``peername``). Event loop only.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, protocol: Any,
                 demux: Any = None, compiled: bool = True) -> None:
        super().__init__()
        self._loop = loop
        self.socket = sock
        self._protocol = protocol
        self._fd = sock.fileno()
        self._closing = False
        self._pending: collections.deque[tuple[bytes, Any]] = collections.deque()
        self.dropped = 0  # datagrams dropped with the write buffer full
        self.reader: Any
        if compiled and CompiledReader is not None:
            fallback = demux.fallback if demux is not None else protocol.datagram_received
            self.reader = CompiledReader(self._fd, demux, fallback, protocol.error_received)
        else:
            self.reader = PythonReader(sock, self._deliver, protocol.error_received)
        loop.add_reader(self._fd, self.reader.read)

    def _deliver(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._protocol.datagram_received(data, addr)

    def sendto(self, data: Any, addr: Any = None) -> None:
        """sendto sends one datagram now, or after the ones the full send buffer holds back."""
        if self._closing:
            return
        if self._pending:
            self._hold(data, addr)
            return
        try:
            self.socket.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._hold(data, addr)
            self._loop.add_writer(self._fd, self._write_ready)
        except OSError as exc:
            self._protocol.error_received(exc)

    def _hold(self, data: Any, addr: Any) -> None:
        if len(self._pending) >= WRITE_BUFFER:
            self.dropped += 1
        else:
            self._pending.append((bytes(data), addr))

    def _write_ready(self) -> None:
        while self._pending:
            data, addr = self._pending[0]
            try:
                self.socket.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._protocol.error_received(exc)
            self._pending.popleft()
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._loop.call_soon(self._end)

    def get_write_buffer_size(self) -> int:
        """get_write_buffer_size: datagrams held back (not bytes)."""
        return len(self._pending)

    def close(self) -> None:
        """close stops reading now; the held datagrams are sent, then the protocol is told and the socket closed."""
        if self._closing:
            return
        self._closing = True
        self.reader.close()
        self._loop.remove_reader(self._fd)
        if not self._pending:
            self._loop.call_soon(self._end)

    def abort(self) -> None:
        """abort closes without sending what is held back."""
        self._pending.clear()
        if self._closing:
            self._loop.remove_writer(self._fd)
            self._loop.call_soon(self._end)
            return
        self.close()

    def _end(self) -> None:
        if self.socket.fileno() < 0:
            return
        self._loop.remove_writer(self._fd)
        try:
            self._protocol.connection_lost(None)
        finally:
            self.socket.close()

    def is_closing(self) -> bool:
        """is_closing is true once close or abort ran."""
        return self._closing

    def set_protocol(self, protocol: Any) -> None:
        """set_protocol: the protocol told of errors and the end (datagrams go where the reader was built to)."""
        self._protocol = protocol

    def get_protocol(self) -> Any:
        """get_protocol returns the protocol."""
        return self._protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """get_extra_info: ``socket`` (ours), ``sockname``, ``peername`` (None: not connected)."""
        if name == "socket":
            return self.socket
        if name == "sockname":
            try:
                return self.socket.getsockname()
            except OSError:
                return default
        return default


def take_over(protocol: Any, demux: Any = None, compiled: bool = True) -> SocketTransport | None:
    """take_over reads and sends one aioice StunProtocol's socket through a ``SocketTransport`` (module doc).

    `demux` is the protocol's C ``Demux`` (``sfu.hooks.demux.MediaDemux.wrap``), None without one. The loop's
    transport stops reading at once and closes on its next iteration with the original descriptor; the
    duplicate carries on. Returns the new transport, or None when the socket could not be duplicated (the
    loop's transport stays).
    """
    old = protocol.transport
    if isinstance(old, SocketTransport):
        return old
    if old is None or old.is_closing():
        return None
    info = old.get_extra_info("socket")  # None for aioice's TurnTransport (a relayed candidate): left alone
    try:
        sock = socket.socket(fileno=os.dup(info.fileno()))
    except (AttributeError, OSError):
        return None
    if sock.type != socket.SOCK_DGRAM:
        sock.close()
        return None
    sock.setblocking(False)
    new = SocketTransport(asyncio.get_running_loop(), sock, protocol, demux, compiled)
    old.set_protocol(_Ended())
    old.close()
    protocol.transport = new
    return new


def transport_socket(udp: Any) -> tuple[socket.socket, socket.socket | None] | None:
    """transport_socket: the socket to send on beside a datagram transport, and the duplicate to close (or None).

    A ``SocketTransport``'s socket or asyncio's selector transport's are used as they are; uvloop's transport
    shows a descriptor only, so a duplicate is made (non-blocking, like the loop's); the caller closes it when
    it stops sending. None when the transport has no socket or it is closed.
    """
    if isinstance(udp, SocketTransport):
        return udp.socket, None
    sock = getattr(udp, "_sock", None)  # asyncio's selector transport
    if sock is not None:
        return sock, None
    info = udp.get_extra_info("socket")
    try:
        dup = socket.socket(fileno=os.dup(info.fileno()))
    except (AttributeError, OSError):
        return None
    dup.setblocking(False)
    return dup, dup
