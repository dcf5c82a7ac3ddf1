"""producer: a Producer is one published track (camera, mic or screen) of a participant's up Peer.

It receives every decrypted RTP packet from its ForwardingReceiver, parses what all Consumers need once
(``Inbound``) and hands it to each sink (a Consumer, or an in-process ``sfu.sink.Sink``). The sink tuple is
replaced whole by the room's mailbox task (copy on write), so the receive callback iterates it without a
lock. When the sinks have C slots (``sfu/_fanout.c`` built, ``SfuConfig.compiled_fanout``), one ``fanout``
call forwards to all of them; the slots it leaves over and the Sinks (which have none) go through their
``forward``. The receiver's C path
(``ForwardingReceiver.arm``, ``sfu/_ingress.c``) does what ``on_fields`` does for steady-state packets itself,
on the same attributes (``packets``, ``bytes``, ``keyframes_received``, ``frames_received``, ``_seq``, ``sinks``,
``_slots``).

A simulcast track (the publisher sends several encodings of one video, each with its own SSRC and ``rid``) has
one Producer per layer, each on its own layer receiver (``ForwardingReceiver.layers``): its own sinks, counters,
keyframe throttle (a keyframe request goes to that layer's SSRC) and bitrate. ``layers`` holds the track's
layers ordered lowest to highest spatial layer; a track without simulcast is its own only layer.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable
from typing import Any

from aiortc.rtp import RtpPacket

from sfu.cells import Cell, Cells
from sfu.codec import is_keyframe_start
from sfu.consumer import Inbound
from sfu.hooks.guard import COMPILED_PATH
from sfu.hooks.receiver import ForwardingReceiver
from sfu.sink import DownTarget
from sfu.stats import ProducerStats, RateMeter, SequenceTracker
from sfu.throttle import Throttle

try:
    from sfu._fanout import fanout as compiled_fanout
except ImportError:  # optional C extension: Consumer.forward for every sink
    compiled_fanout = None
if not COMPILED_PATH:  # libsrtp is not what the extension expects (sfu.hooks.guard.check_libsrtp)
    compiled_fanout = None

NTP_OFFSET = 2208988800  # seconds from 1900 to 1970
NTP_MASK = (1 << 64) - 1
SOURCES = ("camera", "mic", "screen")
ARRIVAL_WINDOW = 1.0  # a layer is arriving while its last packet is at most this old (seen by `sample`)
OPTIONAL_BURST = 2.0  # optional keyframe requests a track's gate lets through at once after a calm while


def ntp_now(wall: Callable[[], float] = time.time) -> int:
    """ntp_now is the current time as a 64-bit NTP timestamp."""
    return int((wall() + NTP_OFFSET) * 4294967296.0) & NTP_MASK


class Producer(Cells):
    """Producer is a published track: kind, owner, source label, codec, SSRC, sinks and inbound statistics."""

    # what the C receive path (sfu/_ingress.c) reads and writes per packet: counters in cells (sfu.cells), objects
    # at fixed offsets; the rest in __dict__
    __slots__ = ("_seq", "sinks", "_slots", "__dict__", "__weakref__")
    packets: Cell[int] = Cell(0)
    bytes: Cell[int] = Cell(1)
    keyframes_received: Cell[int] = Cell(2)  # packets starting a keyframe
    frames_received: Cell[int] = Cell(3)  # video packets ending a frame (the marker bit): the layer's frame rate

    def __init__(
        self,
        participant_id: str,
        source: str,
        kind: str,
        mime: str,
        receiver: ForwardingReceiver,
        keyframe_min_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        compiled: bool = True,
        rid: str | None = None,
        switch_keyframe_interval: float = 0.0,
    ) -> None:
        self.participant_id = participant_id
        self.source = source
        self.kind = kind
        self.mime = mime
        self.receiver = receiver
        self.sinks: tuple[DownTarget, ...] = ()
        self._slots: tuple[Any, ...] | None = None  # the sinks' C slots (None for a Sink), when any has one
        self.muted = False
        self.keyframe_throttle = Throttle(keyframe_min_interval, clock)
        self.keyframes_requested = 0
        self.keyframes_deferred = 0  # optional requests held back by the track's gate (``request_keyframe``)
        self.switch_keyframe_interval = switch_keyframe_interval
        self._optional_tokens = OPTIONAL_BURST  # on the track's first layer: its gate (a token bucket) and when
        self._optional_at = clock()  # the tokens were last counted
        self._optional_mark = 0  # keyframes_received when the latest optional request was held back
        self._optional_timer: asyncio.TimerHandle | None = None
        self.keyframes_received = 0  # packets starting a keyframe
        self.frames_received = 0  # video packets ending a frame (the marker bit): the layer's frame rate
        self.packets = 0
        self.bytes = 0
        self._seq = SequenceTracker()
        self._rate = RateMeter(start=clock())
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._video = kind == "video"
        self._deferred: asyncio.TimerHandle | None = None
        self.closed = False
        self._compiled = compiled  # the receiver may arm its C path (SfuConfig.compiled_fanout)
        self.rid = rid  # the simulcast layer's RTP stream id, None without simulcast
        self.layer = 0  # index in `layers`
        self.layers: tuple[Producer, ...] = (self,)  # the track's layers, lowest first (`link_layers`)
        self._sampled_packets = 0
        self._last_arrival: float | None = None  # when `sample` last saw the packet count move
        self._layer_rate = RateMeter(start=clock())
        receiver.on_rtp = self.on_rtp
        receiver.on_fields = self.on_fields

    @property
    def id(self) -> str:
        """id is ``participant:source``, unique in a room."""
        return f"{self.participant_id}:{self.source}"

    @property
    def track(self) -> Producer:
        """track is the Producer standing for the whole track (its first layer; ``participant.producers``)."""
        return self.layers[0]

    def sample(self) -> None:
        """sample notes whether packets came since the previous sample and updates the layer's bitrate.

        The room samples the layers of simulcast tracks every ``LAYER_WATCH_PERIOD`` (0.5 s), so `arriving` is
        right to about half a second; the C receive path counts packets without reading a clock.
        """
        now = self._clock()
        if self.packets != self._sampled_packets:
            self._sampled_packets = self.packets
            self._last_arrival = now
        self._layer_rate.update(now, self.bytes)

    @property
    def arriving(self) -> bool:
        """arriving: this layer's packets are coming (the last one at most ``ARRIVAL_WINDOW`` seconds ago).

        Chromium may send fewer layers than negotiated (small captures, CPU load, bandwidth).
        """
        self.sample()
        return self._last_arrival is not None and self._clock() - self._last_arrival <= ARRIVAL_WINDOW

    @property
    def arriving_layers(self) -> tuple[Producer, ...]:
        """arriving_layers: the layers of this Producer's track that are arriving, lowest first."""
        return tuple(layer for layer in self.layers if layer.arriving)

    @property
    def recent_bitrate(self) -> float:
        """recent_bitrate is this layer's bit/s over its last complete window of at least one second."""
        self.sample()
        return self._layer_rate.bitrate

    @property
    def ssrc(self) -> int | None:
        """ssrc is the publisher's media SSRC once known (from the SDP or the first packet)."""
        return self.receiver.media_ssrc

    def on_rtp(self, packet: RtpPacket) -> None:
        """on_rtp handles one inbound (RTX-unwrapped) ``RtpPacket`` (receivers without ``on_fields``, tests)."""
        level = packet.extensions.audio_level
        self.on_fields(
            packet.ssrc, packet.sequence_number, packet.timestamp, packet.marker, packet.payload,
            packet.padding_size, 0x7F if level is None else ((0x80 if level[0] else 0) | (level[1] & 0x7F)),
            time.time(),
        )

    def on_fields(self, ssrc: int, seq: int, ts: int, marker: int, payload: builtins.bytes, padding: int,
                  audio_level: int, arrival: float) -> None:
        """on_fields is called by the receiver for every inbound packet, already parsed (`arrival`: time.time())."""
        self.packets += 1
        self.bytes += len(payload)
        self._seq.add(seq)
        video = self._video
        keyframe = is_keyframe_start(self.mime, payload) if video else True
        if keyframe and video:
            self.keyframes_received += 1
        if marker and video:
            self.frames_received += 1
        sinks = self.sinks
        if not sinks:
            return
        ntp = int((arrival + NTP_OFFSET) * 4294967296.0) & NTP_MASK  # modulo 2^64: NTP era 1 from 2036
        ast = (ntp >> 14) & 0xFFFFFF
        inbound = Inbound(ssrc, seq, ts, marker, payload, keyframe, ntp, ast, audio_level, padding)
        slots = self._slots
        if slots is not None and compiled_fanout is not None:
            rest = compiled_fanout(
                slots, inbound, payload, ssrc, seq, ts, marker, keyframe, ntp, padding, audio_level, self._clock(),
            )
            if rest is not None:
                for i in rest:
                    sinks[i].forward(inbound)
            return
        for consumer in sinks:
            consumer.forward(inbound)

    @property
    def ingress_ready(self) -> bool:
        """ingress_ready: the receiver may arm its C path for this Producer (which reads CLOCK_MONOTONIC)."""
        return self._compiled and compiled_fanout is not None and self._clock is time.monotonic and not self.closed

    def _forward_python(self, inbound: Any, rest: list[int] | None) -> None:
        """_forward_python forwards a packet from the C path to the sinks it left over (`rest`; None: all)."""
        sinks = self.sinks
        for i in range(len(sinks)) if rest is None else rest:
            sinks[i].forward(inbound)

    def set_sinks(self, sinks: tuple[DownTarget, ...]) -> None:
        """set_sinks replaces the sink tuple whole (room mailbox task only).

        The C fan-out serves every entry that is a C slot and returns the others' indexes (a Sink's None among
        them) to Python, so a Sink beside compiled Consumers leaves their path as it was.
        """
        slots = tuple(getattr(c, "cslot", None) for c in sinks)
        self._slots = slots if any(s is not None for s in slots) else None
        self.sinks = sinks

    def request_keyframe(self, optional: bool = False) -> bool:
        """request_keyframe sends a PLI upstream, at most one per `keyframe_min_interval`; True if sent now.

        A throttled request is not lost: one PLI is scheduled for the end of the interval (coalesced).

        An *optional* request (a layer switch of a subscriber that keeps its picture meanwhile, a keyframe asked
        for by a subscriber whose link congested lately) passes the track's gate: at most one per
        ``switch_keyframe_interval`` for all the layers of the track together (a token bucket: ``OPTIONAL_BURST``
        at once after a calm),
        because Chromium's VP8 simulcast encoder answers a request on any layer with a keyframe on every layer,
        so each one reaches every subscriber of the track, the classrooms on good links too. One held back is
        sent when the gate opens, unless a keyframe of this layer arrived meanwhile (someone else's request
        served it).
        """
        ssrc = self.receiver.media_ssrc
        if not self._video or ssrc is None or self.closed:
            return False
        if optional and self.switch_keyframe_interval > 0:
            gate, now = self.track, self._clock()
            gate._optional_tokens = min(
                OPTIONAL_BURST, gate._optional_tokens + (now - gate._optional_at) / self.switch_keyframe_interval)
            gate._optional_at = now
            if gate._optional_tokens < 1:
                self.keyframes_deferred += 1
                self._optional_mark = self.keyframes_received
                if self._optional_timer is None:
                    wait = (1 - gate._optional_tokens) * self.switch_keyframe_interval
                    self._optional_timer = asyncio.get_running_loop().call_later(wait, self._optional_due)
                return False
            gate._optional_tokens -= 1
        if not self.keyframe_throttle.allow():
            if self._deferred is None:
                self._deferred = asyncio.get_running_loop().call_later(
                    self.keyframe_throttle.wait_time(), self._deferred_keyframe
                )
            return False
        self.keyframes_requested += 1
        task = asyncio.get_running_loop().create_task(self.receiver.send_pli(ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _deferred_keyframe(self) -> None:
        self._deferred = None
        self.request_keyframe()

    def _optional_due(self) -> None:
        """_optional_due: the gate opened for a held-back optional request; sent unless a keyframe came since."""
        self._optional_timer = None
        if self.keyframes_received == self._optional_mark:
            self.request_keyframe(optional=True)

    def close(self) -> None:
        """close detaches the producer from its receiver and drops its sinks."""
        self.closed = True
        self.receiver.disarm()
        self.receiver.on_rtp = None
        self.receiver.on_fields = None
        self.sinks = ()
        self._slots = None
        for timer in (self._deferred, self._optional_timer):
            if timer is not None:
                timer.cancel()
        self._deferred = self._optional_timer = None

    def stats(self) -> ProducerStats:
        """stats returns a snapshot of the inbound stream."""
        return ProducerStats(
            participant_id=self.participant_id,
            source=self.source,
            kind=self.kind,
            packets=self.packets,
            bytes=self.bytes,
            bitrate=self._rate.update(self._clock(), self.bytes),
            packets_lost=self._seq.lost,
            keyframes_requested=self.keyframes_requested,
            keyframes_throttled=self.keyframe_throttle.dropped,
            keyframes_deferred=self.keyframes_deferred,
            keyframes_received=self.keyframes_received,
            consumers=len(self.sinks),
            rid=self.rid,
            layer=self.layer,
            arriving=self.arriving,
        )


def link_layers(layers: tuple[Producer, ...]) -> Producer:
    """link_layers makes `layers` (lowest spatial layer first) one simulcast track; returns the track's Producer.

    Every layer gets the same ``layers`` tuple and its index in it (``layer``). Muting and closing apply to
    every layer of a track (the room does both through ``layers``).
    """
    for i, producer in enumerate(layers):
        producer.layers = layers
        producer.layer = i
    return layers[0]
