"""server.schedule.notifications: tell invited classrooms and presenters about schedule changes.

One `Notification` row per recipient: a classroom (`classroom_id`, seen by every account of that
classroom) or a presenter (`user_id`). The text is stored as "Vietnamese / English" like API messages;
`text_in(n, lang)` picks one side. Rows stay until read (home page banner, /api/v1/notifications). Kinds: the
schedule changes, and `reminder` (a regional-meeting document due soon: `server.schedule.reminders`).
A join-link login sees only those of its meeting (not the account's other meetings).
When `smtp.host` is configured, `email` also sends the text to the recipients' addresses (presenters
and the accounts of the invited classrooms) through `server.mail`, once the transaction commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import and_, event, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from server import formats
from server.auth import Identity
from server.db.models import Meeting, Notification, User, utcnow
from server.mail import MAILER, Mailer
from server.schedule.rules import WEEKDAYS_EN, WEEKDAYS_VI

NoticeKind = Literal["published", "changed", "cancelled", "withdrawn", "uninvited", "reminder"]
FIELD_WORDS = {
    "starts_at": ("giờ bắt đầu", "start"), "ends_at": ("giờ kết thúc", "end"), "title": ("tên", "title"),
    "description": ("mô tả", "description"), "presenter_ids": ("người trình bày", "presenters"),
    "classroom_ids": ("phòng học được mời", "invited classrooms"), "province_ids": ("tỉnh", "provinces"),
    "kind": ("loại", "kind"), "program_id": ("chương trình", "program"),
}


def _when(m: Meeting, tz: ZoneInfo, lang: str) -> str:
    day = (WEEKDAYS_VI if lang == "vi" else WEEKDAYS_EN)[m.starts_at.astimezone(tz).weekday()]
    start, end = formats.time(m.starts_at, lang, tz), formats.time(m.ends_at, lang, tz)
    return f"{day} {formats.date(m.starts_at, lang, tz)} {start}–{end}"


def message(kind: NoticeKind, m: Meeting, tz: ZoneInfo, fields: Iterable[str] = ()) -> str:
    """message: the "Vietnamese / English" text of a notification about meeting `m`."""
    vi_when, en_when = _when(m, tz, "vi"), _when(m, tz, "en")
    if kind == "published":
        return f"Buổi tập huấn mới: “{m.title}”, {vi_when}. / New meeting: “{m.title}”, {en_when}."
    if kind == "cancelled":
        return f"Buổi tập huấn “{m.title}” ({vi_when}) đã bị huỷ. / The meeting “{m.title}” ({en_when}) was cancelled."
    if kind == "withdrawn":
        return (f"Buổi tập huấn “{m.title}” ({vi_when}) đã được rút lại, chờ thông báo mới. / "
                f"The meeting “{m.title}” ({en_when}) was withdrawn until further notice.")
    if kind == "uninvited":
        return (f"Bạn không còn được mời tới buổi tập huấn “{m.title}” ({vi_when}). / "
                f"You are no longer invited to the meeting “{m.title}” ({en_when}).")
    chosen = set(fields)
    words = [w for f, w in FIELD_WORDS.items() if f in chosen]
    vi = ", ".join(dict.fromkeys(w[0] for w in words)) or "chi tiết"
    en = ", ".join(dict.fromkeys(w[1] for w in words)) or "details"
    return (f"Buổi tập huấn “{m.title}” đã thay đổi ({vi}); lịch hiện tại: {vi_when}. / "
            f"The meeting “{m.title}” changed ({en}); it is now {en_when}.")


def text_in(n: Notification, lang: str) -> str:
    """text_in: the notification's text in `lang` (the side of " / " that matches)."""
    if " / " not in n.text:
        return n.text
    vi, en = n.text.split(" / ", 1)
    return vi if lang == "vi" else en


def notify(s: AsyncSession, m: Meeting, kind: NoticeKind, text: str, *, user_ids: Iterable[int] = (),
           classroom_ids: Iterable[int] = ()) -> int:
    """notify: add one Notification per presenter and per classroom; returns how many (the caller commits)."""
    now = utcnow()
    rows = [Notification(user_id=u, meeting_id=m.id, kind=kind, text=text, created_at=now)
            for u in dict.fromkeys(user_ids)]
    rows += [Notification(classroom_id=c, meeting_id=m.id, kind=kind, text=text, created_at=now)
             for c in dict.fromkeys(classroom_ids)]
    s.add_all(rows)
    return len(rows)


def _mine(ident: Identity) -> ColumnElement[bool]:
    conds = []
    if ident.user_id is not None:
        conds.append(Notification.user_id == ident.user_id)
    if ident.classroom_id is not None:
        conds.append(Notification.classroom_id == ident.classroom_id)
    if not conds:
        return Notification.id.is_(None)
    if ident.link_scoped:  # a join-link login sees its meeting only, never the account's other meetings
        return and_(or_(*conds), Notification.meeting_id == ident.meeting_id)
    return or_(*conds)


async def list_for(s: AsyncSession, ident: Identity, *, unread_only: bool = False,
                   limit: int = 50) -> list[Notification]:
    """list_for: the notifications of an account (its own and its classroom's), newest first."""
    q = select(Notification).where(_mine(ident))
    if unread_only:
        q = q.where(Notification.read_at.is_(None))
    q = q.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    return list((await s.scalars(q)).all())


async def mark_read(s: AsyncSession, ident: Identity, notification_id: int | None = None,
                    now: dt.datetime | None = None) -> int:
    """mark_read: mark one (or, with None, every) unread notification of the account as read; how many."""
    q = update(Notification).where(_mine(ident), Notification.read_at.is_(None)).values(read_at=now or utcnow())
    if notification_id is not None:
        q = q.where(Notification.id == notification_id)
    result = await s.execute(q)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


PENDING = "taphuan_pending_mail"


def _flush_mail(session: Any) -> None:
    for mailer, to, subject, body in session.info.pop(PENDING, []):
        mailer.send(to, subject, body)


def _drop_mail(session: Any, _transaction: Any = None) -> None:
    session.info.pop(PENDING, None)


async def email(s: AsyncSession, request: web.Request | None, m: Meeting, text: str, *,
                user_ids: Iterable[int] = (), classroom_ids: Iterable[int] = (), mailer: Mailer | None = None) -> int:
    """email: queue `text` to the addresses of these accounts and classrooms, sent after the commit; how many.
    The request's app gives the Mailer (or `mailer`, for work outside a request: deadline reminders)."""
    if mailer is None and request is not None:
        mailer = request.app.get(MAILER)
    users, rooms = list(user_ids), list(classroom_ids)
    if mailer is None or not mailer.enabled or not (users or rooms):
        return 0
    q = select(User.email).where(or_(User.id.in_(users), User.classroom_id.in_(rooms)), User.disabled.is_(False),
                                 User.email.contains("@"))
    to = sorted(set((await s.scalars(q)).all()))
    if not to:
        return 0
    vi, _, en = text.partition(" / ")
    body = f"{vi}\n\n{en}\n" if en else f"{vi}\n"
    sync = s.sync_session
    if PENDING not in sync.info:
        sync.info[PENDING] = []
        if not event.contains(sync, "after_commit", _flush_mail):
            event.listen(sync, "after_commit", _flush_mail)
            event.listen(sync, "after_soft_rollback", _drop_mail)
    sync.info[PENDING].append((mailer, to, f"[Taphuan] {m.title}", body))
    return len(to)
