"""server.live.rooms: the open rooms as the rest of the server reads them: frozen values, never the SFU's objects.

`open_rooms` reads open rooms of this process that belong to meetings, each as a `LiveRoom`: its
`RoomSnapshot` (participants, presenter, floor, lock) and its `RoomStats` (media figures), both taken on the
event loop without an await in between, so they describe the same moment. The SFU's snapshot and figure types
are re-exported here for the handlers, which do not import the SFU (tests/test_layers.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from server.live.service import Live
from sfu.events import ParticipantStats, RoomStats
from sfu.snapshot import RoomSnapshot
from sfu.stats import ConsumerStats, ProducerStats

__all__ = ["ConsumerStats", "LiveRoom", "ParticipantStats", "ProducerStats", "RoomSnapshot", "RoomStats",
           "open_meetings", "open_rooms"]


@dataclass(frozen=True)
class LiveRoom:
    """LiveRoom: one meeting's open room at one moment: its state and its media figures."""

    meeting_id: int
    state: RoomSnapshot
    stats: RoomStats


def open_meetings(live: Live) -> list[int]:
    """open_meetings: the meetings whose room is open in this process now."""
    out = []
    for room_id, room in list(live.sfu.rooms.items()):
        if room.closed:
            continue
        try:
            out.append(int(room_id))
        except ValueError:
            continue
    return out


def open_rooms(live: Live, meeting_ids: Iterable[int]) -> dict[int, LiveRoom]:
    """open_rooms: meeting id → its room now, for those of `meeting_ids` whose room is open (no await inside).

    Reading a room's figures starts a new measurement window (``Room.stats``): read each room once per poll.
    """
    out: dict[int, LiveRoom] = {}
    for meeting_id in meeting_ids:
        room = live.sfu.rooms.get(str(meeting_id))
        if room is not None and not room.closed:
            out[meeting_id] = LiveRoom(meeting_id, room.snapshot(), room.stats())
    return out
