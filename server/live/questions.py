"""server.live.questions: the question box of a live broadcast: viewers ask, presenters or an operator moderate.

A viewer's question (`ask`, from `POST /api/v1/broadcasts/{meeting}/questions`) is stored pending
(`BroadcastQuestion`) and sent to the moderators in the meeting's room (operators, trainers, leaders) as a
`broadcast-question` message; a moderator who joins later gets the pending ones (`broadcast-questions`). A
moderator then:
- `question-approve`: the question goes into the room's chat (a public message of the moderator's participant,
  named after the viewer: "Người xem · <name>", role guest) and the viewer sees it approved;
- `question-answer` (with `text`): the answer is shown to the viewer on the watch page only;
- `question-dismiss`: it leaves the queue.
Every decision is sent to the moderators again (`broadcast-question` with its new state) so that two moderators
never answer the same question twice, and is audit-logged. Limits: `watch.question_chars` characters,
`watch.questions_per_minute` per viewer (`Watch.take`), `MAX_PENDING` pending per viewer.

With several nodes (`bus.kind: redis`), a viewer's question may be posted to any node while the meeting's room,
and so its moderators' sockets, live on one (server.live.cluster): what goes to the moderators, and an approved
question's chat message, go through server.live.meetingbus, which delivers them on every node.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from server.config import CONFIG
from server.db.engine import DB
from server.db.models import BroadcastQuestion, ChatMessage, QuestionState, User, utcnow
from server.errors import ApiError
from server.live import attendance, meetingbus
from server.live.chat import message_view
from server.live.connection import Connection, Route, audit_live
from server.live.watch import WATCH, Viewer
from server.live.wire import MODERATORS, SignalError, field, id_field
from server.ratelimit import address_key

log = logging.getLogger("taphuan")

MAX_PENDING = 5  # pending questions one viewer may have at once
ADDRESS_FACTOR = 10  # one address (a school behind one NAT) may ask as much as this many viewers
QUEUE = 200  # pending questions a moderator who joins is sent at most
ANONYMOUS = "Người xem"
AUDIT_ACTIONS = {QuestionState.APPROVED: "broadcast.question-approved",
                 QuestionState.ANSWERED: "broadcast.question-answered",
                 QuestionState.DISMISSED: "broadcast.question-dismissed"}


def question_view(q: BroadcastQuestion) -> dict[str, Any]:
    """question_view: the wire form of a question (the moderators' `broadcast-question`, the viewer's list)."""
    return {"id": q.id, "name": q.name, "text": q.text, "state": q.state.value, "answer": q.answer,
            "asked_at": q.asked_at.isoformat()}


def too_many(message: str, seconds: int) -> ApiError:
    """too_many: a 429 with Retry-After."""
    err = ApiError(429, "rate-limited", message)
    err.headers["Retry-After"] = str(seconds)
    return err


def clean_text(value: Any, limit: int) -> str:
    """clean_text: a question or answer's text, stripped; 422 when empty, too long or not text."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid", "Câu hỏi trống. / The question is empty.", field="text")
    text = value.strip()
    if len(text) > limit:
        raise ApiError(422, "too-long", f"Câu hỏi dài quá {limit} ký tự. / The question is longer than {limit} "
                                        "characters.", field="text")
    return text


async def ask(app: web.Application, meeting_id: int, viewer: Viewer, text: Any, name: Any,
              address: str = "") -> BroadcastQuestion:
    """ask: store a viewer's question (422 bad text, 429 too many: per viewer, and per address `ADDRESS_FACTOR`
    times that, since an anonymous viewer could take a new id per question) and tell the moderators."""
    text = clean_text(text, app[CONFIG].watch.question_chars)
    shown = viewer.name
    if not shown:
        shown = name.strip()[:80] if isinstance(name, str) else ""
    async with app[DB]() as s:
        pending = await s.scalar(select(func.count(BroadcastQuestion.id)).where(
            BroadcastQuestion.meeting_id == meeting_id, BroadcastQuestion.viewer == viewer.key,
            BroadcastQuestion.state == QuestionState.PENDING))
        if (pending or 0) >= MAX_PENDING:
            raise too_many(f"Bạn đã có {MAX_PENDING} câu hỏi đang chờ duyệt. / You already have {MAX_PENDING} "
                           "questions waiting.", 60)
        per_minute = app[CONFIG].watch.questions_per_minute
        if not app[WATCH].take(f"{meeting_id}:{viewer.key}") or not app[WATCH].take(
                f"{meeting_id}:ip:{address_key(address)}", per_minute * ADDRESS_FACTOR, 3 * ADDRESS_FACTOR):
            raise too_many("Bạn gửi câu hỏi quá nhanh; hãy chờ một chút. / Too many questions: wait a moment.", 30)
        row = BroadcastQuestion(meeting_id=meeting_id, viewer=viewer.key,
                                user_id=viewer.ident.user_id if viewer.ident else None, name=shown, text=text,
                                asked_at=utcnow())
        s.add(row)
        await s.commit()
    await to_moderators(app, meeting_id, {"type": "broadcast-question", "question": question_view(row)})
    return row


async def mine(app: web.Application, meeting_id: int, viewer: Viewer) -> list[BroadcastQuestion]:
    """mine: the viewer's questions of the meeting, oldest first (at most 50)."""
    async with app[DB]() as s:
        rows = (await s.scalars(select(BroadcastQuestion).where(
            BroadcastQuestion.meeting_id == meeting_id, BroadcastQuestion.viewer == viewer.key)
            .order_by(BroadcastQuestion.id.desc()).limit(50))).all()
    return list(reversed(rows))


async def to_moderators(app: web.Application, meeting_id: int, message: dict[str, Any]) -> None:
    """to_moderators: send a message to the moderators joined to the meeting's room, on every node."""
    await meetingbus.deliver(app, meeting_id, message, meetingbus.MODERATORS_ONLY)


async def queue_for(conn: Connection) -> list[dict[str, Any]]:
    """queue_for: for a moderator who just joined, the `broadcast-questions` message (pending ones); nothing for
    others or when none is pending."""
    if conn.ident.role not in MODERATORS or conn.meeting_id is None:
        return []
    async with conn.app[DB]() as s:
        rows = (await s.scalars(select(BroadcastQuestion).where(
            BroadcastQuestion.meeting_id == conn.meeting_id, BroadcastQuestion.state == QuestionState.PENDING)
            .order_by(BroadcastQuestion.id).limit(QUEUE))).all()
    if not rows:
        return []
    return [{"type": "broadcast-questions", "questions": [question_view(q) for q in rows]}]


async def _decide(conn: Connection, msg: dict[str, Any], state: QuestionState) -> dict[str, Any]:
    room, pid = conn.require_room()
    question_id = id_field(msg, "question_id")
    answer = ""
    if state == QuestionState.ANSWERED:
        answer = field(msg, "text", str).strip()
        limit = conn.config.watch.question_chars * 2
        if not answer:
            raise SignalError("bad-message", "Câu trả lời trống. / Empty answer.")
        if len(answer) > limit:
            raise SignalError("too-long", f"Câu trả lời dài quá {limit} ký tự. / Answer longer than {limit} "
                                          "characters.")
    chat_row = None
    async with conn.app[DB]() as s:
        row = await s.get(BroadcastQuestion, question_id)
        if row is None or row.meeting_id != conn.meeting_id:
            raise SignalError("not-found", "Không có câu hỏi này. / No such question.")
        if row.state != QuestionState.PENDING:
            raise SignalError("state", "Câu hỏi này đã được xử lý. / This question was already handled.")
        row.state, row.answer, row.decided_at, row.decided_by = state, answer, utcnow(), conn.ident.user_id
        if state == QuestionState.APPROVED:
            # the viewer's words, under the viewer's name and role (an anonymous one of the public link: guest),
            # from a participant id of its own: not the moderator's message
            role = await s.scalar(select(User.role).where(User.id == row.user_id)) if row.user_id else None
            chat_row = ChatMessage(meeting_id=conn.meeting_id, at=utcnow(), sender_participant=f"viewer-{row.id}",
                                   sender_user_id=row.user_id,
                                   sender_name=f"{ANONYMOUS} · {row.name}" if row.name else ANONYMOUS,
                                   sender_role=role.value if role is not None else "guest",
                                   recipient_participant=None, recipient_user_id=None, text=row.text)
            s.add(chat_row)
            await s.flush()
            row.chat_message_id = chat_row.id
        await s.commit()
    await audit_live(conn, AUDIT_ACTIONS[state], question_id=question_id)
    if chat_row is not None:
        await attendance.record(conn, "chat", message_id=chat_row.id, private=False)
        await meetingbus.deliver(conn.app, conn.meeting_id or 0, {"type": "chat", "message": message_view(chat_row)})
    await to_moderators(conn.app, conn.meeting_id or 0, {"type": "broadcast-question", "question": question_view(row)})
    return {"type": "ok"}


async def on_approve(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_approve: a moderator puts a viewer's question into the room's chat."""
    return await _decide(conn, msg, QuestionState.APPROVED)


async def on_answer(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_answer: a moderator answers a viewer's question (shown to that viewer)."""
    return await _decide(conn, msg, QuestionState.ANSWERED)


async def on_dismiss(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_dismiss: a moderator takes a question off the queue."""
    return await _decide(conn, msg, QuestionState.DISMISSED)


ROUTES: dict[str, Route] = {
    "question-approve": Route(on_approve, roles=MODERATORS),
    "question-answer": Route(on_answer, roles=MODERATORS),
    "question-dismiss": Route(on_dismiss, roles=MODERATORS),
}


