"""Tests of server.people.classrooms: classroom lists with their unit, province and accounts; saving them."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import AuditEntry, Role, Unit, User
from server.errors import ApiError
from server.people.classrooms import (
    all_classrooms,
    clashes,
    classroom_accounts,
    classroom_view,
    classrooms_in,
    deactivate_classroom,
    find_classrooms,
    get_classroom,
    save_classroom,
)
from server.people.importer import import_classrooms, import_units
from tests.server.people.conftest import UNITS_CSV


async def test_classrooms_of_a_unit_and_below(s: AsyncSession) -> None:
    await import_units(s, UNITS_CSV)
    units = {u.code: u for u in (await s.scalars(select(Unit))).all() if u.code in ("14", "116", "04033", "04100")}
    await import_classrooms(s, "code,name,unit_code\nSL1,Phòng 1,04033\nSL2,Phòng 2,04100\n")
    assert [c.code for c in await classrooms_in(s, units["14"].id)] == ["SL1", "SL2"]
    views, total = await find_classrooms(s, unit_id=units["116"].id)
    assert total == 1 and views[0].province is not None and views[0].province.code == "14"


async def _audit(s: AsyncSession, target: str) -> list[AuditEntry]:
    return list((await s.scalars(select(AuditEntry).where(AuditEntry.target == target)
                                 .order_by(AuditEntry.id))).all())


async def test_save_classroom_creates_changes_and_refuses_clashes(s: AsyncSession) -> None:
    son_la = (await s.scalars(select(Unit).where(Unit.code == "14"))).one()
    room = await save_classroom(s, None, None, {"code": "SL-01", "name": "Phòng 1", "unit_id": son_la.id})
    assert room.id and room.active and await get_classroom(s, room.id) == room
    other = await save_classroom(s, None, None, {"code": "SL-02", "name": "Phòng 2", "unit_id": son_la.id})
    assert await clashes(s, code="SL-01", unit_id=son_la.id, classroom_id=other.id) == {"code"}
    assert await clashes(s, code="SL-01", unit_id=999_999, classroom_id=room.id) == {"unit_id"}
    assert await clashes(s, code="SL-01", unit_id=son_la.id, classroom_id=room.id) == set()
    with pytest.raises(ApiError) as info:
        await save_classroom(s, None, other, {"code": "SL-01"})
    assert info.value.status == 409 and "SL-01" in info.value.message
    with pytest.raises(ApiError) as info:
        await save_classroom(s, None, None, {"code": "SL-03", "name": "Phòng 3", "unit_id": 999_999})
    assert info.value.status == 422 and info.value.extra.get("field") == "unit_id"
    await save_classroom(s, None, room, {"code": "SL-01", "name": "Phòng học 1", "unit_id": son_la.id})
    assert room.name == "Phòng học 1"
    entries = await _audit(s, f"classroom:{room.id}")
    assert [e.action for e in entries] == ["classroom.create", "classroom.update"]
    assert entries[1].details["changes"] == {"name": "Phòng học 1"}


async def test_deactivate_view_accounts_and_lists(s: AsyncSession) -> None:
    son_la = (await s.scalars(select(Unit).where(Unit.code == "14"))).one()
    room = await save_classroom(s, None, None, {"code": "SL-01", "name": "Phòng 1", "unit_id": son_la.id})
    await save_classroom(s, None, None, {"code": "AA-01", "name": "Phòng A", "unit_id": son_la.id})
    s.add_all([User(username="lop-b", display_name="B", role=Role.CLASSROOM, classroom_id=room.id),
               User(username="lop-a", display_name="A", role=Role.CLASSROOM, classroom_id=room.id)])
    await s.flush()
    assert [u.username for u in await classroom_accounts(s, room.id)] == ["lop-a", "lop-b"]
    view = await classroom_view(s, room.id)
    assert view is not None and view.accounts == ("lop-a", "lop-b") and view.province == son_la
    assert await classroom_view(s, 999_999) is None
    await deactivate_classroom(s, None, room)
    await deactivate_classroom(s, None, room)
    assert not room.active
    assert [e.action for e in await _audit(s, f"classroom:{room.id}")].count("classroom.deactivate") == 1
    assert [c.code for c in await all_classrooms(s)] == ["AA-01", "SL-01"]
    assert [c.code for c in await all_classrooms(s, active_only=True)] == ["AA-01"]
