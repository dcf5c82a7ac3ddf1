"""server.live.chat: the live room's chat: public messages, private messages to a presenter, deletion, history.

Messages are stored (ChatMessage rows) so late joiners get the meeting's history and attendance reports can
count them. Delivery is to the joined connections of the meeting in this process (a room lives in one
process). Wire messages: `chat` (send), `chat-delete`, and from the server `chat`, `chat-deleted`,
`chat-history`; see docs/protocol.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select

from server.db.engine import DB
from server.db.models import ChatMessage, utcnow
from server.live import attendance, meetingbus
from server.live.connection import Connection, Route, audit_live
from server.live.service import LIVE
from server.live.wire import MODERATORS, SignalError, field, id_field

HISTORY = 200


def message_view(m: ChatMessage) -> dict[str, Any]:
    """message_view: the wire form of a stored chat message."""
    return {"id": m.id, "from": m.sender_participant, "from_name": m.sender_name, "from_role": m.sender_role,
            "to": m.recipient_participant, "private": m.recipient_participant is not None,
            "text": m.text, "at": m.at.isoformat()}


def _visible(conn: Connection, m: ChatMessage) -> bool:
    if m.recipient_participant is None:
        return True
    me = {conn.participant_id}
    uid = conn.ident.user_id
    return (m.sender_participant in me or m.recipient_participant in me
            or (uid is not None and uid in (m.sender_user_id, m.recipient_user_id)))


async def history_for(conn: Connection) -> list[dict[str, Any]]:
    """history_for: the `chat-history` message for a participant who just joined."""
    assert conn.meeting_id is not None
    async with conn.app[DB]() as s:
        uid = conn.ident.user_id
        q = (select(ChatMessage).where(ChatMessage.meeting_id == conn.meeting_id, ChatMessage.deleted_at.is_(None))
             .where(or_(ChatMessage.recipient_participant.is_(None),
                        ChatMessage.sender_participant == conn.participant_id,
                        ChatMessage.recipient_participant == conn.participant_id,
                        *([ChatMessage.sender_user_id == uid, ChatMessage.recipient_user_id == uid]
                          if uid is not None else [])))
             .order_by(ChatMessage.id.desc()).limit(HISTORY))
        rows = list((await s.scalars(q)).all())
    rows.reverse()
    return [{"type": "chat-history", "messages": [message_view(m) for m in rows if _visible(conn, m)]}]


async def on_chat(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_chat: store and deliver a chat message (public, or private to one participant)."""
    room, pid = conn.require_room()
    text = field(msg, "text", str).strip()
    limit = conn.config.limits.chat_message_chars
    if not text:
        raise SignalError("bad-message", "Tin nhắn trống. / Empty message.")
    if len(text) > limit:
        raise SignalError("too-long", f"Tin nhắn dài quá {limit} ký tự. / Message longer than {limit} characters.")
    to = field(msg, "to", str, optional=True)
    live = conn.app[LIVE]
    recipient = None
    if to is not None:
        target = room.snapshot().participant(to)
        if target is None or to == pid:
            raise SignalError("not-found", "Không có người nhận này. / No such recipient.")
        # Classrooms, learners and guests may write privately only to presenters and operators.
        if conn.ident.role not in MODERATORS and target.role not in {r.value for r in MODERATORS}:
            raise SignalError("forbidden", "Chỉ được nhắn riêng cho người trình bày. / Private messages go to "
                                           "presenters only.")
        recipient = live.by_participant(conn.meeting_id or 0, to)
    async with conn.app[DB]() as s:
        row = ChatMessage(meeting_id=conn.meeting_id, at=utcnow(), sender_participant=pid,
                          sender_user_id=conn.ident.user_id, sender_name=conn.name or "",
                          sender_role=conn.ident.role.value, recipient_participant=to,
                          recipient_user_id=recipient.ident.user_id if recipient else None, text=text)
        s.add(row)
        await s.commit()
    await attendance.record(conn, "chat", message_id=row.id, private=to is not None)
    out = {"type": "chat", "message": message_view(row)}
    if to is None:  # every socket of the meeting, on every node (an edge's classrooms too: server.live.meetingbus)
        await meetingbus.deliver(conn.app, conn.meeting_id or 0, out)
    else:
        await conn.send(out)
        await meetingbus.deliver(conn.app, conn.meeting_id or 0, out, [to])  # wherever the recipient's socket is
    return {"type": "ok", "message_id": row.id}


async def on_chat_delete(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_chat_delete: a presenter or operator deletes a message for everyone."""
    conn.require_room()
    message_id = id_field(msg, "message_id")
    async with conn.app[DB]() as s:
        row = await s.get(ChatMessage, message_id)
        if row is None or row.meeting_id != conn.meeting_id or row.deleted_at is not None:
            raise SignalError("not-found", "Không có tin nhắn này. / No such message.")
        row.deleted_at = utcnow()
        row.deleted_by = conn.ident.user_id
        await s.commit()
    await audit_live(conn, "live.chat-delete", message_id=message_id)
    await meetingbus.deliver(conn.app, conn.meeting_id or 0, {"type": "chat-deleted", "message_id": message_id})
    return {"type": "ok"}


ROUTES: dict[str, Route] = {
    "chat": Route(on_chat),
    "chat-delete": Route(on_chat_delete, roles=MODERATORS),
}
