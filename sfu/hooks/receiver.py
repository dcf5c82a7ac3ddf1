"""receiver: ``ForwardingReceiver``, aiortc's RTCRtpReceiver with the receive path of a forwarding unit.

It sees every decrypted, parsed RTP packet and replaces aiortc's receive path (no jitter buffer, depayloading
or decoder): RTCP receiver reports from ``RtpStreamStats``, NACKs from ``NackTracker``, REMB from aiortc's
estimator (or its C port, ``sfu/_remb.c``), PLI on request; routes RTX by SSRC (aiortc routes unknown SSRCs by
payload type alone, which fails as soon as two video receivers share one BUNDLE transport). Armed
(``ForwardingReceiver.arm``), its steady-state packets take the C path (``sfu/_ingress.c``) on the same objects.

A simulcast m-line's receiver (``add_layers``) has one *layer receiver* per rid, a ForwardingReceiver of its own
that receives that layer's SSRC and RTX SSRC (bound by ``route_layer`` from the packets' rid and repaired-rid
header extensions: simulcast SSRCs are not in the SDP) with its own NACK tracker, C ingress and Producer. The
layers share the m-line receiver's statistics table (so aiortc's receiver-report loop, which runs on the m-line
receiver, reports every layer SSRC), its sender-report times (LSR/DLSR), its REMB estimator (one estimate over
all layers) and its RTCP SSRC.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.codecs import is_rtx
from aiortc.rate import MIN_FRAME_PERIOD_HISTORY_LENGTH, RemoteBitrateEstimator
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unwrap_rtx,
)
from pylibsrtp._binding import ffi as _ffi

from sfu.cells import Cell, Cells
from sfu.hooks.demux import MEDIA_DEMUX, MediaDemux
from sfu.hooks.feedback import FEEDBACK, ReceiverFeedback
from sfu.hooks.guard import CompiledIngress, unprotect_address
from sfu.rtp import NO_AUDIO_LEVEL, NTP_OFFSET, URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, FieldsSink, parse_fields
from sfu.stats import NackTracker, RtpStreamStats, SlidingMin, WindowRate
from sfu.tasks import Ticker, run_now
from sfu.uplink import Uplink

# codec numbers of sfu/_ingress.c's keyframe test (its CODEC_*): not video, VP8, H.264, another video codec
INGRESS_AUDIO, INGRESS_VP8, INGRESS_H264, INGRESS_OTHER_VIDEO = 0, 1, 2, 3
logger = logging.getLogger(__name__)

INGRESS_CODECS = {"video/vp8": INGRESS_VP8, "video/h264": INGRESS_H264}


class ForwardingReceiver(RTCRtpReceiver, Cells):
    """ForwardingReceiver hands every decrypted RTP packet to ``on_rtp``; it never decodes or buffers.

    It replaces aiortc's receive path (jitter buffer, depayloading, decoder queue) with what a publisher
    still needs from us: RTCP receiver reports (``RtpStreamStats`` in aiortc's stream table, sent by aiortc's
    RR loop), NACKs for gaps in video, REMB from aiortc's bitrate estimator when abs-send-time is negotiated,
    and PLI when the SFU asks (``send_pli``). RTX packets are counted under their own SSRC and unwrapped
    before ``on_rtp`` sees them, so a recovered packet is forwarded too; a copy of a packet already received
    (Chromium's RTX padding, a network duplicate) feeds the statistics and the REMB estimator but is not forwarded:
    subscribers' links would carry it twice and the layer would look dearer than its media.
    """

    # what the C receive path (sfu/_ingress.c) reads and writes per packet: counters in cells (sfu.cells), objects
    # at fixed offsets (aiortc's RTCRtpReceiver keeps the rest in __dict__)
    __slots__ = ("on_fields", "ticker")
    _remb_bytes: Cell[int] = Cell(0)  # bytes of the current frame, fed to the estimator on its last packet
    direct_packets: Cell[int] = Cell(1)  # delivered by install_sync_rtp_receive (not through aioice's queue)

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
        self.uplink: Uplink | None = None  # what the REMBs say (SfuPeerConnection: one per connection)
        self.nacks_sent = 0
        self.duplicates = 0  # video packets already received (RTX padding, repeats): counted, not forwarded
        self.remb_sent = 0
        self.remb_throttled = 0  # estimates not sent: the last REMB is recent and not higher (``Uplink.due``)
        self.direct_packets = 0  # delivered by install_sync_rtp_receive (not through aioice's queue)
        self.direct_rtcp = 0  # RTCP packets delivered the same way
        self.ticker: Ticker | None = None  # polled after each packet (SfuPeerConnection's `ticker`)
        self.ingress: Any = CompiledIngress() if CompiledIngress is not None else None  # the C receive path
        self._armed_for: Any = None  # the Producer the ingress was armed for
        self._media_pt: int | None = None  # payload type of the last media (not RTX) packet
        self._rtcp_tasks: set[asyncio.Future[None]] = set()
        self.rid: str | None = None  # a layer receiver's RTP stream id (``add_layers``)
        self.layers: tuple[ForwardingReceiver, ...] = ()  # a simulcast m-line's layer receivers, lowest first
        self._by_rid: dict[str, ForwardingReceiver] = {}
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
        for layer in self.layers:
            layer.codecs = self.codecs
            layer.abs_send_time_id = self.abs_send_time_id
            layer.audio_level_id = self.audio_level_id

    def setTransport(self, transport: RTCDtlsTransport) -> None:  # noqa: N802 - aiortc's name
        """setTransport moves this receiver and its layers to `transport` (aiortc's BUNDLE does it)."""
        super().setTransport(transport)
        for layer in self.layers:
            layer.setTransport(transport)

    def add_layers(self, rids: Sequence[str]) -> tuple[ForwardingReceiver, ...]:
        """add_layers makes this the receiver of a simulcast video m-line: one layer receiver per rid.

        `rids` are in the order the offer's ``a=simulcast`` lists them (the browser's ``sendEncodings`` order,
        lowest spatial layer first). Idempotent for the same rids (a renegotiation). The layers share this
        receiver's statistics, sender-report times, REMB estimator, codecs and RTCP SSRC (see the module doc);
        ``receive`` hands them the negotiated codecs and extension ids.
        """
        if tuple(rids) == tuple(self._by_rid) or not rids:
            return self.layers
        me: Any = self
        layers = []
        for rid in rids:
            layer = ForwardingReceiver("video", self.transport)
            them: Any = layer
            layer.rid = rid
            layer.streams = self.streams
            them._RTCRtpReceiver__remote_streams = self.streams
            them._RTCRtpReceiver__lsr = me._RTCRtpReceiver__lsr
            them._RTCRtpReceiver__lsr_time = me._RTCRtpReceiver__lsr_time
            layer.clock_rates = self.clock_rates
            layer.rtx_apt = self.rtx_apt
            layer.codecs = self.codecs
            layer.remb = self.remb
            layer.uplink = self.uplink
            layer.ticker = self.ticker
            if self.rtcp_ssrc is not None:
                layer._set_rtcp_ssrc(self.rtcp_ssrc)
            layers.append(layer)
        self.layers = tuple(layers)
        self._by_rid = {layer.rid: layer for layer in layers if layer.rid is not None}
        return self.layers

    def route_layer(self, ssrc: int, pt: int, rid: str | None, repaired_rid: str | None
                    ) -> ForwardingReceiver | None:
        """route_layer binds a new SSRC of this simulcast m-line to the layer its rid names; None: drop it.

        Media (`pt` not RTX) is bound by its rid: it becomes the layer's media SSRC (a new one replaces the old:
        the publisher restarted the layer). RTX is bound by its repaired rid once that layer's media SSRC is
        known (until then the RTX packet is dropped; the browser repeats the extension until we report on the
        SSRC). The SSRC is registered with the transport's router, so its next packets go straight to the
        layer (and, armed, to its C path).
        """
        router: Any = self.transport._rtp_router
        if pt in self.rtx_apt:
            layer = self._by_rid.get(repaired_rid or rid or "")
            media = layer.media_ssrc if layer is not None else None
            if layer is None or media is None:
                return None
            layer.rtx_to_media[ssrc] = media
        else:
            layer = self._by_rid.get(rid or "")
            if layer is None:
                return None
            old = layer.media_ssrc
            if old is not None and old != ssrc:
                layer.disarm()
                for gone in (old, *layer.rtx_to_media):
                    if router.ssrc_table.get(gone) is layer:
                        del router.ssrc_table[gone]
                layer.rtx_to_media.clear()
                layer.nack = NackTracker()
            layer.media_ssrc = ssrc
        router.ssrc_table[ssrc] = layer
        return layer

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
        """stop disarms the C path (its layers' too, and unroutes their SSRCs), then stops aiortc's receiver."""
        self.disarm()
        router: Any = self.transport._rtp_router
        for layer in self.layers:
            layer.disarm()
            for ssrc in [s for s, r in router.ssrc_table.items() if r is layer]:
                del router.ssrc_table[ssrc]
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

    async def _run_rtcp(self) -> None:
        """_run_rtcp: aiortc's receiver-report loop, or this receiver's place in its transport's ReceiverFeedback.

        With a ``ReceiverFeedback`` on the transport (``sfu.hooks.feedback``: one Ticker job per transport, the
        RRs built and sent in C) the task only waits to be cancelled by ``stop``, as aiortc's loop would be.
        """
        feedback: ReceiverFeedback | None = getattr(self.transport, FEEDBACK, None)
        if feedback is None:
            await super()._run_rtcp()
            return
        me: Any = self
        me._RTCRtpReceiver__rtcp_started.set()
        feedback.add(self)
        try:
            await asyncio.get_running_loop().create_future()  # until stop() cancels it
        except asyncio.CancelledError:
            pass
        finally:
            for f in (feedback, getattr(self.transport, FEEDBACK, None)):
                if f is not None:
                    f.remove(self)
            me._RTCRtpReceiver__rtcp_exited.set()

    def _rtcp_soon(self, coro: Any) -> None:
        """_rtcp_soon sends one of our RTCP packets (a NACK, a REMB) now, from the receive callback.

        aiortc's send path (``_send_rtcp``: serialize, ``protect_rtcp``, the ICE socket's ``sendto``) never
        suspends on a connected transport, so it runs to its end here (``run_now``) instead of in a task per
        packet (a task, a loop callback and a wake-up each); one that suspends is finished in a task. An error
        is logged as a task's would be, and the packet that led to it is still forwarded.
        """
        try:
            run_now(coro, self._rtcp_tasks)
        except Exception:  # noqa: BLE001 - as asyncio logs a failed task's exception, never the receive path's
            logger.exception("sending RTCP to the publisher failed")

    def handle_rtp(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """handle_rtp handles one parsed packet synchronously (REMB and NACK sent at once, ``_rtcp_soon``)."""
        if not self._enabled:
            return
        ext = packet.extensions
        if self.layers:  # a simulcast m-line: to the layer the rid names (routed here by payload type)
            layer = self.route_layer(packet.ssrc, packet.payload_type, ext.rtp_stream_id, ext.repaired_rtp_stream_id)
            if layer is not None:
                layer.handle_rtp(packet, arrival_time_ms)
            return
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
        type, RTX for an unknown stream, a copy of a packet already received: ``NackTracker.wanted``). The REMB
        estimator is fed once per frame (the frame's bytes on its marker packet) rather than per packet: the
        same groups, a fraction of the Python work.
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
        nack = self.nack
        if pt in self.rtx_apt:
            media = self.rtx_to_media.get(ssrc)
            if media is None or len(payload) < 2:
                return None
            ssrc, seq = media, (payload[0] << 8) | payload[1]
            if nack is not None and not nack.wanted(seq, True):
                self.duplicates += 1  # padding or a second answer: counted above, never forwarded
                return None
        else:
            self._media_pt = pt
            if self.media_ssrc is None:
                self.media_ssrc = ssrc
            if nack is not None and not nack.wanted(seq, False):
                self.duplicates += 1
                return None
        if nack is not None and nack.add(seq) and self.rtcp_ssrc is not None:
            self.nacks_sent += 1
            self._rtcp_soon(self._send_rtcp_nack(ssrc, sorted(nack.missing)))
        return ssrc, seq

    def handle_rtcp(self, packet: AnyRtcpPacket) -> None:
        """handle_rtcp takes an SR (``sender_report``) and runs aiortc's receiver RTCP handling for anything else
        (a BYE stops its decoder) synchronously.

        aiortc's ``_handle_rtcp_packet`` never suspends (1.16); a version that does is finished in a task.
        """
        if isinstance(packet, RtcpSrPacket):
            self.sender_report(packet.ssrc, (packet.sender_info.ntp_timestamp >> 16) & 0xFFFFFFFF)
            return
        run_now(RTCRtpReceiver._handle_rtcp_packet(self, packet), self._rtcp_tasks)

    def sender_report(self, ssrc: int, lsr: int) -> None:
        """sender_report keeps what our receiver reports need of the publisher's SR for `ssrc`: `lsr` (the middle
        32 bits of its NTP time) and when it came (DLSR), as aiortc's receiver does.

        Both paths call it: ``handle_rtcp`` (Python) and sfu/_rtcp.c (C). Unlike aiortc's own handling it keeps
        no ``remote-outbound-rtp`` statistics (datetime objects per SR, a third of the cost): nothing reads a
        forwarding receiver's getStats().
        """
        me: Any = self
        me._RTCRtpReceiver__lsr[ssrc] = lsr
        me._RTCRtpReceiver__lsr_time[ssrc] = time.time()

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
        """_send_remb sends the estimator's new estimate, or what the connection's ``Uplink`` makes of it.

        With an Uplink, only when it is ``due`` (at most every 0.2 s unless it falls, as libwebrtc's receiver).
        """
        if self.rtcp_ssrc is not None:
            bitrate, ssrcs = estimate
            uplink = self.uplink
            if uplink is not None:
                bitrate = uplink.remb(bitrate)
                if not uplink.due(bitrate, ssrcs):
                    self.remb_throttled += 1
                    return
            self.remb_sent += 1
            feedback: ReceiverFeedback | None = getattr(self.transport, FEEDBACK, None)
            if feedback is not None:
                feedback.send_remb(self.rtcp_ssrc, bitrate, ssrcs)
                return
            self._rtcp_soon(self._send_rtcp(RtcpPsfbPacket(
                fmt=RTCP_PSFB_APP, ssrc=self.rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
            )))

    async def send_pli(self, media_ssrc: int) -> None:
        """send_pli sends an RTCP Picture Loss Indication for `media_ssrc` to the publisher."""
        await self._send_rtcp_pli(media_ssrc)


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """send_pli makes any aiortc receiver (ours or a stock client's) send a PLI for `media_ssrc`."""
    await receiver._send_rtcp_pli(media_ssrc)
