"""Tests of server.schedule.meetings: time conversion, validation, status changes and what each role sees."""

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
from server.db.models import AuditEntry, Classroom, Meeting, MeetingKind, MeetingStatus, Role, Unit, UnitLevel, User
from server.errors import ApiError
from server.schedule import meetings as svc

TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def test_parse_local_uses_the_configured_zone() -> None:
    value = svc.parse_local("2030-03-10T08:00", TZ, "starts_at")
    assert value.astimezone(dt.UTC) == dt.datetime(2030, 3, 10, 1, 0, tzinfo=dt.UTC)
    assert svc.parse_local("2030-03-10T08:00+00:00", TZ, "starts_at").hour == 8
    with pytest.raises(ApiError) as err:
        svc.parse_local("10/03/2030", TZ, "starts_at")
    assert err.value.status == 422 and err.value.extra["field"] == "starts_at"


def test_parse_bound_dates_are_local_midnight() -> None:
    assert svc.parse_bound("2030-03-10", TZ, "from") == dt.datetime(2030, 3, 9, 17, 0, tzinfo=dt.UTC)
    # A "+" in a query string arrives as a space.
    assert svc.parse_bound("2030-03-10T08:00:00 07:00", TZ, "from").utcoffset() == dt.timedelta(hours=7)
    with pytest.raises(ApiError):
        svc.parse_bound("2030-02-30", TZ, "to")


def test_to_local() -> None:
    assert svc.to_local(dt.datetime(2030, 1, 1, 17, 30, tzinfo=dt.UTC), TZ).isoformat() == \
        "2030-01-02T00:30:00+07:00"


def _meeting(status: MeetingStatus, start_in: dt.timedelta, minutes: int = 60) -> Meeting:
    now = svc.utcnow()
    return Meeting(status=status, starts_at=now + start_in, ends_at=now + start_in + dt.timedelta(minutes=minutes))


def test_joinable_from_thirty_minutes_before_until_the_end() -> None:
    assert svc.is_joinable(_meeting(MeetingStatus.PUBLISHED, dt.timedelta(minutes=29)))
    assert not svc.is_joinable(_meeting(MeetingStatus.PUBLISHED, dt.timedelta(minutes=31)))
    assert svc.is_joinable(_meeting(MeetingStatus.PUBLISHED, dt.timedelta(minutes=-59)))
    assert not svc.is_joinable(_meeting(MeetingStatus.PUBLISHED, dt.timedelta(minutes=-61)))
    assert not svc.is_joinable(_meeting(MeetingStatus.DRAFT, dt.timedelta(minutes=5)))
    assert not svc.is_live(_meeting(MeetingStatus.PUBLISHED, dt.timedelta(minutes=5)))
    assert svc.is_live(_meeting(MeetingStatus.PUBLISHED, dt.timedelta(minutes=-5)))


@pytest.fixture
async def seeded(app: web.Application, client: Any,
                 make_user: Callable[..., Awaitable[User]]) -> dict[str, Any]:
    """seeded: a program, a trainer, a leader, two classrooms and a classroom account (app started)."""
    async with app[DB]() as s:
        unit = Unit(code="01", name="Hà Nội", level=UnitLevel.PROVINCE)
        s.add(unit)
        await s.flush()
        rooms = [Classroom(code=f"R{i}", name=f"Room {i}", unit_id=unit.id) for i in (1, 2)]
        s.add_all(rooms)
        program = await svc.create_program(s, None, svc.ProgramIn(title="P"))
        await s.commit()
    return {"program": program, "rooms": rooms, "unit": unit,
            "trainer": await make_user(Role.TRAINER), "leader": await make_user(Role.LEADER),
            "room_user": await make_user(Role.CLASSROOM, classroom_id=rooms[0].id)}


def _data(seeded: dict[str, Any], **over: Any) -> svc.MeetingIn:
    base: dict[str, Any] = {"program_id": seeded["program"].id, "title": "M",
                            "starts_at": "2030-01-01T08:00:00+07:00", "ends_at": "2030-01-01T09:00:00+07:00",
                            "presenter_ids": [seeded["trainer"].id], "classroom_ids": [seeded["rooms"][0].id]}
    base.update(over)
    return svc.MeetingIn.model_validate(base)


def _ident(user: User, meeting_id: int | None = None) -> Identity:
    return Identity(login_id="x", role=user.role, csrf_token="c", user_id=user.id, classroom_id=user.classroom_id,
                    meeting_id=meeting_id)


async def test_status_transitions_and_audit(app: web.Application, seeded: dict[str, Any]) -> None:
    async with app[DB]() as s:
        m = await svc.create_meeting(s, None, _data(seeded))
        await s.commit()
        m = await svc.get_meeting(s, Identity("x", Role.OPERATOR, "c"), m.id)
        assert m.status == MeetingStatus.DRAFT
        with pytest.raises(ApiError) as err:
            await svc.unpublish_meeting(s, None, m)
        assert err.value.status == 409
        await svc.publish_meeting(s, None, m)
        await svc.cancel_meeting(s, None, m)
        await svc.publish_meeting(s, None, m)  # a cancelled meeting can be published again
        await svc.unpublish_meeting(s, None, m)
        await s.commit()
        actions = list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())
    assert actions == ["program.create", "meeting.create", "meeting.publish", "meeting.cancel", "meeting.publish",
                       "meeting.unpublish"]


async def test_check_meeting_refuses_disabled_presenters(app: web.Application, seeded: dict[str, Any],
                                                         make_user: Callable[..., Awaitable[User]]) -> None:
    gone = await make_user(Role.TRAINER, disabled=True)
    async with app[DB]() as s:
        with pytest.raises(ApiError) as err:
            await svc.check_meeting(s, _data(seeded, presenter_ids=[gone.id]))
        assert err.value.extra["field"] == "presenter_ids"
        resolved = await svc.check_meeting(s, _data(seeded, presenter_ids=[seeded["trainer"].id] * 2,
                                                    kind=MeetingKind.REGIONAL, province_ids=[seeded["unit"].id]))
        assert [u.id for u in resolved.presenters] == [seeded["trainer"].id]


async def test_visibility_per_role(app: web.Application, seeded: dict[str, Any]) -> None:
    async with app[DB]() as s:
        invited = await svc.create_meeting(s, None, _data(seeded, title="invited"))
        elsewhere = await svc.create_meeting(s, None, _data(seeded, title="elsewhere",
                                                             classroom_ids=[seeded["rooms"][1].id]))
        draft = await svc.create_meeting(s, None, _data(seeded, title="draft"))
        for m in (invited, elsewhere):
            m.status = MeetingStatus.PUBLISHED
        await s.commit()

        room = _ident(seeded["room_user"])
        assert [m.title for m in await svc.list_meetings(s, room)] == ["invited"]
        # A join-link login sees only its own meeting.
        scoped = _ident(seeded["room_user"], meeting_id=draft.id)
        assert await svc.list_meetings(s, scoped) == []
        trainer = _ident(seeded["trainer"])  # presents all three: sees its draft too
        assert [m.title for m in await svc.list_meetings(s, trainer)] == ["invited", "elsewhere", "draft"]
        assert await svc.list_meetings(s, _ident(seeded["leader"])) == []
        guest = Identity("g", Role.GUEST, "c", meeting_id=invited.id)
        assert [m.title for m in await svc.list_meetings(s, guest)] == ["invited"]  # its link's meeting
        assert not svc.can_read_meetings(guest)  # but no meeting page or API
        operator = Identity("o", Role.OPERATOR, "c")
        assert len(await svc.list_meetings(s, operator)) == 3
        assert len(await svc.upcoming_meetings(s, operator)) == 3
        with pytest.raises(ApiError) as err:
            await svc.get_meeting(s, room, draft.id)
        assert err.value.status == 404


async def test_meetings_by_id_whoever_asks(app: web.Application, seeded: dict[str, Any]) -> None:
    async with app[DB]() as s:
        draft = await svc.create_meeting(s, None, _data(seeded))
        other = await svc.create_meeting(s, None, _data(seeded, title="N"))
        await s.commit()
        assert (await svc.meeting_by_id(s, draft.id)) is draft and await svc.meeting_by_id(s, 999_999) is None
        found = await svc.meetings_by_id(s, {draft.id, other.id, 999_999})
        assert sorted(found) == sorted([draft.id, other.id]) and found[other.id].title == "N"
        assert await svc.meetings_by_id(s, []) == {}
        assert await svc.meeting_by_id(s, None) is None


async def test_check_program_meeting(app: web.Application, seeded: dict[str, Any]) -> None:
    async with app[DB]() as s:
        meeting = await svc.create_meeting(s, None, _data(seeded))
        other = await svc.create_program(s, None, svc.ProgramIn(title="Q"))
        await s.commit()
        await svc.check_program_meeting(s, seeded["program"].id, meeting.id)
        await svc.check_program_meeting(s, other.id, None)
        for program_id, meeting_id in ((other.id, meeting.id), (seeded["program"].id, 999_999)):
            with pytest.raises(ApiError) as err:
                await svc.check_program_meeting(s, program_id, meeting_id)
            assert err.value.status == 422 and err.value.extra["field"] == "meeting_id"
