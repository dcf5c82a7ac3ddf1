"""participant: the recorder, an in-process participant of a room that writes what it receives.

It joins the room with role ``recorder`` (``sfu.participant.RECORDER_SLOTS``: ``program-video``, the
lecture picture the room switches between screen, presenter and floor holder at keyframes, plus the
original ``presenter-video``, ``screen``, ``floor-video``, ``presenter-audio`` and ``floor-audio``) and
answers its down offer with an in-process aiortc ``SfuPeerConnection`` in forwarding mode: every receiver is
a ``ForwardingReceiver``, which hands over each decrypted RTP packet and never decodes. Packets become
frames (``recorder.depacketize``) and frames are remuxed into crash-safe segments (``recorder.writer``);
room events become the timeline (``recorder.timeline``). Nothing here decodes or encodes media.

The recording runs from ``start()`` to the moment ``stop()`` is called. A busy server reads packets late,
so at that moment the last media sent before it may still be on its way: ``stop()`` waits (at most
``DRAIN_SECONDS``) until every live slot that was carrying media has received a frame timed after the
stop, and cuts each slot there (``SegmentWriter.end``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy
from aiortc.rtp import RtpPacket

from recorder.depacketize import FrameAssembler
from recorder.timeline import Timeline, TimelineEvent
from recorder.writer import SegmentWriter
from sfu.codec import AUDIO_MIME
from sfu.errors import SfuError
from sfu.events import (
    Event,
    FloorChanged,
    ParticipantJoined,
    ParticipantLeft,
    PeerFailed,
    PresenterChanged,
    ServerOffer,
    SlotChanged,
)
from sfu.hooks.connection import SfuPeerConnection
from sfu.hooks.receiver import ForwardingReceiver
from sfu.participant import RECORDER_ROLE, RECORDER_SLOTS, Capabilities
from sfu.room import Room

log = logging.getLogger("taphuan.recorder")

META_FILE = "meta.json"
RECORDER_NAME = "Ghi hình"
DRAIN_SECONDS = 2.0  # stop() waits at most this long for media sent before it (and counts as live a slot
# whose last frame came within this time)
SLOT_KINDS = dict(RECORDER_SLOTS)


@dataclass(frozen=True)
class RecorderOptions:
    """RecorderOptions: how the recorder connects and writes (from config.sfu and config.recorder)."""

    ice_addresses: list[str] = field(default_factory=list)  # [] = aioice's default, like the SFU's Peers
    segment_seconds: float = 4.0


def write_meta(directory: Path, **values: Any) -> None:
    """write_meta merges `values` into the recording's meta.json (written whole, then renamed)."""
    path = directory / META_FILE
    meta = read_meta(directory)
    meta.update(values)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def read_meta(directory: Path) -> dict[str, Any]:
    """read_meta reads meta.json ({} when absent or unreadable)."""
    try:
        data = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RecordingParticipant:
    """RecordingParticipant records one room into `directory` from ``start()`` to ``stop()``.

    `on_people(n)` is called whenever the number of other (non-recorder) participants changes;
    `on_lost()` when the room dropped the recorder (its Peer failed, or the room closed).
    """

    def __init__(
        self,
        room: Room,
        directory: Path,
        options: RecorderOptions,
        on_people: Callable[[int], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.room = room
        self.directory = directory
        self.options = options
        self.participant_id = f"rec-{secrets.token_hex(4)}"
        self.video_mime = room.video_mime
        self.on_people = on_people
        self.on_lost = on_lost
        self._clock = clock
        self.t0 = clock()
        self.started_wall = time.time()  # the wall-clock time of t0 (set again by start)
        self.stopped_wall: float | None = None  # the wall-clock time stop() was called
        self.pc: SfuPeerConnection | None = None
        self.writers: dict[str, SegmentWriter] = {}
        self.assemblers: dict[str, FrameAssembler] = {}
        self.receivers: dict[str, ForwardingReceiver] = {}
        self.names: dict[str, str] = {}
        self.others: set[str] = set()
        self.presenter_id: str | None = None
        self.slot_states: dict[str, tuple[str | None, str]] = {}
        self.timeline: Timeline | None = None
        self.stopped = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._draining: set[str] = set()  # slots stop() waits for
        self._drained: asyncio.Event | None = None

    @property
    def elapsed(self) -> float:
        """elapsed is the time since the recording started (seconds)."""
        return self._clock() - self.t0

    @property
    def duration(self) -> float:
        """duration is the longest slot written so far (seconds)."""
        return max((w.duration for w in self.writers.values()), default=0.0)

    async def start(self) -> None:
        """start creates the directory, joins the room (raises SfuError) and starts writing when media flows."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.t0, self.started_wall = self._clock(), time.time()
        write_meta(self.directory, video_codec=self.room.video_codec, video_mime=self.video_mime,
                   started_at=self.started_wall, segment_seconds=self.options.segment_seconds,
                   slots={slot: kind for slot, kind in RECORDER_SLOTS})
        self.timeline = Timeline(self.directory)
        for slot, kind in RECORDER_SLOTS:
            mime = self.video_mime if kind == "video" else AUDIO_MIME
            self.writers[slot] = SegmentWriter(self.directory, slot, mime, self.t0, self.options.segment_seconds)
            self.assemblers[slot] = FrameAssembler(mime, on_loss=partial(self._ask_keyframe, slot))
        await self.room.join(self.participant_id, RECORDER_ROLE, RECORDER_NAME, Capabilities(), self._on_event,
                             admitted=True)  # it only receives
        self._watchdog = asyncio.get_running_loop().create_task(self._keyframe_watchdog())

    def marker(self, title: str) -> None:
        """marker adds a trainer's chapter marker at the current time."""
        if self.timeline is not None and not self.stopped:
            self.timeline.add(TimelineEvent(round(self.elapsed, 3), "marker", title=title))

    async def stop(self) -> None:
        """stop ends the recording now: waits for the media sent before now (see the module doc), then leaves
        the room and closes the peer connection and every segment (idempotent).
        """
        if self.stopped:
            return
        self.stopped = True
        end, self.stopped_wall = self.elapsed, time.time()
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._drain(end)
        for receiver in self.receivers.values():
            receiver.on_rtp = None
        with contextlib.suppress(SfuError):
            await self.room.leave(self.participant_id)
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()
        for writer in self.writers.values():
            writer.close()
        duration = self.duration
        if self.timeline is not None:
            self.timeline.add(TimelineEvent(round(duration, 3), "stop"))
            self.timeline.close()
        write_meta(self.directory, stopped_at=self.stopped_wall, duration=duration)
        for task in list(self._tasks):
            task.cancel()

    # ----------------------------------------------------------------------------- room events

    async def _on_event(self, event: Event) -> None:
        if self.stopped:
            return
        t = round(self.elapsed, 3)
        if isinstance(event, ServerOffer):
            await self._answer(event)
        elif isinstance(event, ParticipantJoined):
            self.names[event.participant_id] = event.name
            if event.role != RECORDER_ROLE:
                self.others.add(event.participant_id)
                self._people_changed()
        elif isinstance(event, ParticipantLeft):
            if event.participant_id in self.others:
                self.others.discard(event.participant_id)
                self._people_changed()
        elif isinstance(event, FloorChanged):
            if self.timeline is not None and (event.by is not None or event.participant_id is not None):
                self.timeline.add(TimelineEvent(t, "floor", event.participant_id,
                                                self.names.get(event.participant_id or "", "")))
        elif isinstance(event, PresenterChanged):
            self.presenter_id = event.participant_id
            if self.timeline is not None:
                self.timeline.add(TimelineEvent(t, "presenter", event.participant_id,
                                                self.names.get(event.participant_id or "", "")))
        elif isinstance(event, SlotChanged):
            self._slot_changed(t, event)
        elif isinstance(event, PeerFailed):
            log.warning("recorder %s: %s peer %s", self.participant_id, "down" if event.down else "up", event.state)
            if self.on_lost is not None:
                self.on_lost()

    def _slot_changed(self, t: float, event: SlotChanged) -> None:
        before = self.slot_states.get(event.slot, (None, "empty"))
        self.slot_states[event.slot] = (event.participant_id, event.state)
        if self.timeline is None:
            return
        name = self.names.get(event.participant_id or "", "")
        if event.slot == "program-video" and (before[0], before[1]) != (event.participant_id, event.state):
            self.timeline.add(TimelineEvent(t, "program", event.participant_id, name, source=event.source))
        if event.slot == "screen" and event.state == "live" and before[1] != "live":
            self.timeline.add(TimelineEvent(t, "screen", event.participant_id, name, source="screen"))

    def _people_changed(self) -> None:
        if self.on_people is not None:
            self.on_people(len(self.others))

    async def _answer(self, offer: ServerOffer) -> None:
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await self.pc.close()
        pc = self.pc = SfuPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE),
            ice_addresses=self.options.ice_addresses, forwarding=True,
        )
        pc.on("connectionstatechange", partial(self._pc_state, pc))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        slot_of = {mid: slot for slot, mid in offer.slots.items()}
        self.receivers = {}
        for transceiver in pc.getTransceivers():
            slot = slot_of.get(str(transceiver.mid))
            receiver = transceiver.receiver
            if slot is None or not isinstance(receiver, ForwardingReceiver):
                continue
            self.receivers[slot] = receiver
            receiver.on_rtp = partial(self._on_rtp, slot)
        with contextlib.suppress(SfuError):
            await self.room.answer_down(self.participant_id, pc.localDescription.sdp)

    def _pc_state(self, pc: SfuPeerConnection) -> None:
        if pc is self.pc and pc.connectionState in ("failed", "closed") and not self.stopped:
            log.warning("recorder %s: connection %s", self.participant_id, pc.connectionState)
            if self.on_lost is not None:
                self.on_lost()

    # ------------------------------------------------------------------------------------ media

    def _on_rtp(self, slot: str, packet: RtpPacket) -> None:
        frames = self.assemblers[slot].push(packet.sequence_number, packet.timestamp, bool(packet.marker),
                                            packet.payload, self._clock())
        if frames:
            writer = self.writers[slot]
            for frame in frames:
                writer.write(frame)
            if writer.past_end and slot in self._draining:
                self._draining.discard(slot)
                if not self._draining and self._drained is not None:
                    self._drained.set()

    async def _drain(self, end: float) -> None:
        """_drain cuts every slot at `end` and waits until each live one got a frame timed after it."""
        for writer in self.writers.values():
            writer.end = round(end * writer.rate)
        pc = self.pc
        if pc is None or pc.connectionState != "connected":
            return
        now = self._clock()
        self._draining = {slot for slot, w in self.writers.items() if w.failed is None and not w.past_end
                          and w.last_arrival is not None and now - w.last_arrival < DRAIN_SECONDS
                          and self.slot_states.get(slot, (None, "live"))[1] == "live"}
        if not self._draining:
            return
        self._drained = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), DRAIN_SECONDS)
        if self._draining:
            log.info("recorder %s: stopped without the last media of %s", self.participant_id,
                     ", ".join(sorted(self._draining)))

    def _ask_keyframe(self, slot: str) -> None:
        receiver = self.receivers.get(slot)
        if receiver is None or receiver.media_ssrc is None or self.stopped:
            return
        task = asyncio.get_running_loop().create_task(receiver.send_pli(receiver.media_ssrc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keyframe_watchdog(self) -> None:
        """_keyframe_watchdog repeats the keyframe request of a slot still waiting for one (every second)."""
        while not self.stopped:
            await asyncio.sleep(1.0)
            for slot, assembler in self.assemblers.items():
                if assembler.waiting_keyframe and self.receivers.get(slot) is not None:
                    assembler.reset_keyframe_request()
                    self._ask_keyframe(slot)
