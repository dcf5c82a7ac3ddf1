"""learning_helpers: a program with an assigned trainer, an enrolled learner and a published meeting."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import FormData, web
from sqlalchemy import insert

from server.db.engine import DB
from server.db.models import (
    Meeting,
    MeetingStatus,
    Program,
    Role,
    User,
    meeting_classrooms,
    program_learners,
    program_trainers,
)

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n" + b"0123456789" * 300 + b"\n%%EOF\n"


@dataclass
class World:
    """World: a program and the people around it (logged-in clients)."""

    program_id: int
    meeting_id: int
    classroom_id: int
    operator: Any
    trainer: Any
    learner: Any
    outsider: Any


async def make_world(app: web.Application, login_as: Callable[..., Awaitable[Any]],
                     make_classroom: Callable[..., Awaitable[int]], **learner_fields: Any) -> World:
    """make_world: program "Tập huấn Toán 6" with a trainer, a learner, a classroom invited to a published meeting."""
    operator = await login_as(Role.OPERATOR)
    trainer = await login_as(Role.TRAINER, display_name="Cô Lan", email="lan@example.edu.vn")
    learner = await login_as(Role.LEARNER, display_name="Nguyễn Văn An", **learner_fields)
    outsider = await login_as(Role.LEARNER, display_name="Người ngoài")
    classroom_id = await make_classroom()
    now = dt.datetime.now(dt.UTC)
    async with app[DB]() as s:
        program = Program(title="Tập huấn Toán 6")
        s.add(program)
        await s.flush()
        meeting = Meeting(program_id=program.id, title="Buổi 1: Số tự nhiên", status=MeetingStatus.PUBLISHED,
                          starts_at=now + dt.timedelta(days=1), ends_at=now + dt.timedelta(days=1, hours=2))
        s.add(meeting)
        await s.flush()
        await s.execute(insert(program_trainers).values(program_id=program.id, user_id=trainer.user.id))
        await s.execute(insert(program_learners).values(program_id=program.id, user_id=learner.user.id))
        await s.execute(insert(meeting_classrooms).values(meeting_id=meeting.id, classroom_id=classroom_id))
        await s.commit()
        return World(program.id, meeting.id, classroom_id, operator, trainer, learner, outsider)


def upload_form(data: bytes, filename: str = "bai-giang.pdf", **fields: str) -> FormData:
    """upload_form: a multipart form with the file and optional fields."""
    form = FormData(quote_fields=False)  # as browsers send it: UTF-8 names, not percent-encoded
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return form


async def classroom_login(login_as: Callable[..., Awaitable[Any]], classroom_id: int) -> Any:
    """classroom_login: a logged-in classroom account of `classroom_id`."""
    return await login_as(Role.CLASSROOM, classroom_id=classroom_id)


__all__ = ["PDF", "User", "World", "classroom_login", "make_world", "upload_form"]
