"""server.live.cascade: one meeting across nodes. A node that does not own a meeting's room may serve classrooms as
an **edge** of it (`cluster.edge_above`) instead of sending them to the owner (the **origin**, server.live.cluster).

Per (origin, edge, meeting) there is one *link*: a relay participant in each room (docs/sfu.md, "Cascade"):
- at the origin, `link-<edge>` (capabilities `relay="down"`): its down Peer sends the program (presenter camera,
  audio, screen) and the floor holder to the edge, as to any viewer, but never what its own link brought; its up
  Peer receives what the origin asked of the edge (`RelayWants`: the edge's floor holder, the edge's classrooms on
  a presenter's visible grid page);
- at the edge, `link-<origin>` (`relay="up"`): its up Peer answers the origin's down offer, its down Peer offers
  the origin what is chosen for it. The two Peers of the pair connect node to node: SRTP over UDP on the nodes'
  ICE addresses (iceServers=[]), RTP forwarded as it is, never decoded.
Each room holds *ghosts* of the other room's participants (joined with `via=` the relay, no Peer); the relay's
streams are bound to the ghost they carry now (`Room.bind`), from the `SlotChanged` events of the other end.

Signalling between the nodes goes over the bus (Redis pub/sub, channel `cascade:<node id>`): the nodes already
share it, it keeps the order of one sender's messages, and it adds no route to the public HTTP surface (no
address, no secret to hand out). Membership and policy stay with the origin's room: the edge mirrors it (joins
and leaves, presenter, floor, hands), and sends its own classrooms' joins, leaves and hands up. Mirroring is
idempotent (a room sends an event only when something changed), so an event coming back ends there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from server.bus import BUS, keep_renewing
from server.config import Config
from server.db.models import Role
from server.live.capabilities import CAPABILITIES
from server.live.cluster import CLUSTER, NodeInfo
from server.live.service import LIVE
from server.live.wire import LINK_PREFIX, is_link
from sfu.errors import SfuError
from sfu.events import (
    Event,
    FloorChanged,
    HandChanged,
    MuteRequested,
    ParticipantJoined,
    ParticipantLeft,
    PeerFailed,
    PresenterChanged,
    RelayWants,
    ServerOffer,
    SlotChanged,
)
from sfu.participant import Capabilities
from sfu.room import Room

log = logging.getLogger("taphuan.cascade")
LINK_ROLE = "link"
EDGE_ROLES = (Role.CLASSROOM, Role.LEARNER)  # who an edge serves; staff, and guests (who wait in the lobby its
# moderators keep), go to the origin
AUDIO_SLOTS = ("floor-audio", "presenter-audio")  # an edge's up link: where its wanted sources go, by kind
TOP_SLOTS = ("floor-video", "presenter-video", "screen")


def edge_room_id(meeting_id: int) -> str:
    """edge_room_id: the SFU room id of a meeting served here as an edge (not a meeting id: no recorder, no lease)."""
    return f"edge-{meeting_id}"


@dataclass
class Link:
    """Link: this node's end of one cascade link: its room, relay participant and the ghosts it holds."""

    meeting_id: int
    other: str  # the other node's id
    origin: bool  # this end is the origin's
    room: Room
    relay_id: str
    ghosts: set[str] = field(default_factory=set)  # the other room's participants, mirrored here
    chosen: dict[str, tuple[str, str]] = field(default_factory=dict)  # an edge's up slots -> (participant, source)
    up_slots: tuple[str, ...] = ()  # an edge's: the slots the origin receives on (its offer's `receive`)


class Cascade:
    """Cascade: this node's links, as origin and as edge, and the bus loop that runs their signalling."""

    def __init__(self, app: web.Application, config: Config, node_id: str) -> None:
        self.app, self.config, self.node_id = app, config, node_id
        self.edge_above = config.cluster.edge_above
        self.links: dict[tuple[int, str], Link] = {}  # (meeting, other node) -> link
        self._opening: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.locked: set[tuple[int, str]] = set()  # (meeting, origin) whose room the origin says is locked

    # ------------------------------------------------------------------------------------------- the edge

    def serves_here(self, role: Role, owner: NodeInfo, meeting_id: int) -> bool:
        """Cascade.serves_here: does this node serve a participant of `role` as an edge of a meeting owned by
        `owner`, rather than sending it there? Classrooms and learners, when `cluster.edge_above` is set
        and the owner carries at least that many participants (0: always, the node a classroom reached being
        taken as the nearer one), unless the origin's room is locked: then its lobby, at the origin, lets them in."""
        return self.edge_above is not None and role in EDGE_ROLES and owner.participants >= self.edge_above \
            and (meeting_id, owner.node_id) not in self.locked

    async def edge_room(self, meeting_id: int, video_codec: str, owner: NodeInfo) -> Room:
        """Cascade.edge_room: the meeting's room on this node as an edge of `owner`, its link opened first."""
        lock = self._opening.setdefault(meeting_id, asyncio.Lock())
        async with lock:
            link = self.links.get((meeting_id, owner.node_id))
            if link is not None and not link.room.closed:
                return link.room
            for key in [k for k in self.links if k[0] == meeting_id]:  # the owner changed: the old link goes
                await self._drop(self.links.pop(key), tell=True)
            room = await self.app[LIVE].sfu.room(edge_room_id(meeting_id), video_codec)
            link = Link(meeting_id, owner.node_id, False, room, LINK_PREFIX + owner.node_id)
            self.links[(meeting_id, owner.node_id)] = link
            await room.join(link.relay_id, LINK_ROLE, owner.node_id,  # its Peer comes with the origin's offer
                            Capabilities(publish=True, moderate=True, enter_locked=True, relay="up"),
                            lambda e: self._on_relay_event(link, e), admitted=True, sinks={})
            await self._send(owner.node_id, "open", meeting_id, codec=video_codec)  # the relay is there to answer
            return room

    async def _send(self, node: str, kind: str, meeting_id: int, **body: Any) -> None:
        await self.app[BUS].publish(f"cascade:{node}", {"kind": kind, "meeting": meeting_id,
                                                        "from": self.node_id, **body})

    # ------------------------------------------------------------------------------------------ both ends

    async def _on_relay_event(self, link: Link, event: Event) -> None:
        """_on_relay_event: an event of this end's relay participant, passed to the other end as it matters."""
        if isinstance(event, PeerFailed):
            self._later(self._link_failed(link))
            return
        if isinstance(event, ServerOffer):
            await self._send(link.other, "offer", link.meeting_id, sdp=event.sdp, slots=event.slots,
                             receive=event.receive)
            return
        if isinstance(event, SlotChanged):
            live = event.state == "live" and event.participant_id is not None
            await self._send(link.other, "bind", link.meeting_id, slot=event.slot, source=event.source,
                             participant=event.participant_id if live else None)
            return
        if isinstance(event, RelayWants):
            await self._send(link.other, "wants", link.meeting_id,
                             wanted=[list(w) for w in zip(event.participants, event.sources, event.top, strict=True)])
            return
        pid = getattr(event, "participant_id", None)
        if isinstance(event, PresenterChanged | FloorChanged):  # the origin's to say, whoever holds them
            if link.origin and not is_link(pid):
                await self._send(link.other, type(event).__name__, link.meeting_id, participant=pid)
            return
        if pid is None or is_link(pid):
            return
        if isinstance(event, HandChanged) and (link.origin or pid not in link.ghosts):  # the origin's hands rule
            await self._send(link.other, "hand", link.meeting_id, participant=pid, raised=event.raised)
        elif pid in link.ghosts:  # what this end mirrors from the other: an echo
            if isinstance(event, ParticipantLeft):
                link.ghosts.discard(pid)
        elif isinstance(event, ParticipantJoined):
            await self._send(link.other, "joined", link.meeting_id, participant=pid, role=event.role,
                             name=event.name)
        elif isinstance(event, ParticipantLeft):
            await self._send(link.other, "left", link.meeting_id, participant=pid)
            if not link.origin and not any(p.id not in link.ghosts and not is_link(p.id)
                                           for p in link.room.snapshot().participants):
                self._later(self._close_edge(link))  # no classroom left here (not from the relay's own task)

    def _later(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_edge(self, link: Link) -> None:
        if self.links.get((link.meeting_id, link.other)) is link:
            del self.links[(link.meeting_id, link.other)]
            await self._drop(link, tell=True)

    async def _handle(self, msg: dict[str, Any]) -> None:
        """_handle: one message of another node (see the module's docstring)."""
        kind, meeting_id, other = msg.get("kind"), int(msg["meeting"]), str(msg["from"])
        if kind == "locked":
            (self.locked.add if msg.get("locked") else self.locked.discard)((meeting_id, other))
            return
        if kind == "open":
            await self._open_origin(meeting_id, other, str(msg.get("codec") or "VP8"))
            return
        link = self.links.get((meeting_id, other))
        if link is None or link.room.closed:
            return
        room, relay = link.room, link.relay_id
        if kind == "close":  # the other end went: an origin forgets the edge; an edge's classrooms join again
            if link.origin:
                self.links.pop((meeting_id, other), None)
                await self._drop(link, tell=False)
            else:
                await self._lose_origin(link, "closed by the origin", tell=False)
        elif kind == "offer":
            down: dict[str, str] = msg["slots"]  # slot -> mid: what the origin sends (the program, the floor)
            up: dict[str, str] = msg.get("receive", {})  # and receives (the same slot names: keyed by mid here)
            sources = {mid: slot for slot, mid in down.items()} | {mid: slot for slot, mid in up.items()}
            answer = await room.publish(relay, msg["sdp"], sources)
            link.up_slots = tuple(up)
            await self._send(other, "answer", meeting_id, sdp=answer)
        elif kind == "answer":
            await room.answer_down(relay, msg["sdp"])
        elif kind == "bind":
            await room.bind(relay, msg["slot"], msg.get("participant"), msg.get("source"))
        elif kind == "wants":
            await self._choose(link, [(str(p), str(s), bool(t)) for p, s, t in msg["wanted"]])
        elif kind == "joined":
            await self._ghost(link, str(msg["participant"]), str(msg["role"]), str(msg["name"]))
        elif kind == "left":
            pid = str(msg["participant"])
            if pid in link.ghosts:
                with contextlib.suppress(SfuError):
                    await room.leave(pid)
        elif kind == "mute":  # a moderator of the origin muted an edge's classroom: the edge does it, and tells it
            with contextlib.suppress(SfuError):
                await room.mute(relay, str(msg["participant"]), str(msg["source"]), bool(msg["muted"]))
        elif kind == "hand":
            with contextlib.suppress(SfuError):
                await room.raise_hand(str(msg["participant"]), bool(msg["raised"]))
        elif kind == "PresenterChanged":
            with contextlib.suppress(SfuError):
                await room.set_presenter(relay, msg.get("participant"))
        elif kind == "FloorChanged":
            with contextlib.suppress(SfuError):
                await room.give_floor(relay, msg.get("participant"))

    async def _ghost(self, link: Link, pid: str, role: str, name: str) -> None:
        """_ghost: the other room's participant `pid` is mirrored in this room (no Peer: its link carries it)."""
        if pid in link.ghosts or is_link(pid) or pid in {p.id for p in link.room.snapshot().participants}:
            return
        if link.origin:  # an edge's classroom: in the grid as its role says, never presenting nor moderating
            known = CAPABILITIES.get(Role(role)) if role in {r.value for r in Role} else None
            caps = Capabilities(publish=True, in_grid=bool(known and known.in_grid), enter_locked=True)
        else:  # the origin's participants: anyone of them may be the presenter the origin names
            caps = Capabilities(publish=True, present=True, enter_locked=True)
        link.ghosts.add(pid)

        async def on_event(event: Event) -> None:  # a ghost's events are its own node's, but for a mute asked here
            if isinstance(event, MuteRequested) and link.origin:
                await self._send(link.other, "mute", link.meeting_id, participant=pid, source=event.source,
                                 muted=event.muted)

        try:
            await link.room.join(pid, role, name, caps, on_event, admitted=True, sinks={}, via=link.relay_id)
        except SfuError:
            link.ghosts.discard(pid)
            log.warning("cascade: ghost %s not joined in %s", pid, link.room.id, exc_info=True)

    async def _choose(self, link: Link, wanted: list[tuple[str, str, bool]]) -> None:
        """_choose: an edge puts what the origin wants of its participants on its up link's slots (audio on the
        audio slots, a top-layer video on floor/presenter/screen, a grid tile's on a grid slot), keeping a source
        where it already is."""
        want = {(p, s): top for p, s, top in wanted if p not in link.ghosts}
        keep = {slot: ps for slot, ps in link.chosen.items() if ps in want}
        grids = tuple(s for s in link.up_slots if s.startswith("grid-"))
        for ps, top in want.items():
            if ps in keep.values():
                continue
            order = AUDIO_SLOTS if ps[1] == "mic" else (TOP_SLOTS + grids if top else grids + TOP_SLOTS)
            slot = next((s for s in order if s not in keep and s in link.up_slots), None)
            if slot is not None:
                keep[slot] = ps
        for slot in set(link.chosen) - set(keep):
            with contextlib.suppress(SfuError):
                await link.room.choose(link.relay_id, slot, None)
        for slot, (pid, source) in keep.items():
            if link.chosen.get(slot) != (pid, source):
                with contextlib.suppress(SfuError):
                    await link.room.choose(link.relay_id, slot, pid, source)
        link.chosen = keep

    # ----------------------------------------------------------------------------------------- the origin

    async def _open_origin(self, meeting_id: int, edge: str, codec: str) -> None:
        """_open_origin: an edge opens its link to this node's room of the meeting (the owner's). The relay's join
        tells it the room as it is (participants, hands, presenter, floor), which the edge mirrors."""
        old = self.links.pop((meeting_id, edge), None)
        if old is not None:
            await self._drop(old, tell=False)
        room = await self.app[LIVE].sfu.room(str(meeting_id), codec)
        link = Link(meeting_id, edge, True, room, LINK_PREFIX + edge)
        self.links[(meeting_id, edge)] = link
        await room.join(link.relay_id, LINK_ROLE, edge, Capabilities(publish=True, enter_locked=True, relay="down"),
                        lambda e: self._on_relay_event(link, e), admitted=True)
        await self._send(edge, "locked", meeting_id, locked=room.snapshot().locked)

    async def tell_locked(self, meeting_id: int, locked: bool) -> None:
        """Cascade.tell_locked: the origin's room was locked or unlocked: its edges learn it."""
        for (mid, edge), link in list(self.links.items()):
            if mid == meeting_id and link.origin:
                await self._send(edge, "locked", meeting_id, locked=locked)

    async def _drop(self, link: Link, tell: bool) -> None:
        """_drop: this end of a link goes: its relay and ghosts leave its room (an edge's room closes)."""
        if tell:
            with contextlib.suppress(Exception):
                await self._send(link.other, "close", link.meeting_id)
        if link.room.closed:
            return
        for pid in [link.relay_id, *link.ghosts]:
            with contextlib.suppress(SfuError):
                await link.room.leave(pid)
        link.ghosts.clear()
        if not link.origin:
            await link.room.close()

    async def watch_origins(self) -> None:
        """Cascade.watch_origins: an edge whose origin died (its room's lease expired with its heartbeat) or no
        longer owns the meeting sends its classrooms away (`closed` `origin-lost`): their pages join again and
        find the meeting where it is now (placed again, maybe on this node). Run every third of the lease."""
        cluster = self.app[CLUSTER]
        for (mid, other), link in list(self.links.items()):
            if link.origin:
                continue
            owner = await cluster.owner(mid)
            if (owner is not None and owner.node_id == other) or self.links.get((mid, other)) is not link:
                continue
            await self._lose_origin(link, f"the owner is now {owner.node_id if owner is not None else 'none or us'}",
                                    tell=False)

    async def _lose_origin(self, link: Link, why: str, tell: bool) -> None:
        """_lose_origin: an edge's link to its origin is gone (the origin died, stopped, lost the meeting, or the
        link failed): its classrooms are sent to join again (`closed` `origin-lost`), which opens a new link or
        finds the meeting where it is now; the link's end here goes (and, with `tell`, the origin's)."""
        log.warning("meeting %s: the link to its origin %s is gone (%s): this edge's classrooms join again",
                    link.meeting_id, link.other, why)
        # under the meeting's opening lock: a classroom joining again meanwhile waits for the old room to close
        async with self._opening.setdefault(link.meeting_id, asyncio.Lock()):
            if self.links.get((link.meeting_id, link.other)) is link:
                del self.links[(link.meeting_id, link.other)]
            for conn in [c for c in self.app[LIVE].in_meeting(link.meeting_id) if c.room is link.room]:
                await conn.close("origin-lost")
            await self._drop(link, tell=tell)

    async def _link_failed(self, link: Link) -> None:
        """_link_failed: a Peer of the link failed (ICE, DTLS): links are not restarted but made again; the origin
        drops its end and tells the edge, whose classrooms join again (and so open a new link)."""
        if link.origin:
            if self.links.get((link.meeting_id, link.other)) is link:
                del self.links[(link.meeting_id, link.other)]
                await self._drop(link, tell=True)
        else:
            await self._lose_origin(link, "its connection failed", tell=True)

    def link_count(self) -> int:
        """Cascade.link_count: the links open on this node (each one relay participant, two Peers)."""
        return len(self.links)

    async def run(self) -> None:
        """Cascade.run: handle the other nodes' messages in order, one at a time."""
        sub = await self.app[BUS].subscribe(f"cascade:{self.node_id}")
        try:
            async for msg in sub:
                try:
                    await self._handle(msg)
                except Exception:
                    log.exception("cascade message %s failed", msg.get("kind"))
        finally:
            await sub.close()


async def cascade_ctx(app: web.Application) -> AsyncIterator[None]:
    """cascade_ctx: this node's cascade bus loop while the app runs; its links are dropped at the end."""
    cascade = app[CASCADE]
    task = asyncio.create_task(cascade.run(), name="cascade")
    watch = asyncio.create_task(keep_renewing(app[CLUSTER].lease / 3, cascade.watch_origins,
                                              "the cascade's view of its origins"), name="cascade-origins")
    yield
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    for link in list(cascade.links.values()):
        with contextlib.suppress(Exception):
            await cascade._drop(link, tell=True)
    cascade.links.clear()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application, config: Config) -> None:
    """setup: with several nodes (server.live.cluster set up), this node takes part in cascades (as origin
    always, as edge when `cluster.edge_above` is set)."""
    cluster = app.get(CLUSTER)
    if cluster is None:
        return
    app[CASCADE] = Cascade(app, config, cluster.node_id)
    app.cleanup_ctx.append(cascade_ctx)


def cascade_of(app: web.Application) -> Cascade | None:
    """cascade_of: the app's Cascade, or None (one node)."""
    return app.get(CASCADE)


CASCADE: web.AppKey[Cascade] = web.AppKey("cascade")
