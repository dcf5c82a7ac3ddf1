"""server.people.units: administrative units: date-aware queries and the checks of a unit edited alone.

Units form a tree (province → district → commune, or province → commune after 1 July 2025, when Vietnam
merged provinces and ended the district level). Every unit has an optional validity range
(`valid_from`..`valid_to`, inclusive, empty = open-ended), so reports about a date use the structure of
that date: `units_at(s, date)`. A unit is identified by `code` together with `valid_from`, because the
same code can name two units over time (e.g. 19 Thái Nguyên before and after absorbing Bắc Kạn).
Classrooms are in `server.people.classrooms`; the CSV import of both in `server.people.importer`.

Operators also create and change units one at a time (`create_unit`, `update_unit`: checked by
`unit_problems` like an imported row, audit-logged; the caller commits). Staff see the tree of a date
(`unit_tree`).
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server.audit import record
from server.db.models import Classroom, Unit, UnitLevel
from server.errors import ApiError
from server.inputs import Id

REFORM_DATE = dt.date(2025, 7, 1)
LEVEL_RANK = {UnitLevel.PROVINCE: 0, UnitLevel.DISTRICT: 1, UnitLevel.COMMUNE: 2}
CODE_PATTERN = r"^\S+$"


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


def vi_key(text: str) -> str:
    """vi_key: a sort key in Vietnamese alphabetical order (accents ignored, Đ after D)."""
    base = unicodedata.normalize("NFD", text.lower().replace("đ", "d{"))
    return "".join(ch for ch in base if not unicodedata.combining(ch))


def not_found() -> ApiError:
    """not_found: the 404 of an unknown unit or classroom."""
    return ApiError(404, "not-found", "Không tìm thấy. / Not found.")


# ---------------------------------------------------------------------------------------------------------
# Lists and the tree (pages and API)


async def find_units(s: AsyncSession, *, at: dt.date | None = None, level: UnitLevel | None = None,
                     parent_id: int | None = None) -> list[Unit]:
    """find_units: the units valid on `at` (every period when None), of one level or under one unit, by code."""
    if at is not None:
        return await units_at(s, at, level=level, parent_id=parent_id)
    stmt = select(Unit).order_by(Unit.code, Unit.valid_from)
    if level is not None:
        stmt = stmt.where(Unit.level == level)
    if parent_id is not None:
        stmt = stmt.where(Unit.parent_id == parent_id)
    return list((await s.scalars(stmt)).all())


async def get_unit(s: AsyncSession, unit_id: int) -> Unit | None:
    """get_unit: one unit by id (None when unknown)."""
    return await s.get(Unit, unit_id)


async def provinces_by_name(s: AsyncSession) -> list[Unit]:
    """provinces_by_name: every province of every period, in Vietnamese order (older versions first)."""
    provinces = (await s.scalars(select(Unit).where(Unit.level == UnitLevel.PROVINCE))).all()
    return sorted(provinces, key=lambda u: (vi_key(u.name), u.valid_from or dt.date.min))


@dataclass
class Node:
    """Node: one unit in the tree with its children and the number of classrooms below it."""

    unit: Unit
    children: list[Node] = field(default_factory=list)
    classrooms: int = 0
    current: bool = True


async def unit_tree(s: AsyncSession, at: dt.date | None, today: dt.date) -> tuple[list[Node], int]:
    """unit_tree: the units of `at` (every period when None) as a tree with the active classrooms below each
    node, provinces first in Vietnamese order; and how many units it holds."""
    units = await find_units(s, at=at)
    counts = dict((await s.execute(select(Classroom.unit_id, func.count()).where(Classroom.active.is_(True))
                                   .group_by(Classroom.unit_id))).all())
    nodes = {u.id: Node(u, classrooms=counts.get(u.id, 0), current=is_valid_on(u, today)) for u in units}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.unit.parent_id) if node.unit.parent_id is not None else None
        (parent.children if parent is not None else roots).append(node)

    def total(node: Node) -> int:
        node.classrooms += sum(total(child) for child in node.children)
        return node.classrooms

    for root in roots:
        total(root)
    roots.sort(key=lambda n: (n.unit.level != UnitLevel.PROVINCE, vi_key(n.unit.name)))
    for node in nodes.values():
        node.children.sort(key=lambda n: (LEVEL_RANK[n.unit.level], vi_key(n.unit.name)))
    return roots, len(units)


@dataclass
class UnitChoice:
    """UnitChoice: one option of a unit select (grouped by province)."""

    id: int
    label: str


async def unit_choices(s: AsyncSession, today: dt.date, keep: int | None) -> list[tuple[str, list[UnitChoice]]]:
    """unit_choices: the units valid `today` (and `keep`, marked with its end) grouped by province name."""
    units = {u.id: u for u in (await s.scalars(select(Unit).order_by(Unit.code))).all()}
    provinces = await province_map(s)
    groups: dict[int, list[UnitChoice]] = defaultdict(list)
    for unit in units.values():
        if not is_valid_on(unit, today) and unit.id != keep:
            continue
        old = "" if is_valid_on(unit, today) else f" (≤ {unit.valid_to})"
        groups[provinces.get(unit.id, unit.id)].append(UnitChoice(unit.id, f"{unit.code} · {unit.name}{old}"))
    out = []
    for pid, choices in groups.items():
        province = units.get(pid)
        out.append((province.name if province else "?", sorted(choices, key=lambda c: vi_key(c.label))))
    return sorted(out, key=lambda group: vi_key(group[0]))


# ---------------------------------------------------------------------------------------------------------
# Writes (operators; audit-logged; the caller commits)


class UnitIn(BaseModel):
    """UnitIn: a new unit (parent required except for a province; dates inclusive, null = open)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    code: str = Field(min_length=1, max_length=16, pattern=CODE_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    level: UnitLevel
    parent_id: Id | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None


class UnitPatch(BaseModel):
    """UnitPatch: fields to change on a unit (absent fields stay)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    code: str | None = Field(None, min_length=1, max_length=16, pattern=CODE_PATTERN)
    name: str | None = Field(None, min_length=1, max_length=200)
    level: UnitLevel | None = None
    parent_id: Id | None = None
    valid_from: dt.date | None = None
    valid_to: dt.date | None = None


def _problems(problems: list[tuple[str, str]]) -> ApiError:
    return ApiError(422, "invalid", "; ".join(p[0] for p in problems) + " / " + "; ".join(p[1] for p in problems))


async def create_unit(s: AsyncSession, request: web.Request | None, data: UnitIn) -> Unit:
    """create_unit: add a unit checked like an imported row (422 listing every problem); flushed, audit-logged."""
    problems = await unit_problems(s, code=data.code, level=data.level, parent_id=data.parent_id,
                                   valid_from=data.valid_from, valid_to=data.valid_to)
    if problems:
        raise _problems(problems)
    unit = Unit(**data.model_dump())
    s.add(unit)
    await s.flush()
    record(s, request, "unit.create", target=f"unit:{unit.id}", code=unit.code, name=unit.name)
    return unit


async def update_unit(s: AsyncSession, request: web.Request | None, unit_id: int, changes: dict[str, Any]) -> Unit:
    """update_unit: change some fields of a unit (404 unknown, 422 null or problems); audit-logged."""
    unit = await s.get(Unit, unit_id)
    if unit is None:
        raise not_found()
    merged = {k: getattr(unit, k) for k in ("code", "level", "parent_id", "valid_from", "valid_to")}
    merged.update({k: v for k, v in changes.items() if k in merged})
    if changes.get("code", "") is None or changes.get("name", "") is None or changes.get("level", "") is None:
        raise ApiError(422, "invalid", "code, name, level: không được để trống / may not be null")
    problems = await unit_problems(s, unit_id=unit.id, **merged)
    if problems:
        raise _problems(problems)
    for k, v in changes.items():
        setattr(unit, k, v)
    record(s, request, "unit.update", target=f"unit:{unit.id}", code=unit.code,
           changes={k: str(v) for k, v in changes.items()})
    return unit
