"""consumer: a Consumer is one slot of a down Peer: which Producer fills it and how its packets are rewritten.

The hot path is ``Consumer.forward``: for each inbound packet of its source it writes the slot's header
(payload type, sequence number, timestamp, SSRC, header extensions with the slot's own ids and mid) into one
preallocated ``bytearray`` with ``struct.pack_into`` and hands header and untouched payload to the down
Peer's PacketWire, which assembles, SRTP-protects and sends them in place (no await, no task, no
``RtpPacket``). The 128-entry history keeps ``(seq, ts, Inbound)`` - the shared inbound packet, no copy -
and rebuilds a header only for the rare retransmission. Sender-report counters are plain attributes read by
the wire's report timer (``sr_info``).

With the C extension built (``sfu/_fanout.c``) and ``compiled`` set, each Consumer also owns a
``sfu._fanout.Slot`` holding its rewrite state, header template, history and counters: the Producer then calls
``_fanout.fanout`` once per inbound packet, which does the steady-state work of ``forward`` (rewrite, history,
libsrtp protect, ``sendto``) for every slot whose route is bound, and leaves the rest (source switch, no route
yet) to ``forward`` here, which runs the same logic on the Slot and binds its route.

Sequence numbers and timestamps stay continuous across source switches (``HeaderRewriter``): libsrtp's
replay window rejects a sequence number jumping back by more than 1024, and decoders see one stream.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc.rtp import (
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpRtpfbPacket,
)

from sfu.hooks.guard import COMPILED_PATH
from sfu.hooks.sender import ForwardingSender
from sfu.hooks.wire import PacketWire
from sfu.rtp import SendContext, SrInfo
from sfu.stats import ConsumerStats, RateMeter

try:
    from sfu._fanout import Slot as CompiledSlot
except ImportError:  # the C extension is optional (no compiler at install time): pure-Python path
    CompiledSlot = None

COMPILED = CompiledSlot is not None and COMPILED_PATH  # built, and libsrtp is what it expects (sfu.hooks.guard)

HISTORY_SIZE = 128
_MASK = HISTORY_SIZE - 1
DROP_WINDOW = 0x1000  # a packet this far behind the newest forwarded one is dropped (sfu/_fanout.h: the same)
RESYNC_AFTER = 64  # drops in a row as "older" with no progress: the source restarted its numbering
RESEND_MIN_INTERVAL = 0.1  # a packet is resent at most once per max(RTT, this) seconds
RESEND_MAX_AGE = 1.0  # and only while it was first sent less than this many seconds ago
KEYFRAME_INTERVAL = 1.0  # a subscriber's keyframe requests passed to the source at most once per this
KEYFRAME_INTERVAL_CONGESTED = 3.0  # and while its pacer holds packets (its own link is full)
_HDR = struct.Struct("!BHI")  # marker|pt, sequence number, timestamp at offset 1
_AST = struct.Struct("!HB")  # abs-send-time, 3 bytes
_OSN = struct.Struct("!H")
_RTX_HDR = struct.Struct("!BHII")  # marker|pt, seq, ts, ssrc at offset 1


@dataclass(slots=True)
class Inbound:
    """Inbound is one received RTP packet as its Producer hands it to every Consumer (parsed once)."""

    ssrc: int
    seq: int
    ts: int
    marker: int
    payload: bytes
    keyframe: bool
    ntp: int  # NTP time of arrival (64-bit), for sender reports
    abs_send_time: int  # 24-bit, 6.18 fixed point seconds
    audio_level: int  # RFC 6464 byte (V bit + level), 127 when unknown
    padding: int = 0


class Source(Protocol):
    """Source: what a Consumer needs of the stream filling its slot (``sfu.producer.Producer`` is one).

    A protocol, not the class, so this module does not import the Producer's, which imports it.
    """

    participant_id: str
    source: str  # camera, mic or screen

    def request_keyframe(self) -> bool: ...


class HeaderRewriter:
    """HeaderRewriter maps (ssrc, seq, ts) of whichever source fills a slot onto one continuous output stream.

    On the first packet after ``switch()`` (or from a new SSRC) the output sequence number continues at
    last + 1 and the timestamp at last + max(one frame, wall-clock elapsed). A packet older than the
    *base* is dropped, so output sequence numbers never repeat those of the previous source: the base is
    the first packet of the source, then slides with the highest sequence number forwarded, staying
    ``DROP_WINDOW`` behind it (a base that stayed put would make every packet "older" once the source had
    sent 32,768 more). Comparisons are modulo 2^16 (RFC 1982 serial numbers). When ``RESYNC_AFTER`` packets
    in a row are dropped as older with nothing forwarded in between, the source has restarted its
    numbering (a jump of half the sequence space or more): the mapping restarts as after a switch.
    """

    __slots__ = (
        "clock_rate", "frame_ticks", "last_seq", "last_ts", "last_time", "_clock", "_src_ssrc", "base_seq",
        "seq_offset", "ts_offset", "_pending", "old_drops", "_drop_mark",
    )

    def __init__(
        self,
        clock_rate: int,
        frame_ticks: int,
        first_seq: int,
        first_ts: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock_rate = clock_rate
        self.frame_ticks = frame_ticks
        self.last_seq = (first_seq - 1) & 0xFFFF
        self.last_ts = first_ts
        self.last_time: float | None = None
        self._clock = clock
        self._src_ssrc: int | None = None
        self.base_seq = 0
        self.seq_offset = 0
        self.ts_offset = 0
        self._pending = True
        self.old_drops = 0  # packets dropped as older than the base since the output last advanced
        self._drop_mark = -1  # last_seq when that count started

    def switch(self) -> None:
        """switch marks a source change: the next packet starts a new mapping."""
        self._pending = True

    def steady(self, ssrc: int, seq: int) -> bool:
        """steady: `map` would just add the current offsets (same source, packet not older than the base)."""
        return not self._pending and ssrc == self._src_ssrc and (seq - self.base_seq) & 0xFFFF < 0x8000

    def advance(self, seq: int, out_seq: int, out_ts: int, now: float) -> None:
        """advance notes a forwarded packet: when it is the newest, it moves the output and slides the base."""
        if (out_seq - self.last_seq) & 0xFFFF < 0x8000:
            self.last_seq = out_seq
            self.last_ts = out_ts
            self.last_time = now
            if (seq - self.base_seq) & 0xFFFF > DROP_WINDOW:
                self.base_seq = (seq - DROP_WINDOW) & 0xFFFF

    def map(self, ssrc: int, seq: int, ts: int) -> tuple[int, int] | None:
        """map returns (output seq, output ts) for one input packet, or None to drop it."""
        now = self._clock()
        if not self._pending and ssrc == self._src_ssrc and (seq - self.base_seq) & 0xFFFF >= 0x8000:
            if self._drop_mark != self.last_seq:
                self._drop_mark = self.last_seq
                self.old_drops = 0
            self.old_drops += 1
            if self.old_drops < RESYNC_AFTER:
                return None  # older than the base: a late duplicate or the previous source's range
            self._pending = True  # the source restarted its numbering
        if self._pending or ssrc != self._src_ssrc:
            if self.last_time is None:
                delta = 0
            else:
                delta = max(self.frame_ticks, round((now - self.last_time) * self.clock_rate))
            out_seq = (self.last_seq + 1) & 0xFFFF
            out_ts = (self.last_ts + delta) & 0xFFFFFFFF
            self.seq_offset = (out_seq - seq) & 0xFFFF
            self.ts_offset = (out_ts - ts) & 0xFFFFFFFF
            self.base_seq = seq
            self._src_ssrc = ssrc
            self._pending = False
            self.old_drops = 0
            self._drop_mark = -1
        out_seq = (seq + self.seq_offset) & 0xFFFF
        out_ts = (ts + self.ts_offset) & 0xFFFFFFFF
        self.advance(seq, out_seq, out_ts, now)
        return out_seq, out_ts


def build_header_template(ctx: SendContext) -> tuple[bytearray, int, int]:
    """build_header_template returns (header, abs-send-time offset, audio-level offset) for a slot.

    The header holds the fixed part (version, SSRC) and one-byte header extensions (RFC 8285) with the
    slot's own ids: mid, abs-send-time and audio level where negotiated. Offsets are 0 when absent.
    """
    elements = bytearray()
    ast_off = al_off = 0
    if ctx.mid_id and ctx.mid:
        mid = ctx.mid.encode()
        elements += bytes([(ctx.mid_id << 4) | (len(mid) - 1)]) + mid
    if ctx.abs_send_time_id:
        elements.append((ctx.abs_send_time_id << 4) | 2)
        ast_off = len(elements)
        elements += b"\x00\x00\x00"
    if ctx.audio_level_id and ctx.kind == "audio":
        elements.append(ctx.audio_level_id << 4)
        al_off = len(elements)
        elements.append(0x7F)
    while len(elements) % 4:
        elements.append(0)
    head = bytearray(struct.pack("!BBHII", 0x90 if elements else 0x80, ctx.payload_type, 0, 0, ctx.ssrc))
    if elements:
        head += struct.pack("!HH", 0xBEDE, len(elements) // 4) + elements
        ast_off = ast_off + 16 if ast_off else 0
        al_off = al_off + 16 if al_off else 0
    return head, ast_off, al_off


class Consumer:
    """Consumer is one slot of a down Peer (e.g. ``floor-video``): source Producer, rewrite state, history.

    Only the room's mailbox task calls ``switch``; ``forward`` runs from the source Producer's receive
    callback and RTCP callbacks come from the down Peer's sender, all on the same event loop.
    """

    def __init__(
        self,
        participant_id: str,
        slot: str,
        kind: str,
        sender: ForwardingSender,
        wire_for: Callable[[SendContext], PacketWire],
        clock: Callable[[], float] = time.monotonic,
        compiled: bool = False,
    ) -> None:
        self.participant_id = participant_id
        self.slot = slot
        self.kind = kind
        self._audio = kind == "audio"
        self.sender = sender
        self.source: Source | None = None
        self.ctx: SendContext | None = None
        self.wire: PacketWire | None = None
        self._wire_for = wire_for
        self._clock = clock
        self._rewriter: HeaderRewriter | None = None
        self._head = bytearray()
        self._ast_off = 0
        self._al_off = 0
        self._pt_byte = 0
        self._waiting_keyframe = kind == "video"
        self._hist: list[tuple[int, int, Inbound, float] | None] = [None] * HISTORY_SIZE  # seq, ts, packet, sent
        self._resent: list[tuple[int, float] | None] = [None] * HISTORY_SIZE  # seq, when last resent
        self._rtx_seq = 0
        # C state (rewriter, history, counters), or None: pure Python
        self.cslot: Any = CompiledSlot(90000, 3000, 0, 0, kind == "video") if compiled and COMPILED else None
        self._last_ntp = 0  # NTP arrival time and output RTP timestamp of the last packet sent (for SRs)
        self._last_ts = 0
        # statistics
        self._packets_sent = 0
        self._bytes_sent = 0
        self.nacks = 0
        self.retransmitted = 0
        self.retransmitted_bytes = 0
        self.max_temporal = -1  # the highest VP8 temporal layer forwarded (-1: all), set by sfu.downlinks
        self.resends_refused = 0  # NACKed packets not resent: too old, resent too recently, not in the history, or
        self.resends_over_budget = 0  # over the pacer's retransmission budget (these are counted here too)
        self.keyframe_requests = 0
        self.keyframe_requests_throttled = 0  # of those, not passed on (KEYFRAME_INTERVAL)
        self._last_keyframe_request = float("-inf")
        self._fraction_lost = 0.0  # the subscriber's reports without a C slot (else in cslot)
        self._packets_lost = 0
        self._reports = 0
        self._jitter = 0.0
        self._remb_bitrate: int | None = None
        self._rate = RateMeter(start=clock())
        sender.on_ready = self._on_ready
        sender.on_rtcp = self._on_rtcp
        sender.on_report = self._on_report
        sender.on_remb = self._on_remb
        sender.on_keyframe = self._on_keyframe
        sender.sr_info = self.sr_info
        sender.report_slot = self.cslot
        if sender.context is not None:
            self._on_ready(sender.context)

    # ------------------------------------------------------------------ set-up and source switching

    def _on_ready(self, ctx: SendContext) -> None:
        self.ctx = ctx
        self.wire = self._wire_for(ctx)
        self.wire.add_sender(self.sender)
        frame = 3000 if ctx.kind == "video" else ctx.clock_rate // 50
        self._rewriter = HeaderRewriter(
            ctx.clock_rate, frame, first_seq=random.randrange(0x8000), first_ts=random.getrandbits(32),
            clock=self._clock,
        )
        self._rtx_seq = random.randrange(0x8000)
        self._head, self._ast_off, self._al_off = build_header_template(ctx)
        self._pt_byte = ctx.payload_type
        slot = self.cslot
        if slot is not None:
            rw = self._rewriter
            slot.__init__(ctx.clock_rate, frame, (rw.last_seq + 1) & 0xFFFF, rw.last_ts, ctx.kind == "video")
            slot.set_head(bytes(self._head), self._ast_off, self._al_off, self._pt_byte)
        if self.source is not None:
            self.source.request_keyframe()

    @property
    def ready(self) -> bool:
        """ready is true once the down Peer negotiated and started this slot's sender."""
        return self.ctx is not None

    def switch(self, producer: Source | None) -> bool:
        """switch makes `producer` (or nothing) fill this slot; returns True if the source changed.

        The caller (the room) also replaces the producers' sink lists. A new video source is asked for a
        keyframe and forwarding waits for it.
        """
        if producer is self.source:
            return False
        self.source = producer
        if self._rewriter is not None:
            self._rewriter.switch()
        self._waiting_keyframe = self.kind == "video"
        if self.cslot is not None:
            self.cslot.switch()
            self.cslot.waiting_keyframe = self._waiting_keyframe
        if producer is not None and self.ctx is not None:
            producer.request_keyframe()
        return True

    # ---------------------------------------------------------------------------------- hot path

    @property
    def packets_sent(self) -> int:
        """packets_sent counts the RTP packets sent (retransmissions excluded)."""
        return int(self.cslot.packets_sent) if self.cslot is not None else self._packets_sent

    @property
    def bytes_sent(self) -> int:
        """bytes_sent counts the payload octets sent (retransmissions excluded)."""
        return int(self.cslot.bytes_sent) if self.cslot is not None else self._bytes_sent

    @property
    def last_ntp(self) -> int:
        """last_ntp is the NTP arrival time of the last packet sent (for sender reports)."""
        return int(self.cslot.last_ntp) if self.cslot is not None else self._last_ntp

    @property
    def last_ts(self) -> int:
        """last_ts is the output RTP timestamp of the last packet sent (for sender reports)."""
        return int(self.cslot.last_out_ts) if self.cslot is not None else self._last_ts

    def _fill_head(self, p: Inbound, seq: int, ts: int) -> bytearray:
        head = self._head
        _HDR.pack_into(head, 1, (p.marker << 7) | self._pt_byte, seq, ts)
        if self._ast_off:
            ast = p.abs_send_time
            _AST.pack_into(head, self._ast_off, ast >> 8, ast & 0xFF)
        if self._al_off:
            head[self._al_off] = p.audio_level
        return head

    def _send(self, wire: PacketWire, head: bytearray, p: Inbound) -> bool:
        audio = self._audio
        if p.padding:
            head[0] |= 0x20
            sent = wire.send_rtp(head, p.payload, p.padding, audio)
            head[0] &= 0xDF
            return sent
        return wire.send_rtp(head, p.payload, 0, audio)

    def _forward_slot(self, p: Inbound, slot: Any, wire: PacketWire) -> None:
        """_forward_slot is ``forward`` on the C Slot's state: what ``_fanout.fanout`` leaves to Python."""
        if slot.waiting_keyframe:
            if not p.keyframe:
                return
            slot.waiting_keyframe = False
        now = self._clock()
        mapped = slot.map(p.ssrc, p.seq, p.ts, now)
        if mapped is None:
            return
        seq, ts = mapped
        head = self._fill_head(p, seq, ts)
        slot.remember(seq, ts, p, now)
        if self._send(wire, head, p):
            slot.packets_sent += 1
            slot.bytes_sent += len(p.payload)
            slot.last_ntp = p.ntp
            slot.last_out_ts = ts
            if not slot.routed:
                wire.bind_slot(slot)

    def forward(self, p: Inbound) -> None:
        """forward rewrites and sends one packet of the current source (called by the Producer)."""
        if self.cslot is not None:
            if self._rewriter is not None and self.wire is not None:
                self._forward_slot(p, self.cslot, self.wire)
            return
        rw = self._rewriter
        wire = self.wire
        if rw is None or wire is None:
            return
        if self._waiting_keyframe:
            if not p.keyframe:
                return
            self._waiting_keyframe = False
        now = self._clock()
        if rw.steady(p.ssrc, p.seq):  # the common case: same source, not older than the base
            seq = (p.seq + rw.seq_offset) & 0xFFFF
            ts = (p.ts + rw.ts_offset) & 0xFFFFFFFF
            rw.advance(p.seq, seq, ts, now)
        else:
            mapped = rw.map(p.ssrc, p.seq, p.ts)
            if mapped is None:
                return
            seq, ts = mapped
        head = self._fill_head(p, seq, ts)
        self._hist[seq & _MASK] = (seq, ts, p, now)
        if self._send(wire, head, p):
            self._packets_sent += 1
            self._bytes_sent += len(p.payload)
            self._last_ntp = p.ntp
            self._last_ts = ts

    def sr_info(self) -> SrInfo:
        """sr_info is (NTP, RTP timestamp, packets, payload octets) for this slot's next sender report."""
        return self.last_ntp, self.last_ts, self.packets_sent, self.bytes_sent

    # -------------------------------------------------------------------------------------- RTCP

    def _on_keyframe(self) -> None:
        """_on_keyframe: the subscriber asked for a keyframe (PLI/FIR); passed to the layer it receives.

        Throttled per Consumer (``KEYFRAME_INTERVAL``, ``KEYFRAME_INTERVAL_CONGESTED`` while its pacer holds
        packets), so a classroom losing packets on its own link cannot make the publisher send keyframes to
        everyone; the Producer's own throttle then coalesces the requests of all its consumers.
        """
        self.keyframe_requests += 1
        now = self._clock()
        wire = self.wire
        interval = KEYFRAME_INTERVAL_CONGESTED if wire is not None and wire.pacer.congested else KEYFRAME_INTERVAL
        if now - self._last_keyframe_request < interval:
            self.keyframe_requests_throttled += 1
            return
        self._last_keyframe_request = now
        if self.source is not None:
            self.source.request_keyframe()

    def _on_report(self, fraction_lost: int, packets_lost: int, jitter: int) -> None:
        """_on_report takes the subscriber's receiver report block about this slot (no C slot: else in cslot)."""
        ctx = self.ctx
        if ctx is None:
            return
        self._fraction_lost = fraction_lost / 256
        self._packets_lost = packets_lost
        self._reports += 1
        self._jitter = jitter / ctx.clock_rate

    def _on_remb(self, bitrate: int) -> None:
        """_on_remb takes the subscriber's REMB estimate naming this slot's SSRC (no C slot: else in cslot)."""
        if self.ctx is not None:
            self._remb_bitrate = bitrate

    @property
    def fraction_lost(self) -> float:
        """fraction_lost is the loss the subscriber last reported (0..1)."""
        return self.cslot.fraction_lost / 256 if self.cslot is not None else self._fraction_lost

    @property
    def packets_lost(self) -> int:
        """packets_lost is the subscriber's last cumulative count of lost packets."""
        return int(self.cslot.packets_lost) if self.cslot is not None else self._packets_lost

    @property
    def reports(self) -> int:
        """reports counts the subscriber's receiver report blocks about this slot."""
        return int(self.cslot.reports) if self.cslot is not None else self._reports

    @property
    def last_out_seq(self) -> int:
        """last_out_seq is the newest output sequence number sent (what the subscriber's reports count against)."""
        if self.cslot is not None:
            return int(self.cslot.last_seq)
        return self._rewriter.last_seq if self._rewriter is not None else 0

    @property
    def jitter(self) -> float:
        """jitter is the subscriber's last reported interarrival jitter, in seconds."""
        if self.cslot is None:
            return self._jitter
        return self.cslot.jitter / self.ctx.clock_rate if self.ctx is not None else 0.0

    @property
    def remb_bitrate(self) -> int | None:
        """remb_bitrate is the subscriber's last REMB estimate naming this slot (bit/s), None before one."""
        if self.cslot is None:
            return self._remb_bitrate
        return None if self.cslot.remb < 0 else int(self.cslot.remb)

    def _on_rtcp(self, packet: AnyRtcpPacket) -> None:
        ctx = self.ctx
        if ctx is None:
            return
        if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
            if packet.media_ssrc == ctx.ssrc:
                self.nacks += 1
                for seq in packet.lost:
                    self.retransmit(seq)

    def retransmit(self, seq: int) -> bool:
        """retransmit re-sends packet `seq` from the history (wrapped in RTX when negotiated).

        Bounded as mature SFUs do: a packet is resent at most once per max(RTT, ``RESEND_MIN_INTERVAL``)
        (a NACK storm for the same packets resends each once, not once per NACK) and only while it was
        first sent less than ``RESEND_MAX_AGE`` ago (older ones are useless to a real-time receiver); and only
        within the classroom's budget (``Pacer.allow_resend``: nothing waiting in its pacer, resends under
        ``sfu.pacer.RESEND_SHARE`` of its rate), so resends cannot crowd out the media on a full link.
        """
        ctx = self.ctx
        if ctx is None or self.wire is None:
            return False
        entry = self._hist[seq & _MASK] if self.cslot is None else self.cslot.recall(seq)
        now = self._clock()
        if entry is None or entry[0] != seq or now - entry[3] > RESEND_MAX_AGE:
            self.resends_refused += 1
            return False
        resent = self._resent[seq & _MASK]
        if resent is not None and resent[0] == seq and now - resent[1] < max(self.sender.rtt or 0.0,
                                                                               RESEND_MIN_INTERVAL):
            self.resends_refused += 1
            return False
        _, ts, p, _ = entry
        if not self.wire.pacer.allow_resend(len(self._head) + len(p.payload) + p.padding):
            self.resends_refused += 1  # over the classroom's budget: the link is already full
            self.resends_over_budget += 1
            return False
        self._resent[seq & _MASK] = (seq, now)
        head = bytearray(self._head)
        if self._ast_off:
            _AST.pack_into(head, self._ast_off, p.abs_send_time >> 8, p.abs_send_time & 0xFF)
        if self._al_off:
            head[self._al_off] = p.audio_level
        self.retransmitted += 1
        self.retransmitted_bytes += len(p.payload)
        if ctx.rtx_payload_type is not None:
            _RTX_HDR.pack_into(head, 1, (p.marker << 7) | ctx.rtx_payload_type, self._rtx_seq, ts, ctx.rtx_ssrc)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            return self.wire.send_rtp(head, _OSN.pack(seq) + p.payload)
        _HDR.pack_into(head, 1, (p.marker << 7) | self._pt_byte, seq, ts)
        if p.padding:
            head[0] |= 0x20
        return self.wire.send_rtp(head, p.payload, p.padding)

    # ------------------------------------------------------------------------------------- stats

    def stats(self) -> ConsumerStats:
        """stats returns a snapshot (send bitrate over the window since the previous snapshot)."""
        src = self.source
        return ConsumerStats(
            slot=self.slot,
            source_participant=src.participant_id if src else None,
            source=src.source if src else None,
            packets_sent=self.packets_sent,
            bytes_sent=self.bytes_sent,
            send_bitrate=self._rate.update(self._clock(), self.bytes_sent),
            fraction_lost=self.fraction_lost,
            packets_lost=self.packets_lost,
            jitter=self.jitter,
            rtt=self.sender.rtt,
            remb_bitrate=self.remb_bitrate,
            nacks=self.nacks,
            retransmitted=self.retransmitted,
            keyframe_requests=self.keyframe_requests,
            keyframe_requests_throttled=self.keyframe_requests_throttled,
            resends_refused=self.resends_refused,
            layer=getattr(src, "layer", 0) if src is not None else None,
            max_temporal=self.max_temporal,
        )
