"""Tests of server.people.accounts: accounts, own password, join links (opened at /j/{token}) and who they log in."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from server.auth import COOKIE, Identity, join_link_token
from server.bus import BUS, Subscription
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import (
    AuditEntry,
    Classroom,
    JoinLink,
    LoginSession,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    Unit,
    UnitLevel,
    User,
    utcnow,
)
from server.people.accounts import (
    AccountError,
    Ended,
    account_choices,
    add_account,
    add_join_link,
    announce,
    change_own_password,
    disable_account,
    edit_account,
    find_user,
    link_classrooms,
    remove_join_link,
    reset_account,
    safe_next,
)
from tests.conftest import LoggedIn

MakeUser = Callable[..., Awaitable[User]]
LoginAs = Callable[..., Awaitable[LoggedIn]]
NewClient = Callable[[], Awaitable[TestClient[Any, Any]]]
HTML = {"Accept": "text/html"}
JSON = {"Accept": "application/json"}


# -------------------------------- helpers (also used by tests/server/api/test_accounts.py and pages/test_accounts.py)


async def make_classroom(app: web.Application, code: str = "HN-BD-01", name: str = "Phòng họp Ba Đình") -> Classroom:
    """make_classroom: a classroom in a new province unit."""
    async with app[DB]() as s:
        unit = await s.scalar(select(Unit).where(Unit.code == "T01"))
        if unit is None:
            unit = Unit(code="T01", name="Tỉnh Thử", level=UnitLevel.PROVINCE)
            s.add(unit)
            await s.flush()
        classroom = Classroom(code=code, name=name, unit_id=unit.id)
        s.add(classroom)
        await s.commit()
        return classroom


async def make_meeting(app: web.Application, *, starts_in: float = 1.0, hours: float = 2.0,
                       status: MeetingStatus = MeetingStatus.PUBLISHED) -> Meeting:
    """make_meeting: a meeting starting `starts_in` hours from now."""
    async with app[DB]() as s:
        program = Program(title="Chương trình thử")
        s.add(program)
        await s.flush()
        start = utcnow() + dt.timedelta(hours=starts_in)
        meeting = Meeting(program_id=program.id, title="Bồi dưỡng giáo viên", starts_at=start,
                          ends_at=start + dt.timedelta(hours=hours), status=status)
        s.add(meeting)
        await s.commit()
        return meeting


async def new_link(op: LoggedIn, meeting_id: int, **body: Any) -> dict[str, Any]:
    resp = await op.post(f"/api/v1/meetings/{meeting_id}/links", json=body)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


def token_of(url: str) -> str:
    return url.rsplit("/j/", 1)[1]


async def open_link(client: TestClient[Any, Any], token: str, accept: dict[str, str] = HTML) -> Any:
    return await client.get(f"/j/{token}", headers=accept, allow_redirects=False)


@pytest.fixture
async def new_client(client: TestClient[Any, Any]) -> AsyncIterator[Callable[[], Awaitable[TestClient[Any, Any]]]]:
    """new_client: more browsers (own cookies) on the already running server (the app is not restarted)."""
    made: list[TestClient[Any, Any]] = []

    async def make() -> TestClient[Any, Any]:
        other: TestClient[Any, Any] = TestClient(client.server)
        await other.start_server()
        made.append(other)
        return other

    yield make
    for other in made:
        await other.session.close()


async def login_csrf(app: web.Application, client: TestClient[Any, Any]) -> str:
    """login_csrf: the CSRF token of the login a client's cookie holds (a join link's, say)."""
    async with app[DB]() as s:
        login = await s.get(LoginSession, client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value)
        assert login is not None
        return login.csrf_token


async def next_message(sub: Subscription) -> dict[str, Any]:
    return await asyncio.wait_for(sub.get(), timeout=2)


# ---------------------------------------------------------------- core


def test_safe_next() -> None:
    assert safe_next("/accounts?q=1") == "/accounts?q=1"
    for bad in (None, "", "accounts", "//evil", "/\\evil", "http://evil/", "https:/evil"):
        assert safe_next(bad) == "/"


# ---------------------------------------------------------------- join links


async def test_classroom_link_opens_a_meeting_login(login_as: LoginAs, client: TestClient[Any, Any],
                                                    app: web.Application, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    meeting = await make_meeting(app, starts_in=1, hours=3)
    link = await new_link(op, meeting.id, classroom_id=room.id)
    assert link["classroom_code"] == "HN-BD-01" and not link["expired"] and not link["revoked"]
    pc = await new_client()
    resp = await open_link(pc, token_of(link["url"]))
    assert resp.status == 303
    assert resp.headers["Location"] == f"/live/{meeting.id}"
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    me = await (await pc.get("/api/v1/me")).json()
    assert me["role"] == "classroom" and me["meeting_id"] == meeting.id and me["classroom_id"] == room.id
    assert me["username"] == "hn-bd-01" and me["display_name"] == "Phòng họp Ba Đình"
    async with app[DB]() as s:
        login = await s.get(LoginSession, cookie.value)
        assert login is not None and login.join_link_id == link["id"] and login.meeting_id == meeting.id
        assert login.expires_at >= meeting.ends_at  # lasts until the meeting's end plus a margin
    # the classroom account exists once, even after a second link
    await new_link(op, meeting.id, classroom_id=room.id)
    async with app[DB]() as s:
        accounts = (await s.scalars(select(User).where(User.classroom_id == room.id))).all()
        assert len(accounts) == 1


async def test_guest_link_creates_a_login_without_account(login_as: LoginAs, app: web.Application,
                                                          new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(app)
    link = await new_link(op, meeting.id, guest_name="Nguyễn Văn Khách")
    pc = await new_client()
    resp = await open_link(pc, token_of(link["url"]))
    assert resp.status == 303 and resp.headers["Location"] == f"/live/{meeting.id}"
    me = await (await pc.get("/api/v1/me")).json()
    assert me == {"id": None, "username": "", "display_name": "Nguyễn Văn Khách", "role": "guest",
                  "classroom_id": None, "meeting_id": meeting.id, "language": "vi"}
    async with app[DB]() as s:
        login = await s.get(LoginSession, resp.cookies[COOKIE].value)
        assert login is not None and login.user_id is None and login.guest_name == "Nguyễn Văn Khách"


async def test_tampered_link_is_400(login_as: LoginAs, app: web.Application, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(app)
    link = await new_link(op, meeting.id, guest_name="Khách")
    token = token_of(link["url"])
    pc = await new_client()
    bad = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    resp = await open_link(pc, bad)
    assert resp.status == 400
    assert "Liên kết tham gia không hợp lệ" in await resp.text()
    resp = await open_link(pc, bad, JSON)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "link-invalid"
    assert (await open_link(pc, "x" * 300, JSON)).status == 400
    # a token signed with another key
    other = join_link_token.__globals__["URLSafeSerializer"](b"other-key", salt="join-link").dumps(
        {"l": link["id"], "e": 0})
    assert (await open_link(pc, other, JSON)).status == 400
    assert COOKIE not in resp.cookies


async def test_expired_link_is_410_but_existing_login_lives_on(login_as: LoginAs, app: web.Application,
                                                               new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    meeting = await make_meeting(app, starts_in=-0.5, hours=2)
    link = await new_link(op, meeting.id, classroom_id=room.id, hours=1)
    token = token_of(link["url"])
    inside = await new_client()
    assert (await open_link(inside, token)).status == 303
    # the link expires (the token embeds the expiry, so move the row and sign again)
    async with app[DB]() as s:
        row = await s.get(JoinLink, link["id"])
        assert row is not None
        row.expires_at = (utcnow() - dt.timedelta(minutes=1)).replace(microsecond=0)
        await s.commit()
        expired_token = join_link_token(app, row)
    late = await new_client()
    resp = await open_link(late, expired_token)
    assert resp.status == 410
    html = await resp.text()
    assert "Liên kết tham gia đã hết hạn" in html and "vẫn tiếp tục bình thường" in html
    assert COOKIE not in resp.cookies
    resp = await open_link(late, expired_token, JSON)
    assert (await resp.json())["error"]["code"] == "link-expired"
    # the old token no longer matches the row: refused as invalid
    assert (await open_link(late, token, JSON)).status == 400
    # the classroom already inside stays in
    me = await inside.get("/api/v1/me")
    assert me.status == 200 and (await me.json())["meeting_id"] == meeting.id
    listed = await (await op.get(f"/api/v1/meetings/{meeting.id}/links")).json()
    assert listed[0]["expired"] is True


async def test_revoked_link_is_410_and_can_end_its_logins(login_as: LoginAs, app: web.Application,
                                                          new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(app)
    a = await new_link(op, meeting.id, guest_name="Khách A")
    b = await new_link(op, meeting.id, guest_name="Khách B")
    guest_a, guest_b = await new_client(), await new_client()
    assert (await open_link(guest_a, token_of(a["url"]))).status == 303
    assert (await open_link(guest_b, token_of(b["url"]))).status == 303
    sub = await app[BUS].subscribe("logins")
    try:
        resp = await op.delete(f"/api/v1/meetings/{meeting.id}/links/{a['id']}")
        assert resp.status == 200 and (await resp.json())["revoked"] is True
        resp = await open_link(await new_client(), token_of(a["url"]))
        assert resp.status == 410 and "đã bị thu hồi" in await resp.text()
        assert (await guest_a.get("/api/v1/me")).status == 200  # plain revocation keeps those inside
        resp = await op.post(f"/meetings/{meeting.id}/links/{b['id']}/revoke",
                             data={"csrf_token": op.csrf, "end_logins": "1"}, allow_redirects=False)
        assert resp.status == 303
        assert (await guest_b.get("/api/v1/me")).status == 401
        msg = await next_message(sub)
        assert msg["type"] == "login-revoked" and msg["reason"] == "link-revoked" and len(msg["login_ids"]) == 1
    finally:
        await sub.close()
    assert (await op.delete(f"/api/v1/meetings/{meeting.id}/links/99999")).status == 404


async def test_second_pc_replaces_the_first(login_as: LoginAs, app: web.Application, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    meeting = await make_meeting(app)
    other_meeting = await make_meeting(app)
    link = await new_link(op, meeting.id, classroom_id=room.id)
    other_link = await new_link(op, other_meeting.id, classroom_id=room.id)
    first, second, elsewhere = await new_client(), await new_client(), await new_client()
    resp = await open_link(elsewhere, token_of(other_link["url"]))
    resp = await open_link(first, token_of(link["url"]))
    first_id = resp.cookies[COOKIE].value
    assert (await first.get("/api/v1/me")).status == 200
    sub = await app[BUS].subscribe("logins")
    try:
        resp = await open_link(second, token_of(link["url"]))
        assert resp.status == 303
        msg = await next_message(sub)
    finally:
        await sub.close()
    assert msg == {"type": "login-revoked", "login_ids": [first_id], "reason": "replaced"}
    assert (await first.get("/api/v1/me")).status == 401
    assert (await second.get("/api/v1/me")).status == 200
    assert (await elsewhere.get("/api/v1/me")).status == 200  # another meeting is not replaced
    async with app[DB]() as s:
        login = await s.get(LoginSession, first_id)
        assert login is not None and login.revoked_reason == "replaced"


async def test_password_login_of_classroom_replaces_its_pc(login_as: LoginAs, app: web.Application,
                                                          new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    meeting = await make_meeting(app)
    link = await new_link(op, meeting.id, classroom_id=room.id)
    first = await new_client()
    await open_link(first, token_of(link["url"]))
    async with app[DB]() as s:
        account = await s.scalar(select(User).where(User.classroom_id == room.id))
        assert account is not None
        account_id = account.id
    reset = await (await op.post(f"/api/v1/users/{account_id}/reset-password")).json()
    # the reset already ended the link login; open it again, then log in by password on another PC
    await open_link(first, token_of(link["url"]))
    assert (await first.get("/api/v1/me")).status == 200
    sub = await app[BUS].subscribe("logins")
    try:
        from tests.server.test_auth import api_login

        second = await new_client()
        assert (await api_login(second, "hn-bd-01", reset["password"])).status == 200
        msg = await next_message(sub)
    finally:
        await sub.close()
    assert msg["reason"] == "replaced" and len(msg["login_ids"]) == 1
    assert (await first.get("/api/v1/me")).status == 401


async def test_disabled_classroom_cannot_join(login_as: LoginAs, app: web.Application, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    meeting = await make_meeting(app)
    link = await new_link(op, meeting.id, classroom_id=room.id)
    async with app[DB]() as s:
        await s.execute(update(User).where(User.classroom_id == room.id).values(disabled=True))
        await s.commit()
    resp = await open_link(await new_client(), token_of(link["url"]), JSON)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "account-disabled"


async def test_cancelled_meeting_link_is_410(login_as: LoginAs, app: web.Application, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(app, status=MeetingStatus.CANCELLED)
    link = await new_link(op, meeting.id, guest_name="Khách")
    resp = await open_link(await new_client(), token_of(link["url"]), JSON)
    assert resp.status == 410 and (await resp.json())["error"]["code"] == "meeting-cancelled"


# ---------------------------------------------------------------- the actions of the pages and the API


async def _login_ids(app: web.Application, user: User) -> list[str]:
    async with app[DB]() as s:
        return list((await s.scalars(select(LoginSession.id).where(LoginSession.user_id == user.id)
                                     .order_by(LoginSession.created_at))).all())


async def test_actions_audit_and_return_what_to_announce(app: web.Application, make_user: MakeUser,
                                                         login_as: LoginAs) -> None:
    operator = await make_user(Role.OPERATOR)
    async with app[DB]() as s:
        created = await add_account(s, None, username="GV.Moi", display_name="", role=Role.TRAINER)
        await s.commit()
    user = created.user
    assert user.username == "gv.moi" and created.password
    await login_as(user=user)
    logins = await _login_ids(app, user)
    async with app[DB]() as s:
        user = await s.get(User, user.id)  # type: ignore[assignment]
        assert await edit_account(s, None, user, {"display_name": "Giảng viên mới"}, actor_id=operator.id) == \
            {"display_name": "Giảng viên mới"}
        assert await edit_account(s, None, user, {"display_name": "Giảng viên mới"}, actor_id=operator.id) == {}
        same, password, ended = await reset_account(s, None, user.id)
        assert same is user and password and ended == Ended("password-reset", logins)
        _user, ended = await disable_account(s, None, user.id, True, actor_id=operator.id)
        assert user.disabled and ended.reason == "disabled"
        with pytest.raises(AccountError) as info:
            await disable_account(s, None, operator.id, True, actor_id=operator.id)
        assert info.value.status == 409
        await s.commit()
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.target == f"user:{user.id}")
                                   .order_by(AuditEntry.id))).all()
    assert actions == ["user.create", "user.update", "user.reset-password", "user.disable"]

    sub = await app[BUS].subscribe("logins")
    try:
        await announce(app, Ended("password-reset", []), Ended("disabled", ["a", "b"]))
        assert await next_message(sub) == {"type": "login-revoked", "login_ids": ["a", "b"], "reason": "disabled"}
    finally:
        await sub.close()


async def test_own_password_and_join_link_actions(app: web.Application, make_user: MakeUser,
                                                  login_as: LoginAs) -> None:
    user = await make_user(Role.TRAINER, password="mat-khau-cu")
    room = await make_classroom(app)
    meeting = await make_meeting(app)
    await login_as(user=user)
    await login_as(user=user)
    keep, other = await _login_ids(app, user)
    async with app[DB]() as s:
        ident = Identity(login_id=keep, role=Role.TRAINER, csrf_token="", user_id=user.id)
        with pytest.raises(AccountError):
            await change_own_password(s, None, ident, "sai", "mat-khau-moi")
        assert await change_own_password(s, None, ident, "mat-khau-cu", "mat-khau-moi") == \
            Ended("password-changed", [other])
        link, classroom = await add_join_link(s, None, app[CONFIG], meeting.id, classroom_id=room.id, guest_name="",
                                              hours=2, created_by=user.id)
        assert classroom is not None and classroom.id == room.id and link.meeting_id == meeting.id
        with pytest.raises(AccountError) as info:
            await add_join_link(s, None, app[CONFIG], 999_999, classroom_id=room.id, guest_name="", hours=None,
                                created_by=None)
        assert info.value.status == 404
        invited, others = await link_classrooms(s, meeting.id)
        assert invited == [] and [c.id for c in others] == [room.id]
        revoked, classroom, ended = await remove_join_link(s, None, meeting.id, link.id, end_logins=True)
        assert revoked.revoked and classroom is not None and ended == Ended("link-revoked", [])
        classrooms, units = await account_choices(s)
        assert [c.id for c in classrooms] == [room.id] and all(u.level == UnitLevel.PROVINCE for u in units)
        await s.commit()
        actions = (await s.scalars(select(AuditEntry.action).where(AuditEntry.target.in_(
            [f"user:{user.id}", f"meeting:{meeting.id}"])).order_by(AuditEntry.id))).all()
    assert actions == ["user.password-change", "joinlink.create", "joinlink.revoke"]


async def test_find_user(app: web.Application, make_user: MakeUser, login_as: LoginAs) -> None:
    await login_as(Role.OPERATOR)  # starts the app
    user = await make_user(Role.TRAINER)
    async with app[DB]() as s:
        found = await find_user(s, user.id)
        assert found is not None and found.username == user.username
        assert await find_user(s, None) is None and await find_user(s, 999_999) is None
