"""aiortc_hooks: the only module of Taphuan that touches aiortc / aioice internals.

aiortc 1.16.0 and aioice 0.13.0 are pinned exactly; ``tests/sfu/test_aiortc_hooks.py`` fails when one of
the private names used here disappears. Everything below is a hook:

* ``SfuPeerConnection`` - an ``RTCPeerConnection`` that
  - gathers ICE candidates on a configured address list (aioice skips 127.0.0.1 by default),
  - in forwarding mode swaps the stock sender/receiver of each new transceiver for
    ``ForwardingSender`` / ``ForwardingReceiver`` (mangled ``__createTransceiver`` override).
* ``ForwardingReceiver`` - sees every decrypted, parsed RTP packet, stops aiortc's decoder thread right after
  ``receive()``, routes RTX by SSRC (aiortc routes unknown SSRCs by payload type alone, which fails as soon
  as two video receivers share one BUNDLE transport), and can send PLI upstream.
* ``ForwardingSender`` - idle ``_run_rtp`` (no track, no encoder), keyframe requests and every subscriber
  RTCP packet (RR, NACK, PLI/FIR, REMB) are handed to a callback; keeps the sender-report counters truthful.
* ``PacketWire`` - the fast send path of one DTLS transport: SRTP-protect with the transport's libsrtp
  session and ``sendto`` on the selected ICE pair's datagram transport, synchronously; falls back to
  aiortc's awaited ``_send_rtp`` when the fast path is not available.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aioice.ice import Connection
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters, RTCRtpSendParameters
from aiortc.rtp import RTCP_RTPFB_NACK, AnyRtcpPacket, RtcpRtpfbPacket, RtpPacket, unwrap_rtx

logger = logging.getLogger(__name__)

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

# Private names used below, checked by tests/sfu/test_aiortc_hooks.py against the pinned versions.
PRIVATE_NAMES: dict[type, tuple[str, ...]] = {
    RTCPeerConnection: ("_RTCPeerConnection__createDtlsTransport", "_RTCPeerConnection__createTransceiver"),
    RTCRtpReceiver: (
        "_RTCRtpReceiver__stop_decoder", "_handle_rtp_packet", "_send_rtcp_pli", "_set_rtcp_ssrc",
    ),
    RTCRtpSender: ("_run_rtp", "_send_keyframe", "_handle_rtcp_packet", "_run_rtcp"),
    RTCDtlsTransport: ("_send_rtp",),
    Connection: ("get_component_candidates", "gather_candidates"),
}
PRIVATE_INSTANCE_NAMES: dict[str, tuple[str, ...]] = {
    "RTCRtpReceiver": ("_RTCRtpReceiver__decoder_thread", "_RTCRtpReceiver__decoder_queue"),
    "RTCRtpSender": (
        "_RTCRtpSender__rtp_started",
        "_RTCRtpSender__rtp_exited",
        "_RTCRtpSender__ntp_timestamp",
        "_RTCRtpSender__rtp_timestamp",
        "_RTCRtpSender__octet_count",
        "_RTCRtpSender__packet_count",
        "_RTCRtpSender__rtt",
        "_rtx_ssrc",
        "_ssrc",
    ),
    "RTCRtpTransceiver": ("_RTCRtpTransceiver__sender", "_RTCRtpTransceiver__receiver"),
    "RTCDtlsTransport": (
        "_state",
        "_tx_srtp",
        "_rtp_router",
        "_RTCDtlsTransport__tx_bytes",
        "_RTCDtlsTransport__tx_packets",
    ),
    "RTCIceTransport": ("_connection",),
    "Connection": ("_nominated", "_components", "_local_candidates", "_local_candidates_start"),
}


# --------------------------------------------------------------------------------------------- ICE


def use_gathering_addresses(connection: Connection, addresses: Sequence[str]) -> None:
    """use_gathering_addresses makes one aioice Connection gather host candidates on `addresses` only.

    aioice's ``gather_candidates`` asks ``get_host_addresses()``, which never returns 127.0.0.1; this replaces
    the bound method on this instance only, so nothing global changes.
    """
    conn: Any = connection
    chosen = list(addresses)

    async def gather_candidates() -> None:
        if conn._local_candidates_start:
            return
        conn._local_candidates_start = True
        results = await asyncio.gather(
            *(conn.get_component_candidates(component=c, addresses=chosen) for c in sorted(conn._components))
        )
        for candidates in results:
            conn._local_candidates += candidates
        conn._local_candidates_end = True

    conn.gather_candidates = gather_candidates


def ice_connection(dtls: RTCDtlsTransport) -> Connection:
    """ice_connection returns the aioice Connection under a DTLS transport."""
    ice: Any = dtls.transport
    conn: Connection = ice._connection
    return conn


# ---------------------------------------------------------------------------------------- receiver


class ForwardingReceiver(RTCRtpReceiver):
    """ForwardingReceiver hands every decrypted RTP packet to ``on_rtp`` and never decodes.

    RTX packets are unwrapped before ``on_rtp`` sees them (so a recovered packet is forwarded too). aiortc's
    own handling still runs afterwards: receiver reports, NACKs, REMB and PLI on jitter-buffer trouble keep
    flowing to the publisher.
    """

    def __init__(self, kind: str, transport: RTCDtlsTransport) -> None:
        super().__init__(kind, transport)
        self.on_rtp: Callable[[RtpPacket], None] | None = None
        self.rtx_to_media: dict[int, int] = {}
        self.rtx_apt: dict[int, int] = {}
        self.codecs: list[Any] = []
        self.media_ssrc: int | None = None

    async def receive(self, parameters: RTCRtpReceiveParameters) -> None:
        """receive starts aiortc's receiver, then stops its decoder thread and routes RTX by SSRC."""
        await super().receive(parameters)
        self.stop_decoder()
        self.codecs = list(parameters.codecs)
        for codec in parameters.codecs:
            apt = codec.parameters.get("apt")
            if is_rtx(codec) and isinstance(apt, int) and codec.payloadType is not None:
                self.rtx_apt[codec.payloadType] = apt
        for encoding in parameters.encodings:
            if self.media_ssrc is None and encoding.ssrc:
                self.media_ssrc = encoding.ssrc
            if encoding.rtx is not None:
                self.rtx_to_media[encoding.rtx.ssrc] = encoding.ssrc
        self.route_rtx_by_ssrc()

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
        sink = self.on_rtp
        if sink is not None and self._enabled:
            apt = self.rtx_apt.get(packet.payload_type)
            if apt is None:
                if self.media_ssrc is None:
                    self.media_ssrc = packet.ssrc
                sink(packet)
            else:
                media = self.rtx_to_media.get(packet.ssrc)
                if media is not None and len(packet.payload) >= 2:
                    sink(unwrap_rtx(packet, payload_type=apt, ssrc=media))
        await super()._handle_rtp_packet(packet, arrival_time_ms)

    async def send_pli(self, media_ssrc: int) -> None:
        """send_pli sends an RTCP Picture Loss Indication for `media_ssrc` to the publisher."""
        await self._send_rtcp_pli(media_ssrc)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """send_pli makes any aiortc receiver (ours or a stock client's) send a PLI for `media_ssrc`."""
    await receiver._send_rtcp_pli(media_ssrc)


# ------------------------------------------------------------------------------------------ sender


@dataclass(frozen=True)
class SendContext:
    """SendContext is what a forwarding slot needs once its sender is negotiated and started."""

    kind: str
    mime: str
    clock_rate: int
    payload_type: int
    rtx_payload_type: int | None
    ssrc: int
    rtx_ssrc: int
    mid: str | None
    mid_id: int | None
    abs_send_time_id: int | None
    audio_level_id: int | None
    transport: RTCDtlsTransport


class ForwardingSender(RTCRtpSender):
    """ForwardingSender is a sendonly slot that never encodes: a Consumer pushes rewritten packets itself.

    Callbacks (set by the Consumer): ``on_ready(SendContext)`` once negotiated, ``on_rtcp(packet)`` for every
    RTCP packet the subscriber sends about this SSRC, ``on_keyframe()`` for PLI/FIR.
    """

    def __init__(self, trackOrKind: Any, transport: RTCDtlsTransport) -> None:
        super().__init__(trackOrKind, transport)
        self.on_ready: Callable[[SendContext], None] | None = None
        self.on_rtcp: Callable[[AnyRtcpPacket], None] | None = None
        self.on_keyframe: Callable[[], None] | None = None
        self.context: SendContext | None = None

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
        )
        if self.on_ready is not None:
            self.on_ready(self.context)

    async def _run_rtp(self, codec: Any) -> None:
        me: Any = self
        me._RTCRtpSender__rtp_started.set()
        try:
            await asyncio.Future()
        except asyncio.CancelledError:
            pass
        finally:
            me._RTCRtpSender__rtp_exited.set()

    def _send_keyframe(self) -> None:
        if self.on_keyframe is not None:
            self.on_keyframe()

    async def _handle_rtcp_packet(self, packet: AnyRtcpPacket) -> None:
        # aiortc: RR -> RTT estimate and getStats(); PLI/FIR -> _send_keyframe(); NACK is ours (history).
        if not (isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK):
            await super()._handle_rtcp_packet(packet)
        if self.on_rtcp is not None:
            self.on_rtcp(packet)

    def note_sent(self, ntp_timestamp: int, rtp_timestamp: int, payload_bytes: int) -> None:
        """note_sent updates the sender-report counters after one forwarded packet."""
        me: Any = self
        me._RTCRtpSender__ntp_timestamp = ntp_timestamp
        me._RTCRtpSender__rtp_timestamp = rtp_timestamp
        me._RTCRtpSender__octet_count += payload_bytes
        me._RTCRtpSender__packet_count += 1

    @property
    def rtt(self) -> float | None:
        """rtt is aiortc's smoothed round-trip time from the subscriber's RR (LSR/DLSR), in seconds."""
        me: Any = self
        value: float | None = me._RTCRtpSender__rtt
        return value

    @property
    def sr_counters(self) -> tuple[int, int, int, int]:
        """sr_counters is (ntp timestamp, rtp timestamp, packets, octets) as the next SR will carry them."""
        me: Any = self
        return (
            me._RTCRtpSender__ntp_timestamp,
            me._RTCRtpSender__rtp_timestamp,
            me._RTCRtpSender__packet_count,
            me._RTCRtpSender__octet_count,
        )


# --------------------------------------------------------------------------------------------- wire


class PacketWire:
    """PacketWire sends plain RTP/RTCP bytes over one DTLS transport.

    Fast path: ``libsrtp protect`` + ``DatagramTransport.sendto`` on the nominated ICE pair, no await.
    Slow path (fast disabled, or no nominated pair yet): a task awaiting aiortc's ``_send_rtp``.
    """

    def __init__(self, transport: RTCDtlsTransport, fast: bool = True) -> None:
        self._dtls: Any = transport
        self._ice: Any = ice_connection(transport)
        self._fast = fast
        self._pair: Any = None
        self._udp: Any = None
        self._addr: tuple[str, int] | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self.fast_sent = 0
        self.slow_sent = 0

    @property
    def connected(self) -> bool:
        """connected is true while the DTLS transport can carry SRTP."""
        return bool(self._dtls._state is DtlsState.CONNECTED)

    def send(self, plain: bytes) -> bool:
        """send protects and sends one plain RTP packet; False when the transport is not connected."""
        dtls = self._dtls
        if dtls._state is not DtlsState.CONNECTED:
            return False
        if self._fast:
            pair = self._ice._nominated.get(1)
            if pair is not None:
                if pair is not self._pair:
                    self._pair = pair
                    self._udp = pair.protocol.transport
                    self._addr = pair.remote_addr
                data = dtls._tx_srtp.protect(plain)
                self._udp.sendto(data, self._addr)
                dtls._RTCDtlsTransport__tx_bytes += len(data)
                dtls._RTCDtlsTransport__tx_packets += 1
                self.fast_sent += 1
                return True
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


# ------------------------------------------------------------------------------------ peer conn


class SfuPeerConnection(RTCPeerConnection):
    """SfuPeerConnection is an RTCPeerConnection with a configurable ICE address list and forwarding slots.

    ``ice_addresses``: host addresses to gather on (empty = aioice's default, every interface but loopback).
    ``forwarding``: new transceivers get a ForwardingSender and a ForwardingReceiver.
    """

    def __init__(
        self,
        configuration: RTCConfiguration | None = None,
        *,
        ice_addresses: Sequence[str] = (),
        forwarding: bool = False,
    ) -> None:
        self._sfu_ice_addresses = list(ice_addresses)
        self._sfu_forwarding = forwarding
        super().__init__(configuration)

    def _RTCPeerConnection__createDtlsTransport(self) -> RTCDtlsTransport:  # noqa: N802 - aiortc's name
        base: Any = RTCPeerConnection
        dtls: RTCDtlsTransport = base._RTCPeerConnection__createDtlsTransport(self)
        if self._sfu_ice_addresses:
            use_gathering_addresses(ice_connection(dtls), self._sfu_ice_addresses)
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
            receiver._set_rtcp_ssrc(sender._ssrc)
            transceiver._RTCRtpTransceiver__sender = sender
            transceiver._RTCRtpTransceiver__receiver = receiver
        return transceiver
