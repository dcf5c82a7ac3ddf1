"""server.people.classrooms: online classrooms: lists with their unit, province and accounts; create and change.

A classroom's code is unique; its unit must exist. Operators create and change classrooms (`save_classroom`,
`deactivate_classroom`: audit-logged, the caller commits); a deactivated classroom is kept for history and no
longer invited. The CSV import is `server.people.importer.import_classrooms`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server.audit import record
from server.db.models import Classroom, Unit, User
from server.errors import ApiError
from server.inputs import Id
from server.people.units import CODE_PATTERN, chunks, descendants, province_map


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



async def classroom_view(s: AsyncSession, classroom_id: int) -> ClassroomView | None:
    """classroom_view: one classroom with its unit, province and accounts (None when unknown)."""
    views, _ = await find_classrooms(s, ids=[classroom_id])
    return views[0] if views else None


async def get_classroom(s: AsyncSession, classroom_id: int) -> Classroom | None:
    """get_classroom: one classroom by id (None when unknown)."""
    return await s.get(Classroom, classroom_id)


async def all_classrooms(s: AsyncSession, *, active_only: bool = False) -> list[Classroom]:
    """all_classrooms: every classroom (or every active one), by code."""
    q = select(Classroom).order_by(Classroom.code)
    if active_only:
        q = q.where(Classroom.active.is_(True))
    return list((await s.scalars(q)).all())


async def classroom_accounts(s: AsyncSession, classroom_id: int) -> list[User]:
    """classroom_accounts: the accounts linked to a classroom, by username."""
    return list((await s.scalars(select(User).where(User.classroom_id == classroom_id)
                                 .order_by(User.username))).all())


class ClassroomIn(BaseModel):
    """ClassroomIn: a new classroom (also the classroom form's checks)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    code: str = Field(min_length=1, max_length=40, pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    unit_id: Id
    host: str = Field("", max_length=200)
    equipment: str = Field("", max_length=5000)
    active: bool = True


class ClassroomPatch(BaseModel):
    """ClassroomPatch: fields to change on a classroom (absent fields stay)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    code: str | None = Field(None, min_length=1, max_length=40, pattern=CODE_PATTERN)
    name: str | None = Field(None, min_length=1, max_length=200)
    unit_id: Id | None = None
    host: str | None = Field(None, max_length=200)
    equipment: str | None = Field(None, max_length=5000)
    active: bool | None = None


async def clashes(s: AsyncSession, *, code: str, unit_id: int | None, classroom_id: int | None) -> set[str]:
    """clashes: the fields that cannot be saved: "unit_id" (no such unit), "code" (another classroom has it)."""
    out: set[str] = set()
    if unit_id is not None and await s.get(Unit, unit_id) is None:
        out.add("unit_id")
    other = await s.scalar(select(Classroom.id).where(Classroom.code == code))
    if other is not None and other != classroom_id:
        out.add("code")
    return out


async def save_classroom(s: AsyncSession, request: web.Request | None, room: Classroom | None,
                         values: dict[str, Any]) -> Classroom:
    """save_classroom: create a classroom (`room` None) or change the given fields of `room` (flushed,
    audit-logged with what changed); 422 for an unknown unit, 409 when another classroom has the code."""
    code, unit_id = values.get("code", room.code if room else ""), values.get("unit_id", room.unit_id if room else None)
    found = await clashes(s, code=code, unit_id=unit_id, classroom_id=room.id if room else None)
    if "unit_id" in found:
        raise ApiError(422, "invalid", "unit_id: không có đơn vị này / unknown unit", field="unit_id")
    if "code" in found:
        raise ApiError(409, "conflict", f"Đã có lớp học mã '{code}'. / A classroom with code '{code}' exists.")
    if room is None:
        room = Classroom(**values)
        s.add(room)
        await s.flush()
        record(s, request, "classroom.create", target=f"classroom:{room.id}", code=room.code, name=room.name)
        return room
    changed = {k: str(v) for k, v in values.items() if getattr(room, k) != v}
    for k, v in values.items():
        setattr(room, k, v)
    record(s, request, "classroom.update", target=f"classroom:{room.id}", code=room.code, changes=changed)
    return room


async def deactivate_classroom(s: AsyncSession, request: web.Request | None, room: Classroom) -> None:
    """deactivate_classroom: mark a classroom inactive (kept for history; audit-logged once)."""
    if room.active:
        room.active = False
        record(s, request, "classroom.deactivate", target=f"classroom:{room.id}", code=room.code)
