"""Tests of server.people.units: date-aware queries, the tree, and units created and changed one at a time."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuditEntry, Classroom, Unit, UnitLevel
from server.errors import ApiError
from server.people.importer import import_units
from server.people.units import (
    UnitIn,
    create_unit,
    descendants,
    find_units,
    get_unit,
    province_map,
    province_of,
    provinces_by_name,
    unit_choices,
    unit_problems,
    unit_tree,
    units_at,
    update_unit,
    vi_key,
)
from tests.server.people.conftest import UNITS_CSV

pytestmark = pytest.mark.both_databases  # unit periods: dates, the tree's queries

BEFORE = dt.date(2025, 6, 30)
AFTER = dt.date(2025, 7, 1)


async def test_units_at_before_and_after_reform(s: AsyncSession) -> None:
    await import_units(s, UNITS_CSV)
    before = {u.code for u in await units_at(s, BEFORE)}
    after = {u.code for u in await units_at(s, AFTER)}
    assert {"116", "04033"} <= before and "04100" not in before
    assert "04100" in after and "116" not in after and "04033" not in after
    kien_giang = [u for u in await units_at(s, BEFORE) if u.code == "91"][0]
    an_giang = [u for u in await units_at(s, AFTER) if u.code == "91"][0]
    assert (kien_giang.name, an_giang.name) == ("Kiên Giang", "An Giang")


async def test_tree_helpers(s: AsyncSession) -> None:
    await import_units(s, UNITS_CSV)
    units = {u.code: u for u in (await s.scalars(select(Unit))).all() if u.code in ("14", "116", "04033", "04100")}
    province = await province_of(s, units["04033"].id)
    assert province is not None and province.name == "Sơn La"
    assert (await province_of(s, units["14"].id)) == units["14"]
    below = {u.code for u in await descendants(s, units["14"].id)}
    assert below == {"116", "04033", "04100"}
    assert {u.code for u in await descendants(s, units["14"].id, include_self=True)} == below | {"14"}
    pmap = await province_map(s)
    assert pmap[units["04033"].id] == units["14"].id and pmap[units["14"].id] == units["14"].id


async def test_unit_problems(s: AsyncSession) -> None:
    province = (await s.scalars(select(Unit).where(Unit.code == "14"))).one()
    assert await unit_problems(s, code="H9", level=UnitLevel.DISTRICT, parent_id=province.id, valid_from=None,
                               valid_to=None) == []
    problems = await unit_problems(s, code="14", level=UnitLevel.PROVINCE, parent_id=None, valid_from=None,
                                   valid_to=None)
    assert problems and "already exists" in problems[0][1]
    problems = await unit_problems(s, code="H9", level=UnitLevel.DISTRICT, parent_id=None, valid_from=None,
                                   valid_to=None)
    assert problems and "parent" in problems[0][1]


async def _units(s: AsyncSession) -> dict[str, Unit]:
    await import_units(s, UNITS_CSV)
    return {u.code: u for u in (await s.scalars(select(Unit))).all() if u.code in ("14", "116", "04033", "04100")}


async def test_find_units_of_a_date_or_every_period(s: AsyncSession) -> None:
    units = await _units(s)
    assert {u.code for u in await find_units(s, at=BEFORE, parent_id=units["14"].id)} == {"116"}
    assert {u.code for u in await find_units(s, parent_id=units["14"].id)} == {"116", "04100"}
    communes = await find_units(s, level=UnitLevel.COMMUNE)
    assert [u.code for u in communes] == ["04033", "04100"]
    assert await get_unit(s, units["116"].id) == units["116"] and await get_unit(s, 999_999) is None


async def test_unit_tree_counts_active_classrooms_below_each_node(s: AsyncSession) -> None:
    units = await _units(s)
    s.add_all([Classroom(code="A", name="A", unit_id=units["04033"].id),
               Classroom(code="B", name="B", unit_id=units["116"].id),
               Classroom(code="C", name="C", unit_id=units["04033"].id, active=False)])
    await s.flush()
    roots, count = await unit_tree(s, BEFORE, AFTER)
    assert count == len(await units_at(s, BEFORE))
    assert all(r.unit.level == UnitLevel.PROVINCE for r in roots)
    assert [vi_key(r.unit.name) for r in roots] == sorted(vi_key(r.unit.name) for r in roots)
    son_la = next(r for r in roots if r.unit.code == "14")
    assert son_la.classrooms == 2 and son_la.current
    district = son_la.children[0]
    assert district.unit.code == "116" and district.classrooms == 2 and not district.current
    assert [c.unit.code for c in district.children] == ["04033"] and district.children[0].classrooms == 1
    every, total = await unit_tree(s, None, AFTER)
    assert total > count and any(r.unit.code == "14" for r in every)


def test_vi_key_ignores_accents_and_puts_d_stroke_after_d() -> None:
    names = ["Điện Biên", "Đắk Lắk", "Sơn La", "Dung", "Cao Bằng", "Dak Nong", "Ân Thi"]
    assert sorted(names, key=vi_key) == ["Ân Thi", "Cao Bằng", "Dak Nong", "Dung", "Đắk Lắk", "Điện Biên", "Sơn La"]


async def test_provinces_by_name_and_unit_choices(s: AsyncSession) -> None:
    units = await _units(s)
    provinces = await provinces_by_name(s)
    assert all(p.level == UnitLevel.PROVINCE for p in provinces)
    assert [vi_key(p.name) for p in provinces] == sorted(vi_key(p.name) for p in provinces)
    groups = dict(await unit_choices(s, AFTER, keep=None))
    son_la = [c.label for c in groups["Sơn La"]]
    assert "04100 · Xã Mường La" in son_la and not any(label.startswith("116 ") for label in son_la)
    kept = dict(await unit_choices(s, AFTER, keep=units["116"].id))
    assert "116 · Huyện Mường La (≤ 2025-06-30)" in [c.label for c in kept["Sơn La"]]


async def test_create_and_update_unit_are_checked_and_audited(s: AsyncSession) -> None:
    son_la = (await s.scalars(select(Unit).where(Unit.code == "14"))).one()
    unit = await create_unit(s, None, UnitIn(code="H9", name="Huyện Chín", level=UnitLevel.DISTRICT,
                                             parent_id=son_la.id))
    assert unit.id and unit.parent_id == son_la.id
    with pytest.raises(ApiError) as info:
        await create_unit(s, None, UnitIn(code="H9", name="Lại", level=UnitLevel.DISTRICT, parent_id=son_la.id))
    assert info.value.status == 422 and "already exists" in info.value.message
    changed = await update_unit(s, None, unit.id, {"name": "Huyện Chín (mới)"})
    assert changed.name == "Huyện Chín (mới)"
    with pytest.raises(ApiError) as info:
        await update_unit(s, None, unit.id, {"level": UnitLevel.PROVINCE})
    assert info.value.status == 422 and "parent" in info.value.message
    with pytest.raises(ApiError) as info:
        await update_unit(s, None, unit.id, {"name": None})
    assert info.value.status == 422
    with pytest.raises(ApiError) as info:
        await update_unit(s, None, 999_999, {"name": "x"})
    assert info.value.status == 404
    actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.target == f"unit:{unit.id}"))).all()
    assert sorted(actions) == ["unit.create", "unit.update"]
