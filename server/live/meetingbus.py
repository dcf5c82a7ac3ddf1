"""server.live.meetingbus: messages for a meeting's sockets on every node, not only this one.

With several nodes (`bus.kind: redis`) one meeting's sockets may be on more than one node: the classrooms an edge
node serves (server.live.cascade), the moderators on the room's node while a viewer's question is posted to
another (server.live.questions). What the meeting's chat, polls and question queue send to "everyone in the
meeting", "its moderators" or "these participants" is therefore delivered here at once and published on the bus
(`CHANNEL`), and every other node delivers it to the sockets of that meeting it holds (`Relay`, skipping its own
messages). With one node the bus is in-process and nothing else listens.

Owner: the relay's listener task (one per process, `relay_ctx`); `deliver` is called from signalling handlers
and API handlers on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from aiohttp import web

from server.bus import BUS
from server.live.service import LIVE
from server.live.wire import MODERATORS

log = logging.getLogger("taphuan")

CHANNEL = "meeting-messages"  # the bus channel carrying what goes to a meeting's sockets between nodes
EVERYONE = "everyone"
MODERATORS_ONLY = "moderators"
# who gets a message: EVERYONE, MODERATORS_ONLY, or the participant ids listed
Audience = str | Sequence[str]


def _wanted(role_is_moderator: bool, participant_id: str | None, to: Audience) -> bool:
    if to == EVERYONE:
        return True
    if to == MODERATORS_ONLY:
        return role_is_moderator
    return participant_id is not None and not isinstance(to, str) and participant_id in to


async def deliver_here(app: web.Application, meeting_id: int, message: dict[str, Any], to: Audience) -> None:
    """deliver_here: send `message` to this process's joined sockets of the meeting that `to` names."""
    live = app.get(LIVE)
    if live is None:
        return
    for conn in live.in_meeting(meeting_id):
        if _wanted(conn.ident.role in MODERATORS, conn.participant_id, to):
            await conn.send(message)


async def deliver(app: web.Application, meeting_id: int, message: dict[str, Any], to: Audience = EVERYONE) -> None:
    """deliver: send `message` to the meeting's sockets that `to` names, here and (through the bus) on the other
    nodes."""
    await deliver_here(app, meeting_id, message, to)
    relay = app.get(RELAY)
    if relay is not None:
        audience: str | list[str] = to if isinstance(to, str) else list(to)
        await app[BUS].publish(CHANNEL, {"origin": relay.origin, "meeting_id": meeting_id, "to": audience,
                                         "message": message})


@dataclass
class Relay:
    """Relay: this process's name on the bus (its own messages come back to it and are skipped) and its listener,
    which hands the other nodes' messages for a meeting to the sockets of that meeting connected here."""

    app: web.Application
    origin: str = dc_field(default_factory=lambda: secrets.token_hex(8))

    async def listen(self, sub: Any) -> None:
        """Relay.listen: deliver every message of `CHANNEL` published by another process, until cancelled."""
        try:
            async for item in sub:
                meeting_id, message, to = item.get("meeting_id"), item.get("message"), item.get("to", EVERYONE)
                if item.get("origin") == self.origin or not isinstance(meeting_id, int) \
                        or not isinstance(message, dict) or not isinstance(to, (str, list)):
                    continue
                try:
                    await deliver_here(self.app, meeting_id, message, to)
                except Exception:  # one failed send does not stop the listener
                    log.exception("meeting %s: a message from another node was not delivered", meeting_id)
        finally:
            await sub.close()


RELAY = web.AppKey("meeting_relay", Relay)


async def relay_ctx(app: web.Application) -> AsyncIterator[None]:
    """relay_ctx: the cleanup context of the relay (subscribed before the app serves)."""
    relay = Relay(app)
    sub = await app[BUS].subscribe(CHANNEL)
    app[RELAY] = relay
    task = asyncio.create_task(relay.listen(sub), name="meeting-relay")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    """setup: the meeting relay between nodes (after the bus's context)."""
    app.cleanup_ctx.append(relay_ctx)
