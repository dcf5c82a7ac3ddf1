"""sfu: Sfu, this process's rooms: created on first use, forgotten when they close, counted for the limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sfu.batch import ReceiveBatching
from sfu.config import SfuConfig
from sfu.room import Room
from sfu.stats import Forwarded


@dataclass
class Sfu:
    """Sfu owns this process's rooms: ``await sfu.room(id)`` gets or creates one; ``close()`` ends all."""

    config: SfuConfig = field(default_factory=SfuConfig)
    clock: Callable[[], float] = time.monotonic
    rooms: dict[str, Room] = field(default_factory=dict)
    on_room_created: list[Callable[[Room], None]] = field(default_factory=list)  # e.g. the recorder manager
    forwarded_gone: Forwarded = field(default_factory=Forwarded)  # sent by the consumers of closed peers, all rooms
    batching: ReceiveBatching | None = field(default=None, init=False)  # started with the first room (in the loop)

    async def room(self, room_id: str, video_codec: str | None = None) -> Room:
        """room returns the open room `room_id`, creating it with `video_codec` (default from config)."""
        if self.batching is None:
            self.batching = ReceiveBatching(asyncio.get_running_loop(), self.received, self.config.receive_wait,
                                            self.config.receive_wait_above)
        room = self.rooms.get(room_id)
        if room is None or room.closed:
            room = Room(room_id, video_codec or self.config.video_codec, self.config, self.participant_count,
                        self._forget, self.clock, self.forwarded_gone)
            self.rooms[room_id] = room
            for callback in self.on_room_created:
                callback(room)
        return room

    def participant_count(self) -> int:
        """participant_count is the number of participants in all rooms (detached ones included)."""
        return sum(len(r.participants) for r in self.rooms.values())

    def received(self) -> int:
        """received is the media packets the open rooms' tracks have received so far (every layer; it goes down
        when one closes: read it as a rate over a period, as ``ReceiveBatching`` does)."""
        return sum(layer.packets for room in self.rooms.values() for p in room.participants.values()
                   for producer in p.producers.values() for layer in producer.layers)

    def forwarded(self) -> tuple[int, int]:
        """forwarded is what this process has sent to subscribers so far: (RTP packets, payload bytes), resends
        excluded; it only grows, but for a moment while a room closes (its peers close after it is forgotten)."""
        packets, octets = self.forwarded_gone.packets, self.forwarded_gone.bytes
        for room in self.rooms.values():
            more = room.forwarded()
            packets, octets = packets + more[0], octets + more[1]
        return packets, octets

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]

    async def close(self) -> None:
        """close closes every room and every Peer (on SIGTERM)."""
        if self.batching is not None:
            self.batching.close()
        rooms = list(self.rooms.values())
        await asyncio.gather(*(r.close() for r in rooms), return_exceptions=True)
        self.rooms.clear()
