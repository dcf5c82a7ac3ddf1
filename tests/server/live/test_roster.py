"""Tests of server.live.roster: the invited classrooms' units for the studio grid and the console's places."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from server.db.engine import DB
from server.db.models import Role
from server.live import roster

Factory = Callable[..., Awaitable[Any]]


async def test_units_of_the_invited_classrooms_and_their_accounts(client: Any, app: web.Application,
                                                                   make_user: Factory, make_classroom: Factory,
                                                                   make_meeting: Factory) -> None:
    invited = await make_classroom(name="Phòng Mường La")
    other = await make_classroom(name="Phòng khác")
    await make_user(Role.CLASSROOM, classroom_id=invited, display_name="Lớp Mường La")
    meeting = await make_meeting(classrooms=[invited])
    async with app[DB]() as s:
        units = await roster.classroom_units(s, meeting.id)
        places = await roster.classroom_places(s, {invited, other, 999_999})
        assert await roster.classroom_places(s, set()) == {}
    unit = units["Phòng Mường La"]
    assert units == {"Phòng Mường La": unit, "Lớp Mường La": unit}
    assert places == {invited: ("Phòng Mường La", unit), other: ("Phòng khác", unit)}
