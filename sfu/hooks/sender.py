"""sender: ``ForwardingSender``, aiortc's RTCRtpSender as a slot a Consumer fills with rewritten packets.

aiortc's ``_run_rtp`` and ``_run_rtcp`` idle (no track, no encoder, no per-sender timer); keyframe requests and
every subscriber RTCP packet (RR, NACK, PLI/FIR, REMB) are handed to callbacks or written into the Consumer's
C slot; the RTT comes from the subscriber's report blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtcrtpsender import RTT_ALPHA
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    AnyRtcpPacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpSrPacket,
)

from sfu.rtp import URI_ABS_SEND_TIME, URI_AUDIO_LEVEL, URI_MID, SendContext, SrInfo, unpack_remb


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
