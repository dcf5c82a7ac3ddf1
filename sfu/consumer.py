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

Sequence numbers and timestamps stay continuous across source switches (``sfu.rewriter.HeaderRewriter``): libsrtp's
replay window rejects a sequence number jumping back by more than 1024, and decoders see one stream. On a VP8
slot the rewriter also drops temporal layers above ``max_temporal`` without leaving holes and rewrites the
PictureID and TL0PICIDX; ``switch_layer`` moves to another layer of the same track at its first keyframe
without a freeze (docs/sfu.md, "VP8 temporal layers").
"""

from __future__ import annotations

import asyncio
import contextlib
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

from sfu import vp8
from sfu.hooks.guard import COMPILED_PATH
from sfu.hooks.sender import ForwardingSender
from sfu.hooks.wire import PacketWire
from sfu.pacer import pace_class
from sfu.rewriter import ALL_LAYERS, HeaderRewriter
from sfu.rtp import SendContext, SrInfo, abs_send_time_now, pack_abs_send_time
from sfu.stats import ConsumerStats, RateMeter

try:
    from sfu._fanout import Slot as CompiledSlot
except ImportError:  # the C extension is optional (no compiler at install time): pure-Python path
    CompiledSlot = None

COMPILED = CompiledSlot is not None and COMPILED_PATH  # built, and libsrtp is what it expects (sfu.hooks.guard)

HISTORY_SIZE = 128
_MASK = HISTORY_SIZE - 1
NACK_SEEN_SIZE = 1024  # sequence numbers remembered as NACKed once (a receiver asks for each hole up to 10 times:
# a run of holes longer than this ring, a screen keyframe's superseded frames, was counted again on every retry)
_NACK_MASK = NACK_SEEN_SIZE - 1
RESEND_MIN_INTERVAL = 0.1  # a packet is resent at most once per max(RTT, this) seconds
RESEND_MAX_AGE = 1.0  # and only while it was first sent less than this many seconds ago
KEYFRAME_INTERVAL = 1.0  # a subscriber's keyframe requests passed to the source at most once per this
KEYFRAME_INTERVAL_CONGESTED = 3.0  # and while its pacer holds packets (its own link is full)
FROZEN_AFTER = 1.0  # seconds: a weak link's keyframe request still unanswered this long after its first is no longer
# optional (its picture has been frozen since; the track's gate held a 300 kbit/s classroom's decoder 26 s)
KEYFRAMES_TOLD = ("video/vp8", "video/h264")  # codecs whose keyframes the receive path tells apart (sfu.codec; any
# other video codec's packets all count as keyframes there)
KEYFRAME_RETRY = 2.0  # a slot still waiting for its source's keyframe this long after asking asks again
_HDR = struct.Struct("!BHI")  # marker|pt, sequence number, timestamp at offset 1
_OSN = struct.Struct("!H")
_RTX_HDR = struct.Struct("!BHII")  # marker|pt, seq, ts, ssrc at offset 1
NO_VALUE = vp8.NO_VALUE


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
    keyframes_received: int  # keyframes that arrived from the publisher (their first packets)
    sinks: tuple[Any, ...]  # what it forwards to now (the room replaces the tuple whole)

    @property
    def ssrc(self) -> int | None:
        """ssrc is the publisher's media SSRC once known."""

    @property
    def layer(self) -> int:
        """layer is the index among its track's layers, lowest spatial layer first."""

    def request_keyframe(self, optional: bool = False) -> bool: ...


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
        self._vp8 = False  # the slot's codec is VP8: descriptors are read and rewritten
        self._supersede = False  # its keyframes are told apart (VP8, H.264): one that must wait in the pacer drops
        # the slot's older packets waiting there (``sfu.pacer.TokenBucket.supersede``)
        self._max_temporal = ALL_LAYERS
        self._relief = False  # a down switch_layer is pending: the current layer sends its base temporal layer only
        self.temporal_relief = False  # the room's video has temporal layers (set by sfu.downlinks)
        self.weak = False  # its downlink is weak (``sfu.allocator.Downlink.weak``): its keyframe requests can wait
        self._pending_source: Source | None = None  # switch_layer's target until its first keyframe
        self._old_ssrc = NO_VALUE  # the source switch_layer left: its packets are ignored until the room drops us
        self.on_switched: Callable[[Consumer], None] | None = None  # set by the room: a switch_layer completed
        self._head = bytearray()
        self._ast_off = 0
        self._al_off = 0
        self._pt_byte = 0
        self._waiting_keyframe = kind == "video"
        # seq, ts, packet, when sent, PictureID and TL0PICIDX written (NO_VALUE: none)
        self._hist: list[tuple[int, int, Inbound, float, int, int] | None] = [None] * HISTORY_SIZE
        self._resent: list[tuple[int, float] | None] = [None] * HISTORY_SIZE  # seq, when last resent
        self._rtx_seq = 0
        # C state (rewriter, history, counters), or None: pure Python
        self.cslot: Any = CompiledSlot(90000, 3000, 0, 0, kind == "video") if compiled and COMPILED else None
        self.pace_class = pace_class(slot)  # the class its video waits in at its pacer (the screen's after the rest)
        if self.cslot is not None:
            self.cslot.pace_class = self.pace_class
        self._last_ntp = 0  # NTP arrival time and output RTP timestamp of the last packet sent (for SRs)
        self._last_ts = 0
        # statistics
        self._packets_sent = 0
        self._bytes_sent = 0
        self.nacks = 0
        self.nacked = 0  # distinct packets its subscriber reported missing (before any resend recovered them)
        self._nacked_seqs = [-1] * NACK_SEEN_SIZE
        self.retransmitted = 0
        self.retransmitted_bytes = 0
        self.resends_refused = 0  # NACKed packets not resent: too old, resent too recently, not in the history, or
        # over the pacer's retransmission budget
        self.keyframe_requests = 0
        self.keyframe_requests_throttled = 0  # of those, not passed on (KEYFRAME_INTERVAL)
        self.keyframe_retries = 0  # asked again while waiting for a keyframe (``KEYFRAME_RETRY``)
        self.repairs = 0  # keyframes asked because our pacer dropped what waited too long (``repair``)
        self._last_keyframe_request = float("-inf")
        self._asked_at = float("-inf")  # the first of its weak requests not answered by a keyframe of the source yet
        self._asked_mark = -1  # the source's keyframes_received then
        self._owed: asyncio.TimerHandle | None = None  # a throttled request, passed when its interval ends
        self._owed_mark = 0  # the source's keyframes_received when it was throttled
        self._repair_owed: asyncio.TimerHandle | None = None  # a throttled repair, asked when its interval ends
        self._retry: asyncio.TimerHandle | None = None  # asks again while the slot waits for a keyframe
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
        self._vp8 = ctx.kind == "video" and ctx.mime.lower() == "video/vp8"
        self._supersede = ctx.kind == "video" and ctx.mime.lower() in KEYFRAMES_TOLD
        first_pic, first_tl0 = random.randrange(0x8000), random.randrange(0x100)
        self._rewriter = HeaderRewriter(
            ctx.clock_rate, frame, first_seq=random.randrange(0x8000), first_ts=random.getrandbits(32),
            clock=self._clock, first_pic=first_pic, first_tl0=first_tl0,
        )
        self._rewriter.tid_target = self._max_temporal
        self._rtx_seq = random.randrange(0x8000)
        self._head, self._ast_off, self._al_off = build_header_template(ctx)
        self._pt_byte = ctx.payload_type
        slot = self.cslot
        if slot is not None:
            rw = self._rewriter
            slot.__init__(ctx.clock_rate, frame, (rw.last_seq + 1) & 0xFFFF, rw.last_ts, ctx.kind == "video",
                          self._vp8, first_pic, first_tl0)
            slot.tid_target = self._max_temporal
            slot.supersede = self._supersede
            slot.set_head(bytes(self._head), self._ast_off, self._al_off, self._pt_byte)
        if self.source is not None:
            self.source.request_keyframe()
            self._arm_retry()

    @property
    def ready(self) -> bool:
        """ready is true once the down Peer negotiated and started this slot's sender."""
        return self.ctx is not None

    @property
    def max_temporal(self) -> int | None:
        """max_temporal is the highest VP8 temporal layer forwarded (0..2), None for all (set by the allocator).

        A lower value takes effect at the next frame, a higher one at the next frame that can be decoded
        from what was sent (a keyframe, or a layer sync frame: ``HeaderRewriter``). Streams without temporal
        layers are always forwarded whole.
        """
        return None if self._max_temporal == ALL_LAYERS else self._max_temporal

    @max_temporal.setter
    def max_temporal(self, layer: int | None) -> None:
        self._max_temporal = ALL_LAYERS if layer is None or layer < 0 else min(layer, ALL_LAYERS)
        self._apply_temporal()

    def _apply_temporal(self) -> None:
        """_apply_temporal gives the rewriters the temporal target: ``max_temporal``, or 0 while relieving."""
        value = 0 if self._relief else self._max_temporal
        if self._rewriter is not None:
            self._rewriter.tid_target = value
        if self.cslot is not None:
            self.cslot.tid_target = value

    @property
    def wants(self) -> tuple[Source, ...]:
        """wants: the Producers whose packets this slot needs, the current source then a pending ``switch_layer``.

        The room puts the Consumer in each one's sinks.
        """
        if self._pending_source is None:
            return () if self.source is None else (self.source,)
        return (self.source, self._pending_source) if self.source is not None else (self._pending_source,)

    @property
    def pending_source(self) -> Source | None:
        """pending_source is the target of a ``switch_layer`` still waiting for its first keyframe."""
        return self._pending_source

    def switch_layer(self, producer: Source) -> bool:
        """switch_layer moves the slot to another layer of the same track without a freeze; True if it changes.

        The current source keeps being forwarded until the first keyframe packet of `producer`, which the slot
        then continues from (sequence number, timestamp, PictureID, TL0PICIDX at last + 1) and calls
        ``on_switched(self)``: the room then drops this Consumer from the old source's sinks (until then its
        packets are ignored). Meanwhile ``wants`` names both. Switching back to the current source cancels a
        pending switch. A slot that forwards nothing yet (no source, not negotiated, waiting for a keyframe,
        audio) switches as ``switch`` does.

        On a weak link (``weak``) the keyframe is asked for as an *optional* request (``Producer.request_keyframe``:
        the track's gate lets one through per ``switch_keyframe_interval``, since every subscriber of the track
        receives it): the slot shows the current layer meanwhile. A switch down can wait too when the video has temporal
        layers (``temporal_relief``): until the switch, the current layer is cut to its base temporal layer
        (40 % of its rate), relief at once without a keyframe; without temporal layers it asks at once.
        """
        if producer is self.source:
            changed = self._pending_source is not None
            self._pending_source = None
            self._set_relief(False)
            return changed
        if producer is self._pending_source:
            return False
        waiting = self.cslot.waiting_keyframe if self.cslot is not None else self._waiting_keyframe
        if self.source is None or self.kind != "video" or self.ctx is None or waiting:
            return self.switch(producer)
        self._pending_source = producer
        self._old_ssrc = NO_VALUE
        down = producer.layer < self.source.layer
        self._set_relief(down and self.temporal_relief)
        # up: optional on a weak link only (a good link's climb to the top layer must not wait behind the weak
        # classrooms' switches: it found the track's gate empty in one capped-link run under load)
        producer.request_keyframe(optional=self.temporal_relief if down else self.weak)
        return True

    def _set_relief(self, relief: bool) -> None:
        if relief != self._relief:
            self._relief = relief
            self._apply_temporal()

    def _admit(self, p: Inbound) -> bool:
        """_admit: False for a packet of a pending source before its keyframe, or of the source it replaced."""
        pending = self._pending_source
        if pending is None:
            return p.ssrc != self._old_ssrc
        if p.ssrc != pending.ssrc:
            return True  # the current source (or its new SSRC)
        if not p.keyframe:
            return False
        old = self.cslot.src_ssrc if self.cslot is not None else self._rewriter._src_ssrc  # type: ignore[union-attr]
        self._old_ssrc = NO_VALUE if old is None else old
        self.source = pending
        self._pending_source = None
        if self._rewriter is not None:
            self._rewriter.switch()
        if self.cslot is not None:
            self.cslot.switch()
        self._set_relief(False)
        if self.on_switched is not None:
            self.on_switched(self)
        return True

    def switch(self, producer: Source | None) -> bool:
        """switch makes `producer` (or nothing) fill this slot; returns True if the source changed.

        The caller (the room) also replaces the producers' sink lists. A new video source is asked for a
        keyframe and forwarding waits for it (at once: the slot shows nothing until then, a slot resumed after
        a pause too). Another source cancels a pending ``switch_layer``.

        On a weak link (``weak``) the keyframe (and its retries) is an *optional* request, which the track's gate
        may hold (``Producer.request_keyframe``): Chromium's simulcast answers it with a keyframe on every layer,
        and a weak classroom whose slot the allocation paused and resumed every few seconds had the presenter's
        screen send 6-10 keyframes a minute to every classroom (`bench/weaknet.py`, its trace: the classrooms' own
        requests were 3 of them). The slot was paused for its link a moment before; it waits for the gate.
        """
        if producer is self.source:
            return False
        self._pending_source = None
        self._set_relief(False)
        self._old_ssrc = NO_VALUE
        self.source = producer
        if self._rewriter is not None:
            self._rewriter.switch()
        self._waiting_keyframe = self.kind == "video"
        if self.cslot is not None:
            self.cslot.switch()
            self.cslot.waiting_keyframe = self._waiting_keyframe
        if producer is not None and self.ctx is not None:
            producer.request_keyframe(self.weak)
            self._arm_retry()
        return True

    @property
    def waiting_keyframe(self) -> bool:
        """waiting_keyframe is true while the slot forwards nothing until its source's next keyframe."""
        return self.cslot.waiting_keyframe if self.cslot is not None else self._waiting_keyframe

    def _arm_retry(self) -> None:
        """_arm_retry: while the slot waits for its source's keyframe, ask again every ``KEYFRAME_RETRY``.

        One request can be lost (a PLI or the keyframe's first packet dropped on the publisher's link, a relay
        link's own consumer throttling it), and the subscriber cannot ask: it receives nothing to find missing.
        The retries stop when the keyframe came, the source changed or the room took this slot off the source's
        sinks; the Producer's throttle bounds what reaches the publisher.
        """
        if self._retry is None and self.kind == "video":
            with contextlib.suppress(RuntimeError):  # no running loop (a synchronous unit test): nothing to retry on
                self._retry = asyncio.get_running_loop().call_later(KEYFRAME_RETRY, self._retry_due, self.source)

    def _retry_due(self, asked: Source | None) -> None:
        self._retry = None
        source = self.source
        if source is None or source is not asked or not self.waiting_keyframe or self not in source.sinks:
            if source is not None and source is not asked and self.waiting_keyframe:
                self._arm_retry()  # switched meanwhile: that switch asked; watch the new source from now
            return
        self.keyframe_retries += 1
        source.request_keyframe(self.weak)
        self._arm_retry()

    # ---------------------------------------------------------------------------------- hot path

    @property
    def packets_sent(self) -> int:
        """packets_sent counts the RTP packets sent (retransmissions excluded)."""
        return int(self.cslot.packets_sent) if self.cslot is not None else self._packets_sent

    @property
    def pacer_dropped(self) -> int:
        """pacer_dropped: of ``packets_sent``, those its wire's pacer dropped before they left (the C path's; the
        Python path's are not told apart)."""
        return int(self.cslot.pacer_dropped) if self.cslot is not None else 0

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
            pack_abs_send_time(head, self._ast_off, ast)
        if self._al_off:
            head[self._al_off] = p.audio_level
        return head

    def _send(self, wire: PacketWire, head: bytearray, p: Inbound, payload: bytes) -> bool:
        audio = self._audio
        key = self.stream_key
        keyframe = p.keyframe and self._supersede
        if p.padding:
            head[0] |= 0x20
            sent = wire.send_rtp(head, payload, p.padding, audio, self._ast_off, self.pace_class, key, keyframe)
            head[0] &= 0xDF
            return sent
        return wire.send_rtp(head, payload, 0, audio, self._ast_off, self.pace_class, key, keyframe)

    @property
    def stream_key(self) -> object:
        """stream_key: what its packets waiting in the wire's pacer are known by (its C slot, whose fan-out queues
        them too, or itself), so that a keyframe drops the older ones (``sfu.pacer.TokenBucket.supersede``)."""
        return self.cslot if self.cslot is not None else self

    @staticmethod
    def _payload(p: Inbound, pic: int, tl0: int) -> bytes:
        """_payload: the packet's payload with the slot's PictureID and TL0PICIDX written (``sfu.vp8.rewrite``)."""
        if pic < 0 and tl0 < 0:
            return p.payload
        d = vp8.parse(p.payload)
        return p.payload if d is None else vp8.rewrite(p.payload, d, pic, tl0)

    def _forward_slot(self, p: Inbound, slot: Any, wire: PacketWire) -> None:
        """_forward_slot is ``forward`` on the C Slot's state: what ``_fanout.fanout`` leaves to Python."""
        if not self._admit(p):
            return
        if slot.waiting_keyframe:
            if not p.keyframe:
                return
            slot.waiting_keyframe = False
        now = self._clock()
        pic = tl0 = NO_VALUE
        payload = p.payload
        if self._vp8:
            mapped4 = slot.map_vp8(p.ssrc, p.seq, p.ts, p.keyframe, p.payload, now)
            if mapped4 is None:
                return
            seq, ts, pic, tl0 = mapped4
            payload = self._payload(p, pic, tl0)
        else:
            mapped = slot.map(p.ssrc, p.seq, p.ts, now)
            if mapped is None:
                return
            seq, ts = mapped
        head = self._fill_head(p, seq, ts)
        slot.remember(seq, ts, p, now, pic, tl0)
        if self._send(wire, head, p, payload):
            slot.packets_sent += 1
            slot.bytes_sent += len(payload)
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
        if (self._pending_source is not None or self._old_ssrc >= 0) and not self._admit(p):
            return
        if self._waiting_keyframe:
            if not p.keyframe:
                return
            self._waiting_keyframe = False
        now = self._clock()
        pic = tl0 = NO_VALUE
        payload = p.payload
        if self._vp8:
            d = vp8.parse(payload)
            mapped4 = rw.map_parsed(p.ssrc, p.seq, p.ts, p.keyframe, d)
            if mapped4 is None:
                return
            seq, ts, pic, tl0 = mapped4
            if d is not None and (pic >= 0 or tl0 >= 0):
                payload = vp8.rewrite(payload, d, pic, tl0)
        elif rw.steady(p.ssrc, p.seq):  # the common case: same source, not older than the base
            seq = (p.seq + rw.seq_offset) & 0xFFFF
            ts = (p.ts + rw.ts_offset) & 0xFFFFFFFF
            if (p.seq - rw.max_in - 1) & 0xFFFF < 0x7FFF:
                rw.max_in = p.seq
            rw.advance(p.seq, seq, ts, now)
        else:
            mapped = rw.map(p.ssrc, p.seq, p.ts)
            if mapped is None:
                return
            seq, ts = mapped
        head = self._fill_head(p, seq, ts)
        self._hist[seq & _MASK] = (seq, ts, p, now, pic, tl0)
        if self._send(wire, head, p, payload):
            self._packets_sent += 1
            self._bytes_sent += len(payload)
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
        everyone; the Producer's own throttle then coalesces the requests of all its consumers. While its
        downlink is weak (``weak``: congested lately) the request is optional: the track's gate holds it with the
        layer switches (``Producer.request_keyframe``).
        """
        self.keyframe_requests += 1
        now = self._clock()
        wire = self.wire
        queued = wire is not None and wire.pacer.congested
        interval = KEYFRAME_INTERVAL_CONGESTED if queued else KEYFRAME_INTERVAL
        wait = self._last_keyframe_request + interval - now
        if wait > 0:
            self.keyframe_requests_throttled += 1
            self._owe(wait)
            return
        self._pass_request(now)

    def _owe(self, wait: float) -> None:
        """_owe: a throttled request is not lost but owed: passed when the interval ends, unless a keyframe of the
        source arrived meanwhile (it reached this subscriber too). Several throttled requests owe one."""
        if self._owed is None and self.source is not None:
            self._owed_mark = self.source.keyframes_received
            with contextlib.suppress(RuntimeError):
                self._owed = asyncio.get_running_loop().call_later(wait, self._owed_due, self.source)

    def _owed_due(self, asked: Source) -> None:
        self._owed = None
        if self.source is asked and asked.keyframes_received == self._owed_mark and self in asked.sinks:
            self._pass_request(self._clock())

    def _pass_request(self, now: float) -> None:
        """_pass_request asks the source (and a pending one) for a keyframe: optional while the link is weak (the
        track's gate may hold it, ``Producer.request_keyframe``), unless the subscriber asked ``FROZEN_AFTER`` ago
        already and no keyframe of the source came since: a picture frozen that long is what the gate must not
        hold (its decoder waits for that keyframe; measured, 26 s for the gate's token on a 300 kbit/s link). Its
        first request, and a layer switch, still wait for the gate."""
        self._last_keyframe_request = now
        if self.source is not None:
            optional = self.weak
            if optional:
                mark = self.source.keyframes_received
                if mark != self._asked_mark:  # a keyframe came since (or the first request): a new episode
                    self._asked_at, self._asked_mark = now, mark
                elif now - self._asked_at >= FROZEN_AFTER:
                    optional = False
            self.source.request_keyframe(optional)
        if self._pending_source is not None:
            self._pending_source.request_keyframe(self.weak)

    def repair(self) -> bool:
        """repair: our own pacer dropped packets that waited too long on this subscriber's link (``Downlinks`` saw it):
        its decoder now waits for a keyframe, which is asked at once, whatever its link (not optional: the track's
        gate held a weak classroom's request for up to its interval, measured: a 300 kbit/s classroom's presenter
        camera froze 23 s after 14 packets dropped at its join), throttled like its own requests. True when asked.

        Inside the throttle's interval it is owed, not lost: asked (not optional) when the interval ends unless a
        keyframe of the source came meanwhile. A weak link's own request just before (held by the track's gate)
        had swallowed it, and the drop count that asked it did not grow again: a 300 kbit/s classroom's presenter
        camera then waited 18 s for the gate."""
        now = self._clock()
        if self.source is None:
            return False
        wait = self._last_keyframe_request + KEYFRAME_INTERVAL - now
        if wait > 0:
            if self._repair_owed is None:
                mark = self.source.keyframes_received
                with contextlib.suppress(RuntimeError):
                    self._repair_owed = asyncio.get_running_loop().call_later(
                        wait, self._repair_due, self.source, mark)
            return False
        self._last_keyframe_request = now
        self.repairs += 1
        self.source.request_keyframe()
        return True

    def _repair_due(self, asked: Source, mark: int) -> None:
        self._repair_owed = None
        if self.source is asked and asked.keyframes_received == mark and self in asked.sinks:
            self.repair()

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
                seen = self._nacked_seqs
                for seq in packet.lost:
                    if seen[seq & _NACK_MASK] != seq:  # a receiver asks again for what has not come: counted once
                        seen[seq & _NACK_MASK] = seq
                        self.nacked += 1
                    self.retransmit(seq)

    def retransmit(self, seq: int) -> bool:
        """retransmit re-sends packet `seq` from the history (wrapped in RTX when negotiated).

        Bounded as mature SFUs do: a packet is resent at most once per max(RTT, ``RESEND_MIN_INTERVAL``)
        (a NACK storm for the same packets resends each once, not once per NACK) and only while it was
        first sent less than ``RESEND_MAX_AGE`` ago (older ones are useless to a real-time receiver); and only
        within the classroom's budget (``Pacer.allow_resend``: what waits in its pacer waited briefly, resends
        under ``sfu.pacer.RESEND_SHARE`` of its rate), so resends cannot crowd out the media on a full link.
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
        _, ts, p, _, pic, tl0 = entry
        if not self.wire.pacer.allow_resend(len(self._head) + len(p.payload) + p.padding, self.pace_class):
            self.resends_refused += 1  # over the classroom's budget: the link is already full
            return False
        self._resent[seq & _MASK] = (seq, now)
        payload = self._payload(p, pic, tl0)
        head = bytearray(self._head)
        if self._ast_off:  # when it leaves: its original's time would read as a queue to the receiver's estimate
            pack_abs_send_time(head, self._ast_off, abs_send_time_now())
        if self._al_off:
            head[self._al_off] = p.audio_level
        self.retransmitted += 1
        self.retransmitted_bytes += len(p.payload)
        if ctx.rtx_payload_type is not None:
            _RTX_HDR.pack_into(head, 1, (p.marker << 7) | ctx.rtx_payload_type, self._rtx_seq, ts, ctx.rtx_ssrc)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            return self.wire.send_rtp(head, _OSN.pack(seq) + payload, cls=self.pace_class, key=self.stream_key)
        _HDR.pack_into(head, 1, (p.marker << 7) | self._pt_byte, seq, ts)
        if p.padding:
            head[0] |= 0x20
        return self.wire.send_rtp(head, payload, p.padding, cls=self.pace_class, key=self.stream_key)

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
            max_temporal=-1 if self.max_temporal is None else self.max_temporal,
            repairs=self.repairs,
            keyframe_retries=self.keyframe_retries,
        )
