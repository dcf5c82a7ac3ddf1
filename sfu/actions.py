"""actions: the typed messages posted to a room's mailbox, one dataclass per request; the reply type is the parameter.

``Room``'s public coroutines build them and ``ask`` the mailbox; timers and Peer callbacks ``post`` them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sfu.mailbox import Action
from sfu.participant import Capabilities, EventCallback
from sfu.peer import Peer
from sfu.sink import Sink
from sfu.snapshot import Joined, ParticipantView


@dataclass
class Join(Action[Joined]):
    """Join: a participant enters (creates its down Peer and sends it a ServerOffer)."""

    participant_id: str
    role: str  # a label for events and pages
    name: str
    capabilities: Capabilities
    on_event: EventCallback
    admitted: bool = False  # let in by a moderator from the lobby: a locked room does not refuse it
    sinks: Mapping[str, Sink] | None = None  # in-process slots instead of a down Peer (sfu/sink.py)
    via: str | None = None  # a ghost of another node's participant, its media brought by this relay participant


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
class GiveFloor(Action[tuple[str | None, str | None]]):
    """GiveFloor: a moderator gives the floor to `target` (None: takes it back); the reply is (before, after)."""

    actor_id: str
    target_id: str | None


@dataclass
class SetPresenter(Action[tuple[str | None, str | None]]):
    """SetPresenter: a moderator makes `target` (one who may present) the presenter; the reply is (before, after)."""

    actor_id: str
    target_id: str | None


@dataclass
class Mute(Action[tuple[bool, bool]]):
    """Mute: stop (or resume) forwarding `source` of `target`; the reply is (muted before, muted after)."""

    actor_id: str
    target_id: str
    source: str
    muted: bool


@dataclass
class MuteAll(Action[tuple[str, ...]]):
    """MuteAll: a moderator mutes `source` of each of `targets` still in the room; the reply is who was muted."""

    actor_id: str
    targets: tuple[str, ...]
    source: str


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
class SetLocked(Action[tuple[bool, bool]]):
    """SetLocked: a moderator locks the room or unlocks it; the reply is (locked before, locked after).

    A locked room lets in only participants admitted from the lobby or whose capabilities allow it.
    """

    actor_id: str
    locked: bool


@dataclass
class Leave(Action[ParticipantView]):
    """Leave: the participant is removed for good; the reply is how it was when it left."""

    participant_id: str
    reason: str = "left"


@dataclass
class Detach(Action[None]):
    """Detach: the signalling connection was lost; keep the participant for the resume window."""

    participant_id: str


@dataclass
class Resume(Action[Joined]):
    """Resume: the participant is back (new WebSocket, new Peers) with its resume token."""

    participant_id: str
    token: str
    on_event: EventCallback


@dataclass
class Restart(Action[None]):
    """Restart: renew the participant's media over its current signalling connection (new Peers, same room state)."""

    participant_id: str


@dataclass
class PeerLost(Action[None]):
    """PeerLost: a Peer failed or closed on its own (posted by the Peer's state callback)."""

    participant_id: str
    peer: Peer
    state: str


@dataclass
class ResumeExpired(Action[None]):
    """ResumeExpired: the resume window of a reconnecting participant is over."""

    participant_id: str
    token: str


@dataclass
class Reallocate(Action[None]):
    """Reallocate: a subscriber's layers or paused slots changed (``sfu.downlinks.Downlinks``): reassign."""


@dataclass
class GraceExpired(Action[None]):
    """GraceExpired: the room has been empty for the grace period."""


@dataclass
class CloseRoom(Action[None]):
    """CloseRoom: close every Peer and stop the room."""

    reason: str = "closed"


@dataclass
class LayersChanged(Action[None]):
    """LayersChanged: the layers arriving of a simulcast track changed (the room's layer watch); reassign."""


@dataclass
class Bind(Action[None]):
    """Bind: the stream a relay participant publishes as `label` now carries `source` of `owner` (None: nothing)."""

    relay_id: str
    label: str
    owner_id: str | None
    source: str | None
