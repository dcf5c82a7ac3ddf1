"""feedback: ``ReceiverFeedback``, the receiver reports and REMB a DTLS transport's receivers send its publisher.

aiortc runs a receiver-report loop per receiving m-line (``RTCRtpReceiver._run_rtcp``: a task that sleeps
0.5-1.5 s, builds an RR from the m-line's statistics and awaits the RTCP send path) and sends each REMB through
that path too (aiortc's packet objects, pylibsrtp's ``protect_rtcp``, aioice's ``sendto``). A lecture's server
receives from every classroom, so that is a few hundred Python wake-ups and sends a second. Here one job per
transport on the room's Ticker (polled by the transport's own media) sends the RRs of all its m-lines in one
compound packet every 0.5-1.5 s (aiortc's spread), built, protected and sent in C (``sfu._fanout.Feedback``,
``sfu/_feedback.c``) on the nominated pair's socket; REMBs take the same route. Without the C extension, or
before a pair is nominated, the Python twins (``sfu.rtp.receiver_reports``, ``remb_packet``) build the same
bytes and aiortc's transport sends them.

Who owns what: ``SfuPeerConnection`` attaches one ReceiverFeedback to each DTLS transport it creates (attribute
``FEEDBACK``) when it has a Ticker and synchronous receive; a ``ForwardingReceiver`` joins the one of its
transport when aiortc starts its report loop and leaves it when the receiver stops.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from typing import Any, Protocol

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from pylibsrtp._binding import ffi as _ffi

from sfu.hooks.demux import flush_counts
from sfu.hooks.guard import CompiledFeedback, protect_address
from sfu.hooks.ice import ice_connection
from sfu.hooks.reader import transport_socket
from sfu.rtp import ReportedStream, ReportEntry, receiver_reports, remb_packet, report_period
from sfu.tasks import Ticker, run_now

FEEDBACK = "_sfu_feedback"  # the attribute of a DTLS transport that holds its ReceiverFeedback


class ReportingReceiver(Protocol):
    """ReportingReceiver: what ReceiverFeedback reads of a receiver (``sfu.hooks.receiver.ForwardingReceiver``)."""

    @property
    def transport(self) -> Any: ...
    @property
    def rtcp_ssrc(self) -> int | None: ...
    @property
    def streams(self) -> Mapping[int, ReportedStream]: ...


class ReceiverFeedback:
    """ReceiverFeedback sends the receiver reports and REMBs of one DTLS transport's receivers (module doc).

    ``compiled``: build and send them in C (``sfu._fanout.Feedback``) when the extension is usable.
    """

    def __init__(self, transport: RTCDtlsTransport, ticker: Ticker, compiled: bool = True) -> None:
        self._dtls: Any = transport
        self._ice: Any = ice_connection(transport)
        self._ticker = ticker
        self._receivers: list[ReportingReceiver] = []
        self._c: Any = CompiledFeedback() if compiled and CompiledFeedback is not None else None
        self._pair: Any = None
        self._session: Any = None
        self._dup: socket.socket | None = None  # our duplicate of the pair's socket (uvloop transports)
        self._tasks: set[asyncio.Future[None]] = set()
        self._reporting = False
        self.reports_sent = 0  # compound receiver reports sent (C and Python)
        self.rembs_sent = 0  # REMBs sent here (C and Python)
        transport.on("statechange", self._state_changed)

    @property
    def receivers(self) -> tuple[ReportingReceiver, ...]:
        """receivers: the receiving m-lines whose reports this sends."""
        return tuple(self._receivers)

    def add(self, receiver: ReportingReceiver) -> None:
        """add includes `receiver`'s statistics in the transport's receiver reports (from 0.5-1.5 s on)."""
        if receiver not in self._receivers:
            self._receivers.append(receiver)
        if not self._reporting:
            self._reporting = True
            self._ticker.add(self._report, report_period)

    def remove(self, receiver: ReportingReceiver) -> None:
        """remove stops reporting on `receiver`."""
        if receiver in self._receivers:
            self._receivers.remove(receiver)
        if not self._receivers and self._reporting:
            self._ticker.remove(self._report)
            self._reporting = False

    def _entries(self) -> tuple[ReportEntry, ...]:
        entries = []
        for r in list(self._receivers):
            if r.transport is not self._dtls:  # moved by BUNDLE: reported by its new transport's feedback
                self.remove(r)
                other: ReceiverFeedback | None = getattr(r.transport, FEEDBACK, None)
                if other is not None:
                    other.add(r)
                continue
            if r.rtcp_ssrc is None:
                continue
            me: Any = r
            entries.append((r.rtcp_ssrc, r.streams, me._RTCRtpReceiver__lsr, me._RTCRtpReceiver__lsr_time))
        return tuple(entries)

    def _report(self) -> None:
        state = self._dtls._state
        if state is DtlsState.CLOSED or state is DtlsState.FAILED:
            self._ticker.remove(self._report)
            self._reporting = False
            return
        if state is not DtlsState.CONNECTED:
            return
        flush_counts(self._dtls)  # what the C path received (media, and the publisher's SRs: sfu/_rtcp.c)
        entries = self._entries()
        if entries:
            self.send_reports(entries, time.time())

    def send_reports(self, entries: tuple[ReportEntry, ...], now: float) -> bool:
        """send_reports sends the RRs of `entries` in one compound packet now; False when nothing was sent."""
        if self._routed():
            sent = int(self._c.send_reports(entries, now))
            if sent >= 0:
                self._count(sent)
                if sent:
                    self.reports_sent += 1
                return bool(sent)
        data = receiver_reports(entries, now)
        if not data:
            return False
        self.reports_sent += 1
        self._send_python(data)
        return True

    def send_remb(self, ssrc: int, bitrate: int, ssrcs: list[int]) -> bool:
        """send_remb sends a REMB from `ssrc` for `ssrcs` now (C when routed, else aiortc's transport)."""
        self.rembs_sent += 1
        if self._routed():
            sent = int(self._c.send_remb(ssrc, bitrate, ssrcs))
            if sent >= 0:
                self._count(sent)
                return True
        self._send_python(remb_packet(ssrc, bitrate, ssrcs))
        return True

    def _count(self, octets: int) -> None:
        if octets:
            self._dtls._RTCDtlsTransport__tx_bytes += octets
            self._dtls._RTCDtlsTransport__tx_packets += 1

    def _send_python(self, data: bytes) -> None:
        """_send_python: aiortc's send path (it does not suspend on a connected transport: run now)."""
        run_now(self._send_slow(data), self._tasks)

    async def _send_slow(self, data: bytes) -> None:
        try:
            await self._dtls._send_rtp(data)
        except ConnectionError:
            pass

    def _routed(self) -> bool:
        """_routed (re)binds the C Feedback to the nominated pair and the SRTP session; False: the Python path."""
        c = self._c
        if c is None:
            return False
        pair = self._ice._nominated.get(1)
        session = self._dtls._tx_srtp
        if c.routed and pair is self._pair and session is self._session:
            return True
        c.clear_route()
        self._release_dup()
        self._pair = self._session = None
        if pair is None or session is None or self._dtls._state is not DtlsState.CONNECTED:
            return False
        udp = pair.protocol.transport
        if udp is None or udp.is_closing():
            return False
        found = transport_socket(udp)
        if found is None:
            return False
        sock, self._dup = found
        host, port = pair.remote_addr[0], pair.remote_addr[1]
        srtp = int(_ffi.cast("uintptr_t", session._srtp[0]))
        if not c.set_route(sock, int(sock.family), host, port, session, srtp, protect_address("srtp_protect_rtcp")):
            self._release_dup()
            return False
        self._pair, self._session = pair, session
        return True

    def _state_changed(self) -> None:
        if self._c is not None:
            self._c.clear_route()
        self._pair = self._session = None
        if self._dtls._state in (DtlsState.CLOSED, DtlsState.FAILED):
            self._release_dup()

    def _release_dup(self) -> None:
        if self._dup is not None:
            self._dup.close()
            self._dup = None
