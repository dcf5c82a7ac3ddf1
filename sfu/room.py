"""room: Room (one Meeting's media): the signalling layer's API and the mailbox task that changes the room.

Who owns what, and which task protects it
-----------------------------------------
* The room's **mailbox task** (``Room.mailbox``) is the only code that changes the room: participants,
  their Peers, Producers and Consumers, floor, presenter, lock, grid pages. Every public coroutine of
  ``Room`` posts a typed action and awaits the reply; errors come back as ``SfuError``.
* **Forwarding** runs in aiortc's receive callbacks on the same event loop
  (``ForwardingReceiver -> Producer.on_rtp -> Consumer.forward``, or ``Sink.forward`` for an in-process
  subscriber). It only reads ``Producer.sinks``, a tuple the mailbox task replaces whole (copy on write),
  so it needs no lock.
* **RTCP** from subscribers arrives in aiortc's callbacks too and touches only its Consumer's counters and
  its source's keyframe throttle.
* **Events** leave through one ``EventOutbox`` task per participant: a slow WebSocket never blocks the room.
* Timers (resume window, empty-room grace) only ``post`` actions to the mailbox.
* The signalling layer reads the room through ``snapshot()`` (frozen, see sfu/snapshot.py) and the replies of
  its calls (e.g. ``give_floor`` returns the floor before and after), never through these objects.

What a participant may do is its ``Capabilities``, given at join; its role is a label the room passes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from sfu.actions import (
    AddCandidate,
    AnswerDown,
    Bind,
    Choose,
    CloseRoom,
    Detach,
    GiveFloor,
    GraceExpired,
    Join,
    LayersChanged,
    Leave,
    Mute,
    MuteAll,
    PeerLost,
    Publish,
    RaiseHand,
    Reallocate,
    Restart,
    Resume,
    ResumeExpired,
    SetAudioOnly,
    SetGridPage,
    SetLocked,
    SetPresenter,
)
from sfu.codec import AUDIO_MIME, video_mime
from sfu.config import SfuConfig
from sfu.consumer import Consumer, Source
from sfu.downlinks import PERIOD, Downlinks
from sfu.errors import SfuError
from sfu.events import (
    Event,
    FloorChanged,
    GridChanged,
    HandChanged,
    MuteRequested,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantState,
    ParticipantStats,
    PeerFailed,
    PresenterChanged,
    RelayWants,
    RoomStats,
    ServerOffer,
    SlotChanged,
)
from sfu.hooks.receiver import ForwardingReceiver
from sfu.mailbox import Action, Mailbox
from sfu.participant import Capabilities, EventCallback, EventOutbox, Participant, slots_for
from sfu.peer import Peer
from sfu.plan import grid_pages, plan
from sfu.producer import SOURCES, Producer, link_layers
from sfu.relay import apply_binding, release, unbind
from sfu.rtp import report_period
from sfu.sink import DownTarget, Sink
from sfu.snapshot import Joined, ParticipantView, RoomSnapshot
from sfu.stats import Forwarded, UplinkStats
from sfu.tasks import Ticker

logger = logging.getLogger(__name__)

LAYER_WATCH_PERIOD = 0.5  # seconds between two looks at which simulcast layers arrive (Producer.sample)


class Room:
    """Room is one Meeting's media: participants, presenter, floor, lock, grid pages; see the module doc."""

    def __init__(
        self,
        room_id: str,
        video_codec: str,
        config: SfuConfig,
        count_all: Callable[[], int],
        on_closed: Callable[[Room], None],
        clock: Callable[[], float] = time.monotonic,
        forwarded: Forwarded | None = None,
    ) -> None:
        self.id = room_id
        self.video_codec = video_codec.upper()
        self.video_mime = video_mime(video_codec)
        self.config = config
        self.participants: dict[str, Participant] = {}
        self.presenter_id: str | None = None
        self.floor_id: str | None = None
        self.locked = False
        self.closed = False
        self._count_all = count_all
        self._on_closed = on_closed
        self._clock = clock
        # what the consumers of closed peers sent (the Sfu's total over its rooms, or this room's own)
        self.forwarded_gone = forwarded if forwarded is not None else Forwarded()
        self._order = 0
        self._grace: asyncio.TimerHandle | None = None
        # sender reports and ICE consent of every transport, run from the room's inbound media (timer: 1 s late
        # at most), several per run (up to 0.25 s early)
        self.ticker = Ticker(report_period, grace=1.0, slack=0.25)
        self._arriving: dict[Producer, tuple[bool, ...]] = {}  # simulcast tracks: which layers arrived at the last look
        self._layers_changed = False  # a LayersChanged is posted and not handled yet
        self._watching = False  # _watch_layers is a job of the ticker
        self.mailbox = Mailbox(f"room-{room_id}", self._handle)
        self.mailbox.start()
        # each subscriber's estimate, layers and pacer (sfu/downlinks.py), every PERIOD on the ticker
        self.downlinks = Downlinks(self.participants, lambda: self.mailbox.post(Reallocate()),
                                   temporal=self.video_codec == "VP8", enabled=config.allocation, clock=clock)
        self.ticker.add(self.downlinks.tick, lambda: PERIOD, early=False)  # its counts are in periods of PERIOD
        self._schedule_grace()

    # ------------------------------------------------------------------------------ public API

    async def join(self, participant_id: str, role: str, name: str, capabilities: Capabilities,
                   on_event: EventCallback, admitted: bool = False, sinks: Mapping[str, Sink] | None = None,
                   via: str | None = None) -> Joined:
        """join adds a participant; its down offer arrives as a ServerOffer event. Raises SfuError("full").

        `role` is a label passed on in events; `capabilities` say what the participant may do. A locked room
        refuses it unless `admitted` (a moderator let it in from the lobby) or ``capabilities.enter_locked``.
        With `sinks` (slot name -> Sink) the participant receives in-process through them instead: no down
        Peer and no offer; the slot plan fills the slots it knows, ``choose`` picks the source of the others.
        With `via` (a relay participant's id) it is a ghost of another node's participant: no Peer (give it
        `sinks={}`), its media is what `bind` says the relay's link carries (docs/sfu.md, "Cascade").
        """
        return await self._ask(Join(participant_id, role, name, capabilities, on_event, admitted, sinks, via))

    async def bind(self, relay_id: str, label: str, owner_id: str | None, source: str | None) -> None:
        """bind: the stream relay `relay_id` publishes as `label` now carries `source` of its ghost `owner_id`
        (None: nothing); the ghost's slots in others' views switch to it (docs/sfu.md, "Cascade")."""
        await self._ask(Bind(relay_id, label, owner_id, source))

    async def choose(self, participant_id: str, slot: str, source_participant_id: str | None,
                     source: str | None = None) -> None:
        """choose makes `source` ("camera", "mic", "screen") of `source_participant_id` fill one of the
        participant's own slots, whatever the slot plan says; None gives the slot back to the plan.

        The slot switches like any other (a video slot at the new source's next keyframe, asked for at once).
        """
        await self._ask(Choose(participant_id, slot, source_participant_id, source))

    async def publish(
        self, participant_id: str, offer_sdp: str, sources: Mapping[str, str] | None = None
    ) -> str:
        """publish answers an up offer; `sources` maps transceiver mid to camera/mic/screen."""
        return await self._ask(Publish(participant_id, offer_sdp, dict(sources or {})))

    async def answer_down(self, participant_id: str, answer_sdp: str) -> None:
        """answer_down applies the client's answer to the last ServerOffer."""
        await self._ask(AnswerDown(participant_id, answer_sdp))

    async def add_candidate(
        self, participant_id: str, which: str, candidate: str, sdp_mid: str | None = None,
        sdp_mline_index: int | None = None,
    ) -> None:
        """add_candidate adds a trickled candidate to the ``up`` or ``down`` Peer ("" = end of candidates)."""
        if which not in ("up", "down"):
            raise SfuError("sdp-invalid", f"which must be up or down, not {which!r}")
        await self._ask(AddCandidate(participant_id, which == "down", candidate, sdp_mid, sdp_mline_index))

    async def raise_hand(self, participant_id: str, up: bool) -> None:
        """raise_hand raises or lowers the participant's hand (everyone gets HandChanged)."""
        await self._ask(RaiseHand(participant_id, up))

    async def give_floor(self, actor_id: str, target_id: str | None) -> tuple[str | None, str | None]:
        """give_floor gives the floor to `target_id` (None: nobody); moderators only. Returns (before, after)."""
        return await self._ask(GiveFloor(actor_id, target_id))

    async def set_presenter(self, actor_id: str, target_id: str | None) -> tuple[str | None, str | None]:
        """set_presenter makes one who may present the presenter; moderators only. Returns (before, after)."""
        return await self._ask(SetPresenter(actor_id, target_id))

    async def mute(self, actor_id: str, target_id: str, source: str, muted: bool = True) -> tuple[bool, bool]:
        """mute stops (muted=False: resumes) forwarding a source; the target gets MuteRequested.

        Returns whether the source was muted before and is after.
        """
        return await self._ask(Mute(actor_id, target_id, source, muted))

    async def mute_all(self, actor_id: str, targets: tuple[str, ...], source: str) -> tuple[str, ...]:
        """mute_all mutes `source` of each of `targets` still in the room, in one step; moderators only.

        Returns the ids muted (each target gets MuteRequested).
        """
        return await self._ask(MuteAll(actor_id, tuple(targets), source))

    async def set_grid_page(self, participant_id: str, page: int) -> int:
        """set_grid_page shows grid page `page` (clamped) to a grid viewer; returns the page shown."""
        return await self._ask(SetGridPage(participant_id, page))

    async def set_audio_only(self, participant_id: str, audio_only: bool) -> None:
        """set_audio_only stops (or resumes) every video slot of the participant's down Peer; no renegotiation."""
        await self._ask(SetAudioOnly(participant_id, audio_only))

    async def set_locked(self, actor_id: str, locked: bool) -> tuple[bool, bool]:
        """set_locked locks or unlocks the room; moderators only. Returns (locked before, locked after)."""
        return await self._ask(SetLocked(actor_id, locked))

    async def leave(self, participant_id: str) -> ParticipantView:
        """leave removes the participant now; returns how it was when it left."""
        return await self._ask(Leave(participant_id))

    async def detach(self, participant_id: str) -> None:
        """detach: the connection is lost; peers close, slots show reconnecting, resume within the window."""
        await self._ask(Detach(participant_id))

    async def resume(self, participant_id: str, token: str, on_event: EventCallback) -> Joined:
        """resume brings back a detached participant with its capabilities (new down ServerOffer; publish again)."""
        return await self._ask(Resume(participant_id, token, on_event))

    async def restart(self, participant_id: str) -> None:
        """restart renews the participant's media without leaving: both Peers are replaced.

        A new down ServerOffer (same slots) goes out and the participant publishes again; it keeps its floor,
        hand, presenter role, grid page, mutes and audio-only choice. It is how a participant comes back from
        ``reconnecting`` after PeerFailed (its signalling connection still open), or renews connections its
        client saw fail. Until it publishes again, its slots in others' views say ``reconnecting``.
        """
        await self._ask(Restart(participant_id))

    async def close(self) -> None:
        """close closes every Peer and stops the room."""
        if self.mailbox.closed:
            return
        try:
            await self._ask(CloseRoom())
        except SfuError:
            pass
        await self.mailbox.close()

    def snapshot(self) -> RoomSnapshot:
        """snapshot is the room now, frozen: participants in join order, presenter, floor, lock, codec."""
        return RoomSnapshot(
            room_id=self.id, video_codec=self.video_codec, presenter_id=self.presenter_id, floor_id=self.floor_id,
            locked=self.locked, participants=tuple(ParticipantView.of(p) for p in self.participants.values()),
        )

    def forwarded(self) -> tuple[int, int]:
        """forwarded is what the consumers of this room's open peers have sent so far: (RTP packets, payload bytes)."""
        consumers = [c for p in self.participants.values() for c in p.consumers.values() if isinstance(c, Consumer)]
        return sum(c.packets_sent for c in consumers), sum(c.bytes_sent for c in consumers)

    def stats(self) -> RoomStats:
        """stats is a snapshot of every participant's producers and consumers (operator console)."""
        return RoomStats(
            room_id=self.id,
            participants=tuple(
                ParticipantStats(
                    participant_id=p.id,
                    role=p.role,
                    state=p.state,
                    producers=tuple(layer.stats() for pr in p.producers.values() for layer in pr.layers),
                    consumers=tuple(c.stats() for c in p.consumers.values()),
                    downlink=self.downlinks.stats(p),
                    uplink=UplinkStats.of(p.up.pc.uplink) if p.up is not None else None,
                )
                for p in list(self.participants.values())
            ),
        )

    async def _ask(self, action: Action[Any]) -> Any:
        if self.closed:
            raise SfuError("closed", f"room {self.id} is closed")
        return await self.mailbox.ask(action)

    # --------------------------------------------------------------------------- mailbox task

    async def _handle(self, action: Action[Any]) -> Any:
        if self.closed:
            if isinstance(action, CloseRoom | GraceExpired | PeerLost | ResumeExpired | LayersChanged):
                return None
            raise SfuError("closed", f"room {self.id} is closed")
        handler = getattr(self, "_on_" + type(action).__name__, None)
        if handler is None:
            raise SfuError("state", f"unknown action {type(action).__name__}")
        return await handler(action)

    def _get(self, participant_id: str) -> Participant:
        p = self.participants.get(participant_id)
        if p is None:
            raise SfuError("not-found", f"no participant {participant_id!r} in room {self.id}")
        return p

    def _moderator(self, actor_id: str) -> Participant:
        actor = self._get(actor_id)
        if not actor.capabilities.moderate:
            raise SfuError("forbidden", f"{actor.id} ({actor.role}) may not moderate")
        return actor

    def _broadcast(self, event: Event, exclude: Participant | None = None) -> None:
        for p in self.participants.values():
            if p is not exclude:
                p.send(event)

    async def _on_Join(self, a: Join) -> Joined:  # noqa: N802
        if a.participant_id in self.participants:
            raise SfuError("exists", f"{a.participant_id} is already in the room (resume instead)")
        if len(self.participants) >= self.config.max_participants_per_room:
            raise SfuError("full", f"room {self.id} has {len(self.participants)} participants")
        if self._count_all() >= self.config.max_participants:
            raise SfuError("full", "server is full")
        if self.locked and not a.admitted and not a.capabilities.enter_locked:
            raise SfuError("forbidden", "the room is locked")
        self._order += 1
        outbox = EventOutbox(a.participant_id, a.on_event)
        p = Participant(a.participant_id, a.role, a.name, a.capabilities, outbox, self._order, via=a.via)
        self.participants[p.id] = p
        self._cancel_grace()
        for other in self.participants.values():
            if other is not p:
                p.send(ParticipantJoined(other.id, other.role, other.name))
                if other.hand_raised:
                    p.send(HandChanged(other.id, True))
        if self.presenter_id is None and p.capabilities.present:
            self.presenter_id = p.id
            self._broadcast(PresenterChanged(p.id, None), exclude=p)
        p.send(PresenterChanged(self.presenter_id, None))
        p.send(FloorChanged(self.floor_id, None))
        self._broadcast(ParticipantJoined(p.id, p.role, p.name), exclude=p)
        relay = self.participants.get(a.via) if a.via is not None else None
        if relay is not None:  # what its link already carries for it
            for label in [label for label, (owner_id, _) in relay.bound.items() if owner_id == p.id]:
                apply_binding(self.participants, relay, label)
        try:
            if a.sinks is not None:
                p.consumers = dict(a.sinks)
            else:
                await self._open_down(p)
        except Exception:
            await self._remove(p, "error")
            raise
        self._reassign()
        return Joined(ParticipantView.of(p), p.resume_token)

    async def _open_down(self, p: Participant) -> None:
        peer = Peer(p.id, True, self.config, self.video_mime, self._peer_lost, self.ticker)
        p.down = peer
        for slot, kind in slots_for(p.capabilities, self.config.grid_slots):
            sender = peer.add_slot(kind)
            p.consumers[slot] = Consumer(
                p.id, slot, kind, sender, peer.wire_for, self._clock,
                compiled=self.config.compiled_fanout and self.config.fast_path,
            )
        up = slots_for(Capabilities(view_grid=True), self.config.grid_slots) if p.capabilities.relay == "down" else []
        for _, kind in up:  # a cascade link: one connection both ways, the other end sends on these
            peer.add_receive(kind)
        sdp = await peer.offer()
        p.slot_mids = {slot: peer.mid_of(c.sender) for slot, c in p.consumers.items() if isinstance(c, Consumer)}
        p.receive_mids = {slot: t.mid for (slot, _), t in zip(up, peer.receiving(), strict=True)}
        p.slot_view = {}
        p.send(ServerOffer(sdp=sdp, down=True, slots=dict(p.slot_mids), receive=dict(p.receive_mids)))

    async def _on_Publish(self, a: Publish) -> str:  # noqa: N802
        p = self._get(a.participant_id)
        if not p.capabilities.publish:
            raise SfuError("forbidden", f"{p.id} ({p.role}) may not publish")
        if p.state != "connected":
            raise SfuError("state", "resume first")
        for mid, source in a.sources.items():
            if source not in SOURCES and not p.capabilities.relay:  # a relay's streams are labelled by their slot
                raise SfuError("sdp-invalid", f"unknown source {source!r} for mid {mid}")
        if p.up is None:
            p.up = Peer(p.id, False, self.config, self.video_mime, self._peer_lost, self.ticker)
        answer, tracks = await p.up.answer(a.offer_sdp, a.sources, relay=p.capabilities.relay == "up")
        for mid, (kind, sender) in p.up.sending().items() if p.capabilities.relay == "up" else ():
            slot = a.sources.get(mid)  # a cascade link: the sections the origin receives are this relay's slots
            if slot is not None and slot not in p.consumers:
                p.consumers[slot] = Consumer(p.id, slot, kind, sender, p.up.wire_for, self._clock,
                                             compiled=self.config.compiled_fanout and self.config.fast_path)
                p.slot_mids[slot] = mid
        p.republish = set()
        for track in tracks:
            old = p.producers.pop(track.source, None)
            for layer in old.layers if old is not None else ():
                layer.close()
            layers = tuple(self._producer(p, track.kind, track.source, receiver) for receiver in track.layers)
            for layer in layers:
                layer.muted = track.source in p.muted
            p.producers[track.source] = link_layers(layers)
            if len(layers) > 1 and not self._watching:
                self._watching = True
                self.ticker.add(self._watch_layers, period=lambda: LAYER_WATCH_PERIOD)
        for label in list(p.bound):
            apply_binding(self.participants, p, label)
        self._reassign()
        return answer

    def _producer(self, p: Participant, kind: str, source: str, receiver: ForwardingReceiver) -> Producer:
        """_producer: a Producer of `p`'s `source` on `receiver` (one simulcast layer, or the whole track)."""
        return Producer(p.id, source, kind, self.video_mime if kind == "video" else AUDIO_MIME, receiver,
                        self.config.keyframe_min_interval, self._clock,
                        compiled=self.config.compiled_fanout and self.config.fast_path, rid=receiver.rid,
                        switch_keyframe_interval=self.config.switch_keyframe_interval)

    async def _on_Bind(self, a: Bind) -> None:  # noqa: N802
        relay = self._get(a.relay_id)
        if not relay.capabilities.relay:
            raise SfuError("forbidden", f"{relay.id} is not a relay")
        unbind(self.participants, relay, a.label)
        if a.owner_id is not None and a.source in SOURCES:
            relay.bound[a.label] = (a.owner_id, a.source)
            apply_binding(self.participants, relay, a.label)
        self._reassign()

    async def _on_AnswerDown(self, a: AnswerDown) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        if p.down is None:
            raise SfuError("state", "no down connection")
        await p.down.apply_answer(a.answer_sdp)
        if p.receive_mids:  # a "down" relay's way up: what the other end sends is published here by slot
            labels = {mid: slot for slot, mid in p.receive_mids.items()}
            for track in p.down.receiving():
                if track.mid in labels and labels[track.mid] not in p.producers:
                    p.producers[labels[track.mid]] = link_layers((self._producer(p, track.kind, labels[track.mid],
                                                                                 track.receiver),))
            for label in list(p.bound):
                apply_binding(self.participants, p, label)
            self._reassign()

    async def _on_AddCandidate(self, a: AddCandidate) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        peer = p.down if a.down else p.up
        if peer is None:
            raise SfuError("state", "no such connection")
        await peer.add_candidate(a.candidate, a.sdp_mid, a.sdp_mline_index)

    async def _on_Choose(self, a: Choose) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        if a.slot not in p.consumers:
            raise SfuError("not-found", f"{p.id} has no slot {a.slot!r}")
        if a.source_participant_id is None:
            p.chosen.pop(a.slot, None)
        elif a.source not in SOURCES:
            raise SfuError("sdp-invalid", f"unknown source {a.source!r}")
        else:
            p.chosen[a.slot] = (a.source_participant_id, a.source)
        self._reassign()

    async def _on_RaiseHand(self, a: RaiseHand) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        if p.hand_raised != a.raised:
            p.hand_raised = a.raised
            self._broadcast(HandChanged(p.id, a.raised))

    async def _on_GiveFloor(self, a: GiveFloor) -> tuple[str | None, str | None]:  # noqa: N802
        self._moderator(a.actor_id)
        before = self.floor_id
        if a.target_id is not None:
            target = self._get(a.target_id)
            if target.hand_raised:
                target.hand_raised = False
                self._broadcast(HandChanged(target.id, False))
        if a.target_id != self.floor_id:
            self.floor_id = a.target_id
            self._broadcast(FloorChanged(a.target_id, a.actor_id))
            self._reassign()
        return before, self.floor_id

    async def _on_SetPresenter(self, a: SetPresenter) -> tuple[str | None, str | None]:  # noqa: N802
        self._moderator(a.actor_id)
        before = self.presenter_id
        if a.target_id is not None and not self._get(a.target_id).capabilities.present:
            raise SfuError("forbidden", f"{a.target_id} may not present")
        if a.target_id != self.presenter_id:
            self.presenter_id = a.target_id
            self._broadcast(PresenterChanged(a.target_id, a.actor_id))
            self._reassign()
        return before, self.presenter_id

    async def _on_Mute(self, a: Mute) -> tuple[bool, bool]:  # noqa: N802
        actor = self._get(a.actor_id)
        target = self._get(a.target_id)
        if a.source not in SOURCES:
            raise SfuError("sdp-invalid", f"unknown source {a.source!r}")
        own = actor is target
        if not actor.capabilities.moderate and not (own and (a.muted or a.source not in target.forced_mute)):
            raise SfuError("forbidden", "only moderators mute others")
        before = a.source in target.muted
        self._set_muted(actor, target, a.source, a.muted)
        self._reassign()
        return before, a.muted

    async def _on_MuteAll(self, a: MuteAll) -> tuple[str, ...]:  # noqa: N802
        actor = self._moderator(a.actor_id)
        if a.source not in SOURCES:
            raise SfuError("sdp-invalid", f"unknown source {a.source!r}")
        targets = [t for t in (self.participants.get(pid) for pid in dict.fromkeys(a.targets))
                   if t is not None and t is not actor]
        for target in targets:
            self._set_muted(actor, target, a.source, True)
        self._reassign()
        return tuple(t.id for t in targets)

    def _set_muted(self, actor: Participant, target: Participant, source: str, muted: bool) -> None:
        """_set_muted records the mute and stops (or resumes) forwarding; a target muted by another is told."""
        own = actor is target
        if muted:
            target.muted.add(source)
            if not own:
                target.forced_mute.add(source)
        else:
            target.muted.discard(source)
            target.forced_mute.discard(source)
        producer = target.producers.get(source)
        for layer in producer.layers if producer is not None else ():
            layer.muted = muted
        if not own:
            target.send(MuteRequested(source, actor.id, muted))

    async def _on_SetGridPage(self, a: SetGridPage) -> int:  # noqa: N802
        p = self._get(a.participant_id)
        if "grid-0" not in p.consumers:
            raise SfuError("forbidden", f"{p.id} ({p.role}) has no grid")
        pages = grid_pages(self.participants, p, self.config.grid_slots)
        p.grid_page = max(0, min(a.page, pages - 1))
        self._reassign()
        return p.grid_page

    async def _on_SetAudioOnly(self, a: SetAudioOnly) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        p.audio_only = a.audio_only
        self._reassign()

    async def _on_SetLocked(self, a: SetLocked) -> tuple[bool, bool]:  # noqa: N802
        self._moderator(a.actor_id)
        before = self.locked
        self.locked = a.locked
        return before, self.locked

    async def _on_Leave(self, a: Leave) -> ParticipantView:  # noqa: N802
        p = self._get(a.participant_id)
        view = ParticipantView.of(p)
        await self._remove(p, a.reason)
        return view

    async def _on_Detach(self, a: Detach) -> None:  # noqa: N802
        await self._reconnecting(self._get(a.participant_id))

    async def _reconnecting(self, p: Participant) -> None:
        """_reconnecting: p's connection or media is lost: its Peers close, others see it ``reconnecting``, and it
        stays (floor, hand, presenter role) for the resume window: resume or restart brings it back."""
        if p.state == "reconnecting":
            return
        p.state = "reconnecting"
        await self._close_peers(p)
        token = p.resume_token
        p.resume_handle = asyncio.get_running_loop().call_later(
            self.config.resume_seconds, self.mailbox.post, ResumeExpired(p.id, token)
        )
        self._broadcast(ParticipantState(p.id, "reconnecting"), exclude=p)
        self._reassign()

    async def _on_Resume(self, a: Resume) -> Joined:  # noqa: N802
        p = self._get(a.participant_id)
        if a.token != p.resume_token:
            raise SfuError("token", "wrong resume token")
        old_outbox = p.outbox
        p.outbox = EventOutbox(p.id, a.on_event)
        asyncio.get_running_loop().create_task(old_outbox.close(0.1))
        for other in self.participants.values():
            if other is not p:
                p.send(ParticipantJoined(other.id, other.role, other.name))
        p.send(PresenterChanged(self.presenter_id, None))
        p.send(FloorChanged(self.floor_id, None))
        await self._renew(p)
        return Joined(ParticipantView.of(p), p.resume_token)

    async def _on_Restart(self, a: Restart) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        if p.down is None and p.consumers:
            raise SfuError("state", f"{p.id} receives in-process: no connections to renew")
        await self._renew(p)

    async def _renew(self, p: Participant) -> None:
        """_renew: p gets new Peers: the old ones close, a new down offer goes out, p is connected again."""
        if p.resume_handle is not None:
            p.resume_handle.cancel()
            p.resume_handle = None
        await self._close_peers(p)
        if p.state != "connected":
            p.state = "connected"
            self._broadcast(ParticipantState(p.id, "connected"), exclude=p)
        await self._open_down(p)
        self._reassign()

    async def _on_ResumeExpired(self, a: ResumeExpired) -> None:  # noqa: N802
        p = self.participants.get(a.participant_id)
        if p is not None and p.state == "reconnecting" and p.resume_token == a.token:
            await self._remove(p, "timeout")

    def _peer_lost(self, peer: Peer, state: str) -> None:
        self.mailbox.post(PeerLost(peer.participant_id, peer, state))

    async def _on_PeerLost(self, a: PeerLost) -> None:  # noqa: N802
        p = self.participants.get(a.participant_id)
        if p is None or a.peer not in (p.up, p.down):
            return
        p.send(PeerFailed(down=a.peer.down, state=a.state))
        await self._reconnecting(p)

    def _layer_switched(self, consumer: Consumer) -> None:
        """_layer_switched: a Consumer finished a layer switch (packet path): drop it from the old layer's sinks."""
        if not self.closed:
            self.mailbox.post(Reallocate())

    async def _on_Reallocate(self, a: Reallocate) -> None:  # noqa: N802
        if not self.closed:
            self._reassign()

    def _watch_layers(self) -> None:
        """_watch_layers (a Ticker job while simulcast tracks exist) reassigns when a track's arriving layers change.

        Runs in the media callbacks: it only samples the layers and posts ``LayersChanged`` to the mailbox.
        """
        tracks = {t for p in self.participants.values() for t in p.producers.values() if len(t.layers) > 1}
        if not tracks:
            self._arriving.clear()
            self._watching = False
            self.ticker.remove(self._watch_layers)
            return
        changed = False
        for track in tracks:
            for layer in track.layers:
                layer.sample()
            now = tuple(layer.arriving for layer in track.layers)
            changed = changed or self._arriving.get(track) != now
            self._arriving[track] = now
        for gone in set(self._arriving) - tracks:
            del self._arriving[gone]
        if changed and not self._layers_changed:
            self._layers_changed = True
            self.mailbox.post(LayersChanged())

    async def _on_LayersChanged(self, a: LayersChanged) -> None:  # noqa: N802
        self._layers_changed = False
        self._reassign()

    async def _on_GraceExpired(self, a: GraceExpired) -> None:  # noqa: N802
        if not self.participants and not self.closed:
            await self._shutdown()

    async def _on_CloseRoom(self, a: CloseRoom) -> None:  # noqa: N802
        await self._shutdown()

    async def _shutdown(self) -> None:
        self.closed = True
        self._cancel_grace()
        self._on_closed(self)
        for p in list(self.participants.values()):
            await self._remove(p, "room-closed", reassign=False)
        self.ticker.close()
        await self.mailbox.close()  # from our own task: stops after this action; later asks fail

    async def _close_peers(self, p: Participant) -> None:
        """_close_peers: p's peers close; what its consumers sent is added to `forwarded_gone` first."""
        if p.capabilities.relay:
            release(self.participants, p)
        for c in p.consumers.values():
            if isinstance(c, Consumer):
                self.forwarded_gone.add(c.packets_sent, c.bytes_sent)
        await p.close_peers()

    async def _remove(self, p: Participant, reason: str, reassign: bool = True) -> None:
        if self.participants.get(p.id) is not p:
            return
        del self.participants[p.id]
        if p.resume_handle is not None:
            p.resume_handle.cancel()
        await self._close_peers(p)
        if reason == "timeout":  # it may still have its signalling channel (its media never came back): tell it
            p.send(ParticipantLeft(p.id, reason))
        await p.outbox.close(0.5)
        if self.floor_id == p.id:
            self.floor_id = None
            self._broadcast(FloorChanged(None, None))
        if self.presenter_id == p.id:
            self.presenter_id = next((o.id for o in self.participants.values() if o.capabilities.present), None)
            self._broadcast(PresenterChanged(self.presenter_id, None))
        self._broadcast(ParticipantLeft(p.id, reason))
        if reassign:
            self._reassign()
        if not self.participants and not self.closed:
            self._schedule_grace()

    # ----------------------------------------------------------------------------- timers

    def _schedule_grace(self) -> None:
        self._cancel_grace()
        if not self.closed:
            self._grace = asyncio.get_running_loop().call_later(
                self.config.room_grace_seconds, self.mailbox.post, GraceExpired()
            )

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    # --------------------------------------------------------------------------- slot plan

    def _reassign(self) -> None:
        """_reassign recomputes every slot, switches consumers and replaces producers' sink tuples."""
        sinks: dict[Source, list[DownTarget]] = {}
        demand: dict[str, dict[tuple[str, str], bool]] = {}  # relay -> its ghosts' sources forwarded -> top layer
        for viewer in self.participants.values():
            if not viewer.consumers:
                continue
            fills = plan(viewer, self.participants, self.presenter_id, self.floor_id, self.config.grid_slots)
            if "grid-0" in viewer.consumers and not viewer.capabilities.relay:
                pages = grid_pages(self.participants, viewer, self.config.grid_slots)
                if viewer.grid_page >= pages:
                    viewer.grid_page = pages - 1
                    fills = plan(viewer, self.participants, self.presenter_id, self.floor_id, self.config.grid_slots)
            for slot, consumer in viewer.consumers.items():
                track, pid, source, state = fills.get(slot, (None, None, None, "empty"))
                owner = self.participants.get(pid) if pid is not None else None
                if owner is not None and owner.via is not None and source is not None and state in ("live", "empty"):
                    top = demand.setdefault(owner.via, {})
                    top[(owner.id, source)] = top.get((owner.id, source), False) or not slot.startswith("grid-")
                producer = None
                if track is not None:
                    producer, state = self.downlinks.apply(viewer, slot, track, consumer, state)
                current = consumer.source
                if isinstance(consumer, Consumer) and producer is not None and isinstance(current, Producer) \
                        and any(layer is producer for layer in current.layers):
                    consumer.on_switched = self._layer_switched
                    consumer.switch_layer(producer)  # another layer of the same track: no freeze
                else:
                    consumer.switch(producer)
                for wanted in consumer.wants:  # a pending layer switch wants two sources
                    sinks.setdefault(wanted, []).append(consumer)
                view = (pid, source, state)
                if viewer.slot_view.get(slot) != view:
                    viewer.slot_view[slot] = view
                    viewer.send(SlotChanged(slot, pid, source, state))
            if "grid-0" in viewer.consumers and not viewer.capabilities.relay:
                shown = tuple(
                    pid for i in range(self.config.grid_slots) if (pid := viewer.slot_view[f"grid-{i}"][0])
                )
                grid = (viewer.grid_page, grid_pages(self.participants, viewer, self.config.grid_slots), shown)
                if grid != viewer.grid_view:
                    viewer.grid_view = grid
                    viewer.send(GridChanged(*grid))
        for p in self.participants.values():
            if p.capabilities.relay == "down":
                wants = tuple(sorted((pid, src, top) for (pid, src), top in demand.get(p.id, {}).items()))
                if wants != p.wants:
                    p.wants = wants
                    p.send(RelayWants(tuple(w[0] for w in wants), tuple(w[1] for w in wants),
                                      tuple(w[2] for w in wants)))
            if p.via is not None:
                continue  # a ghost's producers are its relay's: set once, below
            for track in p.producers.values():
                for producer in track.layers:
                    producer.set_sinks(tuple(sinks.get(producer, ())))
