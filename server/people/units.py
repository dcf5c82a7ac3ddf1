"""server.people.units: administrative units: date-aware queries and the checks of a unit edited alone.

Units form a tree (province → district → commune, or province → commune after 1 July 2025, when Vietnam
merged provinces and ended the district level). Every unit has an optional validity range
(`valid_from`..`valid_to`, inclusive, empty = open-ended), so reports about a date use the structure of
that date: `units_at(s, date)`. A unit is identified by `code` together with `valid_from`, because the
same code can name two units over time (e.g. 19 Thái Nguyên before and after absorbing Bắc Kạn).
Classrooms are in `server.people.classrooms`; the CSV import of both in `server.people.importer`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server.db.models import Unit, UnitLevel

REFORM_DATE = dt.date(2025, 7, 1)
LEVEL_RANK = {UnitLevel.PROVINCE: 0, UnitLevel.DISTRICT: 1, UnitLevel.COMMUNE: 2}


class Dated(Protocol):
    """Dated: anything with a validity range (a Unit, or a unit version known to an import)."""

    valid_from: dt.date | None
    valid_to: dt.date | None


# ---------------------------------------------------------------------------------------------------------
# Date-aware queries (used by pages, API and reports)


def valid_on(day: dt.date) -> ColumnElement[bool]:
    """valid_on: SQL condition "the unit is valid on `day`" (open ends count as valid)."""
    return and_(or_(Unit.valid_from.is_(None), Unit.valid_from <= day),
                or_(Unit.valid_to.is_(None), Unit.valid_to >= day))


def is_valid_on(unit: Dated, day: dt.date) -> bool:
    """is_valid_on: whether a loaded unit is valid on `day`."""
    return (unit.valid_from is None or unit.valid_from <= day) and (unit.valid_to is None or unit.valid_to >= day)


async def units_at(s: AsyncSession, day: dt.date, *, level: UnitLevel | None = None,
                   parent_id: int | None = None) -> list[Unit]:
    """units_at: the units valid on `day` (optionally one level, or the children of one unit), by code."""
    q = select(Unit).where(valid_on(day))
    if level is not None:
        q = q.where(Unit.level == level)
    if parent_id is not None:
        q = q.where(Unit.parent_id == parent_id)
    return list((await s.scalars(q.order_by(Unit.code, Unit.valid_from))).all())


async def ancestors(s: AsyncSession, unit_id: int) -> list[Unit]:
    """ancestors: the unit and its parents, the unit first and its province last ([] if unknown)."""
    chain: list[Unit] = []
    seen: set[int] = set()
    current: int | None = unit_id
    while current is not None and current not in seen:
        seen.add(current)
        unit = await s.get(Unit, current)
        if unit is None:
            break
        chain.append(unit)
        current = unit.parent_id
    return chain


async def province_of(s: AsyncSession, unit_id: int) -> Unit | None:
    """province_of: the province a unit belongs to (walking up its parents; itself for a province)."""
    for unit in await ancestors(s, unit_id):
        if unit.level == UnitLevel.PROVINCE:
            return unit
    return None


async def descendants(s: AsyncSession, unit_id: int, *, include_self: bool = False) -> list[Unit]:
    """descendants: every unit below `unit_id` (children first, then grandchildren), any validity."""
    found: list[Unit] = []
    if include_self:
        me = await s.get(Unit, unit_id)
        if me is not None:
            found.append(me)
    frontier = [unit_id]
    seen = {unit_id}
    while frontier:
        children: list[Unit] = []
        for chunk in chunks(frontier, 500):
            children += (await s.scalars(select(Unit).where(Unit.parent_id.in_(chunk)).order_by(Unit.code))).all()
        children = [c for c in children if c.id not in seen]
        seen.update(c.id for c in children)
        found += children
        frontier = [c.id for c in children]
    return found


async def province_map(s: AsyncSession) -> dict[int, int]:
    """province_map: unit id → id of its province, for every unit (one query; for lists and reports)."""
    rows = (await s.execute(select(Unit.id, Unit.parent_id, Unit.level))).all()
    parent = {r.id: r.parent_id for r in rows}
    level = {r.id: r.level for r in rows}
    out: dict[int, int] = {}
    for uid in parent:
        current: int | None = uid
        for _ in range(8):
            if current is None or level.get(current) == UnitLevel.PROVINCE:
                break
            current = parent.get(current)
        if current is not None and level.get(current) == UnitLevel.PROVINCE:
            out[uid] = current
    return out


async def unit_problems(s: AsyncSession, *, code: str, level: UnitLevel, parent_id: int | None,
                        valid_from: dt.date | None, valid_to: dt.date | None,
                        unit_id: int | None = None) -> list[tuple[str, str]]:
    """unit_problems: why a unit created or edited one at a time would be wrong ((vi, en) pairs; [] if fine)."""
    problems: list[tuple[str, str]] = []
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        problems.append(("valid_to trước valid_from", "valid_to is before valid_from"))
    if level == UnitLevel.PROVINCE and parent_id is not None:
        problems.append(("tỉnh không có đơn vị cấp trên", "a province has no parent"))
    if level != UnitLevel.PROVINCE and parent_id is None:
        problems.append(("cần chọn đơn vị cấp trên", "a parent unit is required"))
    if parent_id is not None:
        parent = await s.get(Unit, parent_id)
        if parent is None or parent.id == unit_id:
            problems.append(("không có đơn vị cấp trên này", "unknown parent unit"))
        elif LEVEL_RANK[parent.level] >= LEVEL_RANK[level] or (
                level == UnitLevel.DISTRICT and parent.level != UnitLevel.PROVINCE):
            problems.append((f"đơn vị cấp trên là cấp {parent.level.value}, không chứa được cấp {level.value}",
                             f"the parent is a {parent.level.value} and cannot contain a {level.value}"))
        elif not overlaps(parent.valid_from, parent.valid_to, valid_from, valid_to):
            problems.append(("đơn vị cấp trên không có hiệu lực trong thời gian này",
                             "the parent is not valid during this period"))
    if unit_id is not None:
        current = await s.get(Unit, unit_id)
        children = await s.scalar(select(func.count()).select_from(Unit).where(Unit.parent_id == unit_id))
        if current is not None and current.level != level and children:
            problems.append(("đơn vị đang có đơn vị cấp dưới, không đổi được cấp",
                             "the unit has sub-units; its level cannot change"))
    others = (await s.scalars(select(Unit).where(Unit.code == code, Unit.id != (unit_id or -1)))).all()
    for other in others:
        if other.valid_from == valid_from:
            problems.append((f"đã có đơn vị mã '{code}' từ {valid_from or '…'}",
                             f"a unit with code '{code}' from {valid_from or '…'} already exists"))
        elif overlaps(other.valid_from, other.valid_to, valid_from, valid_to):
            span = span_text(other.valid_from, other.valid_to)
            problems.append((f"mã '{code}' đã dùng cho '{other.name}' trong {span}",
                             f"code '{code}' is used by '{other.name}' during {span}"))
    return problems



def chunks(items: Sequence[int] | Sequence[str], size: int) -> Iterable[list[int] | list[str]]:
    """chunks: `items` in lists of at most `size` (for IN clauses)."""
    for start in range(0, len(items), size):
        yield list(items[start:start + size])  # type: ignore[misc]


def overlaps(a_from: dt.date | None, a_to: dt.date | None, b_from: dt.date | None, b_to: dt.date | None) -> bool:
    """overlaps: whether two validity ranges (inclusive, None = open) share a day."""
    return (a_to is None or b_from is None or b_from <= a_to) and (b_to is None or a_from is None or a_from <= b_to)


def span_text(valid_from: dt.date | None, valid_to: dt.date | None) -> str:
    """span_text: a validity range as text ("2016-01-01→…")."""
    return f"{valid_from or '…'}→{valid_to or '…'}"
