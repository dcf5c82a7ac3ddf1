"""server.db.models: every table of Taphuan, as SQLAlchemy 2 declarative classes.

Names follow the domain vocabulary: Unit (administrative unit), Classroom, User, Program, Meeting
(one live event; never "session"), JoinLink, LoginSession (a login, the only "session"), AuditEntry.
All datetimes are stored as UTC and returned timezone-aware.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    """utcnow: the current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """UTCDateTime: store aware datetimes as naive UTC; return them aware (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    """Base: declarative base of every table."""


class Role(enum.StrEnum):
    """Role: what an account may do."""

    OPERATOR = "operator"
    TRAINER = "trainer"
    LEADER = "leader"
    CLASSROOM = "classroom"
    LEARNER = "learner"
    GUEST = "guest"


PRESENTER_ROLES = frozenset({Role.TRAINER, Role.LEADER})
STAFF_ROLES = frozenset({Role.OPERATOR, Role.TRAINER, Role.LEADER})


class UnitLevel(enum.StrEnum):
    """UnitLevel: province, then district (before 1 July 2025) or commune."""

    PROVINCE = "province"
    DISTRICT = "district"
    COMMUNE = "commune"


class MeetingKind(enum.StrEnum):
    """MeetingKind: a lecture or a regional meeting of several provinces chaired by leaders."""

    LECTURE = "lecture"
    REGIONAL = "regional"


class MeetingStatus(enum.StrEnum):
    """MeetingStatus: draft (operators and its presenters), published (visible to invitees), cancelled."""

    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False, length=20)


class Unit(Base):
    """Unit: an administrative unit (province → district or commune), valid over a date range."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("code", "valid_from", name="uq_units_code_from"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[UnitLevel] = mapped_column(_enum(UnitLevel))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    valid_from: Mapped[dt.date | None] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)

    parent: Mapped[Unit | None] = relationship(remote_side=[id], lazy="raise")


class Classroom(Base):
    """Classroom: a physical online classroom (PC, webcam, speaker, projector) in a unit."""

    __tablename__ = "classrooms"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    host: Mapped[str] = mapped_column(String(200), default="")
    equipment: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    unit: Mapped[Unit] = relationship(lazy="raise")


class User(Base):
    """User: an account with one role; classroom accounts belong to a Classroom."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role))
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    classroom_id: Mapped[int | None] = mapped_column(ForeignKey("classrooms.id", ondelete="SET NULL"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(5), default="vi")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Program(Base):
    """Program: a training program with its meetings."""

    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


meeting_presenters = Table(
    "meeting_presenters",
    Base.metadata,
    Column("meeting_id", ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)

meeting_classrooms = Table(
    "meeting_classrooms",
    Base.metadata,
    Column("meeting_id", ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True),
    Column("classroom_id", ForeignKey("classrooms.id", ondelete="CASCADE"), primary_key=True),
)

meeting_provinces = Table(
    "meeting_provinces",
    Base.metadata,
    Column("meeting_id", ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True),
    Column("unit_id", ForeignKey("units.id", ondelete="CASCADE"), primary_key=True),
)


class Meeting(Base):
    """Meeting: one live event of a program (lecture or regional), with presenters and invitees."""

    __tablename__ = "meetings"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[MeetingKind] = mapped_column(_enum(MeetingKind), default=MeetingKind.LECTURE)
    status: Mapped[MeetingStatus] = mapped_column(_enum(MeetingStatus), default=MeetingStatus.DRAFT)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    video_codec: Mapped[str] = mapped_column(String(8), default="VP8")
    record: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Scheduling (migration 0007): the 10-day-rule override, first publication, iCalendar SEQUENCE.
    publish_override_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    publish_override_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    publish_override_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    first_published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Ending (migration 0012): when the meeting really ended (a presenter or operator ended it for everyone, or it
    # overran its end by meetings.overrun_minutes) and who ended it (None: the server, at the overrun).
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    program: Mapped[Program] = relationship(lazy="raise")
    presenters: Mapped[list[User]] = relationship(secondary=meeting_presenters, lazy="raise")
    classrooms: Mapped[list[Classroom]] = relationship(secondary=meeting_classrooms, lazy="raise")
    provinces: Mapped[list[Unit]] = relationship(secondary=meeting_provinces, lazy="raise")


class JoinLink(Base):
    """JoinLink: a signed, expiring link that logs a classroom (or a guest) into one meeting."""

    __tablename__ = "join_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    classroom_id: Mapped[int | None] = mapped_column(ForeignKey("classrooms.id", ondelete="CASCADE"))
    guest_name: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class LoginSession(Base):
    """LoginSession: one login (cookie token); a join-link login is scoped to one meeting."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    join_link_id: Mapped[int | None] = mapped_column(ForeignKey("join_links.id", ondelete="SET NULL"))
    guest_name: Mapped[str] = mapped_column(String(200), default="")
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str] = mapped_column(String(40), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class ApiToken(Base):
    """ApiToken: a bearer token for a client that is not a browser (bots, scripts, tests): the account's roles,
    an expiry, revocable; only the SHA-256 of its secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str] = mapped_column(String(40), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")


class AuditEntry(Base):
    """AuditEntry: one operator or live action, kept for accountability."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(60), index=True)
    target: Mapped[str] = mapped_column(String(120), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str] = mapped_column(String(64), default="")


class Setting(Base):
    """Setting: small key/value facts the server keeps about itself (e.g. first-run done)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")


class ChatMessage(Base):
    """ChatMessage: one chat line of a meeting's live room (public, or private to one participant)."""

    __tablename__ = "chat_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    sender_participant: Mapped[str] = mapped_column(String(40))
    sender_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    sender_name: Mapped[str] = mapped_column(String(200))
    sender_role: Mapped[str] = mapped_column(String(20))
    recipient_participant: Mapped[str | None] = mapped_column(String(40))
    recipient_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    text: Mapped[str] = mapped_column(Text)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Poll(Base):
    """Poll: a quick question with choices, asked by a presenter during a meeting."""

    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    question: Mapped[str] = mapped_column(String(500))
    choices: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PollAnswer(Base):
    """PollAnswer: one participant's choice in a poll (a new answer replaces the previous one)."""

    __tablename__ = "poll_answers"
    __table_args__ = (UniqueConstraint("poll_id", "voter", name="uq_poll_answers_voter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"), index=True)
    voter: Mapped[str] = mapped_column(String(60))  # "user:<id>" or "participant:<id>" for guests
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    classroom_id: Mapped[int | None] = mapped_column(ForeignKey("classrooms.id", ondelete="SET NULL"))
    choice: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Notification(Base):
    """Notification: a schedule change told to one account or one classroom (shown until read)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    classroom_id: Mapped[int | None] = mapped_column(ForeignKey("classrooms.id", ondelete="CASCADE"), index=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CalendarFeed(Base):
    """CalendarFeed: the secret token of one account's iCalendar feed URL (regenerable)."""

    __tablename__ = "calendar_feeds"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class MeetingDocument(Base):
    """MeetingDocument: a regional meeting's plan, joint report or result report (file stored by hash)."""

    __tablename__ = "meeting_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # plan, joint_report, result_report
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(120))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    classroom_id: Mapped[int | None] = mapped_column(ForeignKey("classrooms.id", ondelete="SET NULL"))


class OverrideReason(Base):
    """OverrideReason: one written reason for publishing or changing a published meeting inside the 10-day window
    (migration 0013): every reason stays, with its author and time (the meeting's `publish_override_*` is the last)."""

    __tablename__ = "override_reasons"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))  # publish, update
    reason: Mapped[str] = mapped_column(Text)
    by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeadlineReminder(Base):
    """DeadlineReminder: a reminder sent for one document of a regional meeting, `days_before` its due day (once)."""

    __tablename__ = "deadline_reminders"
    __table_args__ = (UniqueConstraint("meeting_id", "kind", "days_before", name="uq_deadline_reminders_once"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # plan, joint_report, result_report
    days_before: Mapped[int] = mapped_column(Integer)
    due: Mapped[dt.date] = mapped_column(Date)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AttendanceEvent(Base):
    """AttendanceEvent: one thing a participant did in a meeting's live room (reports are computed from these).

    kinds: join, resume, leave, drop, closed-at-restart, hand-up, hand-down, floor-start, floor-end, chat,
    poll-answer, quality (a periodic sample: loss, bitrate, rtt).
    """

    __tablename__ = "attendance_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(24))
    participant: Mapped[str] = mapped_column(String(40))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    classroom_id: Mapped[int | None] = mapped_column(ForeignKey("classrooms.id", ondelete="SET NULL"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Headcount(Base):
    """Headcount: how many teachers a classroom says were present at a meeting (and optionally who)."""

    __tablename__ = "headcounts"
    __table_args__ = (UniqueConstraint("meeting_id", "classroom_id", name="uq_headcounts_meeting_classroom"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    classroom_id: Mapped[int] = mapped_column(ForeignKey("classrooms.id", ondelete="CASCADE"))
    count: Mapped[int] = mapped_column(Integer)
    names: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


__all__ = [
    "AttendanceEvent", "AuditEntry", "DeadlineReminder", "Headcount", "OverrideReason",
    "Base", "CalendarFeed", "ChatMessage", "Classroom", "JoinLink", "LoginSession", "Meeting",
    "MeetingDocument", "MeetingKind", "MeetingStatus", "Notification", "PRESENTER_ROLES", "Poll", "PollAnswer",
    "Program", "Role", "STAFF_ROLES", "Setting",
    "UTCDateTime", "Unit", "UnitLevel", "User", "meeting_classrooms", "meeting_presenters", "meeting_provinces",
    "utcnow",
]


# --- learning (issue 6, migration 0008): enrolment, materials, forum, quizzes, study progress ---------------

program_learners = Table(
    "program_learners",
    Base.metadata,
    Column("program_id", ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)

program_trainers = Table(
    "program_trainers",
    Base.metadata,
    Column("program_id", ForeignKey("programs.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class MaterialKind(enum.StrEnum):
    """MaterialKind: what a material is for (documents, slides, e-learning packages, videos, images)."""

    DOCUMENT = "document"
    SLIDES = "slides"
    PACKAGE = "package"
    VIDEO = "video"
    IMAGE = "image"


class Material(Base):
    """Material: an uploaded file of a program (or of one of its meetings), stored by content hash."""

    __tablename__ = "materials"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="SET NULL"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[MaterialKind] = mapped_column(_enum(MaterialKind))
    filename: Mapped[str] = mapped_column(String(255))
    mime: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ForumTopic(Base):
    """ForumTopic: a free topic of a program, or the one thread of a meeting (meeting_id set)."""

    __tablename__ = "forum_topics"
    __table_args__ = (UniqueConstraint("meeting_id", name="uq_forum_topics_meeting_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ForumQuestion(Base):
    """ForumQuestion: a question asked in a topic (Markdown); answered once a trainer marks it so."""

    __tablename__ = "forum_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    topic_id: Mapped[int] = mapped_column(ForeignKey("forum_topics.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ForumReply(Base):
    """ForumReply: an answer or a follow-up to a question (Markdown)."""

    __tablename__ = "forum_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("forum_questions.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Quiz(Base):
    """Quiz: a short multiple-choice self-assessment of a program, written by a trainer."""

    __tablename__ = "quizzes"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    pass_percent: Mapped[int] = mapped_column(Integer, default=70)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class QuizQuestion(Base):
    """QuizQuestion: one question of a quiz with 2–6 choices, one or several of them correct."""

    __tablename__ = "quiz_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    quiz_id: Mapped[int] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    choices: Mapped[list[str]] = mapped_column(JSON)
    correct: Mapped[list[int]] = mapped_column(JSON)


class QuizAttempt(Base):
    """QuizAttempt: one learner's submitted answers to a quiz, with the score it earned."""

    __tablename__ = "quiz_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    quiz_id: Mapped[int] = mapped_column(ForeignKey("quizzes.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    answers: Mapped[list[list[int]]] = mapped_column(JSON)
    correct_count: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    score_percent: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class StudyProgress(Base):
    """StudyProgress: one learner's use of one study item ("material:<id>", later "recording:<id>")."""

    __tablename__ = "study_progress"
    __table_args__ = (UniqueConstraint("user_id", "item", name="uq_study_progress_user_item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    item: Mapped[str] = mapped_column(String(40))
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    opens: Mapped[int] = mapped_column(Integer, default=0)
    position: Mapped[float] = mapped_column(Float, default=0.0)
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    watched: Mapped[float] = mapped_column(Float, default=0.0)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)


__all__ += [
    "ForumQuestion", "ForumReply", "ForumTopic", "Material", "MaterialKind", "Quiz", "QuizAttempt",
    "QuizQuestion", "StudyProgress", "program_learners", "program_trainers",
]


class RecordingState(enum.StrEnum):
    """RecordingState: recording -> processing -> ready | failed."""

    RECORDING = "recording"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class RecordingAudience(enum.StrEnum):
    """RecordingAudience: which learners see a published recording (`server.live.audience`)."""

    ENROLLED = "enrolled"  # the learners enrolled in its program
    UNITS = "units"  # those, and the learners of the units of the meeting's classrooms and provinces
    ALL = "all"  # every learner


class Recording(Base):
    """Recording: one lecture video of a meeting (its `part`; a meeting's parts are one archive entry): its files,
    state, progress and who may watch it."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="SET NULL"), index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", ondelete="SET NULL"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    directory: Mapped[str] = mapped_column(String(200))  # relative to <data_dir>/recordings
    state: Mapped[RecordingState] = mapped_column(_enum(RecordingState), default=RecordingState.RECORDING,
                                                  index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    recovered: Mapped[bool] = mapped_column(Boolean, default=False)
    gaps: Mapped[int] = mapped_column(Integer, default=0)  # media lost to a disk too slow (recorder/participant.py)
    part: Mapped[int] = mapped_column(Integer, default=1)  # the meeting's n-th lecture video (server.live.recordings)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    audience: Mapped[RecordingAudience] = mapped_column(_enum(RecordingAudience), default=RecordingAudience.ENROLLED,
                                                       server_default=RecordingAudience.ENROLLED.value)  # 0012
    video_codec: Mapped[str] = mapped_column(String(8), default="VP8")
    file: Mapped[str] = mapped_column(String(200), default="")  # the lecture file, relative to directory
    mime: Mapped[str] = mapped_column(String(40), default="")
    duration: Mapped[float] = mapped_column(Float, default=0.0)
    size: Mapped[int] = mapped_column(Integer, default=0)
    chapters: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    originals: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # its HLS renditions in <directory>/hls (server.live.broadcast): "" none, live, queued, encoding (from the
    # lecture file; hls_progress percent), ready, failed (0018)
    hls_state: Mapped[str] = mapped_column(String(12), default="", server_default="")
    hls_progress: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


__all__ += ["Recording", "RecordingAudience", "RecordingState"]


class ScormPackage(Base):
    """ScormPackage: what an uploaded ZIP (by content hash) holds: a SCORM package's manifest, or why it is not one.

    `version` is "1.2" or "2004" (None: not SCORM, `reason` says why; the material stays a download); `scos`
    lists the launchable items in the organisation's order (server.learning.scorm.Sco as dicts). The files are
    extracted once to <data_dir>/packages/<sha256>/ (migration 0016_scorm).
    """

    __tablename__ = "scorm_packages"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str | None] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(300), default="")
    scos: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text, default="")
    files: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScormAttempt(Base):
    """ScormAttempt: one learner's attempt at one SCO of a package material: the SCORM data model as last committed.

    Commits are ordered by (session, seq): `session` is issued at each launch, `seq` counts the player's commits
    within it; an older commit never overwrites a newer one (server.learning.scormrt). `session_seconds` keeps
    each session's reported session time; `total_seconds` is their sum. `cmi` is the last accepted commit's
    data-model elements (flattened); the columns repeat what progress and reports read.
    """

    __tablename__ = "scorm_attempts"
    __table_args__ = (UniqueConstraint("user_id", "material_id", "sco", "number", name="uq_scorm_attempts_user_sco"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    material_id: Mapped[int] = mapped_column(ForeignKey("materials.id", ondelete="CASCADE"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"), index=True)
    sco: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer, default=1)
    version: Mapped[str] = mapped_column(String(8))
    sessions: Mapped[int] = mapped_column(Integer, default=0)
    last_session: Mapped[int] = mapped_column(Integer, default=0)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    completion: Mapped[str] = mapped_column(String(20), default="not attempted")
    success: Mapped[str] = mapped_column(String(20), default="unknown")
    lesson_status: Mapped[str] = mapped_column(String(20), default="not attempted")
    score_raw: Mapped[float | None] = mapped_column(Float)
    score_min: Mapped[float | None] = mapped_column(Float)
    score_max: Mapped[float | None] = mapped_column(Float)
    score_scaled: Mapped[float | None] = mapped_column(Float)
    location: Mapped[str] = mapped_column(Text, default="")
    suspend_data: Mapped[str] = mapped_column(Text, default="")
    exit: Mapped[str] = mapped_column(String(20), default="")
    session_seconds: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    total_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    cmi: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


__all__ += ["ScormAttempt", "ScormPackage"]


# --- live broadcast audience (issue 19, migration 0017): public links, viewers, the question box -------------


class BroadcastLink(Base):
    """BroadcastLink: a meeting's public watch link, turned on by an operator (`server.live.watch`): the link is
    signed with `nonce`; turning it off deletes the row, turning it on again draws a new nonce (old links die)."""

    __tablename__ = "broadcast_links"

    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class BroadcastView(Base):
    """BroadcastView: one viewer of a meeting's broadcast, from the player's heartbeats: `viewer` is
    "user:<id>" for an account, "anon:<digest>" for someone on the public link (`public`); `seconds` watched."""

    __tablename__ = "broadcast_views"
    __table_args__ = (UniqueConstraint("meeting_id", "viewer", name="uq_broadcast_views_meeting_viewer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    viewer: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(String(20), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    first_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)


class QuestionState(enum.StrEnum):
    """QuestionState: a viewer's question: pending → approved (into the room's chat) | answered | dismissed."""

    PENDING = "pending"
    APPROVED = "approved"
    ANSWERED = "answered"
    DISMISSED = "dismissed"


class BroadcastQuestion(Base):
    """BroadcastQuestion: a question a viewer of the broadcast asked, in the moderated queue of its meeting."""

    __tablename__ = "broadcast_questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"), index=True)
    viewer: Mapped[str] = mapped_column(String(80), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[QuestionState] = mapped_column(_enum(QuestionState), default=QuestionState.PENDING)
    answer: Mapped[str] = mapped_column(Text, default="")
    asked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    chat_message_id: Mapped[int | None] = mapped_column(Integer)


__all__ += ["BroadcastLink", "BroadcastQuestion", "BroadcastView", "QuestionState"]
