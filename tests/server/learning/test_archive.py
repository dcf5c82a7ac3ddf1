"""Tests of server.learning.archive: the library's lookups, one recording or 404/403, the operators' changes and the
self-study position of the player, on a real database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from sqlalchemy import select

from server.auth import Identity
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import AuditEntry, Recording, RecordingState, Role, User, program_learners
from server.errors import ApiError
from server.learning import archive, selfstudy

Factory = Callable[..., Awaitable[Any]]


def _ident(user: User) -> Identity:
    return Identity(login_id="x", role=user.role, csrf_token="", user_id=user.id)


@pytest.fixture
async def world(client: Any, app: web.Application, make_user: Factory, make_meeting: Factory) -> dict[str, Any]:
    """world: a meeting with an enrolled learner and three recordings: published, draft, still processing."""
    learner = await make_user(Role.LEARNER)
    outsider = await make_user(Role.LEARNER)
    operator = await make_user(Role.OPERATOR)
    meeting = await make_meeting(title="Bài giảng Toán")
    start = dt.datetime(2030, 3, 10, 1, 0, tzinfo=dt.UTC)
    ids = []
    async with app[DB]() as s:
        await s.execute(sa.insert(program_learners).values(program_id=meeting.program_id, user_id=learner.id))
        for n, (title, published, state) in enumerate((("Toán lớp 6 buổi 1", True, RecordingState.READY),
                                                        ("Toán lớp 6 buổi 2", False, RecordingState.READY),
                                                        ("Văn lớp 6", False, RecordingState.PROCESSING))):
            row = Recording(meeting_id=meeting.id, program_id=meeting.program_id, title=title, directory=f"rec-{n}",
                            state=state, published=published, started_at=start + dt.timedelta(days=n))
            s.add(row)
            await s.flush()
            ids.append(row.id)
        await s.commit()
    return {"learner": learner, "outsider": outsider, "operator": operator, "meeting": meeting, "ids": ids}


async def test_library_find_and_viewable_follow_who_may_watch(app: web.Application, world: dict[str, Any]) -> None:
    published, draft, processing = world["ids"]
    learner, outsider, op = (_ident(world[k]) for k in ("learner", "outsider", "operator"))
    async with app[DB]() as s:
        assert await archive.library_programs(s, learner) == [(world["meeting"].program_id, "Chương trình thử")]
        assert await archive.library_programs(s, outsider) == []
        assert [r.id for r, _t in await archive.find(s, learner, words=[])] == [published]
        assert [r.id for r, _t in await archive.find(s, op, words=[])] == [processing, draft, published]
        assert [r.id for r, _t in await archive.find(s, op, words=["toán", "buổi"])] == [draft, published]
        assert [r.id for r, _t in await archive.find(s, op, words=[], program_id=world["meeting"].program_id,
                                                     meeting_id=world["meeting"].id,
                                                     since=dt.datetime(2030, 3, 11, tzinfo=dt.UTC),
                                                     until=dt.datetime(2030, 3, 12, tzinfo=dt.UTC))] == [draft]
        assert (await archive.find(s, op, words=[]))[0][1] == "Chương trình thử"
        assert (await archive.viewable(s, learner, published)).id == published
        for who, rid, status in ((learner, draft, 403), (outsider, published, 403), (op, 999_999, 404)):
            with pytest.raises(ApiError) as info:
                await archive.viewable(s, who, rid)
            assert info.value.status == status
        assert await archive.program_title(s, await archive.viewable(s, op, draft)) == "Chương trình thử"


async def test_study_video_resumes_where_the_learner_stopped(app: web.Application, world: dict[str, Any]) -> None:
    published, draft, _processing = world["ids"]
    learner = world["learner"]
    async with app[DB]() as s:
        row = await archive.viewable(s, _ident(learner), published)
        study = await archive.study_video(s, _ident(learner), row)
        assert study == {"item": f"recording:{published}", "program_id": row.program_id, "position": 0.0}
        await selfstudy.record_watch(s, learner.id, row.program_id or 0, f"recording:{published}", 61.5, 600.0, 15)
        await s.commit()
        assert (await archive.study_video(s, _ident(learner), row) or {})["position"] == 61.5
        assert await archive.study_video(s, _ident(world["operator"]), row) is None
        assert await archive.study_video(s, _ident(learner), await archive.viewable(
            s, _ident(world["operator"]), draft)) is None


async def test_change_and_remove_are_checked_and_audited(app: web.Application, world: dict[str, Any]) -> None:
    published, draft, processing = world["ids"]
    root = app[CONFIG].data_path / "recordings"
    (root / "rec-1").mkdir(parents=True)
    (root / "rec-1" / "lecture.webm").write_bytes(b"x")
    async with app[DB]() as s:
        with pytest.raises(ApiError) as info:
            await archive.change(s, None, processing, published=True)
        assert info.value.status == 409
        row = await archive.change(s, None, draft, published=True, title="  Toán lớp 6 buổi 2 (đủ)  ")
        assert row.published and row.title == "Toán lớp 6 buổi 2 (đủ)"
        await archive.change(s, None, published, published=False)
        with pytest.raises(ApiError) as info:
            await archive.remove(s, None, root, processing)
        assert info.value.status == 409
        await archive.remove(s, None, root, draft)
        await s.commit()
        with pytest.raises(ApiError) as info:
            await archive.change(s, None, draft, title="x")
        assert info.value.status == 404
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("recording.%"))
                                   .order_by(AuditEntry.id))).all()
    assert actions == ["recording.publish", "recording.rename", "recording.unpublish", "recording.delete"]
    assert not (root / "rec-1").exists()
