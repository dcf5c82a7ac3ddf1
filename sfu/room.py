"""room: Room (one Meeting's media) and Sfu (all rooms of this process): the signalling layer's API.

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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sfu.codec import AUDIO_MIME, video_mime
from sfu.config import SfuConfig
from sfu.consumer import Consumer
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
    RoomStats,
    ServerOffer,
    SlotChanged,
)
from sfu.mailbox import Action, Mailbox
from sfu.participant import (
    GRID_SOURCE_ROLES,
    PUBLISHER_ROLES,
    ROLES,
    EventCallback,
    EventOutbox,
    Participant,
    slots_for,
)
from sfu.peer import Peer
from sfu.producer import SOURCES, Producer
from sfu.rtp import report_period
from sfu.sink import DownTarget, Sink
from sfu.tasks import Ticker

logger = logging.getLogger(__name__)

SlotFill = tuple["Producer | None", str | None, str | None, str]  # producer, participant, source, state


# --------------------------------------------------------------------------------------- actions


@dataclass
class Join(Action[Participant]):
    """Join: a participant enters (creates its down Peer and sends it a ServerOffer)."""

    participant_id: str
    role: str
    name: str
    on_event: EventCallback
    admitted: bool = False  # let in by a moderator from the lobby: a locked room does not refuse it
    sinks: Mapping[str, Sink] | None = None  # in-process slots instead of a down Peer (sfu/sink.py)


@dataclass
class Publish(Action[str]):
    """Publish: an up offer; the reply is the answer SDP."""

    participant_id: str
    offer_sdp: str
    sources: Mapping[str, str]


@dataclass
class AnswerDown(Action[None]):
    """AnswerDown: the client's answer to our down offer."""

    participant_id: str
    answer_sdp: str


@dataclass
class AddCandidate(Action[None]):
    """AddCandidate: a trickled remote ICE candidate for the up or down Peer."""

    participant_id: str
    down: bool
    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass
class Choose(Action[None]):
    """Choose: the participant picks the source of one of its own slots (None: the slot plan fills it)."""

    participant_id: str
    slot: str
    source_participant_id: str | None
    source: str | None


@dataclass
class RaiseHand(Action[None]):
    """RaiseHand: raise or lower one's hand."""

    participant_id: str
    raised: bool


@dataclass
class GiveFloor(Action[None]):
    """GiveFloor: a moderator gives the floor to `target` (None: takes it back)."""

    actor_id: str
    target_id: str | None


@dataclass
class SetPresenter(Action[None]):
    """SetPresenter: a moderator makes `target` (a trainer or leader) the presenter."""

    actor_id: str
    target_id: str | None


@dataclass
class Mute(Action[None]):
    """Mute: stop (or resume) forwarding `source` of `target`."""

    actor_id: str
    target_id: str
    source: str
    muted: bool


@dataclass
class SetGridPage(Action[int]):
    """SetGridPage: a grid viewer turns the page; the reply is the page actually shown."""

    participant_id: str
    page: int


@dataclass
class SetAudioOnly(Action[None]):
    """SetAudioOnly: the participant receives no video at all (weak link) or video again."""

    participant_id: str
    audio_only: bool


@dataclass
class SetLocked(Action[None]):
    """SetLocked: a moderator locks the room (only moderators may join) or unlocks it."""

    actor_id: str
    locked: bool


@dataclass
class Leave(Action[None]):
    """Leave: the participant is removed for good."""

    participant_id: str
    reason: str = "left"


@dataclass
class Detach(Action[None]):
    """Detach: the signalling connection was lost; keep the participant for the resume window."""

    participant_id: str


@dataclass
class Resume(Action[Participant]):
    """Resume: the participant is back (new WebSocket, new Peers) with its resume token."""

    participant_id: str
    token: str
    on_event: EventCallback


@dataclass
class PeerLost(Action[None]):
    """PeerLost: a Peer failed or closed on its own (posted by the Peer's state callback)."""

    participant_id: str
    peer: Peer
    state: str


@dataclass
class ResumeExpired(Action[None]):
    """ResumeExpired: the resume window of a detached participant is over."""

    participant_id: str
    token: str


@dataclass
class GraceExpired(Action[None]):
    """GraceExpired: the room has been empty for the grace period."""


@dataclass
class CloseRoom(Action[None]):
    """CloseRoom: close every Peer and stop the room."""

    reason: str = "closed"


# ------------------------------------------------------------------------------------------ room


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
        self._order = 0
        self._grace: asyncio.TimerHandle | None = None
        # sender reports and ICE consent of every transport, run from the room's inbound media (timer: 1 s late
        # at most), several per run (up to 0.25 s early)
        self.ticker = Ticker(report_period, grace=1.0, slack=0.25)
        self.mailbox = Mailbox(f"room-{room_id}", self._handle)
        self.mailbox.start()
        self._schedule_grace()

    # ------------------------------------------------------------------------------ public API

    async def join(self, participant_id: str, role: str, name: str, on_event: EventCallback,
                   admitted: bool = False, sinks: Mapping[str, Sink] | None = None) -> Participant:
        """join adds a participant; its down offer arrives as a ServerOffer event. Raises SfuError("full").

        A locked room refuses non-moderators unless `admitted` (a moderator let them in from the lobby).
        With `sinks` (slot name -> Sink) the participant receives in-process through them instead: no down
        Peer and no offer; the slot plan fills the slots it knows, ``choose`` picks the source of the others.
        """
        return await self._ask(Join(participant_id, role, name, on_event, admitted, sinks))

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

    async def give_floor(self, actor_id: str, target_id: str | None) -> None:
        """give_floor gives the floor to `target_id` (None: nobody); moderators only."""
        await self._ask(GiveFloor(actor_id, target_id))

    async def set_presenter(self, actor_id: str, target_id: str | None) -> None:
        """set_presenter makes a trainer/leader the presenter; moderators only (a presenter may take over)."""
        await self._ask(SetPresenter(actor_id, target_id))

    async def mute(self, actor_id: str, target_id: str, source: str, muted: bool = True) -> None:
        """mute stops (muted=False: resumes) forwarding a source; the target gets MuteRequested."""
        await self._ask(Mute(actor_id, target_id, source, muted))

    async def set_grid_page(self, participant_id: str, page: int) -> int:
        """set_grid_page shows grid page `page` (clamped) to a presenter/operator; returns the page shown."""
        return await self._ask(SetGridPage(participant_id, page))

    async def set_audio_only(self, participant_id: str, audio_only: bool) -> None:
        """set_audio_only stops (or resumes) every video slot of the participant's down Peer; no renegotiation."""
        await self._ask(SetAudioOnly(participant_id, audio_only))

    async def set_locked(self, actor_id: str, locked: bool) -> None:
        """set_locked locks or unlocks the room; moderators only."""
        await self._ask(SetLocked(actor_id, locked))

    async def leave(self, participant_id: str) -> None:
        """leave removes the participant now."""
        await self._ask(Leave(participant_id))

    async def detach(self, participant_id: str) -> None:
        """detach: the connection is lost; peers close, slots show reconnecting, resume within the window."""
        await self._ask(Detach(participant_id))

    async def resume(self, participant_id: str, token: str, on_event: EventCallback) -> Participant:
        """resume brings back a detached participant (new down ServerOffer; publish again)."""
        return await self._ask(Resume(participant_id, token, on_event))

    async def close(self) -> None:
        """close closes every Peer and stops the room."""
        if self.mailbox.closed:
            return
        try:
            await self._ask(CloseRoom())
        except SfuError:
            pass
        await self.mailbox.close()

    def stats(self) -> RoomStats:
        """stats is a snapshot of every participant's producers and consumers (operator console)."""
        return RoomStats(
            room_id=self.id,
            participants=tuple(
                ParticipantStats(
                    participant_id=p.id,
                    role=p.role,
                    state=p.state,
                    producers=tuple(pr.stats() for pr in p.producers.values()),
                    consumers=tuple(c.stats() for c in p.consumers.values()),
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
            if isinstance(action, CloseRoom | GraceExpired | PeerLost | ResumeExpired):
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
        if not actor.moderator:
            raise SfuError("forbidden", f"a {actor.role} may not do that")
        return actor

    def _broadcast(self, event: Event, exclude: Participant | None = None) -> None:
        for p in self.participants.values():
            if p is not exclude:
                p.send(event)

    async def _on_Join(self, a: Join) -> Participant:  # noqa: N802
        if a.role not in ROLES:
            raise SfuError("forbidden", f"unknown role {a.role!r}")
        if a.participant_id in self.participants:
            raise SfuError("exists", f"{a.participant_id} is already in the room (resume instead)")
        if len(self.participants) >= self.config.max_participants_per_room:
            raise SfuError("full", f"room {self.id} has {len(self.participants)} participants")
        if self._count_all() >= self.config.max_participants:
            raise SfuError("full", "server is full")
        if self.locked and not a.admitted and a.role not in ("operator", "trainer", "leader"):
            raise SfuError("forbidden", "the room is locked")
        self._order += 1
        outbox = EventOutbox(a.participant_id, a.on_event)
        p = Participant(a.participant_id, a.role, a.name, outbox, self._order)
        self.participants[p.id] = p
        self._cancel_grace()
        for other in self.participants.values():
            if other is not p:
                p.send(ParticipantJoined(other.id, other.role, other.name))
                if other.hand_raised:
                    p.send(HandChanged(other.id, True))
        if self.presenter_id is None and p.presenter_role:
            self.presenter_id = p.id
            self._broadcast(PresenterChanged(p.id, None), exclude=p)
        p.send(PresenterChanged(self.presenter_id, None))
        p.send(FloorChanged(self.floor_id, None))
        self._broadcast(ParticipantJoined(p.id, p.role, p.name), exclude=p)
        try:
            if a.sinks is not None:
                p.consumers = {slot: sink for slot, sink in a.sinks.items()}
            else:
                await self._open_down(p)
        except Exception:
            await self._remove(p, "error")
            raise
        self._reassign()
        return p

    async def _open_down(self, p: Participant) -> None:
        peer = Peer(p.id, True, self.config, self.video_mime, self._peer_lost, self.ticker)
        p.down = peer
        for slot, kind in slots_for(p.role, self.config.grid_slots):
            sender = peer.add_slot(kind)
            p.consumers[slot] = Consumer(
                p.id, slot, kind, sender, peer.wire_for, self._clock,
                compiled=self.config.compiled_fanout and self.config.fast_path,
            )
        sdp = await peer.offer()
        p.slot_mids = {slot: peer.mid_of(c.sender) for slot, c in p.consumers.items() if isinstance(c, Consumer)}
        p.slot_view = {}
        p.send(ServerOffer(sdp=sdp, down=True, slots=dict(p.slot_mids)))

    async def _on_Publish(self, a: Publish) -> str:  # noqa: N802
        p = self._get(a.participant_id)
        if p.role not in PUBLISHER_ROLES:
            raise SfuError("forbidden", f"a {p.role} may not publish")
        if p.state != "connected":
            raise SfuError("state", "resume first")
        for mid, source in a.sources.items():
            if source not in SOURCES:
                raise SfuError("sdp-invalid", f"unknown source {source!r} for mid {mid}")
        if p.up is None:
            p.up = Peer(p.id, False, self.config, self.video_mime, self._peer_lost, self.ticker)
        answer, tracks = await p.up.answer(a.offer_sdp, a.sources)
        for track in tracks:
            old = p.producers.pop(track.source, None)
            if old is not None:
                old.close()
            producer = Producer(
                p.id, track.source, track.kind,
                self.video_mime if track.kind == "video" else AUDIO_MIME,
                track.receiver, self.config.keyframe_min_interval, self._clock,
                compiled=self.config.compiled_fanout and self.config.fast_path,
            )
            producer.muted = track.source in p.muted
            p.producers[track.source] = producer
        self._reassign()
        return answer

    async def _on_AnswerDown(self, a: AnswerDown) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        if p.down is None:
            raise SfuError("state", "no down connection")
        await p.down.apply_answer(a.answer_sdp)

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

    async def _on_GiveFloor(self, a: GiveFloor) -> None:  # noqa: N802
        self._moderator(a.actor_id)
        if a.target_id is not None:
            target = self._get(a.target_id)
            if target.hand_raised:
                target.hand_raised = False
                self._broadcast(HandChanged(target.id, False))
        if a.target_id != self.floor_id:
            self.floor_id = a.target_id
            self._broadcast(FloorChanged(a.target_id, a.actor_id))
            self._reassign()

    async def _on_SetPresenter(self, a: SetPresenter) -> None:  # noqa: N802
        self._moderator(a.actor_id)
        if a.target_id is not None and not self._get(a.target_id).presenter_role:
            raise SfuError("forbidden", "only a trainer or a leader can present")
        if a.target_id != self.presenter_id:
            self.presenter_id = a.target_id
            self._broadcast(PresenterChanged(a.target_id, a.actor_id))
            self._reassign()

    async def _on_Mute(self, a: Mute) -> None:  # noqa: N802
        actor = self._get(a.actor_id)
        target = self._get(a.target_id)
        if a.source not in SOURCES:
            raise SfuError("sdp-invalid", f"unknown source {a.source!r}")
        own = actor is target
        if not actor.moderator and not (own and (a.muted or a.source not in target.forced_mute)):
            raise SfuError("forbidden", "only moderators mute others")
        if a.muted:
            target.muted.add(a.source)
            if not own:
                target.forced_mute.add(a.source)
        else:
            target.muted.discard(a.source)
            target.forced_mute.discard(a.source)
        producer = target.producers.get(a.source)
        if producer is not None:
            producer.muted = a.muted
        if not own:
            target.send(MuteRequested(a.source, actor.id, a.muted))
        self._reassign()

    async def _on_SetGridPage(self, a: SetGridPage) -> int:  # noqa: N802
        p = self._get(a.participant_id)
        if "grid-0" not in p.consumers:
            raise SfuError("forbidden", f"a {p.role} has no grid")
        pages = self._grid_pages(p)
        p.grid_page = max(0, min(a.page, pages - 1))
        self._reassign()
        return p.grid_page

    async def _on_SetAudioOnly(self, a: SetAudioOnly) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        p.audio_only = a.audio_only
        self._reassign()

    async def _on_SetLocked(self, a: SetLocked) -> None:  # noqa: N802
        self._moderator(a.actor_id)
        self.locked = a.locked

    async def _on_Leave(self, a: Leave) -> None:  # noqa: N802
        await self._remove(self._get(a.participant_id), a.reason)

    async def _on_Detach(self, a: Detach) -> None:  # noqa: N802
        p = self._get(a.participant_id)
        if p.state == "reconnecting":
            return
        p.state = "reconnecting"
        await p.close_peers()
        token = p.resume_token
        p.resume_handle = asyncio.get_running_loop().call_later(
            self.config.resume_seconds, self.mailbox.post, ResumeExpired(p.id, token)
        )
        self._broadcast(ParticipantState(p.id, "reconnecting"), exclude=p)
        self._reassign()

    async def _on_Resume(self, a: Resume) -> Participant:  # noqa: N802
        p = self._get(a.participant_id)
        if a.token != p.resume_token:
            raise SfuError("token", "wrong resume token")
        if p.resume_handle is not None:
            p.resume_handle.cancel()
            p.resume_handle = None
        await p.close_peers()
        old_outbox = p.outbox
        p.outbox = EventOutbox(p.id, a.on_event)
        asyncio.get_running_loop().create_task(old_outbox.close(0.1))
        p.state = "connected"
        for other in self.participants.values():
            if other is not p:
                p.send(ParticipantJoined(other.id, other.role, other.name))
        p.send(PresenterChanged(self.presenter_id, None))
        p.send(FloorChanged(self.floor_id, None))
        self._broadcast(ParticipantState(p.id, "connected"), exclude=p)
        await self._open_down(p)
        self._reassign()
        return p

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
        await self._remove(p, "connection-" + a.state)

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

    async def _remove(self, p: Participant, reason: str, reassign: bool = True) -> None:
        if self.participants.get(p.id) is not p:
            return
        del self.participants[p.id]
        if p.resume_handle is not None:
            p.resume_handle.cancel()
        await p.close_peers()
        await p.outbox.close(0.5)
        if self.floor_id == p.id:
            self.floor_id = None
            self._broadcast(FloorChanged(None, None))
        if self.presenter_id == p.id:
            self.presenter_id = next((o.id for o in self.participants.values() if o.presenter_role), None)
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

    def _grid_sources(self, viewer: Participant) -> list[Participant]:
        return sorted(
            (p for p in self.participants.values() if p.role in GRID_SOURCE_ROLES and p is not viewer),
            key=lambda p: p.order,
        )

    def _grid_pages(self, viewer: Participant) -> int:
        n = self.config.grid_slots
        return max(1, -(-len(self._grid_sources(viewer)) // n)) if n else 1

    @staticmethod
    def _fill(owner: Participant | None, source: str, viewer: Participant) -> SlotFill:
        if owner is None or owner is viewer:
            return None, None, None, "empty"
        if owner.state == "reconnecting":
            return None, owner.id, source, "reconnecting"
        producer = owner.producers.get(source)
        if producer is None:
            return None, owner.id, source, "empty"
        if producer.muted:
            return None, owner.id, source, "muted"
        return producer, owner.id, source, "live"

    def _plan(self, viewer: Participant) -> dict[str, SlotFill]:
        presenter = self.participants.get(self.presenter_id) if self.presenter_id else None
        floor = self.participants.get(self.floor_id) if self.floor_id else None
        plan: dict[str, SlotFill] = {
            "presenter-video": self._fill(presenter, "camera", viewer),
            "presenter-audio": self._fill(presenter, "mic", viewer),
            "screen": self._fill(presenter, "screen", viewer),
            "floor-video": self._fill(floor, "camera", viewer),
            "floor-audio": self._fill(floor, "mic", viewer),
        }
        for slot, (owner_id, source) in viewer.chosen.items():  # the viewer's own choice (Room.choose)
            plan[slot] = self._fill(self.participants.get(owner_id), source, viewer)
        if "grid-0" in viewer.consumers:
            n = self.config.grid_slots
            sources = self._grid_sources(viewer)
            page = sources[viewer.grid_page * n:(viewer.grid_page + 1) * n]
            for i in range(n):
                plan[f"grid-{i}"] = self._fill(page[i] if i < len(page) else None, "camera", viewer)
        if viewer.audio_only:
            for slot, consumer in viewer.consumers.items():
                fill = plan.get(slot)
                if consumer.kind == "video" and fill is not None and fill[3] == "live":
                    plan[slot] = (None, fill[1], fill[2], "paused")
        return plan

    def _reassign(self) -> None:
        """_reassign recomputes every slot, switches consumers and replaces producers' sink tuples."""
        sinks: dict[Producer, list[DownTarget]] = {}
        for viewer in self.participants.values():
            if not viewer.consumers:
                continue
            plan = self._plan(viewer)
            if "grid-0" in viewer.consumers:
                pages = self._grid_pages(viewer)
                if viewer.grid_page >= pages:
                    viewer.grid_page = pages - 1
                    plan = self._plan(viewer)
            for slot, consumer in viewer.consumers.items():
                producer, pid, source, state = plan.get(slot, (None, None, None, "empty"))
                consumer.switch(producer)
                if producer is not None:
                    sinks.setdefault(producer, []).append(consumer)
                view = (pid, source, state)
                if viewer.slot_view.get(slot) != view:
                    viewer.slot_view[slot] = view
                    viewer.send(SlotChanged(slot, pid, source, state))
            if "grid-0" in viewer.consumers:
                shown = tuple(
                    pid for i in range(self.config.grid_slots) if (pid := viewer.slot_view[f"grid-{i}"][0])
                )
                grid = (viewer.grid_page, self._grid_pages(viewer), shown)
                if grid != viewer.grid_view:
                    viewer.grid_view = grid
                    viewer.send(GridChanged(*grid))
        for p in self.participants.values():
            for producer in p.producers.values():
                producer.set_sinks(tuple(sinks.get(producer, ())))


@dataclass
class Sfu:
    """Sfu owns this process's rooms: ``await sfu.room(id)`` gets or creates one; ``close()`` ends all."""

    config: SfuConfig = field(default_factory=SfuConfig)
    clock: Callable[[], float] = time.monotonic
    rooms: dict[str, Room] = field(default_factory=dict)
    on_room_created: list[Callable[[Room], None]] = field(default_factory=list)  # e.g. the recorder manager

    async def room(self, room_id: str, video_codec: str | None = None) -> Room:
        """room returns the open room `room_id`, creating it with `video_codec` (default from config)."""
        room = self.rooms.get(room_id)
        if room is None or room.closed:
            room = Room(room_id, video_codec or self.config.video_codec, self.config, self.participant_count,
                        self._forget, self.clock)
            self.rooms[room_id] = room
            for callback in self.on_room_created:
                callback(room)
        return room

    def participant_count(self) -> int:
        """participant_count is the number of participants in all rooms (detached ones included)."""
        return sum(len(r.participants) for r in self.rooms.values())

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]

    async def close(self) -> None:
        """close closes every room and every Peer (on SIGTERM)."""
        rooms = list(self.rooms.values())
        await asyncio.gather(*(r.close() for r in rooms), return_exceptions=True)
        self.rooms.clear()
