"""server.live.roster: who a live room's participants are in the database: the classrooms and their units.

The studio's grid labels each classroom tile with its unit (`classroom_units`); the operator console names the
classroom and unit of each connected classroom account (`classroom_places`). The SFU knows none of this.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Classroom, Role, Unit, User, meeting_classrooms


async def classroom_units(s: AsyncSession, meeting_id: int) -> dict[str, str]:
    """classroom_units: display name (of the classroom account, and of the classroom) → unit name, for the
    classrooms invited to a meeting."""
    rows = (await s.execute(
        select(Classroom.name, Unit.name, User.display_name)
        .join(meeting_classrooms, meeting_classrooms.c.classroom_id == Classroom.id)
        .join(Unit, Unit.id == Classroom.unit_id)
        .outerjoin(User, (User.classroom_id == Classroom.id) & (User.role == Role.CLASSROOM))
        .where(meeting_classrooms.c.meeting_id == meeting_id))).all()
    units: dict[str, str] = {}
    for room_name, unit_name, user_name in rows:
        units[room_name] = unit_name
        if user_name:
            units[user_name] = unit_name
    return units


async def classroom_places(s: AsyncSession, classroom_ids: Collection[int]) -> dict[int, tuple[str, str]]:
    """classroom_places: classroom id → (classroom name, unit name), for the classrooms of `classroom_ids`."""
    if not classroom_ids:
        return {}
    rows = await s.execute(select(Classroom.id, Classroom.name, Unit.name).join(Unit, Unit.id == Classroom.unit_id)
                           .where(Classroom.id.in_(list(classroom_ids))))
    return {cid: (cname, uname) for cid, cname, uname in rows}
