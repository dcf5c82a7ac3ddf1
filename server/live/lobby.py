"""server.live.lobby: guests, and everyone when a room is locked, wait here until a moderator admits them.

State lives in `Live.lobby` (meeting id → lobby id → waiting Connection), `Live.removed` and `Live.entered`; all are
changed only by signalling handlers on the event loop. A waiting connection has `conn.waiting` set and
no participant; it may only `ping` or `leave` until `admit` (it then gets `joined`, with its original
join request's id) or `refuse` (it gets `closed` with reason `refused`).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from server.db.models import Meeting, Role
from server.live.connection import Connection, Route, audit_live
from server.live.service import LIVE
from server.live.wire import MODERATORS, SignalError, field

if TYPE_CHECKING:
    from sfu.room import Room


def removal_key(conn: Connection) -> str:
    """removal_key: who a connection is, for remembering removals (the account, or the guest's login)."""
    return f"user:{conn.ident.user_id}" if conn.ident.user_id is not None else f"login:{conn.ident.login_id}"


def must_wait(conn: Connection, room: Room, meeting_id: int) -> bool:
    """must_wait: guests, non-moderators of a locked room, and the removed wait in the lobby.

    Whoever was in this meeting's room before (joined or admitted; not removed since) comes back without waiting:
    a lock keeps newcomers out, not a classroom whose cut outlasted its resume window.
    """
    if conn.ident.role in MODERATORS or returning(conn, meeting_id):
        return False
    if removal_key(conn) in conn.app[LIVE].removed.get(meeting_id, set()):
        return True
    return conn.ident.role == Role.GUEST or room.snapshot().locked


def returning(conn: Connection, meeting_id: int) -> bool:
    """returning: this connection's account (or guest login) was in the meeting's room and was not removed since."""
    live = conn.app[LIVE]
    key = removal_key(conn)
    return key in live.entered.get(meeting_id, set()) and key not in live.removed.get(meeting_id, set())


def _entry(conn: Connection) -> dict[str, Any]:
    return {"lobby_id": conn.waiting, "name": conn.name, "role": conn.ident.role.value}


async def notify_moderators(conn: Connection, meeting_id: int) -> None:
    """notify_moderators: send the current waiting list to every moderator in the room."""
    live = conn.app[LIVE]
    waiting = [_entry(c) for c in live.lobby.get(meeting_id, {}).values()]
    for other in live.in_meeting(meeting_id):
        if other.ident.role in MODERATORS:
            await other.send({"type": "lobby-waiting", "waiting": waiting})


def waiting_for(conn: Connection) -> list[dict[str, Any]]:
    """waiting_for: the lobby list for a moderator who just joined (nothing for others)."""
    if conn.ident.role not in MODERATORS or conn.meeting_id is None:
        return []
    entries = conn.app[LIVE].lobby.get(conn.meeting_id, {})
    return [{"type": "lobby-waiting", "waiting": [_entry(c) for c in entries.values()]}] if entries else []


async def wait(conn: Connection, meeting: Meeting, name: str, request_id: Any) -> dict[str, Any]:
    """wait: put the connection in the lobby; the reply to its join is a `lobby` message."""
    live = conn.app[LIVE]
    conn.waiting = secrets.token_hex(6)
    conn.name = name
    conn.pending_join = (meeting, request_id)
    live.lobby.setdefault(meeting.id, {})[conn.waiting] = conn
    await notify_moderators(conn, meeting.id)
    return {"type": "lobby", "lobby_id": conn.waiting,
            "message": "Vui lòng chờ người chủ trì cho vào phòng. / Please wait: a host will let you in."}


async def leave_lobby(conn: Connection) -> None:
    """leave_lobby: forget a waiting connection (it left or was let in or refused)."""
    if conn.waiting is None or conn.pending_join is None:
        return
    meeting_id = conn.pending_join[0].id
    live = conn.app[LIVE]
    entries = live.lobby.get(meeting_id, {})
    entries.pop(conn.waiting, None)
    if not entries:
        live.lobby.pop(meeting_id, None)
    conn.waiting = None
    await notify_moderators(conn, meeting_id)


def waiting_connection(conn: Connection, msg: dict[str, Any]) -> Connection:
    lobby_id = field(msg, "lobby_id", str)
    assert conn.meeting_id is not None
    other = conn.app[LIVE].lobby.get(conn.meeting_id, {}).get(lobby_id)
    if other is None:
        raise SignalError("not-found", "Không còn ai chờ với mã này. / Nobody waits with this id.")
    return other


async def on_refuse(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_refuse: a moderator turns someone in the lobby away."""
    other = waiting_connection(conn, msg)
    await leave_lobby(other)
    await other.close("refused")
    await audit_live(conn, "live.refuse", lobby_id=msg.get("lobby_id"))
    return {"type": "ok"}


ROUTES: dict[str, Route] = {
    "refuse": Route(on_refuse, roles=MODERATORS),
}
