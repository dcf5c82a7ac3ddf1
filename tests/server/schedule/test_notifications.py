"""Tests of server.schedule.notifications: the texts, one row per recipient, what an account sees and marks read,
and e-mail sent only once the transaction commits (a local SMTP server)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select

from server.auth import Identity
from server.db.engine import DB
from server.db.models import Meeting, Notification, Role, User
from server.mail import MAILER
from server.schedule import notifications
from server.schedule.notifications import list_for, mark_read, message, notify, text_in
from tests.conftest import _FakeRequest
from tests.server.mailtest import Inbox, config, smtp  # noqa: F401  (fixtures)

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
START = dt.datetime(2025, 9, 15, 1, 0, tzinfo=dt.UTC)  # Monday 08:00 in Hà Nội
Factory = Callable[..., Awaitable[Any]]


def _meeting(title: str = "Đổi mới dạy học") -> Meeting:
    return Meeting(id=5, title=title, starts_at=START, ends_at=START + dt.timedelta(minutes=90))


def test_each_kind_says_what_happened_in_both_languages_in_local_time() -> None:
    m = _meeting()
    assert message("published", m, HANOI) == ("Buổi tập huấn mới: “Đổi mới dạy học”, Thứ Hai 15/09/2025 08:00–09:30. / "
                                              "New meeting: “Đổi mới dạy học”, Mon 15/09/2025 08:00–09:30.")
    assert message("cancelled", m, HANOI) == (
        "Buổi tập huấn “Đổi mới dạy học” (Thứ Hai 15/09/2025 08:00–09:30) đã bị huỷ. / "
        "The meeting “Đổi mới dạy học” (Mon 15/09/2025 08:00–09:30) was cancelled.")
    assert "rút lại" in message("withdrawn", m, HANOI) and "withdrawn" in message("withdrawn", m, HANOI)
    assert "không còn được mời" in message("uninvited", m, HANOI)
    assert "15/09/2025 01:00–02:30" in message("published", m, ZoneInfo("UTC"))  # the server's zone decides


def test_a_change_names_what_changed_once_in_a_fixed_order() -> None:
    m = _meeting()
    text = message("changed", m, HANOI, ["title", "ends_at", "starts_at", "title", "nonsense"])
    vi, en = text.split(" / ")
    assert vi == "Buổi tập huấn “Đổi mới dạy học” đã thay đổi (giờ bắt đầu, giờ kết thúc, tên); " \
                 "lịch hiện tại: Thứ Hai 15/09/2025 08:00–09:30."
    assert en == "The meeting “Đổi mới dạy học” changed (start, end, title); it is now Mon 15/09/2025 08:00–09:30."
    assert "(chi tiết)" in message("changed", m, HANOI) and "(details)" in message("changed", m, HANOI)


def test_text_in_picks_the_language() -> None:
    n = Notification(text="Buổi tập huấn đã đổi. / The meeting changed. / again")
    assert text_in(n, "vi") == "Buổi tập huấn đã đổi."
    assert text_in(n, "en") == "The meeting changed. / again"  # only the first separator splits
    assert text_in(Notification(text="Chỉ tiếng Việt"), "en") == "Chỉ tiếng Việt"


async def _world(app: web.Application, make_classroom: Factory, make_meeting: Factory) -> dict[str, Any]:
    """_world: two classrooms and their accounts (one disabled, one without an address), two trainers, a meeting."""
    room_a, room_b = await make_classroom(), await make_classroom()
    rows = {"trainer": (Role.TRAINER, None, "gv.hoa@example.edu.vn"), "other": (Role.TRAINER, None, "gv.nam@x.vn"),
            "staff_a": (Role.CLASSROOM, room_a, "phong.a@example.edu.vn"),
            "no_address": (Role.CLASSROOM, room_a, "khong-co-a-cong"), "gone": (Role.CLASSROOM, room_a, "cu@x.vn"),
            "staff_b": (Role.CLASSROOM, room_b, "phong.b@example.edu.vn"), "silent": (Role.TRAINER, None, "")}
    async with app[DB]() as s:
        users = {key: User(username=key, display_name=key, role=role, classroom_id=room, email=mail,
                           disabled=key == "gone") for key, (role, room, mail) in rows.items()}
        s.add_all(users.values())
        await s.commit()
    meeting = await make_meeting(presenters=[users["trainer"]])
    return {"room_a": room_a, "room_b": room_b, "meeting": meeting, **users}


def _ident(user: User) -> Identity:
    return Identity(login_id="x", role=user.role, csrf_token="c", user_id=user.id, classroom_id=user.classroom_id)


async def test_rows_per_recipient_what_each_sees_and_marks_read(
        app: web.Application, client: Any, make_user: Factory, make_classroom: Factory, make_meeting: Factory) -> None:
    w = await _world(app, make_classroom, make_meeting)
    async with app[DB]() as s:
        first = notify(s, w["meeting"], "published", "Mới. / New.", user_ids=[w["trainer"].id, w["trainer"].id],
                       classroom_ids=[w["room_a"], w["room_b"], w["room_a"]])
        assert first == 3  # each recipient once
        await s.commit()
        notify(s, w["meeting"], "changed", "Đổi. / Changed.", classroom_ids=[w["room_a"]])
        await s.commit()
    async with app[DB]() as s:
        mine = await list_for(s, _ident(w["staff_a"]))
        assert [n.kind for n in mine] == ["changed", "published"]  # newest first, the classroom's rows
        assert all(n.classroom_id == w["room_a"] and n.meeting_id == w["meeting"].id for n in mine)
        assert [n.kind for n in await list_for(s, _ident(w["trainer"]))] == ["published"]
        assert await list_for(s, _ident(w["other"])) == []
        guest = Identity(login_id="g", role=Role.GUEST, csrf_token="c")
        assert await list_for(s, guest) == [] and await mark_read(s, guest) == 0
        assert len(await list_for(s, _ident(w["staff_a"]), limit=1)) == 1

        b_row = (await list_for(s, _ident(w["staff_b"])))[0]
        assert await mark_read(s, _ident(w["staff_a"]), b_row.id) == 0  # not theirs
        assert await mark_read(s, _ident(w["staff_a"]), mine[1].id) == 1
        assert [n.kind for n in await list_for(s, _ident(w["staff_a"]), unread_only=True)] == ["changed"]
        assert await mark_read(s, _ident(w["staff_a"])) == 1  # every unread one: the one left
        assert await mark_read(s, _ident(w["staff_a"])) == 0
        await s.commit()
        assert not app[MAILER].enabled  # no smtp.host: no e-mail
        request: Any = _FakeRequest(app)
        assert await notifications.email(s, request, w["meeting"], "x", user_ids=[w["trainer"].id]) == 0
        assert await notifications.email(s, None, w["meeting"], "x", user_ids=[w["trainer"].id]) == 0
    async with app[DB]() as s:
        rows = (await s.scalars(select(Notification).order_by(Notification.id))).all()
        assert [n.read_at is not None for n in rows] == [False, True, False, True]  # trainer, a, b, a


async def _wait_for(inbox: Inbox, count: int, app: web.Application) -> None:
    await app[MAILER].drain(10)
    for _ in range(100):
        if len(inbox.messages) >= count:
            return
        await asyncio.sleep(0.05)


async def test_email_goes_after_the_commit_to_the_valid_addresses(
        app: web.Application, client: Any, make_user: Factory, make_classroom: Factory, make_meeting: Factory,
        smtp: tuple[Inbox, int]) -> None:  # noqa: F811 (fixture)
    inbox, _port = smtp
    w = await _world(app, make_classroom, make_meeting)
    request: Any = _FakeRequest(app)
    text = "Buổi tập huấn mới. / New meeting."
    async with app[DB]() as s:
        count = await notifications.email(s, request, w["meeting"], text, user_ids=[w["trainer"].id],
                                          classroom_ids=[w["room_a"]])
        assert count == 2
        assert app[MAILER].tasks == set() and inbox.messages == []  # nothing before the commit
        await s.rollback()  # the change it described did not happen: no mail
        await app[MAILER].drain(5)
        assert inbox.messages == []
        await notifications.email(s, request, w["meeting"], text, user_ids=[w["trainer"].id],
                                  classroom_ids=[w["room_a"]])
        await s.commit()
    await _wait_for(inbox, 1, app)
    assert len(inbox.messages) == 1
    rcpts, raw = inbox.messages[0]
    assert rcpts == ["gv.hoa@example.edu.vn", "phong.a@example.edu.vn"]  # not disabled, not without "@"
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert str(msg["Subject"]) == "[Taphuan] Bài giảng thử"
    body = msg.get_body().get_content()  # type: ignore[union-attr]
    assert body.splitlines() == ["Buổi tập huấn mới.", "", "New meeting."]


async def test_no_email_to_nobody_or_to_no_address(app: web.Application, client: Any, make_classroom: Factory,
                                                   make_meeting: Factory,
                                                   smtp: tuple[Inbox, int]) -> None:  # noqa: F811 (fixture)
    w = await _world(app, make_classroom, make_meeting)
    request: Any = _FakeRequest(app)
    async with app[DB]() as s:
        assert app[MAILER].enabled
        assert await notifications.email(s, request, w["meeting"], "x") == 0
        assert await notifications.email(s, request, w["meeting"], "x", user_ids=[w["silent"].id]) == 0
        await s.commit()
    assert app[MAILER].tasks == set() and app[MAILER].sent == 0
