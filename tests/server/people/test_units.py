"""Tests of server.people.units: date-aware queries and the checks of a unit edited alone."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Unit, UnitLevel
from server.people.importer import import_units
from server.people.units import descendants, province_map, province_of, unit_problems, units_at
from tests.server.people.conftest import UNITS_CSV

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
