"""snapshot: frozen views of a room for the signalling layer, which never reads the room's own objects.

``Room.snapshot()`` builds a ``RoomSnapshot`` on the room's event loop without awaiting, so it is one
consistent moment of the room; ``Room.join`` and ``Room.resume`` reply with a ``Joined``. The values never
change afterwards: reading one after an await reads that moment, not the room's present.
"""

from __future__ import annotations

from dataclasses import dataclass

from sfu.participant import Capabilities, Participant


@dataclass(frozen=True)
class ParticipantView:
    """ParticipantView: one participant at the moment of the snapshot."""

    id: str
    role: str  # the label given at join
    name: str
    capabilities: Capabilities
    state: str  # connected | reconnecting
    hand_raised: bool
    audio_only: bool
    muted: frozenset[str]  # sources not forwarded (muted by the participant or a moderator)

    @classmethod
    def of(cls, p: Participant) -> ParticipantView:
        """ParticipantView.of: the view of `p` now (called by the room's code, on its loop)."""
        return cls(id=p.id, role=p.role, name=p.name, capabilities=p.capabilities, state=p.state,
                   hand_raised=p.hand_raised, audio_only=p.audio_only, muted=frozenset(p.muted))


@dataclass(frozen=True)
class RoomSnapshot:
    """RoomSnapshot: a room at one moment: its participants in join order, presenter, floor and lock."""

    room_id: str
    video_codec: str
    presenter_id: str | None
    floor_id: str | None
    locked: bool
    participants: tuple[ParticipantView, ...]

    def participant(self, participant_id: str | None) -> ParticipantView | None:
        """RoomSnapshot.participant: the participant with this id, None when absent (or the id is None)."""
        return next((p for p in self.participants if p.id == participant_id), None) if participant_id else None


@dataclass(frozen=True)
class Joined:
    """Joined: the reply to join and resume: the participant as it entered, and the token to resume it with."""

    participant: ParticipantView
    resume_token: str
