"""events: what the SFU tells the signalling layer, one dataclass per event (turned into WebSocket messages).

Each participant's ``on_event`` coroutine receives its events in order (one delivery task per participant,
so a slow WebSocket never blocks a room).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sfu.stats import ConsumerStats, DownlinkStats, ProducerStats, UplinkStats


@dataclass(frozen=True)
class Event:
    """Event is the base class of everything passed to ``on_event``."""


@dataclass(frozen=True)
class ServerOffer(Event):
    """ServerOffer carries the server's SDP offer for the participant's down Peer; answer with answer_down.

    `slots` maps each slot name to the transceiver mid carrying it, so the page knows which video element
    shows what (e.g. {"presenter-video": "0", "floor-video": "3", "grid-0": "5"}).
    """

    sdp: str
    down: bool
    slots: dict[str, str]
    receive: dict[str, str] = field(default_factory=dict)  # a cascade's "down" relay: its way up, slot -> mid


@dataclass(frozen=True)
class ParticipantJoined(Event):
    """ParticipantJoined: someone entered the meeting."""

    participant_id: str
    role: str
    name: str


@dataclass(frozen=True)
class ParticipantLeft(Event):
    """ParticipantLeft: someone left (or was cleaned up after a lost connection)."""

    participant_id: str
    reason: str


@dataclass(frozen=True)
class ParticipantState(Event):
    """ParticipantState: a participant became ``reconnecting`` (detached) or ``connected`` again."""

    participant_id: str
    state: str


@dataclass(frozen=True)
class FloorChanged(Event):
    """FloorChanged: the floor holder changed (None: nobody has the floor)."""

    participant_id: str | None
    by: str | None


@dataclass(frozen=True)
class PresenterChanged(Event):
    """PresenterChanged: another presenter took over (None: nobody presents)."""

    participant_id: str | None
    by: str | None


@dataclass(frozen=True)
class SlotChanged(Event):
    """SlotChanged: the slot now shows `participant_id`; state is ``live``, ``muted``, ``paused`` (audio-only
    chosen), ``weak-network`` (paused: the subscriber's link cannot carry it), ``reconnecting`` or ``empty``."""

    slot: str
    participant_id: str | None
    source: str | None
    state: str


@dataclass(frozen=True)
class MuteRequested(Event):
    """MuteRequested: sent to the muted participant; its page should disable the track of `source`."""

    source: str
    by: str
    muted: bool


@dataclass(frozen=True)
class HandChanged(Event):
    """HandChanged: a participant raised or lowered its hand."""

    participant_id: str
    raised: bool


@dataclass(frozen=True)
class GridChanged(Event):
    """GridChanged: the viewer's grid page changed; `participants` are shown in grid-0.. in order."""

    page: int
    pages: int
    participants: tuple[str, ...]


@dataclass(frozen=True)
class RelayWants(Event):
    """RelayWants: sent to a "down" relay participant (docs/sfu.md, "Cascade"): the sources of the participants
    its link brings that this room forwards to someone now: `participants[i]`'s `sources[i]`, its top layer
    wanted when `top[i]` (else a grid tile's)."""

    participants: tuple[str, ...]
    sources: tuple[str, ...]
    top: tuple[bool, ...]


@dataclass(frozen=True)
class PeerFailed(Event):
    """PeerFailed: the participant's up or down Peer failed or closed: it is reconnecting; renew with Room.restart."""

    down: bool
    state: str


@dataclass(frozen=True)
class ParticipantStats:
    """ParticipantStats is one participant's producers and consumers (operator console)."""

    participant_id: str
    role: str
    state: str
    producers: tuple[ProducerStats, ...]
    consumers: tuple[ConsumerStats, ...]
    downlink: DownlinkStats | None = None  # None: no down Peer (the recorder), or not allocated yet
    uplink: UplinkStats | None = None  # None: no up Peer


@dataclass(frozen=True)
class RoomStats(Event):
    """RoomStats is a snapshot of a room's forwarding statistics (`Room.stats()`: the `stats` reply, the console)."""

    room_id: str
    participants: tuple[ParticipantStats, ...]
