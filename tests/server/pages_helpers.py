"""pages_helpers: a program with meetings around a trainer and a classroom; GET a page, POST a form."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server.db.engine import DB
from server.db.models import (
    Classroom,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    Unit,
    UnitLevel,
    User,
    utcnow,
)

HTML = {"Accept": "text/html"}


@pytest.fixture
async def world(app: web.Application, client: Any, make_user: Callable[..., Awaitable[User]]) -> dict[str, Any]:
    """world: a program with a live, an upcoming and a draft meeting; a trainer, a classroom account."""
    trainer = await make_user(Role.TRAINER, display_name="Nguyễn Thị Lan")
    other = await make_user(Role.TRAINER, display_name="Trần Văn Minh")
    async with app[DB]() as s:
        unit = Unit(code="01", name="Hà Nội", level=UnitLevel.PROVINCE)
        s.add(unit)
        await s.flush()
        room = Classroom(code="PH-01", name="Phòng Ba Đình", unit_id=unit.id)
        room2 = Classroom(code="PH-02", name="Phòng Cầu Giấy", unit_id=unit.id)
        program = Program(title="Chương trình Tin học", description="")
        s.add_all([room, room2, program])
        await s.flush()
        now = utcnow()
        s.add_all([
            Meeting(program_id=program.id, title="Buổi đang diễn ra", status=MeetingStatus.PUBLISHED,
                    starts_at=now - dt.timedelta(minutes=10), ends_at=now + dt.timedelta(minutes=50),
                    presenters=[trainer], classrooms=[room], provinces=[]),
            Meeting(program_id=program.id, title="Buổi tuần sau", status=MeetingStatus.PUBLISHED,
                    starts_at=now + dt.timedelta(days=7), ends_at=now + dt.timedelta(days=7, hours=1),
                    presenters=[trainer], classrooms=[room], provinces=[]),
            Meeting(program_id=program.id, title="Buổi nháp", status=MeetingStatus.DRAFT,
                    starts_at=now + dt.timedelta(days=8), ends_at=now + dt.timedelta(days=8, hours=1),
                    presenters=[trainer], classrooms=[room], provinces=[]),
            Meeting(program_id=program.id, title="Buổi của người khác", status=MeetingStatus.PUBLISHED,
                    starts_at=now + dt.timedelta(days=9), ends_at=now + dt.timedelta(days=9, hours=1),
                    presenters=[other], classrooms=[room2], provinces=[]),
        ])
        await s.commit()
    room_user = await make_user(Role.CLASSROOM, classroom_id=room.id)
    return {"trainer": trainer, "other": other, "room": room, "room2": room2, "program": program,
            "room_user": room_user, "unit": unit}


async def page(who: Any, path: str, status: int = 200) -> str:
    """page: the HTML of `path` for a logged-in client, checking the status."""
    r = await who.client.get(path, headers=HTML, allow_redirects=False)
    assert r.status == status, (path, r.status, (await r.text())[:500])
    return str(await r.text())


async def post_form(who: Any, path: str, data: dict[str, Any] | list[tuple[str, str]]) -> Any:
    """post_form: POST a form with the client's CSRF token, as a browser does (no redirect followed)."""
    fields = list(data.items()) if isinstance(data, dict) else list(data)
    fields.append(("csrf_token", who.csrf))
    return await who.client.post(path, data=fields, headers=HTML, allow_redirects=False)


async def meeting_by_title(app: web.Application, title: str) -> Meeting:
    """meeting_by_title: the meeting row with this title."""
    async with app[DB]() as s:
        m = await s.scalar(select(Meeting).where(Meeting.title == title))
        assert m is not None
        return m
