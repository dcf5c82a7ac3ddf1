"""wire: ``PacketWire``, the fast send path of one DTLS transport, and its sender reports.

libsrtp protect in place and ``sendto`` on the selected ICE pair's socket, synchronously (falls back to
aiortc's awaited ``_send_rtp``); and one compound SR + SDES packet per transport and interval for all its
senders (``sfu/_report.c``, else ``sender_reports``). ``bind_slot`` hands the same route (socket, remote
address, ``srtp_t`` and ``srtp_protect`` addresses) to the C fan-out's slots (``sfu/_fanout.c``) and takes it
back when the pair, the SRTP session or the DTLS state changes.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import is_rtcp
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _lib

from sfu.hooks.demux import flush_counts
from sfu.hooks.guard import CompiledReporter, protect_address
from sfu.hooks.ice import ice_connection
from sfu.hooks.reader import transport_socket
from sfu.hooks.sender import ForwardingSender
from sfu.pacer import FIRST, UNLIMITED, Pacer
from sfu.rtp import pad, report_period, sender_reports
from sfu.tasks import Ticker

MAX_PLAIN = 1500 - 16 - 128  # pylibsrtp's buffer minus SRTP_MAX_TRAILER_LEN (sfu/_fanout.h: the same)

# Linux <netinet/in.h> values (Python's socket module does not name them)
IP_MTU_DISCOVER, IP_PMTUDISC_PROBE = 10, 3


class PacketWire:
    """PacketWire sends plain RTP/RTCP over one DTLS transport, and the sender reports of its senders.

    Fast path: libsrtp protect in place in the SRTP session's own buffer (``pylibsrtp`` internals: no copies,
    no Python wrapper) and ``socket.sendto`` on the nominated ICE pair's socket, no await. Slow path (fast
    disabled, or no nominated pair yet): a task awaiting aiortc's ``_send_rtp``. Sender reports are a job of
    `ticker` (a room's, polled by its media; a private timer without one).
    """

    def __init__(self, transport: RTCDtlsTransport, fast: bool = True, ticker: Ticker | None = None) -> None:
        self._dtls: Any = transport
        self._ice: Any = ice_connection(transport)
        self._fast = fast
        self._pair: Any = None
        self._sock: Any = None
        self._udp: Any = None
        self._addr: tuple[str, int] | None = None
        self._session: Any = None
        self._srtp: Any = None
        self._cdata: Any = None
        self._view: memoryview | None = None
        self._len = _ffi.new("int *")
        self._tasks: set[asyncio.Future[None]] = set()
        self._senders: list[ForwardingSender] = []
        self._own_ticker = ticker is None  # without a shared one, a private ticker is a plain timer
        self._ticker = ticker if ticker is not None else Ticker(report_period, grace=0.0)
        self._reporting = False
        self._slots: list[Any] = []  # sfu._fanout.Slot objects bound to this wire's route
        self._protect = protect_address()
        # sender reports in C (sfu/_report.c) when every sender reports from a C slot; else sender_reports()
        self._reporter: Any = CompiledReporter() if fast and CompiledReporter is not None else None
        self._report_entries: tuple[tuple[Any, Any, int, bytes], ...] | None = None  # None: to build
        self._dup: socket.socket | None = None  # our duplicate of the pair's socket (uvloop transports)
        transport.on("statechange", self._state_changed)
        # the pacer (sfu/pacer.py): its bucket is C's when the C fan-out may use it, so both paths share it
        self.pacer = Pacer(self._send_now, compiled=self._reporter is not None)
        self.fast_sent = 0
        self.slow_sent = 0
        self.reports_sent = 0

    @property
    def connected(self) -> bool:
        """connected is true while the DTLS transport can carry SRTP."""
        return bool(self._dtls._state is DtlsState.CONNECTED)

    def _route(self) -> bool:
        """_route (re)binds the fast path to the nominated pair and the SRTP session; False: use the slow path."""
        pair = self._ice._nominated.get(1)
        if pair is None:
            return False
        session = self._dtls._tx_srtp
        if pair is not self._pair or session is not self._session:
            self._unbind_slots()
            self._release_dup()
            udp = pair.protocol.transport
            if udp is None or udp.is_closing():
                return False
            found = transport_socket(udp)
            if found is None:
                return False  # no socket, or already closed
            sock, self._dup = found
            dont_fragment(sock)
            self._pair, self._udp, self._sock, self._addr = pair, udp, sock, pair.remote_addr
            self._session = session
            self._srtp = session._srtp[0]
            self._cdata = session._cdata
            self._view = memoryview(session._buffer)
        return True

    def bind_slot(self, slot: Any) -> bool:
        """bind_slot gives a C fan-out slot this wire's fast route; False when there is none (it retries later).

        The slot keeps references to the socket object (its descriptor is read per send, so a closed socket is
        never written) and to the pylibsrtp session (which owns the ``srtp_t``).
        """
        if not self._fast or self._dtls._state is not DtlsState.CONNECTED or not self._route():
            return False
        assert self._addr is not None
        host, port = self._addr[0], self._addr[1]
        srtp = int(_ffi.cast("uintptr_t", self._srtp))
        if not slot.set_route(self._sock, int(self._sock.family), host, port, self._session, srtp, self._protect):
            return False
        slot.set_pacer(self.pacer.bucket)
        if not any(s is slot for s in self._slots):
            self._slots.append(slot)
        return True

    def _state_changed(self) -> None:
        self._unbind_slots()
        if self._dtls._state in (DtlsState.CLOSED, DtlsState.FAILED):
            self._release_dup()

    def _release_dup(self) -> None:
        """_release_dup closes our duplicate socket (bound C slots see descriptor -1 and send nothing)."""
        if self._dup is not None:
            self._dup.close()
            self._dup = None
            self._pair = self._sock = None

    def _unbind_slots(self) -> None:
        """_unbind_slots takes the route back from every bound slot and the reporter (they rebind later)."""
        for slot in self._slots:
            slot.clear_route()
        if self._reporter is not None:
            self._reporter.clear_route()

    def flush_slot_counters(self) -> None:
        """flush_slot_counters adds what the C fan-out sent to this wire's and the transport's counters."""
        dtls = self._dtls
        for slot in self._slots:
            sent, octets = slot.take_counts()
            if sent:
                self.fast_sent += sent
                dtls._RTCDtlsTransport__tx_bytes += octets
                dtls._RTCDtlsTransport__tx_packets += sent

    def send_rtp(self, head: bytes | bytearray, payload: bytes, padding: int = 0, audio: bool = False,
                 ast_off: int = 0, cls: int = FIRST, key: object = None, keyframe: bool = False) -> bool:
        """send_rtp protects and sends header + payload (+ `padding` bytes of RTP padding) as one packet.

        Through the pacer when it is on: `audio` goes at once, video may wait in its queue, in class `cls`
        (``sfu.pacer.pace_class``; True all the same; its abs-send-time at `ast_off`, when not 0, is rewritten when
        it leaves; `key`: its stream, whose older waiting packets a `keyframe` drops: ``sfu.pacer``). Returns False
        when the transport is not connected. The caller sets the P bit in `head`.
        """
        if self.pacer.bucket.rate < UNLIMITED:
            if self._dtls._state is not DtlsState.CONNECTED:
                return False
            return self.pacer.send(head, payload, padding, audio, ast_off, cls, key, keyframe)
        return self._send_now(head, payload, padding)

    def _send_now(self, head: bytes | bytearray, payload: bytes, padding: int = 0) -> bool:
        """_send_now: ``send_rtp`` without the pacer."""
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return False
        fast = self._fast and (
            (self._pair is self._ice._nominated.get(1) and self._session is dtls._tx_srtp and self._pair is not None)
            or self._route()
        )
        if fast:
            hl = len(head)
            n = hl + len(payload)
            view = self._view
            assert view is not None
            if n + padding > MAX_PLAIN:
                return self._send_slow_bytes(b"".join((head, payload, pad(padding))))
            view[:hl] = head
            view[hl:n] = payload
            if padding:
                view[n:n + padding] = pad(padding)
                n += padding
            length = self._len
            length[0] = n
            if _lib.srtp_protect(self._srtp, self._cdata, length):
                return False  # libsrtp refused (e.g. replay): nothing sent, like aiortc's error path
            data = view[:length[0]]
            try:
                self._sock.sendto(data, self._addr)
            except (BlockingIOError, InterruptedError):
                self._udp.sendto(bytes(data), self._addr)  # the transport buffers and retries
            except OSError:
                return False
            dtls._RTCDtlsTransport__tx_bytes += len(data)
            dtls._RTCDtlsTransport__tx_packets += 1
            self.fast_sent += 1
            return True
        return self._send_slow_bytes(b"".join((head, payload, pad(padding))))

    def send(self, plain: bytes) -> bool:
        """send protects and sends one plain RTP or RTCP packet; False when the transport is not connected."""
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return False
        if self._fast and self._route():
            session = self._session
            data = session.protect_rtcp(plain) if is_rtcp(plain) else session.protect(plain)
            self._udp.sendto(data, self._addr)
            dtls._RTCDtlsTransport__tx_bytes += len(data)
            dtls._RTCDtlsTransport__tx_packets += 1
            self.fast_sent += 1
            return True
        return self._send_slow_bytes(plain)

    def _send_slow_bytes(self, plain: bytes) -> bool:
        self.slow_sent += 1
        task = asyncio.ensure_future(self._send_slow(plain))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _send_slow(self, data: bytes) -> None:
        try:
            await self._dtls._send_rtp(data)
        except ConnectionError:
            pass

    # --------------------------------------------------------------------------- sender reports

    def add_sender(self, sender: ForwardingSender) -> None:
        """add_sender includes `sender` in this transport's periodic sender reports (every 0.5-1.5 s)."""
        if sender not in self._senders:
            self._senders.append(sender)
            self._report_entries = None
        if not self._reporting:
            self._reporting = True
            self._ticker.add(self._report)

    def _report(self) -> None:
        state = self._dtls._state
        if state is DtlsState.CLOSED or state is DtlsState.FAILED:
            self._ticker.remove(self._report)
            self._reporting = False
        elif state is DtlsState.CONNECTED:
            self.flush_slot_counters()
            flush_counts(self._dtls)  # what sfu/_rtcp.c received (the subscriber's reports)
            self.send_reports()

    def send_reports(self) -> bool:
        """send_reports sends one compound SR + SDES packet now; False when there was nothing to report.

        In C (``sfu._fanout.Reporter``, the same bytes) when every sender reports from a C slot and the fast
        route is up; else built by ``sender_reports`` and sent by ``send``.
        """
        now = time.time()
        sent = self._send_reports_compiled(now)
        if sent >= 0:
            if not sent:
                return False
            dtls = self._dtls
            dtls._RTCDtlsTransport__tx_bytes += sent
            dtls._RTCDtlsTransport__tx_packets += 1
            self.fast_sent += 1
            self.reports_sent += 1
            return True
        data = sender_reports(self._senders, now)
        if not data:
            return False
        self.reports_sent += 1
        return self.send(data)

    def _send_reports_compiled(self, now: float) -> int:
        """_send_reports_compiled: the octets the Reporter sent, 0 for nothing to report, -1 for the Python path."""
        reporter = self._reporter
        if reporter is None:
            return -1
        entries = self._report_entries
        if entries is None:
            entries = self._report_entries = self._build_report_entries()
        if not entries:
            return -1
        if not reporter.routed:
            if not self._fast or not self._route():
                return -1
            assert self._addr is not None
            srtp = int(_ffi.cast("uintptr_t", self._srtp))
            if not reporter.set_route(self._sock, int(self._sock.family), self._addr[0], self._addr[1],
                                      self._session, srtp, protect_address("srtp_protect_rtcp")):
                return -1
        elif self._pair is not self._ice._nominated.get(1) or self._session is not self._dtls._tx_srtp:
            self._route()  # the pair or the SRTP session changed: rebinds (clears the reporter's route)
            return -1
        return int(reporter.send(entries, now))

    def _build_report_entries(self) -> tuple[tuple[Any, Any, int, bytes], ...]:
        """_build_report_entries: (sender, C slot, SSRC, CNAME) per sender; () when one has no C slot or context."""
        entries = []
        for s in self._senders:
            source = s.report_source
            if s.report_slot is None or source is None:
                return ()
            entries.append((s, s.report_slot, source[0], source[1].encode()[:255]))
        return tuple(entries)

    def close(self) -> None:
        """close stops the sender reports and the pacer, unbinds the C fan-out slots, closes our socket duplicate."""
        self.pacer.close()
        self._unbind_slots()
        self._release_dup()
        self._ticker.remove(self._report)
        self._reporting = False
        if self._own_ticker:
            self._ticker.close()


def dont_fragment(sock: socket.socket) -> bool:
    """dont_fragment sets the DF bit on an IPv4 socket's datagrams, ignoring the path MTU (Linux's PMTUDISC_PROBE).

    Media packets stay under ~1.2 KB, so nothing needs fragments (a fragmented RTP packet is lost whole when one
    fragment is); and with DF the kernel skips the shared IP-ID generator on every send (~3 % of the SFU's CPU
    at 20 subscribers). False where it does not apply (IPv6, other systems).
    """
    if sys.platform != "linux" or sock.family != socket.AF_INET:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
    except OSError:
        return False
    return True
