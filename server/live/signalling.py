"""server.live.signalling: the /ws endpoint: parse → check role → call the meeting's Room → reply.

One `Connection` per WebSocket owns that socket and at most one participant. Requests are handled one at
a time in the socket's read loop, in order; SFU events arrive from the participant's outbox task and are
written with `send()` (aiohttp serialises writes). The wire format is documented in docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import asdict, fields, is_dataclass
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server.audit import record
from server.auth import Identity, identity
from server.config import CONFIG, Config
from server.db.engine import DB
from server.db.models import Meeting, MeetingKind, MeetingStatus, Role
from server.live import attendance
from server.live.service import LIVE
from server.live.wire import FORBIDDEN, MODERATORS, Route, SignalError, field
from server.metrics import METRICS
from server.ratelimit import TokenBucket
from sfu.errors import SfuError
from sfu.events import (
    Event,
    FloorChanged,
    GridChanged,
    HandChanged,
    MuteRequested,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantState,
    PeerFailed,
    PresenterChanged,
    ServerOffer,
    SlotChanged,
)
from sfu.room import Room

log = logging.getLogger("taphuan.signalling")

PROTOCOL_VERSIONS = (1,)
SOURCES = ("camera", "mic", "screen")
CLEAN_CLOSE = (1000, 1001)  # normal closure, going away (tab closed)

# Messages for errors the SFU raises, Vietnamese first.
_SFU_MESSAGES = {
    "full": "Buổi tập huấn đã đủ người. / The meeting is full.",
    "forbidden": FORBIDDEN,
    "codec": "Trình duyệt không gửi được mã hóa video của phòng này. / No codec usable in this room.",
    "sdp-too-large": "SDP quá lớn. / SDP too large.",
    "sdp-invalid": "SDP không hợp lệ. / Invalid SDP.",
    "token": "Không thể nối lại; hãy vào lại phòng. / Cannot resume: join again.",
}

_EVENT_TYPES: dict[type[Event], str] = {
    ServerOffer: "offer",
    ParticipantJoined: "participant-joined",
    ParticipantLeft: "participant-left",
    ParticipantState: "participant-state",
    PresenterChanged: "presenter",
    FloorChanged: "floor",
    SlotChanged: "slot",
    GridChanged: "grid",
    HandChanged: "hand",
    MuteRequested: "mute-request",
    PeerFailed: "peer-failed",
}


def event_message(event: Event) -> dict[str, Any]:
    """event_message: the wire form of an SFU event (see docs/protocol.md)."""
    kind = _EVENT_TYPES.get(type(event))
    if kind is None:
        raise KeyError(type(event).__name__)
    body = asdict(event) if is_dataclass(event) else {}
    if isinstance(event, ServerOffer):
        body.pop("down", None)
    if isinstance(event, PeerFailed):
        body = {"pc": "down" if event.down else "up", "state": event.state}
    if isinstance(event, GridChanged):
        body["participants"] = list(event.participants)
    return {"type": kind, **body}


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def ice_servers(config: Config, participant: str, now: float | None = None) -> list[dict[str, Any]]:
    """ice_servers: STUN URLs and TURN with coturn's time-limited credentials (use-auth-secret)."""
    servers: list[dict[str, Any]] = []
    if config.sfu.stun_urls:
        servers.append({"urls": list(config.sfu.stun_urls)})
    turn = config.sfu.turn
    if turn.urls and turn.secret:
        expiry = int((time.time() if now is None else now) + turn.ttl_seconds)
        username = f"{expiry}:{participant}"
        digest = hmac.new(turn.secret.encode(), username.encode(), hashlib.sha1).digest()
        servers.append({"urls": list(turn.urls), "username": username,
                        "credential": base64.b64encode(digest).decode()})
    return servers


async def load_meeting_for(app: web.Application, ident: Identity, meeting_id: int) -> Meeting:
    """load_meeting_for: the meeting if `ident` may enter its live room, else SignalError."""
    async with app[DB]() as s:
        meeting = await s.scalar(
            select(Meeting).where(Meeting.id == meeting_id)
            .options(selectinload(Meeting.presenters), selectinload(Meeting.classrooms)))
    if meeting is None:
        raise SignalError("not-found", "Không có buổi tập huấn này. / No such meeting.")
    refused = SignalError("forbidden",
                          "Bạn không được mời vào buổi tập huấn này. / You are not invited to this meeting.")
    if ident.meeting_id is not None and ident.meeting_id != meeting.id:
        raise refused  # a join-link login is scoped to its own meeting
    if meeting.status == MeetingStatus.CANCELLED:
        raise SignalError("forbidden", "Buổi tập huấn đã bị huỷ. / The meeting was cancelled.")
    role = ident.role
    if role == Role.OPERATOR:
        return meeting
    if role in (Role.TRAINER, Role.LEADER):
        if any(u.id == ident.user_id for u in meeting.presenters):
            return meeting
        if role == Role.LEADER and meeting.kind == MeetingKind.REGIONAL:
            return meeting
        raise refused
    if meeting.status != MeetingStatus.PUBLISHED:
        raise SignalError("forbidden", "Buổi tập huấn chưa được công bố. / The meeting is not published yet.")
    if role == Role.CLASSROOM:
        if ident.meeting_id == meeting.id or any(c.id == ident.classroom_id for c in meeting.classrooms):
            return meeting
        raise refused
    if role == Role.GUEST and ident.meeting_id == meeting.id:
        return meeting
    raise refused


class Connection:
    """Connection: one signalling WebSocket and (after `join`) its participant in a room."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, ident: Identity) -> None:
        self.request = request
        self.app = request.app
        self.config = request.app[CONFIG]
        self.ws = ws
        self.ident = ident
        self.room: Room | None = None
        self.meeting_id: int | None = None
        self.participant_id: str | None = None
        self.name = ident.display_name or ident.username
        self.closing_reason: str | None = None
        self.waiting: str | None = None  # lobby id while waiting to be admitted
        self.pending_join: tuple[Meeting, Any] | None = None  # (meeting, join request id) while waiting
        self.followups: list[dict[str, Any]] = []  # messages to send right after the current reply
        limits = self.config.limits
        self.bucket = TokenBucket(limits.ws_messages_per_second, limits.ws_burst)

    # ----------------------------------------------------------------------------- sending

    async def send(self, message: dict[str, Any]) -> None:
        """Connection.send: write one JSON message (dropped when the socket is closed)."""
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(json.dumps(message, ensure_ascii=False))

    async def send_error(self, request_id: Any, code: str, message: str) -> None:
        """Connection.send_error: the documented error message."""
        await self.send({"type": "error", "id": request_id, "error": {"code": code, "message": message}})

    async def on_event(self, event: Event) -> None:
        """Connection.on_event: an SFU event for this participant, forwarded as a message."""
        await self.send(event_message(event))

    async def close(self, reason: str) -> None:
        """Connection.close: say why, leave the room (for good: no resume) and close the socket."""
        if self.closing_reason is not None:
            return
        self.closing_reason = reason
        messages = {
            "replaced": "Lớp học đã vào từ máy khác; máy này rời phòng. / This classroom joined from another PC.",
            "logout": "Bạn đã đăng xuất. / You were logged out.",
            "removed": "Bạn đã được mời ra khỏi phòng. / You were removed from the room.",
            "refused": "Người chủ trì chưa cho bạn vào phòng. / The host did not let you in.",
            "server-shutdown": "Máy chủ đang khởi động lại. / The server is restarting.",
        }
        await self.send({"type": "closed", "reason": reason, "message": messages.get(reason, reason)})
        await attendance.record(self, "leave", reason=reason)
        if reason != "server-shutdown":
            await self._leave_room()
        await self.ws.close()

    async def _leave_room(self) -> None:
        room, pid = self.room, self.participant_id
        self.room = None
        if room is not None and pid is not None:
            with contextlib.suppress(SfuError):
                await room.leave(pid)

    # ----------------------------------------------------------------------------- receiving

    async def run(self) -> None:
        """Connection.run: the read loop; returns when the socket closes."""
        soft_limit = self.config.limits.ws_message_bytes
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type == WSMsgType.BINARY:
                    await self.send_error(None, "bad-message", "Chỉ nhận JSON dạng văn bản. / Text JSON only.")
                continue
            if not self.bucket.take():
                await self.send_error(None, "rate-limited",
                                      "Gửi quá nhiều tin nhắn; hãy chậm lại. / Too many messages: slow down.")
                continue
            if len(msg.data) > soft_limit:
                await self.send_error(None, "too-large", f"Tin nhắn quá lớn. / Message over {soft_limit} bytes.")
                continue
            await self.handle_text(msg.data)

    async def handle_text(self, text: str) -> None:
        """Connection.handle_text: one request: parse, check, handle, reply (errors become messages)."""
        request_id: Any = None
        try:
            try:
                msg = json.loads(text)
            except ValueError:
                raise SignalError("bad-message", "Không phải JSON. / Not JSON.") from None
            if not isinstance(msg, dict):
                raise SignalError("bad-message", "Tin nhắn phải là một đối tượng JSON. / A message is a JSON object.")
            request_id = msg.get("id")
            if request_id is not None and (not isinstance(request_id, (str, int)) or isinstance(request_id, bool)
                                           or len(str(request_id)) > 64):
                request_id = None
                raise SignalError("bad-message", "id phải là chuỗi hoặc số ngắn. / id must be a short string or int.")
            kind = msg.get("type")
            route = ROUTES.get(kind) if isinstance(kind, str) else None
            if route is None:
                raise SignalError("unknown-type", f"Không rõ loại tin nhắn. / Unknown message type {kind!r}.")
            if route.joined and self.room is None:
                raise SignalError("not-joined", "Hãy gửi join trước. / Send join first.")
            if route.roles is not None and self.ident.role not in route.roles:
                raise SignalError("forbidden", _SFU_MESSAGES["forbidden"])
            reply = await route.handler(self, msg)
            if reply is not None and request_id is not None:
                reply["id"] = request_id
                await self.send(reply)
            followups, self.followups = self.followups, []
            for message in followups:
                await self.send(message)
        except SignalError as exc:
            await self.send_error(request_id, exc.code, exc.message)
        except SfuError as exc:
            await self.send_error(request_id, exc.code, _SFU_MESSAGES.get(exc.code, exc.message))
        except Exception:
            log.exception("signalling request failed", extra={"login": self.ident.login_id[:8]})
            await self.send_error(request_id, "internal", "Lỗi máy chủ; đã ghi nhật ký. / Server error; logged.")

    def sdp(self, msg: dict[str, Any]) -> str:
        """Connection.sdp: the `sdp` field, checked against the size limit."""
        sdp = field(msg, "sdp", str)
        if len(sdp.encode()) > self.config.limits.max_sdp_bytes:
            raise SignalError("sdp-too-large", _SFU_MESSAGES["sdp-too-large"])
        return str(sdp)

    def require_room(self) -> tuple[Room, str]:
        """Connection.require_room: the joined room and participant id."""
        if self.room is None or self.participant_id is None:
            raise SignalError("not-joined", "Hãy gửi join trước. / Send join first.")
        return self.room, self.participant_id


# --------------------------------------------------------------------------------- handlers


async def on_ping(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_ping: liveness check."""
    return {"type": "pong"}


async def on_join(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_join: enter a meeting's room, resume a participant after a lost connection, or wait in the lobby."""
    from server.live import lobby

    if conn.room is not None or conn.waiting is not None:
        raise SignalError("already-joined", "Kết nối này đã vào phòng. / Already joined.")
    version = field(msg, "version", int)
    if version not in PROTOCOL_VERSIONS:
        raise SignalError("version", f"Phiên bản giao thức không hỗ trợ; hỗ trợ: {list(PROTOCOL_VERSIONS)}. / "
                                     f"Unsupported protocol version {version}; supported: {list(PROTOCOL_VERSIONS)}.")
    meeting_id = field(msg, "meeting_id", int)
    resume = field(msg, "resume", dict, optional=True)
    ident = conn.ident
    meeting = await load_meeting_for(conn.app, ident, meeting_id)
    live = conn.app[LIVE]
    room = await live.sfu.room(str(meeting.id), meeting.video_codec)
    name = ident.display_name or ident.username or "Khách"
    if ident.role == Role.GUEST:
        given = msg.get("name")
        if isinstance(given, str) and given.strip():
            name = given.strip()[:80]
    if resume is None and lobby.must_wait(conn, room, meeting.id):
        return await lobby.wait(conn, meeting, name, msg.get("id"))
    return await enter(conn, meeting, room, name, resume)


async def enter(conn: Connection, meeting: Meeting, room: Room, name: str, resume: dict[str, Any] | None,
                admitted: bool = False) -> dict[str, Any]:
    """enter: join (or resume) the participant and build the `joined` reply; follow-ups queue after it."""
    from server.live import chat, lobby, polls

    ident = conn.ident
    live = conn.app[LIVE]
    # The same classroom account joining again (another PC) replaces the earlier connection.
    if ident.role == Role.CLASSROOM and ident.user_id is not None:
        for other in live.by_user_in_meeting(ident.user_id, meeting.id):
            if other is not conn:
                await other.close("replaced")
    if resume is not None:
        pid = resume.get("participant_id")
        token = resume.get("token")
        if not isinstance(pid, str) or not isinstance(token, str):
            raise SignalError("bad-message", "resume cần participant_id và token / resume needs participant_id, token")
        participant = await room.resume(pid, token, conn.on_event)
    else:
        pid = f"p-{secrets.token_hex(6)}"
        participant = await room.join(pid, ident.role.value, name, conn.on_event, admitted=admitted)
    conn.room, conn.meeting_id, conn.participant_id = room, meeting.id, participant.id
    conn.name = participant.name
    await attendance.record(conn, "resume" if resume is not None else "join")
    conn.followups += await chat.history_for(conn)
    conn.followups += await polls.open_polls_for(conn)
    conn.followups += lobby.waiting_for(conn)
    # The room's state is read after the last await: whoever joined meanwhile (e.g. the recorder, started by
    # the first join) is in the reply, which the browser takes as the whole truth.
    people = [{"participant_id": p.id, "role": p.role, "name": p.name, "hand_raised": p.hand_raised,
               "state": p.state} for p in list(room.participants.values()) if p.id != participant.id]
    return {
        "type": "joined",
        "participant_id": participant.id,
        "resume_token": participant.resume_token,
        "role": participant.role,
        "name": participant.name,
        "room": {"meeting_id": meeting.id, "title": meeting.title, "video_codec": room.video_codec,
                 "locked": room.locked, "presenter_id": room.presenter_id, "floor_id": room.floor_id,
                 "participants": people},
        "ice_servers": ice_servers(conn.config, participant.id),
        "limits": {"max_sdp_bytes": conn.config.limits.max_sdp_bytes,
                   "ws_message_bytes": conn.config.limits.ws_message_bytes,
                   "chat_message_chars": conn.config.limits.chat_message_chars},
    }


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


async def audit_live(conn: Connection, action: str, **details: Any) -> None:
    """audit_live: record a live moderation action in the audit log."""
    async with conn.app[DB]() as s:
        record(s, conn.request, action, f"meeting:{conn.meeting_id}", **details)
        await s.commit()


async def on_give_floor(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_give_floor: give the floor to a participant, or take it back (null)."""
    room, pid = conn.require_room()
    target = field(msg, "participant_id", str, optional=True)
    before = room.floor_id
    await room.give_floor(pid, target)
    await attendance.record_floor_change(conn, before, room.floor_id)
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
    await audit_live(conn, "live.lock", locked=locked)
    for other in conn.app[LIVE].in_meeting(conn.meeting_id or 0):
        await other.send({"type": "locked", "locked": locked, "by": pid})
    if not locked:
        from server.live.lobby import admit_all_after_unlock

        await admit_all_after_unlock(conn)
    return {"type": "ok"}


async def on_remove(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_remove: a moderator removes a participant; coming back means waiting in the lobby."""
    from server.live.lobby import removal_key

    room, pid = conn.require_room()
    target = field(msg, "participant_id", str)
    if target == pid:
        raise SignalError("bad-message", "Không thể tự mời mình ra. / You cannot remove yourself.")
    other_p = room.participants.get(target)
    if other_p is None:
        raise SignalError("not-found", "Không có người tham gia này. / No such participant.")
    if other_p.role in {r.value for r in MODERATORS} and conn.ident.role != Role.OPERATOR:
        raise SignalError("forbidden", FORBIDDEN)
    live = conn.app[LIVE]
    other = live.by_participant(conn.meeting_id or 0, target)
    if other is not None:
        live.removed.setdefault(conn.meeting_id or 0, set()).add(removal_key(other))
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
    muted = 0
    for other in list(room.participants.values()):
        if other.role in ("classroom", "learner", "guest"):
            with contextlib.suppress(SfuError):
                await room.mute(pid, other.id, source, True)
                muted += 1
    await audit_live(conn, "live.mute-all", source=source, count=muted)
    return {"type": "ok", "muted": muted}


async def on_audio_only(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_audio_only: receive no video at all (weak link), or video again."""
    room, pid = conn.require_room()
    await room.set_audio_only(pid, bool(field(msg, "enabled", bool)))
    return {"type": "ok"}


async def on_stats(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_stats: a snapshot of the room's forwarding statistics."""
    room, _ = conn.require_room()
    return {"type": "stats", **_jsonable(room.stats())}


async def on_leave(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_leave: leave the room for good (no resume)."""
    conn.require_room()
    await attendance.record(conn, "leave", reason="left")
    await conn._leave_room()
    conn.closing_reason = "left"
    return {"type": "ok"}


ROUTES: dict[str, Route] = {
    "ping": Route(on_ping, joined=False),
    "join": Route(on_join, joined=False),
    "publish": Route(on_publish, roles=frozenset(Role) - {Role.GUEST}),
    "answer": Route(on_answer),
    "candidate": Route(on_candidate),
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


def _merge_routes() -> None:
    from server.live import chat, lobby, polls, recording_live

    for table in (chat.ROUTES, polls.ROUTES, lobby.ROUTES, recording_live.ROUTES):
        for name, route in table.items():
            assert name not in ROUTES, name
            ROUTES[name] = route


_merge_routes()


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if not origin:
        return True  # non-browser clients send no Origin; the cookie still authenticates them
    host = request.headers.get("X-Forwarded-Host") or request.host
    return origin.split("://", 1)[-1].rstrip("/") == host


async def _after_close(conn: Connection, ws: web.WebSocketResponse) -> None:
    """_after_close: forget the connection; a participant leaves (clean close) or is detached (lost)."""
    live = conn.app[LIVE]
    if conn.waiting is not None:
        from server.live.lobby import leave_lobby

        await leave_lobby(conn)
    live.connections.discard(conn)
    conn.app[METRICS].ws_connections.dec()
    room, pid = conn.room, conn.participant_id
    if room is None or pid is None or conn.closing_reason is not None:
        return
    clean = ws.close_code in CLEAN_CLOSE
    await attendance.record(conn, "leave" if clean else "drop", reason="closed" if clean else "lost",
                            code=ws.close_code)
    with contextlib.suppress(SfuError):
        if clean:
            await room.leave(pid)  # the browser closed the tab or navigated away: it is gone
        else:
            await room.detach(pid)  # lost connection: resume window, slots show reconnecting


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    """websocket_handler: GET /ws: authenticate by cookie, then run a Connection until it closes."""
    ident = identity(request)
    if ident is None:
        raise web.HTTPUnauthorized(text="login required")
    if not _same_origin(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    limits = request.app[CONFIG].limits
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=limits.ws_message_bytes * 4)
    await ws.prepare(request)
    conn = Connection(request, ws, ident)
    live = request.app[LIVE]
    metrics = request.app[METRICS]
    live.connections.add(conn)
    metrics.ws_connections.inc()
    try:
        await conn.run()
    finally:
        # aiohttp may cancel this handler once the socket is gone: finish the clean-up in its own task.
        await asyncio.shield(asyncio.ensure_future(_after_close(conn, ws)))
    return ws
