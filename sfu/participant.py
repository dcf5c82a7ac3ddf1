"""participant: a Participant of a Meeting: capabilities, peers, producers, consumers, hand, mute and presence state.

What a participant may do is its ``Capabilities``, given by the signalling layer at join; its role is a label
the SFU carries for events and pages and never acts on.
All fields are changed by the room's mailbox task only (see sfu/room.py). Events for the participant go
through its ``EventOutbox``: one task per participant awaits ``on_event`` for each event in order.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sfu.events import Event
from sfu.peer import Peer
from sfu.producer import Producer
from sfu.sink import DownTarget, Sink

logger = logging.getLogger(__name__)

EventCallback = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class Capabilities:
    """Capabilities: what the room lets one participant do; the signalling layer decides them at join.

    The default is a participant that only watches and listens.
    """

    publish: bool = False  # its up offers are answered: it sends camera, microphone or screen
    present: bool = False  # it can be the presenter: chosen by a moderator, or itself when the room has none
    moderate: bool = False  # it gives the floor, chooses the presenter, mutes others and locks the room
    view_grid: bool = False  # its down Peer has the grid slots and it turns the grid's pages
    in_grid: bool = False  # its camera is shown in the grids of those who view one
    enter_locked: bool = False  # it joins a locked room without being admitted from the lobby
    # one end of a cascade link to another node's room (docs/sfu.md, "Cascade"): "down" at the origin (its slots
    # carry the program and the floor, never what its own link brought), "up" at an edge (its slots carry only
    # what is chosen for them, Room.choose); "" for everyone else
    relay: str = ""


BASE_SLOTS: tuple[tuple[str, str], ...] = (
    ("presenter-video", "video"),
    ("presenter-audio", "audio"),
    ("screen", "video"),
    ("floor-video", "video"),
    ("floor-audio", "audio"),
)


def slots_for(capabilities: Capabilities, grid_slots: int) -> list[tuple[str, str]]:
    """slots_for lists the (slot, kind) pairs of a down Peer: fixed at join."""
    slots = list(BASE_SLOTS)
    if capabilities.view_grid:
        slots += [(f"grid-{i}", "video") for i in range(grid_slots)]
    return slots


class EventOutbox:
    """EventOutbox delivers one participant's events in order from its own task; failures are logged."""

    def __init__(self, participant_id: str, on_event: EventCallback) -> None:
        self.participant_id = participant_id
        self.on_event = on_event
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"events-{participant_id}")

    def send(self, event: Event) -> None:
        """send enqueues an event (never blocks)."""
        self._queue.put_nowait(event)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            try:
                await self.on_event(event)
            except Exception:
                logger.exception("on_event of %s failed for %s", self.participant_id, type(event).__name__)

    async def close(self, wait: float = 2.0) -> None:
        """close delivers what is queued (up to `wait` seconds), then stops."""
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), wait)
        except TimeoutError:
            self._task.cancel()


@dataclass(eq=False)
class Participant:
    """Participant is one person or classroom in a room (identity is the object; `id` is unique per room)."""

    id: str
    role: str  # a label for events and pages (e.g. "trainer"); what the participant may do is `capabilities`
    name: str
    capabilities: Capabilities
    outbox: EventOutbox
    order: int
    resume_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    state: str = "connected"  # connected | reconnecting
    up: Peer | None = None
    down: Peer | None = None
    producers: dict[str, Producer] = field(default_factory=dict)
    consumers: dict[str, DownTarget] = field(default_factory=dict)  # Consumers of `down`, or in-process Sinks
    chosen: dict[str, tuple[str, str]] = field(default_factory=dict)  # slot -> (participant, source), Room.choose
    slot_mids: dict[str, str] = field(default_factory=dict)
    slot_view: dict[str, tuple[str | None, str | None, str]] = field(default_factory=dict)
    hand_raised: bool = False
    audio_only: bool = False
    muted: set[str] = field(default_factory=set)
    forced_mute: set[str] = field(default_factory=set)
    grid_page: int = 0
    grid_view: tuple[int, int, tuple[str, ...]] | None = None
    resume_handle: asyncio.TimerHandle | None = None
    republish: set[str] = field(default_factory=set)  # sources its lost Peers carried, until it publishes again
    via: str | None = None  # a participant of another node: the relay participant whose link carries its media
    bound: dict[str, tuple[str, str]] = field(default_factory=dict)  # a relay's link label -> (ghost, source)
    wants: tuple[tuple[str, str, bool], ...] = ()  # a "down" relay: its ghosts' sources the room needs (RelayWants)
    receive_mids: dict[str, str] = field(default_factory=dict)  # a "down" relay's way up: slot -> its down Peer's mid

    def send(self, event: Event) -> None:
        """send queues an event for this participant's signalling connection."""
        self.outbox.send(event)

    def live_producer(self, source: str) -> Producer | None:
        """live_producer is the producer of `source` unless absent or muted."""
        producer = self.producers.get(source)
        if producer is None or producer.muted:
            return None
        return producer

    async def close_peers(self) -> None:
        """close_peers closes both peers and any Sinks, and drops producers and consumers.

        The sources it published are remembered in `republish` until its next publish (slots say reconnecting).
        """
        self.republish |= set(self.producers)
        for producer in self.producers.values() if self.via is None else ():  # a ghost's are its link's
            for layer in producer.layers:
                layer.close()
        for target in self.consumers.values():
            if isinstance(target, Sink):
                target.close()
        self.producers = {}
        self.consumers = {}
        self.chosen = {}
        self.slot_mids = {}
        self.slot_view = {}
        peers = [p for p in (self.up, self.down) if p is not None]
        self.up = self.down = None
        for peer in peers:
            try:
                await peer.close()
            except Exception:
                logger.exception("closing a peer of %s failed", self.id)
