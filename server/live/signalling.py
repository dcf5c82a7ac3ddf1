"""server.live.signalling: the /ws endpoint: authenticate, run a `Connection`, route each request to its handler.

The handlers live by area: here the media and the room (publish, answer, candidate, hand, floor, presenter,
mute, grid, lock, remove, stats, leave); server.live.entry (join, admit), server.live.chat,
server.live.polls, server.live.lobby, server.live.recording_live and server.live.ending (end, extend). Each area
exports a ROUTES table; `ROUTES` is their union (a request type belongs to one area). `setup` adds /ws and the
live side's cleanup contexts to the application. The wire format is documented in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, web

from server.auth import client_ip, identity, websocket_origin_ok
from server.config import CONFIG
from server.db.models import Role
from server.live import attendance, chat, ending, entry, lobby, polls, questions, recording_live
from server.live.cascade import cascade_of
from server.live.cluster import CLUSTER
from server.live.connection import Connection, Route, audit_live, jsonable
from server.live.sender import POLICY_CLOSE_WAIT
from server.live.service import LIVE, live_ctx, on_shutdown
from server.live.wire import FORBIDDEN, MODERATORS, SignalError, field
from server.metrics import METRICS
from server.ratelimit import TokenBucket
from sfu.errors import SfuError

SOURCES = ("camera", "mic", "screen")
MUTED_BY_MUTE_ALL = frozenset({Role.CLASSROOM, Role.LEARNER, Role.GUEST})  # role labels (StrEnum values)
CLEAN_CLOSE = (1000, 1001)  # normal closure, going away (tab closed)
# `restart` renews every media connection of its participant: three at once, then one every five seconds (the
# page sends one at a time and retries a refused one after 1, 2, 4, 8 s)
RESTART_BURST = 3
RESTARTS_PER_SECOND = 0.2
# Seconds between the server's WebSocket pings; a socket that does not answer one within half of it is lost
# (detached: resume window). A network cut shorter than that (plus TCP's retransmission back-off once the link
# is back) keeps the socket, and the media connections come back by themselves (docs/protocol.md, Recovery).
HEARTBEAT = 40.0

log = logging.getLogger("taphuan.signalling")


async def on_ping(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_ping: liveness check: `pong`, echoing the id if the ping had one."""
    return {"type": "pong"}


async def on_publish(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_publish: answer the browser's up offer."""
    room, pid = conn.require_room()
    sdp = conn.sdp(msg)
    sources = field(msg, "sources", dict, optional=True) or {}
    if len(sources) > 8 or not all(isinstance(k, str) and v in SOURCES for k, v in sources.items()):
        raise SignalError("bad-message", "sources: {mid: camera|mic|screen}")
    answer = await room.publish(pid, sdp, sources)
    return {"type": "answer", "sdp": answer}


async def on_answer(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_answer: the browser's answer to the down offer."""
    room, pid = conn.require_room()
    await room.answer_down(pid, conn.sdp(msg))
    return {"type": "ok"}


async def on_candidate(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_candidate: a trickled browser candidate for the up or down connection."""
    room, pid = conn.require_room()
    pc = field(msg, "pc", str)
    if pc not in ("up", "down"):
        raise SignalError("bad-message", "pc: up | down")
    cand = field(msg, "candidate", dict)
    text = cand.get("candidate", "")
    mid = cand.get("sdpMid")
    index = cand.get("sdpMLineIndex")
    if not isinstance(text, str) or len(text) > 1024 or (mid is not None and not isinstance(mid, str)) \
            or (index is not None and (not isinstance(index, int) or isinstance(index, bool))):
        raise SignalError("bad-message", "candidate: {candidate, sdpMid, sdpMLineIndex}")
    await room.add_candidate(pid, pc, text, mid, index)
    return {"type": "ok"}


async def on_raise_hand(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_raise_hand: raise or lower this participant's hand."""
    room, pid = conn.require_room()
    raised = bool(field(msg, "raised", bool))
    await room.raise_hand(pid, raised)
    await attendance.record(conn, "hand-up" if raised else "hand-down")
    return {"type": "ok"}


async def on_give_floor(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_give_floor: give the floor to a participant, or take it back (null)."""
    room, pid = conn.require_room()
    target = field(msg, "participant_id", str, optional=True)
    before, after = await room.give_floor(pid, target)  # from the room's own step: no other request in between
    await attendance.record_floor_change(conn, before, after)
    await audit_live(conn, "live.floor", participant=target)
    return {"type": "ok"}


async def on_set_presenter(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_set_presenter: hand presenting over to a trainer or leader in the room."""
    room, pid = conn.require_room()
    target = field(msg, "participant_id", str)
    await room.set_presenter(pid, target)
    await audit_live(conn, "live.presenter", participant=target)
    return {"type": "ok"}


async def on_mute(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_mute: stop (or resume) forwarding one source of a participant."""
    room, pid = conn.require_room()
    target = field(msg, "participant_id", str)
    source = field(msg, "source", str)
    if source not in SOURCES:
        raise SignalError("bad-message", "source: camera | mic | screen")
    muted = msg.get("muted", True)
    if not isinstance(muted, bool):
        raise SignalError("bad-message", "muted must be true or false")
    await room.mute(pid, target, source, muted)
    await audit_live(conn, "live.mute", participant=target, source=source, muted=muted)
    return {"type": "ok"}


async def on_grid_page(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_grid_page: show another page of the classroom grid."""
    room, pid = conn.require_room()
    page = field(msg, "page", int)
    if page < 0:
        raise SignalError("bad-message", "page must be ≥ 0")
    return {"type": "grid-page", "page": await room.set_grid_page(pid, page)}


async def on_lock(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_lock: lock or unlock the room."""
    room, pid = conn.require_room()
    locked = bool(field(msg, "locked", bool))
    await room.set_locked(pid, locked)
    cascade = cascade_of(conn.app)
    if cascade is not None:  # the meeting's edges send new classrooms here while it is locked (the lobby is here)
        await cascade.tell_locked(conn.meeting_id or 0, locked)
    await audit_live(conn, "live.lock", locked=locked)
    for other in conn.app[LIVE].in_meeting(conn.meeting_id or 0):
        await other.send({"type": "locked", "locked": locked, "by": pid})
    if not locked:
        await entry.admit_all_after_unlock(conn)
    return {"type": "ok"}


async def on_remove(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_remove: a moderator removes a participant; coming back means waiting in the lobby."""
    room, pid = conn.require_room()
    target = field(msg, "participant_id", str)
    if target == pid:
        raise SignalError("bad-message", "Không thể tự mời mình ra. / You cannot remove yourself.")
    other_p = room.snapshot().participant(target)
    if other_p is None:
        raise SignalError("not-found", "Không có người tham gia này. / No such participant.")
    if other_p.role in {r.value for r in MODERATORS} and conn.ident.role != Role.OPERATOR:
        raise SignalError("forbidden", FORBIDDEN)
    live = conn.app[LIVE]
    other = live.by_participant(conn.meeting_id or 0, target)
    if other is not None:
        live.removed.setdefault(conn.meeting_id or 0, set()).add(lobby.removal_key(other))
        await other.close("removed")
    else:
        with contextlib.suppress(SfuError):
            await room.leave(target)
    await audit_live(conn, "live.remove", participant=target, name=other_p.name)
    return {"type": "ok"}


async def on_mute_all(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_mute_all: mute one source (default the microphone) of every classroom and learner."""
    room, pid = conn.require_room()
    source = field(msg, "source", str, optional=True) or "mic"
    if source not in SOURCES:
        raise SignalError("bad-message", "source: camera | mic | screen")
    audience = tuple(p.id for p in room.snapshot().participants if p.role in MUTED_BY_MUTE_ALL)
    muted = await room.mute_all(pid, audience, source)  # those who left meanwhile are not counted
    await audit_live(conn, "live.mute-all", source=source, count=len(muted))
    return {"type": "ok", "muted": len(muted)}


async def on_audio_only(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_audio_only: receive no video at all (weak link), or video again; everyone in the room is told
    (`participant-audio-only`), so presenters and operators see which classrooms went without video."""
    room, pid = conn.require_room()
    enabled = bool(field(msg, "enabled", bool))
    await room.set_audio_only(pid, enabled)
    for other in conn.app[LIVE].in_meeting(conn.meeting_id or 0):
        if other is not conn:
            await other.send({"type": "participant-audio-only", "participant_id": pid, "enabled": enabled})
    return {"type": "ok"}


async def on_restart(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_restart: renew this participant's media connections without leaving the room (after `peer-failed`,
    or when the browser's own connections failed): a new down `offer` follows; the browser publishes again."""
    room, pid = conn.require_room()
    bucket = conn.restarts
    if bucket is None:
        bucket = conn.restarts = TokenBucket(RESTARTS_PER_SECOND, RESTART_BURST)
    if not bucket.take():  # each renews every connection of the participant: not a thing to flood
        raise SignalError("rate-limited", "Đang kết nối lại, xin chờ. / Reconnecting already: wait a moment.")
    await room.restart(pid)
    return {"type": "ok"}


async def on_stats(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_stats: a snapshot of the room's forwarding statistics."""
    room, _ = conn.require_room()
    return {"type": "stats", **jsonable(room.stats())}


async def on_leave(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_leave: leave the room for good (no resume)."""
    conn.require_room()
    await attendance.record(conn, "leave", reason="left")
    await conn.leave_room()
    conn.closing_reason = "left"
    return {"type": "ok"}


_ROOM_ROUTES: dict[str, Route] = {
    "ping": Route(on_ping, joined=False, reply_without_id=True),
    "publish": Route(on_publish, roles=frozenset(Role) - {Role.GUEST}),
    "answer": Route(on_answer),
    "candidate": Route(on_candidate),
    "restart": Route(on_restart),
    "raise-hand": Route(on_raise_hand),
    "give-floor": Route(on_give_floor, roles=MODERATORS),
    "set-presenter": Route(on_set_presenter, roles=MODERATORS),
    "mute": Route(on_mute, roles=MODERATORS),
    "grid-page": Route(on_grid_page, roles=MODERATORS),
    "lock": Route(on_lock, roles=MODERATORS),
    "stats": Route(on_stats, roles=MODERATORS),
    "leave": Route(on_leave),
    "remove": Route(on_remove, roles=MODERATORS),
    "mute-all": Route(on_mute_all, roles=MODERATORS),
    "audio-only": Route(on_audio_only),
}


def _union(*tables: dict[str, Route]) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for table in tables:
        for name, route in table.items():
            assert name not in routes, name
            routes[name] = route
    return routes


ROUTES = _union(_ROOM_ROUTES, entry.ROUTES, chat.ROUTES, polls.ROUTES, lobby.ROUTES, recording_live.ROUTES,
                ending.ROUTES, questions.ROUTES)


async def _after_close(conn: Connection, ws: web.WebSocketResponse) -> None:
    """_after_close: forget the connection; a participant leaves (clean close) or is detached (lost, or closed
    `too-slow`: it may resume)."""
    live = conn.app[LIVE]
    if conn.waiting is not None:
        await lobby.leave_lobby(conn)
    live.connections.discard(conn)
    conn.app[METRICS].ws_connections.dec()
    room, pid = conn.room, conn.participant_id
    if room is None or pid is None or conn.closing_reason is not None:
        return
    clean = ws.close_code in CLEAN_CLOSE and not conn.too_slow
    await attendance.record(conn, "leave" if clean else "drop",
                            reason="too-slow" if conn.too_slow else "closed" if clean else "lost", code=ws.close_code)
    if conn.room is None:
        return  # meanwhile a new socket resumed the participant (server.live.entry): it is not ours to end
    with contextlib.suppress(SfuError):
        if clean:
            await room.leave(pid)  # the browser closed the tab or navigated away: it is gone
        else:
            await room.detach(pid)  # lost connection: resume window, slots show reconnecting


async def _record_leave(conn: Connection, reason: str) -> None:
    # `timeout`: its media never came back within the resume window although its socket stayed open
    await attendance.record(conn, "drop" if reason == "timeout" else "leave", reason=reason)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """websocket_handler: GET /ws: authenticate by cookie (with this server's Origin) or bearer token, then run a
    Connection until it closes.

    A login or an address with its quota of open sockets (limits.ws_connections_per_login, _per_ip), or a login
    cooling down after a flood, gets the socket, one `closed` message saying why, and a close with 1008.
    """
    ident = identity(request)
    if ident is None:
        raise web.HTTPUnauthorized(text="login required")
    cluster = request.app.get(CLUSTER)  # with several nodes: a page of another node may be sent here (`moved`)
    if not websocket_origin_ok(request) and not (cluster and await cluster.origin_ok(request.headers.get("Origin"))):
        raise web.HTTPForbidden(text="Origin của WebSocket không phải máy chủ này. / Cross-origin WebSocket refused: "
                                     "a login cookie needs this server's Origin; other clients use a bearer token.")
    limits = request.app[CONFIG].limits
    live = request.app[LIVE]
    metrics = request.app[METRICS]
    # no permessage-deflate: inflating happens before any limit could refuse a message
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=limits.ws_message_bytes * 4, compress=False)
    ip = client_ip(request)
    refusal = await live.quota.take(ident.login_id, ip)
    if refusal is not None:
        metrics.ws_policy.labels(refusal.label).inc()
        await ws.prepare(request)
        await ws.send_str(json.dumps({"type": "closed", "reason": refusal.reason, "message": refusal.message},
                                     ensure_ascii=False))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.close(code=WSCloseCode.POLICY_VIOLATION), POLICY_CLOSE_WAIT)
        return ws
    try:
        await ws.prepare(request)
        conn = Connection(request, ws, ident, ROUTES, on_close=_record_leave)
        live.connections.add(conn)
        metrics.ws_connections.inc()
        try:
            await conn.run()
        except Exception:
            # The socket is upgraded: what is left to say goes in a close frame, never in an HTTP 500 written into it.
            log.exception("signalling connection failed", extra={"login": ident.login_id[:8]})
            await ws.close(code=WSCloseCode.INTERNAL_ERROR)
        finally:
            if conn.closing_reason == "flooding":
                metrics.ws_policy.labels("flooding").inc()
                await asyncio.shield(live.quota.cool_down(ident.login_id))
            # aiohttp may cancel this handler once the socket is gone: finish the clean-up in its own task.
            await asyncio.shield(asyncio.ensure_future(_after_close(conn, ws)))
    finally:
        await asyncio.shield(live.quota.give_back(ident.login_id, ip))
    return ws


def setup(app: web.Application) -> None:
    """setup: add the live routes and the live side's cleanup contexts (the SFU's, then attendance's, then the watch
    on meetings past their end)."""
    app.cleanup_ctx.append(live_ctx)
    app.cleanup_ctx.append(attendance.attendance_ctx)
    app.cleanup_ctx.append(ending.ending_ctx)
    app.on_shutdown.append(on_shutdown)
    app.router.add_get("/ws", websocket_handler, name="ws")
