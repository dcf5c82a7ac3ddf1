"""sink: a Sink is a down target whose output is a Python callback instead of an SRTP transport.

An in-process subscriber (the recorder, ``recorder/participant.py``) joins a room with Sinks in place of a
down Peer (``Room.join(..., sinks={slot: Sink})``): no ICE, DTLS or SRTP. The room treats each Sink like a
Consumer: its slot plan fills it (or the owner picks its source with ``Room.choose``), ``switch`` changes its
source, and the source Producer's fan-out hands it every packet. A Sink has no C slot (``cslot`` is None),
so the compiled fan-out (``sfu/_fanout.c``) forwards to the ordinary subscribers of the same Producer as
before and returns the Sink's index, which Python then serves (``Producer._forward_python``): subscribers
keep their C path and pay nothing for a Sink beside them.

Like a Consumer, a Sink keeps one continuous stream across source switches (``HeaderRewriter``: sequence
numbers follow on, timestamps advance by the time the slot stayed empty), waits for a keyframe after a
video switch, and forwards keyframe requests to its source Producer as a subscriber's PLI does
(``request_keyframe``: throttled by the Producer). ``on_packet(seq, ts, marker, payload)`` runs in the
forwarding path: it must be quick and must not block (the recorder queues the work for a writer thread).
An exception in it is logged once and counted (``errors``); it never reaches the fan-out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sfu.consumer import Consumer, Inbound, Source
from sfu.rewriter import HeaderRewriter
from sfu.stats import ConsumerStats, RateMeter

logger = logging.getLogger(__name__)

PacketCallback = Callable[[int, int, int, bytes], None]  # output seq, output ts, marker, payload
VIDEO_RATE = 90000
AUDIO_RATE = 48000  # Opus


class Sink:
    """Sink is one slot of an in-process subscriber: source Producer, rewrite state and a packet callback.

    Only the room's mailbox task calls ``switch`` and ``close``; ``forward`` runs from the source Producer's
    receive path; ``request_keyframe`` from the owner, on the event loop.
    """

    cslot: Any = None  # no C slot: the compiled fan-out leaves this target to Python

    def __init__(self, slot: str, kind: str, on_packet: PacketCallback,
                 on_close: Callable[[], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.slot = slot
        self.kind = kind
        self.on_packet = on_packet
        self.on_close = on_close
        self.source: Source | None = None
        self.closed = False
        self._clock = clock
        video = kind == "video"
        rate = VIDEO_RATE if video else AUDIO_RATE
        self._rewriter = HeaderRewriter(rate, 3000 if video else rate // 50, 0, 0, clock)
        self._waiting_keyframe = video
        self.packets = 0
        self.bytes = 0
        self.keyframe_requests = 0
        self.errors = 0  # exceptions raised by on_packet
        self._rate = RateMeter(start=clock())

    def switch(self, producer: Source | None) -> bool:
        """switch makes `producer` (or nothing) fill this slot; returns True if the source changed.

        A new video source is asked for a keyframe and forwarding waits for it, as in ``Consumer.switch``.
        """
        if producer is self.source:
            return False
        self.source = producer
        self._rewriter.switch()
        self._waiting_keyframe = self.kind == "video"
        if producer is not None:
            producer.request_keyframe()
        return True

    @property
    def wants(self) -> tuple[Source, ...]:
        """wants: the Producers whose packets this slot needs (its source; a Sink never switches layers gradually)."""
        return () if self.source is None else (self.source,)

    def forward(self, p: Inbound) -> None:
        """forward maps one packet of the current source onto the slot's stream and hands it to ``on_packet``."""
        if self.closed:
            return
        if self._waiting_keyframe:
            if not p.keyframe:
                return
            self._waiting_keyframe = False
        mapped = self._rewriter.map(p.ssrc, p.seq, p.ts)
        if mapped is None:
            return
        self.packets += 1
        self.bytes += len(p.payload)
        try:
            self.on_packet(mapped[0], mapped[1], p.marker, p.payload)
        except Exception:
            self.errors += 1
            if self.errors == 1:
                logger.exception("sink %s: on_packet failed (logged once)", self.slot)

    def request_keyframe(self) -> None:
        """request_keyframe asks the current source for a keyframe (a PLI, throttled by the Producer)."""
        self.keyframe_requests += 1
        if self.source is not None:
            self.source.request_keyframe()

    def close(self) -> None:
        """close stops the callbacks and tells the owner (``on_close``) once: the room dropped this slot."""
        if self.closed:
            return
        self.closed = True
        self.source = None
        if self.on_close is not None:
            self.on_close()

    def stats(self) -> ConsumerStats:
        """stats returns a snapshot in the shape of a Consumer's (no RTCP: loss, jitter and RTT are nil)."""
        src = self.source
        return ConsumerStats(
            slot=self.slot, source_participant=src.participant_id if src else None, source=src.source if src else None,
            packets_sent=self.packets, bytes_sent=self.bytes, send_bitrate=self._rate.update(self._clock(), self.bytes),
            fraction_lost=0.0, packets_lost=0, jitter=0.0, rtt=None, remb_bitrate=None, nacks=0, retransmitted=0,
            keyframe_requests=self.keyframe_requests,
        )


DownTarget = Consumer | Sink  # what a Producer forwards to and a participant's slots hold
