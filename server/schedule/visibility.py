"""server.schedule.visibility: the one rule of who sees which meeting and who may enter its live room.

The API, the meeting pages, the calendar and its feed, deadlines, meeting reports, the live page and the `join`
message over /ws all ask here. A meeting is seen when the caller is in its *audience* and the meeting is in a
*state* shown to that audience (`visible`):

- operators: every meeting, in every state (draft, published, cancelled);
- trainers and leaders: the meetings they present, in every state, drafts included (to prepare them); a leader
  chairs a regional meeting by presenting it, and other regional meetings are not theirs;
- classrooms: the meetings their classroom is invited to, once published (and cancelled after publication, so
  a subscribed calendar learns of it);
- learners: the meetings of the programs they are enrolled in, in the same states;
- guests: nothing, except through a join link.

A join-link login (a classroom's or a guest's) sees only the meeting of its link, in the states a classroom
sees: the link is its invitation. Whether the meeting is upcoming, live or over does not matter to the rule.

Entering the live room (`enterable`): whoever sees the meeting, except learners (live meetings are for
classrooms) and except a cancelled meeting. So presenters and operators may enter a draft's room to prepare,
invitees once it is published. The scheduled end does not close the room (a meeting that overruns goes on) until the
meeting is ended for everyone, by a presenter or an operator or after `meetings.overrun_minutes`
(server.schedule.ending); nobody enters an ended meeting's room (its `join` is refused there, server.live.entry).
Pages offer the join button from 30 minutes before the start (`server.schedule.meetings.is_joinable`).

`refusal` says why a meeting is not entered (the message of `forbidden`): not invited, not published yet, or
cancelled; it reads the same two parts of the rule, never a copy of them.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Select, and_, exists, false, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import Identity
from server.db.models import (
    PRESENTER_ROLES,
    Meeting,
    MeetingStatus,
    Role,
    meeting_classrooms,
    meeting_presenters,
    program_learners,
)


def audience(ident: Identity) -> Any:
    """audience: the SQL condition "the meeting is for `ident`" (the audience column of the module doc)."""
    if ident.meeting_id is not None:  # a join-link login: its link's meeting, and only that one
        return Meeting.id == ident.meeting_id
    if ident.role == Role.OPERATOR:
        return true()
    if ident.role in PRESENTER_ROLES and ident.user_id is not None:
        return exists().where(meeting_presenters.c.meeting_id == Meeting.id,
                              meeting_presenters.c.user_id == ident.user_id)
    if ident.role == Role.CLASSROOM and ident.classroom_id is not None:
        return exists().where(meeting_classrooms.c.meeting_id == Meeting.id,
                              meeting_classrooms.c.classroom_id == ident.classroom_id)
    if ident.role == Role.LEARNER and ident.user_id is not None:
        return exists().where(program_learners.c.program_id == Meeting.program_id,
                              program_learners.c.user_id == ident.user_id)
    return false()


def _shown_to_invitees() -> Any:
    return or_(Meeting.status == MeetingStatus.PUBLISHED,
               and_(Meeting.status == MeetingStatus.CANCELLED, Meeting.first_published_at.is_not(None)))


def states(ident: Identity) -> Any:
    """states: the SQL condition "the meeting is in a state shown to `ident`" (the last column of the module doc)."""
    if ident.meeting_id is None and (ident.role == Role.OPERATOR or ident.role in PRESENTER_ROLES):
        return true()
    return _shown_to_invitees()


def visible(q: Select[Any], ident: Identity) -> Select[Any]:
    """visible: restrict a meeting query to the meetings `ident` sees."""
    return q.where(audience(ident), states(ident))


def enterable(q: Select[Any], ident: Identity) -> Select[Any]:
    """enterable: restrict a meeting query to the meetings whose live room `ident` may enter."""
    if ident.role == Role.LEARNER:
        return q.where(false())
    return visible(q, ident).where(Meeting.status != MeetingStatus.CANCELLED)


class Refusal(enum.StrEnum):
    """Refusal: why a meeting's live room is not entered."""

    NOT_FOUND = "not-found"
    NOT_INVITED = "not-invited"
    NOT_PUBLISHED = "not-published"
    CANCELLED = "cancelled"


async def refusal(s: AsyncSession, ident: Identity, meeting_id: int) -> Refusal | None:
    """refusal: None when `ident` may enter the meeting's live room, else why not."""
    status = await s.scalar(select(Meeting.status).where(Meeting.id == meeting_id))
    if status is None:
        return Refusal.NOT_FOUND
    one = select(Meeting.id).where(Meeting.id == meeting_id)
    if await s.scalar(enterable(one, ident)) is not None:
        return None
    if ident.role == Role.LEARNER or await s.scalar(one.where(audience(ident))) is None:
        return Refusal.NOT_INVITED
    return Refusal.CANCELLED if status == MeetingStatus.CANCELLED else Refusal.NOT_PUBLISHED
