"""server.live.audience: which learners a published recording reaches (its `RecordingAudience`).

- `enrolled` (the default): the learners enrolled in the recording's program;
- `units`: those, and the learners whose unit is, or lies within, the unit of a classroom invited to the
  recording's meeting or one of the meeting's provinces (a learner of a commune sees a recording of its district's
  or province's classroom);
- `all`: every learner.

`reaches` is the one SQL condition: `server.live.recordings.visible` applies it to the archive's lists and media for
a learner, and `learner_counts` counts the learners it would reach for each audience (the publish form's "who will
see it"). Disabled accounts count for nobody.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from server.db.models import (
    Classroom,
    Recording,
    RecordingAudience,
    Role,
    Unit,
    User,
    meeting_classrooms,
    meeting_provinces,
    program_learners,
)


def reaches(audience: Any, user_id: Any, program_id: Any, meeting_id: Any) -> ColumnElement[bool]:
    """reaches: the SQL condition "learner `user_id` is in `audience` of a recording of `program_id`'s
    `meeting_id`"; each argument is a column (correlated with the outer query) or a value."""
    enrolled = exists().where(program_learners.c.program_id == program_id, program_learners.c.user_id == user_id)
    learner, unit, parent = aliased(User), aliased(Unit), aliased(Unit)
    near = (learner.unit_id, unit.parent_id, parent.parent_id)  # the learner's unit, its parent, its grandparent

    def around(column: Any) -> Any:
        return select(learner.id).outerjoin(unit, unit.id == learner.unit_id) \
            .outerjoin(parent, parent.id == unit.parent_id) \
            .where(learner.id == user_id, learner.unit_id.is_not(None), or_(*(column == n for n in near)))

    by_classroom = exists(around(Classroom.unit_id).where(
        meeting_classrooms.c.meeting_id == meeting_id, Classroom.id == meeting_classrooms.c.classroom_id))
    by_province = exists(around(meeting_provinces.c.unit_id).where(meeting_provinces.c.meeting_id == meeting_id))
    return or_(audience == RecordingAudience.ALL.value, enrolled,
               and_(audience == RecordingAudience.UNITS.value, or_(by_classroom, by_province)))


def reaches_recording(user_id: int) -> ColumnElement[bool]:
    """reaches_recording: `reaches` for the recordings of a query (the learner `user_id`)."""
    return reaches(Recording.audience, user_id, Recording.program_id, Recording.meeting_id)


async def learner_counts(s: AsyncSession, row: Recording) -> dict[RecordingAudience, int]:
    """learner_counts: how many active learner accounts the recording reaches with each audience."""
    out: dict[RecordingAudience, int] = {}
    for audience in RecordingAudience:
        q = select(func.count(User.id)).where(
            User.role == Role.LEARNER, User.disabled.is_(False),
            reaches(literal(audience.value), User.id, row.program_id, row.meeting_id))
        out[audience] = int(await s.scalar(q) or 0)
    return out
