"""sync_receive: media and RTCP from the ICE socket to our receivers and senders without aioice's queue.

``install_sync_rtp_receive`` hooks one forwarding peer connection's aioice Connection and its sockets'
protocols (instance attributes only): SRTP for a ForwardingReceiver is unprotected and handled in the datagram
callback, SRTCP is routed to its recipients there too, and with the C extension a ``MediaDemux`` in front keeps
armed streams and routine RTCP in C. On a transport receiving simulcast (``sfu.hooks.simulcast``), a packet of
an SSRC nobody knows yet is unprotected and routed by its mid and rid there as well. STUN, DTLS and everything
else keep aioice's and aiortc's path. Each socket is then read by a transport of ours (``sfu.hooks.reader``:
``recvmmsg`` straight into the C Demux), no longer by the event loop's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aioice import ice as aioice_ice
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import RtcpPacket, RtpPacket
from pylibsrtp import Error as SrtpError
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _lib

from sfu.hooks.demux import MEDIA_DEMUX, MediaDemux
from sfu.hooks.guard import CompiledDemux
from sfu.hooks.ice import Consent, ice_connection, receive_buffer
from sfu.hooks.reader import take_over
from sfu.hooks.receiver import ForwardingReceiver
from sfu.hooks.sender import ForwardingSender
from sfu.hooks.simulcast import RID_ROUTING
from sfu.rtp import NTP_OFFSET
from sfu.tasks import spawn

EARLY_MEDIA_PACKETS = 512  # media held until our SRTP keys exist (a keyframe burst); more take aiortc's queue


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
    (``ForwardingReceiver.arm``), and after the first SRTCP packet routine RTCP (receiver reports, REMB, a
    publisher's sender reports) is handled in C too (``MediaDemux.set_rtcp``, ``sfu/_rtcp.c``). With `consent`,
    ICE consent checks on the selected pair are answered and sent by it (``Consent``) instead of aioice's generic
    STUN code.
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
                demux.flush_counts()  # (also each receiver report we send: ReceiverFeedback._report)
            if session is not None and conn._nominated:
                transport._RTCDtlsTransport__rx_bytes += len(data)
                transport._RTCDtlsTransport__rx_packets += 1
                try:
                    plain = session.unprotect_rtcp(data)
                except SrtpError:
                    return
                rtcp_received(plain)
                if demux is not None:
                    demux.set_rtcp(session, rtcp_received, ForwardingReceiver)  # from now on, routine RTCP stays in C
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
            if receiver is None and session is not None and conn._nominated and getattr(transport, RID_ROUTING, False):
                # an SSRC the SDP did not give (a simulcast layer): its mid and rid header extensions route it
                try:
                    packet = RtpPacket.parse(session.unprotect(data), transport._rtp_header_extensions_map)
                except (SrtpError, ValueError):
                    return
                receiver = router.route_rtp(packet)
                if isinstance(receiver, ForwardingReceiver):
                    transport._RTCDtlsTransport__rx_bytes += len(data)
                    transport._RTCDtlsTransport__rx_packets += 1
                    receiver.direct_packets += 1
                    receiver.handle_rtp(packet, int((time.time() + NTP_OFFSET) * 1000))
                return
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
                c_demux = _skip_stun_parse_for_media(protocol, data_received, demux, consent)
                receive_buffer(protocol.transport)
                take_over(protocol, c_demux, compiled)

    conn.gather_candidates = gather_candidates


def _skip_stun_parse_for_media(protocol: Any, data_received: Callable[[bytes, int], None],
                               demux: MediaDemux | None = None, consent: Consent | None = None) -> Any:
    """_skip_stun_parse_for_media: datagrams starting with 128-191 (RTP/RTCP, never STUN) skip the STUN parse.

    With a `demux`, its C callback comes first and hands what it does not keep to this one (the C ``Demux`` is
    returned, else None). With `consent`, consent checks and their answers on the selected pair take its path
    (``Consent.received``).
    """
    stun_received = protocol.datagram_received
    component = protocol.local_candidate.component

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and 127 < data[0] < 192:
            data_received(data, component)
        elif consent is None or not consent.received(data, addr, protocol):
            stun_received(data, addr)

    if demux is None:
        protocol.datagram_received = datagram_received
        return None
    protocol.datagram_received = demux.wrap(datagram_received)
    return demux.demuxes[-1]
