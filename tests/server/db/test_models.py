"""Tests of server.db.models on a migrated SQLite file: UTC datetimes, enums stored as values, unique
constraints, and what deleting a row does to the rows that name it (cascade, set null, restrict)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import (
    AttendanceEvent,
    AuditEntry,
    CalendarFeed,
    ChatMessage,
    Classroom,
    Headcount,
    JoinLink,
    LoginSession,
    Meeting,
    MeetingKind,
    MeetingStatus,
    Notification,
    Poll,
    PollAnswer,
    Program,
    Recording,
    Role,
    Unit,
    UnitLevel,
    User,
    meeting_classrooms,
    meeting_presenters,
)

pytestmark = pytest.mark.both_databases

DB = async_sessionmaker[AsyncSession]
HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
START = dt.datetime(2025, 9, 15, 8, 0, tzinfo=HANOI)


async def _world(db: DB) -> dict[str, int]:
    """_world: a province with a classroom, a trainer, a program and a meeting."""
    async with db() as s:
        province = Unit(code="01", name="Hà Nội", level=UnitLevel.PROVINCE)
        trainer = User(username="gv.hoa", display_name="Cô Hoa", role=Role.TRAINER)
        s.add_all([province, trainer])
        await s.flush()
        room = Classroom(code="LH-01", name="Điểm cầu Ba Đình", unit_id=province.id)
        program = Program(title="GDPT 2018", created_by=trainer.id)
        s.add_all([room, program])
        await s.flush()
        meeting = Meeting(program_id=program.id, title="Buổi 1", kind=MeetingKind.REGIONAL,
                          status=MeetingStatus.PUBLISHED, starts_at=START, ends_at=START + dt.timedelta(hours=2),
                          created_by=trainer.id)
        s.add(meeting)
        await s.flush()
        ids = {"province": province.id, "trainer": trainer.id, "room": room.id, "program": program.id,
               "meeting": meeting.id}
        await s.commit()
    return ids


async def test_datetimes_are_stored_in_utc_and_come_back_aware(db: DB) -> None:
    ids = await _world(db)
    async with db() as s:
        raw = (await s.execute(text("SELECT starts_at FROM meetings WHERE id = :i"), {"i": ids["meeting"]})).scalar()
        assert str(raw).startswith("2025-09-15 01:00:00")  # 08:00 in Hà Nội, without a zone
    async with db() as s:
        meeting = await s.get(Meeting, ids["meeting"])
        assert meeting is not None
        assert meeting.starts_at.tzinfo is dt.UTC and meeting.starts_at == START
        assert meeting.created_at.tzinfo is dt.UTC  # the default, utcnow, too


async def test_a_naive_datetime_is_refused(db: DB) -> None:
    ids = await _world(db)
    async with db() as s:
        s.add(Meeting(program_id=ids["program"], title="Giờ không múi", starts_at=dt.datetime(2025, 9, 15, 8, 0),
                      ends_at=START))
        with pytest.raises(StatementError, match="naive datetime"):
            await s.flush()


async def test_enums_are_stored_as_their_values(db: DB) -> None:
    ids = await _world(db)
    async with db() as s:
        row = (await s.execute(text("SELECT kind, status FROM meetings WHERE id = :i"), {"i": ids["meeting"]})).one()
        assert tuple(row) == ("regional", "published")
        assert (await s.execute(text("SELECT role FROM users"))).scalar() == "trainer"
        user = await s.get(User, ids["trainer"])
        assert user is not None and user.role is Role.TRAINER


async def test_unique_constraints(db: DB) -> None:
    ids = await _world(db)
    async with db() as s:
        poll = Poll(meeting_id=ids["meeting"], question="Rõ chưa?", choices=["Rõ", "Chưa"])
        learner = User(username="hv.an", display_name="An", role=Role.LEARNER)
        s.add_all([poll, learner, CalendarFeed(user_id=ids["trainer"], token="feed"),
                   Unit(code="02", name="A", level=UnitLevel.PROVINCE, valid_from=dt.date(2025, 7, 1)),
                   Headcount(meeting_id=ids["meeting"], classroom_id=ids["room"], count=20)])
        await s.flush()
        s.add(PollAnswer(poll_id=poll.id, voter="user:1", choice=0))
        twins = {
            "username": User(username="gv.hoa", display_name="Khác", role=Role.LEARNER),
            "classroom code": Classroom(code="LH-01", name="Khác", unit_id=ids["province"]),
            "unit code and start": Unit(code="02", name="B", level=UnitLevel.PROVINCE,
                                        valid_from=dt.date(2025, 7, 1)),
            "poll voter": PollAnswer(poll_id=poll.id, voter="user:1", choice=1),  # an answer replaces, never adds
            "headcount": Headcount(meeting_id=ids["meeting"], classroom_id=ids["room"], count=25),
            "calendar token": CalendarFeed(user_id=learner.id, token="feed"),
        }
        await s.commit()
    refused = []
    for case, row in twins.items():
        async with db() as s:
            s.add(row)
            try:
                await s.flush()
            except IntegrityError:
                refused.append(case)
    assert refused == list(twins)
    async with db() as s:  # the same code from another date is another unit (the 2025 reform)
        s.add(Unit(code="02", name="C", level=UnitLevel.PROVINCE, valid_from=dt.date(2026, 1, 1)))
        await s.commit()


async def test_a_unit_in_use_cannot_be_deleted(db: DB) -> None:
    ids = await _world(db)
    async with db() as s:
        with pytest.raises(IntegrityError):  # it has a classroom
            await s.execute(delete(Unit).where(Unit.id == ids["province"]))
    async with db() as s:
        await s.execute(delete(Classroom))
        s.add(Unit(code="0101", name="Quận Ba Đình", level=UnitLevel.DISTRICT, parent_id=ids["province"]))
        await s.flush()
        with pytest.raises(IntegrityError):  # it has a district
            await s.execute(delete(Unit).where(Unit.id == ids["province"]))


async def test_deleting_a_meeting_deletes_what_belongs_to_it_and_keeps_its_recordings(db: DB) -> None:
    ids = await _world(db)
    mid = ids["meeting"]
    async with db() as s:
        await s.execute(insert(meeting_presenters).values(meeting_id=mid, user_id=ids["trainer"]))
        await s.execute(insert(meeting_classrooms).values(meeting_id=mid, classroom_id=ids["room"]))
        link = JoinLink(meeting_id=mid, classroom_id=ids["room"], expires_at=START)
        s.add(link)
        await s.flush()
        s.add_all([
            ChatMessage(meeting_id=mid, sender_participant="p1", sender_name="Cô Hoa", sender_role="trainer",
                        text="Chào"),
            AttendanceEvent(meeting_id=mid, kind="join", participant="p1", role="trainer"),
            Notification(meeting_id=mid, classroom_id=ids["room"], kind="published", text="Mới"),
            LoginSession(id="guest", meeting_id=mid, join_link_id=link.id, csrf_token="c", expires_at=START),
            Recording(meeting_id=mid, program_id=ids["program"], title="Buổi 1", directory="1-x"),
        ])
        await s.commit()
    async with db() as s:
        await s.execute(delete(Meeting).where(Meeting.id == mid))
        await s.commit()
    async with db() as s:
        for table in (ChatMessage, AttendanceEvent, Notification, JoinLink, LoginSession):
            assert await s.scalar(select(func.count()).select_from(table)) == 0, table.__name__
        for join in (meeting_presenters, meeting_classrooms):
            assert await s.scalar(select(func.count()).select_from(join)) == 0
        recording = (await s.scalars(select(Recording))).one()
        assert recording.meeting_id is None and recording.program_id == ids["program"]
        assert await s.get(Classroom, ids["room"]) is not None and await s.get(User, ids["trainer"]) is not None


async def test_deleting_an_account_keeps_what_it_did_and_drops_what_was_its_own(db: DB) -> None:
    ids = await _world(db)
    uid = ids["trainer"]
    async with db() as s:
        s.add_all([
            AuditEntry(actor_id=uid, action="meeting.create", target=f"meeting:{ids['meeting']}"),
            ChatMessage(meeting_id=ids["meeting"], sender_participant="p1", sender_user_id=uid, sender_name="Cô Hoa",
                        sender_role="trainer", text="Chào"),
            LoginSession(id="login", user_id=uid, csrf_token="c", expires_at=START),
            Notification(user_id=uid, meeting_id=ids["meeting"], kind="published", text="Mới"),
            CalendarFeed(user_id=uid, token="feed"),
        ])
        await s.commit()
    async with db() as s:
        await s.execute(delete(User).where(User.id == uid))
        await s.commit()
    async with db() as s:
        assert (await s.scalars(select(AuditEntry.actor_id))).one() is None
        assert (await s.scalars(select(ChatMessage.sender_user_id))).one() is None
        meeting = await s.get(Meeting, ids["meeting"])
        program = await s.get(Program, ids["program"])
        assert meeting is not None and meeting.created_by is None
        assert program is not None and program.created_by is None
        for table in (LoginSession, Notification, CalendarFeed):
            assert await s.scalar(select(func.count()).select_from(table)) == 0, table.__name__
