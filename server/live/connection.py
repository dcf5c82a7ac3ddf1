"""server.live.connection: one signalling WebSocket and its participant (`Connection`), and the wire form of events.

A `Connection` owns its socket and at most one participant. Requests are handled one at a time in the socket's
read loop, in order, by the handler its route table names (`Route`, built by server.live.signalling from every
area's ROUTES); SFU events arrive from the participant's outbox task. Whatever is sent to it (`send()`: replies,
events, other participants' broadcasts) goes into its own bounded queue, written in order by its own writer task
(server.live.sender): no one waits for another participant's socket, and a connection that does not keep up is
closed (`too-slow`). While the connection enters a room (`hold` … `release`, see server.live.entry), what is
sent to it waits, so that its `joined` reply comes before any message about the room it describes. Whoever
creates a Connection says what happens when it closes for good (`on_close`: the attendance `leave` event), so
this module needs nothing above it. The wire format is docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from server.audit import record
from server.auth import Identity
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Meeting, Role
from server.live.sender import POLICY_CLOSE_WAIT, Sender
from server.live.wire import FORBIDDEN, LONE_SURROGATE, SignalError, field, is_link, lone_surrogate
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

TURN_BUDGET = 32  # messages one connection reads in a row before the event loop runs everything else again

_SFU_MESSAGES = {
    "full": "Buổi tập huấn đã đủ người. / The meeting is full.",
    "forbidden": FORBIDDEN,
    "codec": "Trình duyệt không gửi được mã hoá video của phòng này. / No codec usable in this room.",
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
        body.pop("receive", None)  # a cascade relay's only (server.live.cascade)
    if isinstance(event, PeerFailed):
        body = {"pc": "down" if event.down else "up", "state": event.state}
    if isinstance(event, GridChanged):
        body["participants"] = list(event.participants)
    return {"type": kind, **body}


def error_message(request_id: Any, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """error_message: the documented `error` message (`id` is the request's, or null)."""
    return {"type": "error", "id": request_id, "error": {"code": code, "message": message, **extra}}


def jsonable(value: Any) -> Any:
    """jsonable: dataclasses, tuples and dicts as plain JSON values (for `stats`)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


Handler = Callable[["Connection", dict[str, Any]], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Route:
    """Route: how one request type is handled: who may send it and whether it needs a room."""

    handler: Handler
    roles: frozenset[Role] | None = None
    joined: bool = True
    reply_without_id: bool = False  # `ping`: the reply is the point, so it goes out even to a request without id


class Connection:
    """Connection: one signalling WebSocket and (after `join`) its participant in a room."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, ident: Identity,
                 routes: Mapping[str, Route], on_close: Callable[[Connection, str], Awaitable[None]]) -> None:
        self.request = request
        self.app = request.app
        self.config = request.app[CONFIG]
        self.ws = ws
        self.ident = ident
        self.routes = routes
        # called once when the connection closes for good, before it leaves the room, or when the room ended
        # its participant (resume window over) while it stayed open
        self.on_close = on_close
        self.room: Room | None = None
        self.meeting_id: int | None = None
        self.participant_id: str | None = None
        self.name = ident.display_name or ident.username
        self.closing_reason: str | None = None
        self.waiting: str | None = None  # lobby id while waiting to be admitted
        self.pending_join: tuple[Meeting, Any] | None = None  # (meeting, join request id) while waiting
        self.followups: list[dict[str, Any]] = []  # while entering: what follows the `joined` reply (server.live.entry)
        self._held: list[dict[str, Any]] | None = None  # while entering a room: what waits for the `joined` reply
        limits = self.config.limits
        self.bucket = TokenBucket(limits.ws_messages_per_second, limits.ws_burst)
        # what it may send over the rate before it is closed for flooding (refilled at the same rate)
        self.excess = TokenBucket(limits.ws_messages_per_second, limits.ws_flood_messages)
        self.warned = False  # `rate-limited` was sent since the last message handled: drop the next ones silently
        self.restarts: TokenBucket | None = None  # `restart`s it may send (server.live.signalling.on_restart)
        self.refused: collections.Counter[str] = collections.Counter()  # messages not handled, by reason
        self.sender = Sender(request, ws, limits, self.app[METRICS], ident.login_id[:8])

    @property
    def too_slow(self) -> bool:
        """Connection.too_slow: it was closed for not taking its messages (`too-slow`: like a lost connection)."""
        return self.sender.too_slow

    # ----------------------------------------------------------------------------- sending

    async def send(self, message: dict[str, Any]) -> None:
        """Connection.send: queue one JSON message for this socket and return at once, never waiting for the socket
        (kept while held; dropped once the connection closes)."""
        if self._held is not None:
            self._held.append(message)
            return
        self.sender.put(message)

    def hold(self) -> None:
        """Connection.hold: from now on keep what is sent to this connection (events, broadcasts) until `release`.

        Called when the connection starts entering a room: the SFU queues the room's state for the newcomer
        (participant-joined, presenter, floor, offer, slot, grid) before the `joined` reply can be written.
        """
        if self._held is None:
            self._held = []

    async def release(self, first: list[dict[str, Any]]) -> None:
        """Connection.release: queue `first` (the reply to the entering request), then what was held, in order."""
        held, self._held = self._held or [], None
        for message in (*first, *held):
            self.sender.put(message)

    async def send_error(self, request_id: Any, code: str, message: str) -> None:
        """Connection.send_error: the documented error message."""
        await self.send(error_message(request_id, code, message))

    def error_reply(self, request_id: Any, exc: Exception) -> dict[str, Any]:
        """Connection.error_reply: the `error` message for a failed request (a server fault is logged here)."""
        if isinstance(exc, SignalError):
            return error_message(request_id, exc.code, exc.message, **exc.extra)
        if isinstance(exc, SfuError):
            return error_message(request_id, exc.code, _SFU_MESSAGES.get(exc.code, exc.message))
        log.error("signalling request failed", exc_info=exc, extra={"login": self.ident.login_id[:8]})
        return error_message(request_id, "internal", "Lỗi máy chủ; đã ghi nhật ký. / Server error; logged.")

    async def on_event(self, event: Event) -> None:
        """Connection.on_event: an SFU event for this participant, forwarded as a message.

        `participant-left` about itself (its media did not come back within the resume window) ends its
        participant: `on_close` runs and the socket stays open (the browser may `join` again). A cascade's relay
        participant (server.live.cascade) is no one to show: events about it are not sent.
        """
        if is_link(getattr(event, "participant_id", None)):
            return
        await self.send(event_message(event))
        if isinstance(event, ParticipantLeft) and event.participant_id == self.participant_id and self.room:
            self.room = None
            await self.on_close(self, event.reason)
            self.participant_id = None

    async def close(self, reason: str) -> None:
        """Connection.close: say why, leave the room (for good: no resume) and close the socket.

        What was queued for the socket goes first, then `closed`, then the close frame: 1008 (policy violation) for
        `flooding`, within `POLICY_CLOSE_WAIT` (a flooder does not read), else 1000, within `CLOSE_WAIT`. It returns
        without waiting for the socket (`wait_closed` does).
        """
        if self.closing_reason is not None:
            return
        self.closing_reason = reason
        self._held = None  # a connection closed while it enters a room gets only `closed`
        messages = {
            "replaced": "Lớp học đã vào từ máy khác; máy này rời phòng. / This classroom joined from another PC.",
            "logout": "Bạn đã đăng xuất. / You were logged out.",
            "password-changed": "Mật khẩu đã được đổi; hãy đăng nhập lại. / The password was changed: log in again.",
            "password-reset": "Mật khẩu đã được đặt lại; hãy đăng nhập lại. / The password was reset: log in again.",
            "disabled": "Tài khoản đã bị khoá. / The account was disabled.",
            "link-revoked": "Liên kết vào phòng đã bị thu hồi. / The join link was revoked.",
            "removed": "Bạn đã được mời ra khỏi phòng. / You were removed from the room.",
            "refused": "Người chủ trì chưa cho bạn vào phòng. / The host did not let you in.",
            "server-shutdown": "Máy chủ đang khởi động lại. / The server is restarting.",
            "origin-lost": "Máy chủ chính của buổi tập huấn không còn; đang kết nối lại. / The meeting's main "
                           "server is gone: reconnecting.",
            "meeting-ended": "Buổi tập huấn đã kết thúc. / The meeting has ended.",
            "flooding": "Gửi quá nhiều tin nhắn; kết nối bị đóng. / Too many messages: the connection was closed.",
        }
        closed = {"type": "closed", "reason": reason, "message": messages.get(reason, reason)}
        if reason == "flooding":
            self.sender.close(closed, WSCloseCode.POLICY_VIOLATION, POLICY_CLOSE_WAIT)
        else:
            self.sender.close(closed)
        await self.on_close(self, reason)
        if reason != "server-shutdown":
            await self.leave_room()

    async def wait_closed(self) -> None:
        """Connection.wait_closed: wait until the socket that `close` closes is closed (a bounded time)."""
        await self.sender.wait_closed()

    async def leave_room(self) -> None:
        """Connection.leave_room: leave the room for good (no resume); the socket stays open."""
        room, pid = self.room, self.participant_id
        self.room = None
        if room is not None and pid is not None:
            with contextlib.suppress(SfuError):
                await room.leave(pid)

    # ----------------------------------------------------------------------------- receiving

    async def run(self) -> None:
        """Connection.run: the read loop; returns when the socket closes.

        Cheap for what it refuses: a message over the rate is dropped before it is parsed (the first one of a run
        gets `rate-limited`, the next ones nothing) and a connection that keeps flooding is closed (`flooding`,
        1008); a binary message costs a token like any other. Every `TURN_BUDGET` messages it lets the event loop
        run everything else, since aiohttp hands over what is already buffered without waiting.
        """
        self.sender.start()
        try:
            await self._read()
        finally:
            await self.sender.stop()

    async def _read(self) -> None:
        soft_limit = self.config.limits.ws_message_bytes
        refused = self.app[METRICS].ws_refused
        budget = TURN_BUDGET
        async for msg in self.ws:
            budget -= 1
            if budget <= 0:
                budget = TURN_BUDGET
                await asyncio.sleep(0)
            if msg.type is not WSMsgType.TEXT and msg.type is not WSMsgType.BINARY:
                continue
            self.app[METRICS].ws_message("in")
            if not self.bucket.take():
                self.refused["rate-limited"] += 1
                refused.labels("rate-limited").inc()
                if not self.excess.take():
                    await self.close("flooding")
                    return
                if not self.warned:
                    self.warned = True
                    await self.send_error(None, "rate-limited",
                                          "Gửi quá nhiều tin nhắn; hãy chậm lại. / Too many messages: slow down.")
                continue
            self.warned = False
            if msg.type is WSMsgType.BINARY:
                self.refused["binary"] += 1
                refused.labels("binary").inc()
                await self.send_error(None, "bad-message", "Chỉ nhận JSON dạng văn bản. / Text JSON only.")
                continue
            if len(msg.data) > soft_limit:
                self.refused["too-large"] += 1
                refused.labels("too-large").inc()
                await self.send_error(None, "too-large", f"Tin nhắn quá lớn. / Message over {soft_limit} bytes.")
                continue
            await self.handle_text(msg.data)

    async def handle_text(self, text: str) -> None:
        """Connection.handle_text: one request: parse, check, handle, reply (errors become messages)."""
        request_id: Any = None
        try:
            try:
                msg = json.loads(text)
            except (ValueError, RecursionError):
                raise SignalError("bad-message", "Không phải JSON. / Not JSON.") from None
            if not isinstance(msg, dict):
                raise SignalError("bad-message", "Tin nhắn phải là một đối tượng JSON. / A message is a JSON object.")
            request_id = msg.get("id")
            if request_id is not None and (not isinstance(request_id, (str, int)) or isinstance(request_id, bool)
                                           or len(str(request_id)) > 64):
                request_id = None
                raise SignalError("bad-message", "id phải là chuỗi hoặc số ngắn. / id must be a short string or int.")
            if "\\u" in text and lone_surrogate(msg):  # before anything of it is used, echoed, stored or shown
                if lone_surrogate(request_id):
                    request_id = None
                raise SignalError("bad-request", LONE_SURROGATE)
            kind = msg.get("type")
            route = self.routes.get(kind) if isinstance(kind, str) else None
            if route is None:
                raise SignalError("unknown-type", f"Không rõ loại tin nhắn. / Unknown message type {kind!r}.")
            if route.joined and self.room is None:
                raise SignalError("not-joined", "Hãy gửi join trước. / Send join first.")
            if route.roles is not None and self.ident.role not in route.roles:
                raise SignalError("forbidden", _SFU_MESSAGES["forbidden"])
            reply = await route.handler(self, msg)
            if reply is not None and (request_id is not None or route.reply_without_id):
                if request_id is not None:
                    reply["id"] = request_id
                await self.send(reply)
        except Exception as exc:
            await self.send(self.error_reply(request_id, exc))

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


async def audit_live(conn: Connection, action: str, **details: Any) -> None:
    """audit_live: record a live moderation action in the audit log (with the name of the `participant` it acted
    on, so the log says who, not only a participant id)."""
    target = details.get("participant")
    if target and "name" not in details and conn.room is not None:
        other = conn.room.snapshot().participant(str(target))
        if other is not None:
            details["name"] = other.name
    async with conn.app[DB]() as s:
        record(s, conn.request, action, f"meeting:{conn.meeting_id}", **details)
        await s.commit()
