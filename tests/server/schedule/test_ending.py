"""Tests of server.schedule.ending: a meeting ends once, an extension follows the scheduling overlap rule, and a
meeting that ended early books nothing after its real end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlalchemy import select

from server.auth import Identity
from server.db.engine import DB
from server.db.models import AuditEntry, Meeting, MeetingStatus, Role
from server.errors import ApiError
from server.schedule import ending, rules
from server.schedule import meetings as svc

Factory = Callable[..., Awaitable[Any]]
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
OPERATOR = Identity("x", Role.OPERATOR, "c")
NOW = dt.datetime(2030, 3, 11, 3, 0, tzinfo=dt.UTC)  # 10:00 in Hà Nội


async def _at(app: web.Application, meeting_id: int, start: dt.datetime, end: dt.datetime) -> None:
    async with app[DB]() as s:
        m = await s.get(Meeting, meeting_id)
        assert m is not None
        m.starts_at, m.ends_at = start, end
        await s.commit()


async def test_a_meeting_ends_once(app: web.Application, client: Any, make_meeting: Factory) -> None:
    meeting = await make_meeting()
    async with app[DB]() as s:
        m = await s.get(Meeting, meeting.id)
        assert m is not None and svc.is_live(m) and svc.is_joinable(m)
        assert ending.mark_ended(s, m, NOW, None, "overrun") is True
        assert ending.mark_ended(s, m, NOW + dt.timedelta(hours=1), 7, "ended") is False  # the first end stays
        await s.commit()
        m = await s.get(Meeting, meeting.id)
        assert m is not None and m.ended_at == NOW and m.ended_by is None
        assert not svc.is_live(m) and not svc.is_joinable(m)  # no longer "Đang diễn ra", no join button
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.target == f"meeting:{m.id}"))).all()
    assert list(actions) == ["meeting.end"]


async def test_extension_follows_the_overlap_rule(app: web.Application, client: Any, make_meeting: Factory,
                                                  make_user: Factory, make_classroom: Factory) -> None:
    room = await make_classroom()
    trainer, other = await make_user(Role.TRAINER), await make_user(Role.TRAINER)
    lecture = await make_meeting(presenters=[trainer], classrooms=[room])
    # the same classroom is booked from 10:40 by another trainer's published lecture
    nxt = await make_meeting(presenters=[other], classrooms=[room], title="Bài tiếp theo")
    await _at(app, lecture.id, NOW - dt.timedelta(hours=1), NOW + dt.timedelta(minutes=20))
    await _at(app, nxt.id, NOW + dt.timedelta(minutes=40), NOW + dt.timedelta(hours=2))
    async with app[DB]() as s:
        for bad in (0, 121, True, "15"):
            with pytest.raises(ApiError) as exc:
                await ending.extend(s, lecture.id, bad, NOW, trainer.id, TZ)  # type: ignore[arg-type]
            assert exc.value.status_code == 422 and exc.value.code == "invalid"
        with pytest.raises(ApiError) as exc:
            await ending.extend(s, lecture.id, 30, NOW, trainer.id, TZ)  # to 10:50: runs into 10:40
        err = exc.value
        assert err.status_code == 409 and err.code == "overlap"
        assert "Không thể gia hạn đến 10:50" in err.message and "Bài tiếp theo" in err.message
        assert [c["meeting_id"] for c in err.extra["conflicts"]] == [nxt.id]
        m = await ending.extend(s, lecture.id, 15, NOW, trainer.id, TZ)  # to 10:35: free
        await s.commit()
        assert m.ends_at == NOW + dt.timedelta(minutes=35) and m.sequence == 1
        # past its end, an extension counts from now
        m = await ending.extend(s, lecture.id, 3, NOW + dt.timedelta(minutes=36), trainer.id, TZ)
        assert m.ends_at == NOW + dt.timedelta(minutes=39)
        await s.rollback()
        # a draft books nothing: it may run into the other lecture
        draft = await s.get(Meeting, lecture.id)
        assert draft is not None
        draft.status = MeetingStatus.DRAFT
        await s.flush()
        assert (await ending.extend(s, lecture.id, 30, NOW, None, TZ)).ends_at == NOW + dt.timedelta(minutes=65)
        await s.rollback()
        m = await s.get(Meeting, lecture.id)
        assert m is not None
        ending.mark_ended(s, m, NOW, trainer.id, "ended")
        await s.commit()
        with pytest.raises(ApiError) as exc:
            await ending.extend(s, lecture.id, 15, NOW, trainer.id, TZ)
        assert exc.value.code == "ended"


async def test_ended_early_books_nothing_after(app: web.Application, client: Any, make_meeting: Factory,
                                              make_user: Factory) -> None:
    trainer = await make_user(Role.TRAINER)
    first = await make_meeting(presenters=[trainer])
    second = await make_meeting(presenters=[trainer])
    await _at(app, first.id, NOW - dt.timedelta(hours=1), NOW + dt.timedelta(hours=1))
    await _at(app, second.id, NOW + dt.timedelta(minutes=30), NOW + dt.timedelta(hours=2))
    async with app[DB]() as s:
        plan = rules.Plan.of(await svc.get_meeting(s, OPERATOR, second.id))
        assert [c.meeting_id for c in await rules.find_conflicts(s, plan)] == [first.id]
        m = await s.get(Meeting, first.id)
        assert m is not None
        ending.mark_ended(s, m, NOW + dt.timedelta(minutes=20), trainer.id, "ended")
        await s.commit()
        assert await rules.find_conflicts(s, plan) == []
