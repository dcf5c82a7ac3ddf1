"""Tests of server.people.classrooms: classroom lists with their unit, province and accounts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Unit
from server.people.classrooms import classrooms_in, find_classrooms
from server.people.importer import import_classrooms, import_units
from tests.server.people.conftest import UNITS_CSV


async def test_classrooms_of_a_unit_and_below(s: AsyncSession) -> None:
    await import_units(s, UNITS_CSV)
    units = {u.code: u for u in (await s.scalars(select(Unit))).all() if u.code in ("14", "116", "04033", "04100")}
    await import_classrooms(s, "code,name,unit_code\nSL1,Phòng 1,04033\nSL2,Phòng 2,04100\n")
    assert [c.code for c in await classrooms_in(s, units["14"].id)] == ["SL1", "SL2"]
    views, total = await find_classrooms(s, unit_id=units["116"].id)
    assert total == 1 and views[0].province is not None and views[0].province.code == "14"
