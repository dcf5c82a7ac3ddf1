"""server.live.polls: quick polls in the live room: a presenter asks, everyone answers, results when closed.

Polls and answers are stored (Poll, PollAnswer) for attendance reports. Moderators see live results
(`poll-results` after each answer); everyone gets the final results when the poll closes. Wire messages:
`poll-create`, `poll-answer`, `poll-close`, and from the server `poll`, `poll-results`; see docs/protocol.md.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from server.db.engine import DB
from server.db.models import Poll, PollAnswer, utcnow
from server.live import attendance, meetingbus
from server.live.connection import Connection, Route
from server.live.wire import MODERATORS, SignalError, field, id_field

MAX_CHOICES = 8


def poll_view(p: Poll) -> dict[str, Any]:
    """poll_view: the wire form of a poll (without results)."""
    return {"id": p.id, "question": p.question, "choices": list(p.choices), "open": p.closed_at is None}


async def results(conn: Connection, poll: Poll) -> dict[str, Any]:
    """results: the `poll-results` message of a poll: counts per choice and how many answered."""
    async with conn.app[DB]() as s:
        rows = (await s.execute(select(PollAnswer.choice, func.count()).where(PollAnswer.poll_id == poll.id)
                                .group_by(PollAnswer.choice))).all()
    counts = [0] * len(poll.choices)
    for choice, n in rows:
        if 0 <= choice < len(counts):
            counts[choice] = n
    return {"type": "poll-results", "poll_id": poll.id, "question": poll.question, "choices": list(poll.choices),
            "counts": counts, "answered": sum(counts), "closed": poll.closed_at is not None}


async def open_polls_for(conn: Connection) -> list[dict[str, Any]]:
    """open_polls_for: the open polls for someone who just joined (moderators get their results too)."""
    async with conn.app[DB]() as s:
        polls = list((await s.scalars(select(Poll).where(Poll.meeting_id == conn.meeting_id,
                                                          Poll.closed_at.is_(None)).order_by(Poll.id))).all())
    out: list[dict[str, Any]] = []
    for p in polls:
        out.append({"type": "poll", "poll": poll_view(p)})
        if conn.ident.role in MODERATORS:
            out.append(await results(conn, p))
    return out


async def _get(conn: Connection, poll_id: int) -> Poll:
    async with conn.app[DB]() as s:
        poll = await s.get(Poll, poll_id)
    if poll is None or poll.meeting_id != conn.meeting_id:
        raise SignalError("not-found", "Không có câu hỏi này. / No such poll.")
    return poll


async def on_poll_create(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_poll_create: ask a question with 2 to 8 choices."""
    conn.require_room()
    question = field(msg, "question", str).strip()
    choices = field(msg, "choices", list)
    if not question or len(question) > 500:
        raise SignalError("bad-message", "Câu hỏi từ 1 đến 500 ký tự. / A question has 1 to 500 characters.")
    if not 2 <= len(choices) <= MAX_CHOICES or not all(isinstance(c, str) and 0 < len(c.strip()) <= 200
                                                       for c in choices):
        raise SignalError("bad-message", "Cần 2–8 lựa chọn, mỗi lựa chọn ≤ 200 ký tự. / 2 to 8 choices of ≤ 200 "
                                         "characters.")
    async with conn.app[DB]() as s:
        poll = Poll(meeting_id=conn.meeting_id, question=question, choices=[c.strip() for c in choices],
                    created_by=conn.ident.user_id)
        s.add(poll)
        await s.commit()
    await meetingbus.deliver(conn.app, conn.meeting_id or 0, {"type": "poll", "poll": poll_view(poll)})
    return {"type": "ok", "poll_id": poll.id}


async def on_poll_answer(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_poll_answer: answer (or change the answer to) an open poll."""
    _, pid = conn.require_room()
    poll = await _get(conn, id_field(msg, "poll_id"))
    choice = field(msg, "choice", int)
    if poll.closed_at is not None:
        raise SignalError("state", "Câu hỏi đã đóng. / The poll is closed.")
    if not 0 <= choice < len(poll.choices):
        raise SignalError("bad-message", "Lựa chọn không hợp lệ. / No such choice.")
    voter = f"user:{conn.ident.user_id}" if conn.ident.user_id is not None else f"participant:{pid}"
    async with conn.app[DB]() as s:
        row = await s.scalar(select(PollAnswer).where(PollAnswer.poll_id == poll.id, PollAnswer.voter == voter))
        if row is None:
            s.add(PollAnswer(poll_id=poll.id, voter=voter, user_id=conn.ident.user_id,
                             classroom_id=conn.ident.classroom_id, choice=choice, at=utcnow()))
        else:
            row.choice = choice
            row.at = utcnow()
        await s.commit()
    await attendance.record(conn, "poll-answer", poll_id=poll.id, choice=choice)
    await meetingbus.deliver(conn.app, conn.meeting_id or 0, await results(conn, poll), meetingbus.MODERATORS_ONLY)
    return {"type": "ok"}


async def on_poll_close(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_poll_close: close a poll and show its results to everyone."""
    conn.require_room()
    poll = await _get(conn, id_field(msg, "poll_id"))
    if poll.closed_at is None:
        async with conn.app[DB]() as s:
            stored = await s.get(Poll, poll.id)
            assert stored is not None
            stored.closed_at = utcnow()
            await s.commit()
            poll = stored
    await meetingbus.deliver(conn.app, conn.meeting_id or 0, await results(conn, poll))
    return {"type": "ok"}


ROUTES: dict[str, Route] = {
    "poll-create": Route(on_poll_create, roles=MODERATORS),
    "poll-answer": Route(on_poll_answer),
    "poll-close": Route(on_poll_close, roles=MODERATORS),
}
