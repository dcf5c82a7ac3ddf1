"""aiortc_hooks: the only module of Taphuan that touches aiortc / aioice (and pylibsrtp) internals.

aiortc 1.16.0, aioice 0.13.0 and pylibsrtp 1.0.0 are pinned exactly; ``tests/sfu/test_aiortc_hooks.py`` fails
when one of the private names used here disappears. Everything below is a hook:

* ``SfuPeerConnection`` - an ``RTCPeerConnection`` that
  - gathers ICE candidates on a configured address list (aioice skips 127.0.0.1 by default),
  - routes RTCP without aiortc's per-packet ``typing`` overhead (``install_fast_rtcp_routing``),
  - in forwarding mode swaps the stock sender/receiver of each new transceiver for
    ``ForwardingSender`` / ``ForwardingReceiver`` (mangled ``__createTransceiver`` override).
* ``ForwardingReceiver`` - sees every decrypted, parsed RTP packet and replaces aiortc's receive path (no
  jitter buffer, depayloading or decoder): RTCP receiver reports from ``RtpStreamStats``, NACKs from
  ``NackTracker``, REMB from aiortc's estimator (or its C port, ``sfu/_remb.c``), PLI on request; routes RTX
  by SSRC (aiortc routes unknown SSRCs by payload type alone, which fails as soon as two video receivers share
  one BUNDLE transport).
* ``ForwardingSender`` - idle ``_run_rtp`` and ``_run_rtcp`` (no track, no encoder, no per-sender timer);
  keyframe requests and every subscriber RTCP packet (RR, NACK, PLI/FIR, REMB) are handed to callbacks or
  written into the Consumer's C slot; RTT from the subscriber's report blocks.
* ``PacketWire`` - the fast send path of one DTLS transport: libsrtp protect in place and ``sendto`` on the
  selected ICE pair's socket, synchronously (falls back to aiortc's awaited ``_send_rtp``); and one compound
  SR + SDES packet per transport and interval for all its senders (``sfu/_report.c``, else
  ``sender_reports``). ``bind_slot`` hands the same route (socket, remote address, ``srtp_t`` and
  ``srtp_protect`` addresses) to the C fan-out's slots (``sfu/_fanout.c``) and takes it back when the pair,
  the SRTP session or the DTLS state changes.
* ``Consent`` - ICE consent freshness (RFC 7675) on the room's Ticker instead of aioice's task per
  connection, and consent checks answered without aioice's STUN objects (``sfu.stun``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pylibsrtp
from aioice import ice as aioice_ice
from aioice.candidate import candidate_priority
from aioice.ice import CONSENT_FAILURES, CONSENT_INTERVAL, CandidatePair, Connection
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.rate import MIN_FRAME_PERIOD_HISTORY_LENGTH, RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport, RtpRouter
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtcrtpsender import RTT_ALPHA
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    is_rtcp,
    pack_remb_fci,
    unpack_remb_fci,
    unwrap_rtx,
)
from pylibsrtp import Error as SrtpError
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _lib

from sfu.rtp import (
    NO_AUDIO_LEVEL,
    NTP_OFFSET,
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    FieldsSink,
    SendContext,
    SrInfo,
    pad,
    parse_fields,
    report_period,
    sender_reports,
    unpack_remb,
)
from sfu.stats import NackTracker, RtpStreamStats, SlidingMin, WindowRate
from sfu.stun import BINDING_REQUEST, binding_request, binding_response
from sfu.stun import parse as parse_stun
from sfu.tasks import Ticker, run_now, spawn

try:  # the optional C receive path (sfu/_ingress.c); without it every packet takes the Python path
    from sfu._fanout import Demux as CompiledDemux
    from sfu._fanout import Estimator as CompiledEstimator
    from sfu._fanout import Ingress as CompiledIngress
    from sfu._fanout import Reporter as CompiledReporter
    from sfu._fanout import RtcpRoute as CompiledRtcpRoute
except ImportError:
    CompiledDemux = CompiledIngress = CompiledRtcpRoute = CompiledReporter = CompiledEstimator = None

logger = logging.getLogger(__name__)

# Private names used below, checked by tests/sfu/test_aiortc_hooks.py against the pinned versions.
PRIVATE_NAMES: dict[type, tuple[str, ...]] = {
    RTCPeerConnection: ("_RTCPeerConnection__createDtlsTransport", "_RTCPeerConnection__createTransceiver"),
    RTCRtpReceiver: (
        "_RTCRtpReceiver__stop_decoder", "_handle_rtp_packet", "_send_rtcp", "_send_rtcp_nack",
        "_send_rtcp_pli", "_set_rtcp_ssrc", "_run_rtcp", "_handle_rtcp_packet",
    ),
    RTCRtpSender: ("_run_rtp", "_send_keyframe", "_handle_rtcp_packet", "_run_rtcp"),
    RTCDtlsTransport: ("_send_rtp", "_handle_rtcp_data"),
    RtpRouter: ("route_rtcp", "route_rtp"),
    Connection: ("get_component_candidates", "gather_candidates", "data_received", "query_consent", "check_complete"),
    aioice_ice.StunProtocol: ("datagram_received",),
}
PRIVATE_INSTANCE_NAMES: dict[str, tuple[str, ...]] = {
    "RTCRtpReceiver": (
        "_RTCRtpReceiver__decoder_thread", "_RTCRtpReceiver__decoder_queue", "_RTCRtpReceiver__remote_streams",
        "_enabled",
    ),
    "RTCRtpSender": (
        "_RTCRtpSender__rtp_started",
        "_RTCRtpSender__rtp_exited",
        "_RTCRtpSender__rtcp_started",
        "_RTCRtpSender__rtcp_exited",
        "_rtx_ssrc",
        "_ssrc",
    ),
    "RTCRtpTransceiver": ("_RTCRtpTransceiver__sender", "_RTCRtpTransceiver__receiver"),
    "RTCDtlsTransport": (
        "_state",
        "_tx_srtp",
        "_rx_srtp",
        "_rtp_header_extensions_map",
        "_RTCDtlsTransport__rx_bytes",
        "_RTCDtlsTransport__rx_packets",
        "_rtp_router",
        "_RTCDtlsTransport__tx_bytes",
        "_RTCDtlsTransport__tx_packets",
    ),
    "RtpRouter": ("ssrc_table", "senders"),
    "RTCIceTransport": ("_connection",),
    "Connection": (
        "_nominated", "_components", "_local_candidates", "_local_candidates_start", "_protocols", "_queue",
        "_closing", "_early_checks_done", "_tie_breaker", "ice_controlling", "local_username", "remote_username",
        "local_password", "remote_password",
    ),
    "StunProtocol": ("receiver",),
    "CandidatePair": ("protocol", "remote_addr", "state", "component", "nominated", "remote_nominated"),
    "DatagramTransport": ("_sock",),
    "pylibsrtp.Session": ("_srtp", "_cdata", "_buffer"),
}
# functions of pylibsrtp._binding.lib called directly (or by sfu/_fanout.c)
PYLIBSRTP_NAMES = ("srtp_protect", "srtp_unprotect", "srtp_unprotect_rtcp", "srtp_protect_rtcp")  # all by address


def protect_address(name: str = "srtp_protect") -> int:
    """protect_address is the address of libsrtp's `name` (``srtp_protect``, ``srtp_protect_rtcp``) in pylibsrtp's
    binding (for sfu._fanout)."""
    return int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, name)))


def unprotect_address() -> int:
    """unprotect_address is the address of libsrtp's ``srtp_unprotect`` in pylibsrtp's binding (for sfu._fanout)."""
    return int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, "srtp_unprotect")))


# The C type sfu/_fanout.c assumes for each of PYLIBSRTP_NAMES (``protect_fn`` in sfu/_fanout.h: int status,
# srtp_t, buffer, in/out length), and a known answer: this RTP packet protected with AES_CM_128_HMAC_SHA1_80
# (pylibsrtp's default policy), key and salt bytes(range(30)), first packet of the session (RFC 3711).
LIBSRTP_TYPE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"
KNOWN_PLAIN = bytes.fromhex("80e0fffe123456781a2b3c4d") + b"taphuan known answer"
KNOWN_PROTECTED = KNOWN_PLAIN[:12] + bytes.fromhex(
    "a7ef11cdb963ade956524adefa6a75de2f8a03f30721940cd346bb10707c")


def check_libsrtp(lib: Any = _lib, address: Callable[[], int] = protect_address) -> str | None:
    """check_libsrtp verifies what sfu/_fanout.c relies on when it calls libsrtp by address: each function's
    cffi type, and a known-answer protect through ``address()`` called with the extension's signature.
    Returns None when both hold, else the reason (the compiled path is then refused)."""
    for name in PYLIBSRTP_NAMES:
        fn = getattr(lib, name, None)
        cname = _ffi.typeof(fn).cname if fn is not None else "missing"
        if cname != LIBSRTP_TYPE:
            return f"libsrtp's {name} is {cname}, not {LIBSRTP_TYPE}"
    session = pylibsrtp.Session(pylibsrtp.Policy(key=bytes(range(30)),
                                                 ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    protect = _ffi.cast("int(*)(void *, void *, int *)", address())
    buf = _ffi.new("unsigned char[]", 256)
    buf[0:len(KNOWN_PLAIN)] = KNOWN_PLAIN
    size = _ffi.new("int *", len(KNOWN_PLAIN))
    status = protect(session._srtp[0], buf, size)
    out = bytes(_ffi.buffer(buf, size[0]))
    if status != 0 or out != KNOWN_PROTECTED:
        return f"libsrtp's srtp_protect failed the known-answer test (status {status})"
    return None


LIBSRTP_PROBLEM = check_libsrtp() if CompiledDemux is not None else None
if LIBSRTP_PROBLEM is not None:
    logger.warning("compiled SFU path refused, forwarding in Python: %s", LIBSRTP_PROBLEM)
    CompiledDemux = CompiledIngress = CompiledRtcpRoute = CompiledReporter = CompiledEstimator = None
COMPILED_PATH = CompiledDemux is not None  # sfu._fanout is built and libsrtp is what it expects


# codec numbers of sfu/_ingress.c's keyframe test: not video, VP8, H.264, another video codec
INGRESS_CODECS = {"video/vp8": 1, "video/h264": 2}
INGRESS_AUDIO, INGRESS_OTHER_VIDEO = 0, 3

# --------------------------------------------------------------------------------------------- ICE


async def _host_candidates_in_range(conn: Any, component: int, addresses: Sequence[str],
                                    ports: tuple[int, int]) -> list[Any]:
    """_host_candidates_in_range binds one UDP socket per address on a free port of `ports` (inclusive)."""
    loop = asyncio.get_running_loop()
    low, high = ports
    span = high - low + 1
    candidates = []
    for address in addresses:
        first = random.randrange(span)
        for i in range(span):
            port = low + (first + i) % span
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: aioice_ice.StunProtocol(conn), local_addr=(address, port))
                break
            except OSError:
                continue
        else:
            logger.warning("no free UDP port in %d-%d on %s", low, high, address)
            continue
        host, bound = transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = aioice_ice.Candidate(
            foundation=aioice_ice.candidate_foundation("host", "udp", host), component=component,
            transport="udp", priority=aioice_ice.candidate_priority(component, "host"), host=host, port=bound,
            type="host")
        conn._protocols.append(protocol)
        candidates.append(protocol.local_candidate)
    return candidates


def use_gathering_addresses(connection: Connection, addresses: Sequence[str],
                            ports: tuple[int, int] | None = None) -> None:
    """use_gathering_addresses makes one aioice Connection gather host candidates on `addresses` only.

    aioice's ``gather_candidates`` asks ``get_host_addresses()``, which never returns 127.0.0.1; this replaces
    the bound method on this instance only, so nothing global changes. With `ports` (low, high), host sockets
    bind inside that UDP range (for firewalls); empty `addresses` then means aioice's default interfaces.
    """
    conn: Any = connection
    chosen = list(addresses) or aioice_ice.get_host_addresses(use_ipv4=conn._use_ipv4, use_ipv6=conn._use_ipv6)

    async def gather_candidates() -> None:
        if conn._local_candidates_start:
            return
        conn._local_candidates_start = True
        if ports is not None:
            results = await asyncio.gather(
                *(_host_candidates_in_range(conn, c, chosen, ports) for c in sorted(conn._components)))
        else:
            results = await asyncio.gather(
                *(conn.get_component_candidates(component=c, addresses=chosen) for c in sorted(conn._components))
            )
        for candidates in results:
            conn._local_candidates += candidates
        conn._local_candidates_end = True

    conn.gather_candidates = gather_candidates


def install_sync_rtp_receive(dtls: RTCDtlsTransport, compiled: bool = True, consent: Consent | None = None) -> None:
    """install_sync_rtp_receive delivers SRTP media for ``ForwardingReceiver``s synchronously from the socket.

    aioice hands every datagram to ``StunProtocol.datagram_received``, which first tries to parse it as STUN
    (an exception per media packet), then to ``Connection.data_received``, an asyncio queue that aiortc's DTLS
    task reads: a task wake-up per packet. This hook (on this connection's protocols and the connection
    itself, instance attributes only) takes an RTP packet (first byte 128-191, not RTCP) whose SSRC routes to
    a ForwardingReceiver straight to ``srtp_unprotect`` and the receiver's synchronous ``handle_rtp``. When
    the receiver feeds a Producer (``on_fields`` set), libsrtp unprotects in place in the session's buffer
    (no pylibsrtp wrapper) and ``handle_plain`` parses only the header fields and extensions it needs (no
    ``RtpPacket``). An SRTCP packet goes straight to ``srtp_unprotect_rtcp``, ``RtcpPacket.parse``, the
    router and the recipients' synchronous ``handle_rtcp`` (subscribers' reports, NACKs, PLIs and REMBs are
    most of a busy server's inbound packets). STUN, DTLS and media for other receivers keep aiortc's path.
    Only installed on forwarding peer connections, whose senders and receivers are all ours.

    With the C extension (and `compiled`), each protocol's callback is a ``MediaDemux`` (``sfu._fanout.Demux``)
    in front of all this: an armed receiver's steady-state media never reaches a Python frame
    (``ForwardingReceiver.arm``), and after the first SRTCP packet routine RTCP (receiver reports, REMB) is
    handled in C too (``MediaDemux.set_rtcp``, ``sfu/_rtcp.c``). With `consent`, ICE consent checks on
    the selected pair are answered and sent by it (``Consent``) instead of aioice's generic STUN code.
    """
    conn: Any = ice_connection(dtls)
    transport: Any = dtls
    demux = MediaDemux(dtls) if compiled and CompiledDemux is not None else None
    setattr(transport, MEDIA_DEMUX, demux)
    router: Any = transport._rtp_router
    ssrc_table: dict[int, Any] = router.ssrc_table
    queue = conn._queue
    from_bytes = int.from_bytes
    pending: set[asyncio.Future[None]] = set()
    length = _ffi.new("int *")
    unprotect = _lib.srtp_unprotect
    early: list[tuple[bytes, int]] = []  # media for our receivers that came before our SRTP keys, in order

    def rtcp_received(plain: bytes) -> None:
        """rtcp_received parses and routes one decrypted compound RTCP packet to its recipients, synchronously."""
        try:
            reports = RtcpPacket.parse(plain)
        except ValueError:
            return
        for report in reports:
            for recipient in router.route_rtcp(report):
                if isinstance(recipient, (ForwardingSender, ForwardingReceiver)):
                    recipient.direct_rtcp += 1
                    recipient.handle_rtcp(report)
                else:
                    spawn(pending, recipient._handle_rtcp_packet(report))

    def data_received(data: bytes, component: int) -> None:
        first = data[0]
        if 127 < first < 192 and len(data) >= 12 and 191 < data[1] < 224:
            session = transport._rx_srtp
            if demux is not None:
                demux.flush_counts()  # the publisher's SRs come this way once a second: the C path's counts follow
            if session is not None and conn._nominated:
                transport._RTCDtlsTransport__rx_bytes += len(data)
                transport._RTCDtlsTransport__rx_packets += 1
                try:
                    plain = session.unprotect_rtcp(data)
                except SrtpError:
                    return
                rtcp_received(plain)
                if demux is not None:
                    demux.set_rtcp(session, rtcp_received)  # from now on, routine RTCP stays in C
                return
        elif 127 < first < 192 and len(data) >= 12:
            receiver = ssrc_table.get(from_bytes(data[8:12], "big"))
            session = transport._rx_srtp
            if session is None or not conn._nominated:
                # The publisher, as DTLS server, has its keys a flight before us and sends at once (its SSRC not
                # routed yet either): held here, these go first once we have ours (through aiortc's queue they
                # came after the next packets, leaving a hole in the first keyframe that no NACK could fill).
                if len(early) < EARLY_MEDIA_PACKETS:
                    early.append((data, component))
                    return
            elif early:
                held = early[:]
                early.clear()
                for item in held:
                    data_received(*item)
                receiver = ssrc_table.get(from_bytes(data[8:12], "big"))
            if isinstance(receiver, ForwardingReceiver) and session is not None and conn._nominated:
                transport._RTCDtlsTransport__rx_bytes += len(data)
                transport._RTCDtlsTransport__rx_packets += 1
                now = time.time()
                if receiver.on_fields is not None:  # a Producer: unprotect in place, parse only what it needs
                    n = len(data)
                    cdata = session._cdata
                    if n > len(cdata):
                        return
                    buf = session._buffer
                    buf[0:n] = data
                    length[0] = n
                    if unprotect(session._srtp[0], cdata, length):
                        return  # authentication or replay failure, like pylibsrtp's exception
                    receiver.direct_packets += 1
                    receiver.handle_plain(buf[0:length[0]], now)
                    return
                try:
                    plain = session.unprotect(data)
                    packet = RtpPacket.parse(plain, transport._rtp_header_extensions_map)
                except (SrtpError, ValueError):
                    return
                if router.route_rtp(packet) is receiver:
                    receiver.direct_packets += 1
                    receiver.handle_rtp(packet, int((now + NTP_OFFSET) * 1000))  # aiortc's clock.current_ms()
                return
        queue.put_nowait((data, component))

    conn.data_received = data_received
    gather = conn.gather_candidates

    async def gather_candidates() -> None:
        await gather()
        for protocol in conn._protocols:
            if isinstance(protocol, aioice_ice.StunProtocol) and protocol.receiver is conn:
                _skip_stun_parse_for_media(protocol, data_received, demux, consent)
                receive_buffer(protocol.transport)

    conn.gather_candidates = gather_candidates


def _skip_stun_parse_for_media(protocol: Any, data_received: Callable[[bytes, int], None],
                               demux: MediaDemux | None = None, consent: Consent | None = None) -> None:
    """_skip_stun_parse_for_media: datagrams starting with 128-191 (RTP/RTCP, never STUN) skip the STUN parse.

    With a `demux`, its C callback comes first and hands what it does not keep to this one. With `consent`,
    consent checks and their answers on the selected pair take its path (``Consent.received``).
    """
    stun_received = protocol.datagram_received
    component = protocol.local_candidate.component

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and 127 < data[0] < 192:
            data_received(data, component)
        elif consent is None or not consent.received(data, addr, protocol):
            stun_received(data, addr)

    protocol.datagram_received = datagram_received if demux is None else demux.wrap(datagram_received)


class Consent:
    """Consent runs ICE consent freshness (RFC 7675) for one aioice Connection with a fraction of its work.

    aioice answers each consent check through its generic STUN objects and runs its own checks in a task per
    connection (a wake-up for the timer and one for the answer); at 20 subscribers that was ~12 % of the SFU's
    CPU. Here, on the selected pair only: a Binding request that is authentic (USERNAME, MESSAGE-INTEGRITY,
    FINGERPRINT) and has no role conflict is answered with the bytes aioice would send (``sfu.stun``), a
    USE-CANDIDATE on the already nominated pair (Chromium's checks carry it) treated as aioice does; and
    ``tick``, a job of the room's Ticker, sends our check every `interval` × 0.8-1.2 and ``received`` takes
    the authentic answer to any of our recent checks (RFC 7675: a response to any request of the last 30 s),
    so an answer that comes after the next check was sent still counts. A check still unanswered when the
    next one is sent is a failure, judged (``_judge``) only after the event loop has read its sockets once
    more: a loop that was busy (a long callback, a starved CPU) and has the answer waiting in a socket buffer
    counts no failure. Consent expires after `CONSENT_FAILURES` failures in a row that also span
    `CONSENT_FAILURES` × `interval` of sending since the last answer (~30 s, as aioice and RFC 7675): the
    number alone is not enough, since a late loop's Ticker may run checks back to back. Everything else
    (other pairs, nominations, role conflicts, errors, unauthenticated requests) still goes to aioice.
    Installed by ``SfuPeerConnection`` in place of ``Connection.query_consent``. Event loop only.
    """

    def __init__(self, conn: Connection, ticker: Ticker, interval: float = CONSENT_INTERVAL) -> None:
        self._conn: Any = conn
        self._ticker = ticker
        self.interval = interval
        self._pending: dict[bytes, float] = {}  # our unanswered checks: transaction id -> when sent (oldest first)
        self._fresh = 0.0  # when consent was last confirmed (or the checks began)
        self.failures = 0  # checks judged unanswered since the last answer
        self.answered = 0  # checks of the peer answered here
        self.checks = 0  # our checks sent
        self.confirmed = 0  # answers to them
        self.expired = False
        self._tasks: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """start replaces ``Connection.query_consent`` (aioice runs it once connected): ticks from now on."""
        self._fresh = time.monotonic()
        self._ticker.add(self.tick, self.period)

    def period(self) -> float:
        """period is the time to the next check: `interval` × 0.8-1.2 (aioice's, RFC 7675's)."""
        return self.interval * (0.8 + 0.4 * random.random())

    def tick(self) -> None:
        """tick sends a consent check; the checks before it are judged once the loop has read its sockets."""
        conn = self._conn
        if conn._closing or self.expired:
            self._ticker.remove(self.tick)
            return
        pair: Any = conn._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return
        txid = os.urandom(12)
        data = binding_request(txid, f"{conn.remote_username}:{conn.local_username}",
                               candidate_priority(pair.component, "prflx"), conn.ice_controlling,
                               conn._tie_breaker, conn.remote_password.encode())
        pair.protocol.transport.sendto(data, pair.remote_addr)
        now = time.monotonic()
        pending = self._pending
        pending[txid] = now
        if len(pending) > 2 * CONSENT_FAILURES:
            del pending[next(iter(pending))]  # older than any verdict needs
        self.checks += 1
        # a callback queued by a callback runs after the loop's next read of its sockets (asyncio and uvloop)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._judge, now)

    def _judge(self, sent: float) -> None:
        """_judge counts the checks sent before `sent` still unanswered; expires consent when they are enough."""
        conn = self._conn
        if conn._closing or self.expired:
            return
        self.failures = sum(1 for t in self._pending.values() if t < sent)
        if self.failures >= CONSENT_FAILURES and sent - self._fresh >= CONSENT_FAILURES * self.interval:
            logger.info("ICE consent to send expired (%d checks unanswered in %.1f s)", self.failures,
                        sent - self._fresh)
            self.expired = True
            self._ticker.remove(self.tick)
            spawn(self._tasks, conn.close())

    def received(self, data: bytes, addr: tuple[Any, ...], protocol: Any) -> bool:
        """received takes a STUN datagram if it is consent on the selected pair; False: aioice's path."""
        conn = self._conn
        pair: Any = conn._nominated.get(1)
        if (pair is None or pair.protocol is not protocol or conn._closing or addr[0] != pair.remote_addr[0]
                or addr[1] != pair.remote_addr[1]):
            return False
        msg = parse_stun(data)
        if msg is None:
            return False
        if msg.kind == BINDING_REQUEST:
            controlling = conn.ice_controlling
            renominate = msg.use_candidate and not controlling  # Chromium, controlling, sends it on every check
            if ((renominate and not pair.nominated) or not conn._early_checks_done
                    or pair.state is not CandidatePair.State.SUCCEEDED
                    or (msg.controlling if controlling else msg.controlled)
                    or msg.username != f"{conn.local_username}:{conn.remote_username}".encode()):
                return False  # a nomination, a role conflict, checks still running: aioice decides
            key = conn.local_password.encode()
            if not msg.authentic(key):
                return False  # aioice answers 401
            protocol.transport.sendto(binding_response(msg.transaction_id, pair.remote_addr, key), pair.remote_addr)
            if renominate:  # what aioice's check_incoming does then (nothing changes for the nominated pair)
                pair.remote_nominated = True
                conn.check_complete(pair)
            self.answered += 1
            return True
        sent = self._pending.get(msg.transaction_id)
        if sent is None or not msg.authentic(conn.remote_password.encode()):
            return False  # not ours (aioice's transactions), or not authentic (ignored there too)
        for txid in [txid for txid, t in self._pending.items() if t <= sent]:
            del self._pending[txid]  # this check and the ones before it: consent is fresh
        self._fresh = time.monotonic()
        self.failures = 0
        self.confirmed += 1
        return True


MEDIA_DEMUX = "_taphuan_media_demux"  # attribute of a DTLS transport: its MediaDemux, or None


class MediaDemux:
    """MediaDemux keeps the C demultiplexers (``sfu._fanout.Demux``) of one DTLS transport's ICE sockets.

    Armed ``sfu._fanout.Ingress`` objects (one per ForwardingReceiver) are registered with every socket's
    Demux, including sockets gathered later. The C path counts the datagrams it takes; ``flush_counts``
    adds them to the DTLS transport's receive counters (aiortc's transport statistics). Event loop only.
    """

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self._dtls: Any = dtls
        self.demuxes: list[Any] = []
        self.ingresses: list[Any] = []
        self.rtcp: Any = None  # sfu._fanout.RtcpRoute once set_rtcp ran
        self.rtcp_session: Any = None

    def wrap(self, fallback: Callable[[bytes, tuple[Any, ...]], None]) -> Callable[[bytes, tuple[Any, ...]], None]:
        """wrap returns a C datagram callback for one socket that hands what it does not keep to `fallback`."""
        demux = CompiledDemux(fallback)
        for ingress in self.ingresses:
            demux.add(ingress)
        if self.rtcp is not None:
            demux.set_rtcp(self.rtcp)
        self.demuxes.append(demux)
        callback: Callable[[bytes, tuple[Any, ...]], None] = demux.datagram_received
        return callback

    def add(self, ingress: Any) -> bool:
        """add registers an Ingress with every socket; False when a socket's table is full."""
        if not all([demux.add(ingress) for demux in self.demuxes]):
            self.remove(ingress)
            return False
        if ingress not in self.ingresses:
            self.ingresses.append(ingress)
        return True

    def remove(self, ingress: Any) -> None:
        """remove unregisters an Ingress."""
        for demux in self.demuxes:
            demux.remove(ingress)
        if ingress in self.ingresses:
            self.ingresses.remove(ingress)

    def set_rtcp(self, session: Any, fallback: Callable[[bytes], None]) -> None:
        """set_rtcp hands this transport's routine SRTCP (RR, SDES, REMB) to C (``sfu/_rtcp.c``), once.

        `session` is the DTLS transport's receive SRTP session; `fallback(plain)` gets every other compound.
        """
        if self.rtcp is not None and self.rtcp_session is session:
            return
        self.rtcp = CompiledRtcpRoute(
            session, int(_ffi.cast("uintptr_t", session._srtp[0])),
            int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, "srtp_unprotect_rtcp"))),
            self._dtls._rtp_router.senders, ForwardingSender, fallback,
        )
        self.rtcp_session = session
        for demux in self.demuxes:
            demux.set_rtcp(self.rtcp)

    def flush_counts(self) -> None:
        """flush_counts adds the datagrams the C path took to the DTLS transport's receive counters."""
        for demux in self.demuxes:
            packets, octets = demux.take_counts()
            if packets:
                self._dtls._RTCDtlsTransport__rx_packets += packets
                self._dtls._RTCDtlsTransport__rx_bytes += octets


def ice_connection(dtls: RTCDtlsTransport) -> Connection:
    """ice_connection returns the aioice Connection under a DTLS transport."""
    ice: Any = dtls.transport
    conn: Connection = ice._connection
    return conn


# ---------------------------------------------------------------------------------------- receiver


class ForwardingReceiver(RTCRtpReceiver):
    """ForwardingReceiver hands every decrypted RTP packet to ``on_rtp``; it never decodes or buffers.

    It replaces aiortc's receive path (jitter buffer, depayloading, decoder queue) with what a publisher
    still needs from us: RTCP receiver reports (``RtpStreamStats`` in aiortc's stream table, sent by aiortc's
    RR loop), NACKs for gaps in video, REMB from aiortc's bitrate estimator when abs-send-time is negotiated,
    and PLI when the SFU asks (``send_pli``). RTX packets are counted under their own SSRC and unwrapped
    before ``on_rtp`` sees them, so a recovered packet is forwarded too.
    """

    def __init__(self, kind: str, transport: RTCDtlsTransport) -> None:
        super().__init__(kind, transport)
        self.on_rtp: Callable[[RtpPacket], None] | None = None
        self.on_fields: FieldsSink | None = None  # preferred over on_rtp by handle_plain (no RtpPacket)
        self.abs_send_time_id = 0  # negotiated one-byte extension ids (0: not negotiated)
        self.audio_level_id = 0
        self._remb_bytes = 0  # bytes of the current frame, fed to the estimator on its last packet
        self.rtx_to_media: dict[int, int] = {}
        self.rtx_apt: dict[int, int] = {}
        self.codecs: list[Any] = []
        self.clock_rates: dict[int, int] = {}
        self.media_ssrc: int | None = None
        self.rtcp_ssrc: int | None = None
        self.streams: dict[int, RtpStreamStats] = {}
        self.nack: NackTracker | None = NackTracker() if kind == "video" else None
        self.remb: Any = None  # RemoteBitrateEstimator, or sfu._fanout.Estimator (SfuPeerConnection, compiled)
        if kind == "video":
            self.remb = RemoteBitrateEstimator()
            # same results, less Python per frame: no bucket per millisecond, no 60-entry scan
            self.remb.incoming_bitrate = WindowRate(1000, 8000)
            self.remb.estimator.update_min_frame_period = SlidingMin(
                MIN_FRAME_PERIOD_HISTORY_LENGTH).push
        self.nacks_sent = 0
        self.remb_sent = 0
        self.direct_packets = 0  # delivered by install_sync_rtp_receive (not through aioice's queue)
        self.direct_rtcp = 0  # RTCP packets delivered the same way
        self.ticker: Ticker | None = None  # polled after each packet (SfuPeerConnection's `ticker`)
        self.ingress: Any = CompiledIngress() if CompiledIngress is not None else None  # the C receive path
        self._armed_for: Any = None  # the Producer the ingress was armed for
        self._media_pt: int | None = None  # payload type of the last media (not RTX) packet
        self._rtcp_tasks: set[asyncio.Future[None]] = set()
        me: Any = self
        me._RTCRtpReceiver__remote_streams = self.streams  # aiortc's RR loop and getStats() read it

    def _set_rtcp_ssrc(self, ssrc: int) -> None:
        super()._set_rtcp_ssrc(ssrc)
        self.rtcp_ssrc = ssrc

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        """receive starts aiortc's receiver, then stops its decoder thread and routes RTX by SSRC."""
        await super().receive(parameters)
        self.stop_decoder()
        self.codecs = list(parameters.codecs)
        for ext in parameters.headerExtensions:
            if ext.uri == URI_ABS_SEND_TIME:
                self.abs_send_time_id = ext.id
            elif ext.uri == URI_AUDIO_LEVEL:
                self.audio_level_id = ext.id
        for codec in parameters.codecs:
            if codec.payloadType is None:
                continue
            self.clock_rates[codec.payloadType] = codec.clockRate
            apt = codec.parameters.get("apt")
            if is_rtx(codec) and isinstance(apt, int):
                self.rtx_apt[codec.payloadType] = apt
        for encoding in parameters.encodings:
            if self.media_ssrc is None and encoding.ssrc:
                self.media_ssrc = encoding.ssrc
            if encoding.rtx is not None:
                self.rtx_to_media[encoding.rtx.ssrc] = encoding.ssrc
        self.route_rtx_by_ssrc()

    def arm(self) -> bool:
        """arm hands this receiver's steady-state media to the C path (``sfu/_ingress.c``); True when armed.

        Called after every packet the Python path handled, so it is cheap when armed already. Arming needs a
        Producer that accepts it (``ingress_ready``: real clocks), the media SSRC with statistics begun, the
        SRTP session and the transport's MediaDemux (``install_sync_rtp_receive``). The C path then reads and
        writes the same objects (``streams``, ``nack``, ``_remb_bytes``, the Producer's counters).
        """
        ingress = self.ingress
        fields = self.on_fields
        producer = getattr(fields, "__self__", None)
        if ingress is None or (ingress.armed and producer is self._armed_for):
            return bool(ingress is not None and ingress.armed)
        ssrc, pt = self.media_ssrc, self._media_pt
        transport: Any = self.transport
        demux: MediaDemux | None = getattr(transport, MEDIA_DEMUX, None)
        session = transport._rx_srtp
        stats = self.streams.get(ssrc) if ssrc is not None else None
        if (producer is None or not getattr(producer, "ingress_ready", False) or pt is None or stats is None
                or stats.base_seq is None or session is None or demux is None or not self._enabled):
            return False
        if getattr(producer, "kind", "audio") != "video":
            codec = INGRESS_AUDIO
        else:
            codec = INGRESS_CODECS.get(str(getattr(producer, "mime", "")), INGRESS_OTHER_VIDEO)
        if not demux.add(ingress):
            return False
        assert ssrc is not None
        ingress.arm(
            session, int(_ffi.cast("uintptr_t", session._srtp[0])), unprotect_address(), ssrc, pt,
            self.clock_rates[pt], codec, self.abs_send_time_id, self.audio_level_id, self, stats, self.nack,
            self.remb, producer,
        )
        self._armed_for = producer
        return True

    def disarm(self) -> None:
        """disarm sends every packet through the Python path again."""
        ingress = self.ingress
        if ingress is not None and ingress.armed:
            ingress.disarm()
            demux: MediaDemux | None = getattr(self.transport, MEDIA_DEMUX, None)
            if demux is not None:
                demux.remove(ingress)
        self._armed_for = None

    async def stop(self) -> None:
        """stop disarms the C path, then stops aiortc's receiver."""
        self.disarm()
        await super().stop()

    def route_rtx_by_ssrc(self) -> None:
        """route_rtx_by_ssrc registers our RTX SSRCs in the transport's router.

        aiortc only registers media SSRCs; an RTX packet then falls back to routing by payload type, which
        drops it when two receivers of one kind share a BUNDLE transport (both registered the RTX type).
        """
        transport: Any = self.transport
        router = transport._rtp_router
        for rtx_ssrc in self.rtx_to_media:
            router.ssrc_table[rtx_ssrc] = self

    def stop_decoder(self) -> None:
        """stop_decoder stops aiortc's decoder thread (joins it); the remote track then ends."""
        me: Any = self
        me._RTCRtpReceiver__stop_decoder()

    @property
    def decoder_queue(self) -> Any:
        """decoder_queue is the queue aiortc's decoder thread reads (to recognise that thread)."""
        me: Any = self
        return me._RTCRtpReceiver__decoder_queue

    @property
    def decoder_thread(self) -> Any:
        """decoder_thread is aiortc's decoder thread, None once stopped."""
        me: Any = self
        return me._RTCRtpReceiver__decoder_thread

    async def _handle_rtp_packet(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        self.handle_rtp(packet, arrival_time_ms)

    def _rtcp_soon(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._rtcp_tasks.add(task)
        task.add_done_callback(self._rtcp_tasks.discard)

    def handle_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """handle_rtp handles one parsed packet synchronously (REMB and NACK are sent by a task)."""
        if not self._enabled:
            return
        ext = packet.extensions
        ast = ext.abs_send_time
        now = arrival_time_ms / 1000 - NTP_OFFSET
        media = self._account(packet.ssrc, packet.sequence_number, packet.timestamp, packet.marker,
                              packet.payload_type, packet.payload, packet.padding_size,
                              -1 if ast is None else ast, now)
        if media is None:
            return
        if media[0] != packet.ssrc:  # RTX, unwrapped
            packet = unwrap_rtx(packet, payload_type=self.rtx_apt[packet.payload_type], ssrc=media[0])
        fields = self.on_fields
        if fields is not None:
            level = ext.audio_level
            fields(packet.ssrc, packet.sequence_number, packet.timestamp, packet.marker, packet.payload,
                   packet.padding_size,
                   NO_AUDIO_LEVEL if level is None else ((0x80 if level[0] else 0) | (level[1] & 0x7F)), now)
            return
        sink = self.on_rtp
        if sink is not None:
            sink(packet)

    def handle_plain(self, plain: bytes, now: float) -> None:
        """handle_plain handles one decrypted RTP packet for ``on_fields`` without building an ``RtpPacket``.

        ``parse_fields`` reads the header; what it leaves to a full parser goes through ``RtpPacket.parse``
        and ``handle_rtp``. `now` is the arrival time (``time.time()``).
        """
        if not self._enabled:
            return
        fields = parse_fields(plain, self.abs_send_time_id, self.audio_level_id)
        if fields is None:
            return self._handle_parsed(plain, now)
        ssrc, seq, ts, marker, pt, payload, padding, ast, level = fields
        media = self._account(ssrc, seq, ts, marker, pt, payload, padding, ast, now)
        sink = self.on_fields
        if media is not None and sink is not None:
            if media[0] != ssrc:  # RTX, unwrapped: the original has no padding
                ssrc, seq, payload, padding = media[0], media[1], payload[2:], 0
            sink(ssrc, seq, ts, marker, payload, padding, level, now)
        ticker = self.ticker
        if ticker is not None:
            ticker.poll()  # the room's sender reports ride on this wake-up when due
        if self.ingress is not None:
            self.arm()

    def _account(self, ssrc: int, seq: int, ts: int, marker: int, pt: int, payload: bytes, padding: int,
                 ast: int, now: float) -> tuple[int, int] | None:
        """_account does what a publisher needs from us for one packet: statistics, REMB, NACK.

        Returns the media (SSRC, sequence number), RTX unwrapped; None to drop the packet (unknown payload
        type, RTX for an unknown stream). The REMB estimator is fed once per frame (the frame's bytes on its
        marker packet) rather than per packet: the same groups, a fraction of the Python work.
        """
        rate = self.clock_rates.get(pt)
        if rate is None:
            return None  # unknown payload type (aiortc drops it too)
        stats = self.streams.get(ssrc)
        if stats is None:
            stats = self.streams[ssrc] = RtpStreamStats(rate)
        stats.add(seq, ts, now)
        if self.remb is not None and ast >= 0:
            self._remb_bytes += len(payload) + padding
            if marker:
                self._remb_frame(int((now + NTP_OFFSET) * 1000), ast, ssrc)
        if pt in self.rtx_apt:
            media = self.rtx_to_media.get(ssrc)
            if media is None or len(payload) < 2:
                return None
            ssrc, seq = media, (payload[0] << 8) | payload[1]
        else:
            self._media_pt = pt
            if self.media_ssrc is None:
                self.media_ssrc = ssrc
        nack = self.nack
        if nack is not None and nack.add(seq) and self.rtcp_ssrc is not None:
            self.nacks_sent += 1
            self._rtcp_soon(self._send_rtcp_nack(ssrc, sorted(nack.missing)))
        return ssrc, seq

    def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        """handle_rtcp runs aiortc's receiver RTCP handling (SR: LSR for our reports, stats; BYE) synchronously.

        aiortc's ``_handle_rtcp_packet`` never suspends (1.16); a version that does is finished in a task.
        """
        run_now(RTCRtpReceiver._handle_rtcp_packet(self, packet), self._rtcp_tasks)

    def _handle_parsed(self, plain: bytes, now: float) -> None:
        try:
            packet = RtpPacket.parse(plain, self.transport._rtp_header_extensions_map)
        except ValueError:
            return
        self.handle_rtp(packet, int((now + NTP_OFFSET) * 1000))

    def _remb_frame(self, arrival_ms: int, abs_send_time: int, ssrc: int) -> None:
        """_remb_frame feeds the estimator one frame (``_remb_bytes``, then reset) and sends REMB when it says so.

        Called on a frame's last packet by ``_account`` and by the C path.
        """
        assert self.remb is not None
        estimate = self.remb.add(arrival_ms, abs_send_time, self._remb_bytes, ssrc)
        self._remb_bytes = 0
        if estimate is not None:
            self._send_remb(estimate)

    def _send_remb(self, estimate: tuple[int, list[int]]) -> None:
        if self.rtcp_ssrc is not None:
            self.remb_sent += 1
            self._rtcp_soon(self._send_rtcp(RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=self.rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(*estimate)
            )))

    async def send_pli(self, media_ssrc: int) -> None:
        """send_pli sends an RTCP Picture Loss Indication for `media_ssrc` to the publisher."""
        await self._send_rtcp_pli(media_ssrc)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """send_pli makes any aiortc receiver (ours or a stock client's) send a PLI for `media_ssrc`."""
    await receiver._send_rtcp_pli(media_ssrc)


def install_fast_rtcp_routing(dtls: RTCDtlsTransport) -> None:
    """install_fast_rtcp_routing replaces the ``route_rtcp`` of one transport's RtpRouter (instance only).

    Same routing as aiortc's (SR/BYE to receivers by SSRC; report blocks, feedback media SSRC and REMB SSRCs
    to senders) without the nested function whose ``Union`` annotations aiortc evaluates per RTCP packet.
    """
    router: Any = dtls._rtp_router
    receivers: dict[int, Any] = router.ssrc_table
    senders: dict[int, Any] = router.senders

    def route_rtcp(packet: AnyRtcpPacket) -> set[Any]:
        out: set[Any] = set()
        kind = type(packet)
        if kind is RtcpRrPacket or kind is RtcpSrPacket:
            if kind is RtcpSrPacket:
                r = receivers.get(packet.ssrc)  # type: ignore[union-attr]
                if r is not None:
                    out.add(r)
            for report in packet.reports:  # type: ignore[union-attr]
                s = senders.get(report.ssrc)
                if s is not None:
                    out.add(s)
        elif kind is RtcpRtpfbPacket or kind is RtcpPsfbPacket:
            s = senders.get(packet.media_ssrc)  # type: ignore[union-attr]
            if s is not None:
                out.add(s)
            if kind is RtcpPsfbPacket and packet.fmt == RTCP_PSFB_APP:  # type: ignore[union-attr]
                try:
                    for ssrc in unpack_remb_fci(packet.fci)[1]:  # type: ignore[union-attr]
                        s = senders.get(ssrc)
                        if s is not None:
                            out.add(s)
                except ValueError:
                    pass
        elif kind is RtcpByePacket:
            for source in packet.sources:  # type: ignore[union-attr]
                r = receivers.get(source)
                if r is not None:
                    out.add(r)
        return out

    router.route_rtcp = route_rtcp


# ------------------------------------------------------------------------------------------ sender


class ForwardingSender(RTCRtpSender):
    """ForwardingSender is a sendonly slot that never encodes: a Consumer pushes rewritten packets itself.

    Callbacks (set by the Consumer): ``on_ready(SendContext)`` once negotiated, ``on_rtcp(packet)`` for every
    RTCP packet the subscriber sends about this SSRC, ``on_keyframe()`` for PLI/FIR, ``sr_info()`` for the
    sender-report counters. aiortc's per-sender RTP and RTCP tasks idle: the transport's ``PacketWire`` sends
    one compound RTCP packet with the SRs of all its senders (``add_sender``), and this class computes the
    round-trip time from the subscriber's report blocks (LSR/DLSR) itself.
    """

    def __init__(self, trackOrKind: Any, transport: RTCDtlsTransport) -> None:
        super().__init__(trackOrKind, transport)
        self.on_ready: Callable[[SendContext], None] | None = None
        self.on_rtcp: Callable[[AnyRtcpPacket], None] | None = None
        self.on_keyframe: Callable[[], None] | None = None
        self.on_report: Callable[[int, int, int], None] | None = None  # fraction lost /256, lost, jitter
        self.on_remb: Callable[[int], None] | None = None  # the subscriber's estimate, bit/s
        self.sr_info: Callable[[], SrInfo] | None = None
        self.report_slot: Any = None  # the Consumer's sfu._fanout.Slot: its counters make the SR in C
        self.context: SendContext | None = None
        self._lsr = -1  # middle 32 bits of the NTP timestamp of our last SR (without a report_slot)
        self._lsr_time = 0.0
        self._rtt: float | None = None  # seconds, smoothed like aiortc (RTT_ALPHA)
        self.direct_rtcp = 0  # RTCP packets delivered by install_sync_rtp_receive (not aioice's queue)

    async def send(self, parameters: RTCRtpSendParameters) -> None:
        """send starts the (idle) RTP and RTCP tasks and publishes the negotiated SendContext."""
        started = self.context is not None
        await super().send(parameters)
        if started or not parameters.codecs:
            return
        codec = parameters.codecs[0]
        rtx_pt = None
        for c in parameters.codecs:
            if is_rtx(c) and c.parameters.get("apt") == codec.payloadType:
                rtx_pt = c.payloadType
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        assert codec.payloadType is not None
        self.context = SendContext(
            kind=self.kind,
            mime=codec.mimeType.lower(),
            clock_rate=codec.clockRate,
            payload_type=codec.payloadType,
            rtx_payload_type=rtx_pt,
            ssrc=self._ssrc,
            rtx_ssrc=self._rtx_ssrc,
            mid=parameters.muxId,
            mid_id=ids.get(URI_MID),
            abs_send_time_id=ids.get(URI_ABS_SEND_TIME),
            audio_level_id=ids.get(URI_AUDIO_LEVEL),
            transport=self.transport,
            cname=parameters.rtcp.cname or "",
        )
        if self.on_ready is not None:
            self.on_ready(self.context)

    @property
    def report_source(self) -> tuple[int, str] | None:
        """report_source is (SSRC, CNAME) for sender reports once negotiated."""
        ctx = self.context
        return None if ctx is None else (ctx.ssrc, ctx.cname)

    async def _run_rtp(self, codec: Any) -> None:
        await self._idle("_RTCRtpSender__rtp_started", "_RTCRtpSender__rtp_exited")

    async def _run_rtcp(self) -> None:
        await self._idle("_RTCRtpSender__rtcp_started", "_RTCRtpSender__rtcp_exited")

    async def _idle(self, started: str, exited: str) -> None:
        getattr(self, started).set()  # stop() waits for these two events
        try:
            await asyncio.Future()
        except asyncio.CancelledError:
            pass
        finally:
            getattr(self, exited).set()

    def _send_keyframe(self) -> None:
        if self.on_keyframe is not None:
            self.on_keyframe()

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        self.handle_rtcp(packet)

    def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        """handle_rtcp takes one RTCP packet routed to this sender (the Python path; ``sfu/_rtcp.c`` calls
        ``report_block`` and ``remb`` itself): report blocks, REMB, PLI/FIR; NACK and the rest to ``on_rtcp``."""
        kind = type(packet)
        if kind is RtcpRrPacket or kind is RtcpSrPacket:
            for report in packet.reports:  # type: ignore[union-attr]
                if report.ssrc == self._ssrc:
                    self.report_block(report.fraction_lost, report.packets_lost, report.jitter, report.lsr,
                                      report.dlsr)
            return
        if kind is RtcpPsfbPacket:
            fmt = packet.fmt  # type: ignore[union-attr]
            if fmt in (RTCP_PSFB_FIR, RTCP_PSFB_PLI):
                self._send_keyframe()
            elif fmt == RTCP_PSFB_APP:
                try:
                    bitrate, ssrcs = unpack_remb(packet.fci)  # type: ignore[union-attr]
                except ValueError:
                    return
                if self._ssrc in ssrcs:
                    self.remb(bitrate)
                return
        if self.on_rtcp is not None:
            self.on_rtcp(packet)

    # With a report_slot (the Consumer's C slot) the SR time, the reports and the RTT live there: sfu/_report.c
    # and sfu/_rtcp.c read and write them without Python; these properties and methods use the same fields.

    @property
    def lsr(self) -> int:
        """lsr is the middle 32 bits of the NTP time of our last SR (-1: none yet)."""
        slot = self.report_slot
        return self._lsr if slot is None else int(slot.lsr)

    @lsr.setter
    def lsr(self, value: int) -> None:
        if self.report_slot is None:
            self._lsr = value
        else:
            self.report_slot.lsr = value

    @property
    def lsr_time(self) -> float:
        """lsr_time is when our last SR was sent (``time.time()``)."""
        slot = self.report_slot
        return self._lsr_time if slot is None else float(slot.lsr_time)

    @lsr_time.setter
    def lsr_time(self, value: float) -> None:
        if self.report_slot is None:
            self._lsr_time = value
        else:
            self.report_slot.lsr_time = value

    @property
    def rtt(self) -> float | None:
        """rtt is the round-trip time in seconds from the subscriber's reports (smoothed), None before one."""
        slot = self.report_slot
        return self._rtt if slot is None else slot.rtt

    def report_block(self, fraction_lost: int, packets_lost: int, jitter: int, lsr: int, dlsr: int) -> None:
        """report_block takes the subscriber's report about this sender: the RTT (LSR/DLSR) and the loss.

        Into the report slot (as sfu/_rtcp.c does), or: the RTT here, the rest to ``on_report``.
        """
        slot = self.report_slot
        if slot is not None:
            slot.report(fraction_lost, packets_lost, jitter, lsr, dlsr, time.time())
            return
        if lsr == self._lsr and dlsr:
            rtt = time.time() - self._lsr_time - dlsr / 65536
            self._rtt = rtt if self._rtt is None else RTT_ALPHA * self._rtt + (1 - RTT_ALPHA) * rtt
        if self.on_report is not None:
            self.on_report(fraction_lost, packets_lost, jitter)

    def remb(self, bitrate: int) -> None:
        """remb takes the subscriber's receive estimate (REMB naming this sender's SSRC): the slot's, or on_remb."""
        slot = self.report_slot
        if slot is not None:
            slot.remb = bitrate
        elif self.on_remb is not None:
            self.on_remb(bitrate)


# --------------------------------------------------------------------------------------------- wire


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
            sock = getattr(udp, "_sock", None)  # asyncio's selector transport
            if sock is None:  # uvloop's: it shows a descriptor only; send on a duplicate we own and close
                info = udp.get_extra_info("socket")
                try:
                    sock = socket.socket(fileno=os.dup(info.fileno()))
                except (AttributeError, OSError):
                    return False  # no socket, or already closed
                sock.setblocking(False)  # the descriptor is shared with the loop: it is non-blocking already
                self._dup = sock
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

    def send_rtp(self, head: bytes | bytearray, payload: bytes, padding: int = 0) -> bool:
        """send_rtp protects and sends header + payload (+ `padding` bytes of RTP padding) as one packet.

        Returns False when the transport is not connected. The caller sets the P bit in `head`.
        """
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
            if n + padding > _MAX_PLAIN:
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
            demux: MediaDemux | None = getattr(self._dtls, MEDIA_DEMUX, None)
            if demux is not None:
                demux.flush_counts()  # what sfu/_rtcp.c received (the subscriber's reports)
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
        """close stops the sender reports, unbinds the C fan-out slots and closes our socket duplicate."""
        self._unbind_slots()
        self._release_dup()
        self._ticker.remove(self._report)
        self._reporting = False
        if self._own_ticker:
            self._ticker.close()


_MAX_PLAIN = 1500 - 16 - 128  # pylibsrtp's buffer minus SRTP_MAX_TRAILER_LEN

# Linux <netinet/in.h> values (Python's socket module does not name them)
IP_MTU_DISCOVER, IP_PMTUDISC_PROBE = 10, 3


EARLY_MEDIA_PACKETS = 512  # media held until our SRTP keys exist (a keyframe burst); more take aiortc's queue
RECEIVE_BUFFER = 4 << 20  # bytes asked for each media socket (Linux caps it at net.core.rmem_max, and doubles it)


def receive_buffer(transport: Any, size: int = RECEIVE_BUFFER) -> int:
    """receive_buffer raises SO_RCVBUF of a UDP transport's socket; returns the size the kernel granted (0: none).

    A loopback or LAN keyframe burst arrives at once, and the default buffer (212 KB, ~150 media packets)
    drops what a busy event loop has not read yet; those packets are usually gone from the publisher's
    history too by the time a NACK reaches it (aiortc keeps 128).
    """
    info = transport.get_extra_info("socket") if transport is not None else None
    if info is None:
        return 0
    try:
        with socket.socket(fileno=os.dup(info.fileno())) as sock:  # uvloop shows a descriptor only
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    except (AttributeError, OSError):
        return 0


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


# ------------------------------------------------------------------------------------ peer conn


class SfuPeerConnection(RTCPeerConnection):
    """SfuPeerConnection is an RTCPeerConnection with a configurable ICE address list and forwarding slots.

    ``ice_addresses``: host addresses to gather on (empty = aioice's default, every interface but loopback).
    ``forwarding``: new transceivers get a ForwardingSender and a ForwardingReceiver.
    ``sync_receive`` (with ``forwarding``): media for those receivers skips aioice's queue
    (``install_sync_rtp_receive``). ``ticker``: polled by its receivers after every media packet; with it
    (and ``sync_receive``) ICE consent runs as its job (``Consent``, one check per ``consent_interval``).
    ``compiled``: with the C extension built, media and routine RTCP take its receive path (``MediaDemux``).
    """

    def __init__(
        self,
        configuration: RTCConfiguration | None = None,
        *,
        ice_addresses: Sequence[str] = (),
        forwarding: bool = False,
        udp_ports: tuple[int, int] | None = None,
        sync_receive: bool = True,
        ticker: Ticker | None = None,
        compiled: bool = True,
        consent_interval: float = CONSENT_INTERVAL,
    ) -> None:
        self.ticker = ticker
        self.consents: list[Consent] = []
        self._sfu_consent_interval = consent_interval
        self._sfu_compiled = compiled
        self._sfu_sync_receive = sync_receive and forwarding
        self._sfu_ice_addresses = list(ice_addresses)
        self._sfu_udp_ports = udp_ports
        self._sfu_forwarding = forwarding
        super().__init__(configuration)

    def _RTCPeerConnection__createDtlsTransport(self) -> RTCDtlsTransport:  # noqa: N802 - aiortc's name
        base: Any = RTCPeerConnection
        dtls: RTCDtlsTransport = base._RTCPeerConnection__createDtlsTransport(self)
        if self._sfu_ice_addresses or self._sfu_udp_ports:
            use_gathering_addresses(ice_connection(dtls), self._sfu_ice_addresses, self._sfu_udp_ports)
        install_fast_rtcp_routing(dtls)
        if self._sfu_sync_receive:
            consent = None
            if self.ticker is not None:
                conn: Any = ice_connection(dtls)
                consent = Consent(conn, self.ticker, self._sfu_consent_interval)
                conn.query_consent = consent.start
                self.consents.append(consent)
            install_sync_rtp_receive(dtls, compiled=self._sfu_compiled, consent=consent)
        return dtls

    def _RTCPeerConnection__createTransceiver(  # noqa: N802 - aiortc's name
        self, direction: str, kind: str, sender_track: Any = None
    ) -> Any:
        base: Any = RTCPeerConnection
        transceiver: Any = base._RTCPeerConnection__createTransceiver(self, direction, kind, sender_track)
        if self._sfu_forwarding:
            old_sender = transceiver.sender
            dtls = old_sender.transport
            sender = ForwardingSender(sender_track or kind, dtls)
            sender._ssrc = old_sender._ssrc
            sender._rtx_ssrc = old_sender._rtx_ssrc
            sender._stream_id = old_sender._stream_id
            receiver = ForwardingReceiver(kind, dtls)
            if self._sfu_compiled and receiver.remb is not None and CompiledEstimator is not None:
                receiver.remb = CompiledEstimator()  # aiortc's estimator in C, the same results (sfu/_remb.c)
            receiver.ticker = self.ticker
            receiver._set_rtcp_ssrc(sender._ssrc)
            transceiver._RTCRtpTransceiver__sender = sender
            transceiver._RTCRtpTransceiver__receiver = receiver
        return transceiver
