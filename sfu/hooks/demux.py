"""demux: which of a DTLS transport's receivers and senders gets each packet, in C and in Python.

* ``MediaDemux`` - the C demultiplexers (``sfu._fanout.Demux``, ``sfu/_demux.c``) of one transport's ICE
  sockets, with the armed ``Ingress`` of each ForwardingReceiver and the transport's ``RtcpRoute``.
* ``install_fast_rtcp_routing`` - aiortc's RTCP routing without its per-packet ``typing`` overhead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    unpack_remb_fci,
)
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _lib

from sfu.hooks.guard import CompiledDemux, CompiledRtcpRoute
from sfu.hooks.sender import ForwardingSender

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

    def set_rtcp(self, session: Any, fallback: Callable[[bytes], None], receiver_type: type | None = None) -> None:
        """set_rtcp hands this transport's routine SRTCP (RR, SDES, REMB; and SR when `receiver_type` is given: its
        receivers of that class get ``sender_report``) to C (``sfu/_rtcp.c``), once.

        `session` is the DTLS transport's receive SRTP session; `fallback(plain)` gets every other compound.
        """
        if self.rtcp is not None and self.rtcp_session is session:
            return
        self.rtcp = CompiledRtcpRoute(
            session, int(_ffi.cast("uintptr_t", session._srtp[0])),
            int(_ffi.cast("uintptr_t", _ffi.addressof(_lib, "srtp_unprotect_rtcp"))),
            self._dtls._rtp_router.senders, ForwardingSender, fallback,
            *((self._dtls._rtp_router.ssrc_table, receiver_type) if receiver_type is not None else ()),
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


def flush_counts(dtls: RTCDtlsTransport) -> None:
    """flush_counts adds what the C path of `dtls` received (media, and the SRTCP sfu/_rtcp.c took) to its
    receive counters; nothing without a MediaDemux. Each periodic report job calls it (``ReceiverFeedback`` for a
    publisher's transport, ``Wire`` for a subscriber's)."""
    demux: MediaDemux | None = getattr(dtls, MEDIA_DEMUX, None)
    if demux is not None:
        demux.flush_counts()
