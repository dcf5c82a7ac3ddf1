"""server.people.classrooms: online classrooms: lists with their unit, province and accounts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server.db.models import Classroom, Unit, User
from server.people.units import chunks, descendants, province_map


async def classrooms_in(s: AsyncSession, unit_id: int, *, active_only: bool = True) -> list[Classroom]:
    """classrooms_in: the classrooms of a unit and of every unit below it (e.g. all of a province)."""
    ids = [u.id for u in await descendants(s, unit_id, include_self=True)]
    found: list[Classroom] = []
    for chunk in chunks(ids, 500):
        q = select(Classroom).where(Classroom.unit_id.in_(chunk))
        if active_only:
            q = q.where(Classroom.active.is_(True))
        found += (await s.scalars(q)).all()
    return sorted(found, key=lambda c: c.code)


@dataclass(frozen=True)
class ClassroomView:
    """ClassroomView: a classroom with its unit, its province and the usernames of its accounts."""

    classroom: Classroom
    unit: Unit
    province: Unit | None
    accounts: tuple[str, ...]


async def find_classrooms(s: AsyncSession, *, unit_id: int | None = None, q: str = "", active: bool | None = None,
                          ids: Sequence[int] | None = None, limit: int = 1000,
                          offset: int = 0) -> tuple[list[ClassroomView], int]:
    """find_classrooms: classrooms (of a unit and below, matching `q` in code/name/host), by code; and the total."""
    cond: list[ColumnElement[bool]] = []
    if ids is not None:
        cond.append(Classroom.id.in_(list(ids)))
    if unit_id is not None:
        cond.append(Classroom.unit_id.in_([u.id for u in await descendants(s, unit_id, include_self=True)]))
    if q.strip():
        like = f"%{q.strip()}%"
        cond.append(or_(Classroom.code.ilike(like), Classroom.name.ilike(like), Classroom.host.ilike(like)))
    if active is not None:
        cond.append(Classroom.active.is_(active))
    total = await s.scalar(select(func.count()).select_from(Classroom).where(*cond)) or 0
    rooms = list((await s.scalars(select(Classroom).where(*cond).order_by(Classroom.code)
                                  .limit(limit).offset(offset))).all())
    unit_ids = {r.unit_id for r in rooms}
    provinces = await province_map(s) if rooms else {}
    wanted = list(unit_ids | {provinces[u] for u in unit_ids if u in provinces})
    units: dict[int, Unit] = {}
    for chunk in chunks(wanted, 500):
        units.update({u.id: u for u in (await s.scalars(select(Unit).where(Unit.id.in_(chunk)))).all()})
    accounts: dict[int, list[str]] = defaultdict(list)
    for chunk in chunks([r.id for r in rooms], 500):
        for cid, name in (await s.execute(select(User.classroom_id, User.username)
                                          .where(User.classroom_id.in_(chunk)).order_by(User.username))).all():
            if cid is not None:
                accounts[cid].append(name)
    views = [ClassroomView(r, units[r.unit_id], units.get(provinces.get(r.unit_id, -1)), tuple(accounts[r.id]))
             for r in rooms]
    return views, total

