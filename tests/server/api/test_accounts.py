"""Tests of server.api.accounts: /api/v1 users, me, join links and audit (roles, validation, audit)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.bus import BUS
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import AuditEntry, Role, User
from tests.conftest import LoggedIn
from tests.server.people.test_accounts import make_classroom, make_meeting, new_client, new_link, open_link, token_of
from tests.server.test_auth import api_login

__all__ = ["new_client"]  # the fixture is used by name

MakeUser = Callable[..., Awaitable[User]]
LoginAs = Callable[..., Awaitable[LoggedIn]]
NewClient = Callable[[], Awaitable[TestClient[Any, Any]]]


def assert_no_secrets(body: Any) -> None:
    text = str(body)
    assert "password_hash" not in text and "$argon2" not in text


async def test_each_role_refused_on_operator_api(login_as: LoginAs, app: web.Application,
                                                 new_client: NewClient) -> None:
    meeting = await make_meeting(app)
    calls = [
        ("GET", "/api/v1/users", None), ("POST", "/api/v1/users", {"username": "zz", "role": "trainer"}),
        ("GET", "/api/v1/users/1", None), ("PATCH", "/api/v1/users/1", {"display_name": "X"}),
        ("POST", "/api/v1/users/1/disable", None), ("POST", "/api/v1/users/1/enable", None),
        ("POST", "/api/v1/users/1/reset-password", None), ("GET", "/api/v1/audit", None),
        ("GET", f"/api/v1/meetings/{meeting.id}/links", None),
        ("POST", f"/api/v1/meetings/{meeting.id}/links", {"guest_name": "x"}),
        ("DELETE", f"/api/v1/meetings/{meeting.id}/links/1", None),
    ]
    who = [await login_as(r) for r in (Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER)]
    op = await login_as(Role.OPERATOR)
    link = await new_link(op, meeting.id, guest_name="Khách")
    guest_client = await new_client()
    await open_link(guest_client, token_of(link["url"]))
    me = await (await guest_client.get("/api/v1/me")).json()
    csrf = await _csrf_of_client(app, guest_client)
    assert me["role"] == "guest"
    for method, path, body in calls:
        for w in who:
            resp = await w.client.request(method, path, json=body, headers=w.headers())
            assert resp.status == 403, (w.user.role, method, path)
            assert (await resp.json())["error"]["code"] == "forbidden"
        resp = await guest_client.request(method, path, json=body, headers={"X-CSRF-Token": csrf})
        assert resp.status == 403, ("guest", method, path)
    anon = await new_client()
    for method, path, body in calls:
        resp = await anon.request(method, path, json=body)
        assert resp.status in (401, 403), (method, path)  # 403 csrf for anonymous unsafe requests
    # a guest has no password to change
    resp = await guest_client.post("/api/v1/me/password", json={"old_password": "a", "new_password": "b" * 8},
                                   headers={"X-CSRF-Token": csrf})
    assert resp.status == 403


async def _csrf_of_client(app: web.Application, cl: TestClient[Any, Any]) -> str:
    from server.auth import COOKIE
    from server.db.models import LoginSession

    token = cl.session.cookie_jar.filter_cookies(cl.make_url("/"))[COOKIE].value
    async with app[DB]() as s:
        login = await s.get(LoginSession, token)
        assert login is not None
        return login.csrf_token


async def test_users_crud(login_as: LoginAs, app: web.Application, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    resp = await op.post("/api/v1/users", json={"username": "Pham.Binh", "display_name": "Phạm Bình",
                                                "role": "trainer", "email": "binh@example.vn"})
    assert resp.status == 201
    created = await resp.json()
    assert_no_secrets(created)
    assert created["user"]["username"] == "pham.binh" and len(created["password"]) == 19
    uid = created["user"]["id"]
    assert (await api_login(await new_client(), "pham.binh", created["password"])).status == 200

    resp = await op.post("/api/v1/users", json={"username": "room.a", "role": "classroom", "classroom_id": room.id,
                                                "password": "chosen-password"})
    body = await resp.json()
    assert resp.status == 201 and body["password"] is None and body["user"]["classroom_id"] == room.id

    listed = await (await op.get("/api/v1/users?q=binh")).json()
    assert [u["username"] for u in listed] == ["pham.binh"]
    assert_no_secrets(listed)
    listed = await (await op.get("/api/v1/users?role=classroom")).json()
    assert [u["username"] for u in listed] == ["room.a"]
    assert (await op.get("/api/v1/users?role=king")).status == 422
    assert (await op.get("/api/v1/users?limit=x")).status == 422

    got = await op.get(f"/api/v1/users/{uid}")
    assert got.status == 200 and (await got.json())["email"] == "binh@example.vn"
    assert (await op.get("/api/v1/users/424242")).status == 404
    assert (await op.get("/api/v1/users/abc")).status == 404

    resp = await op.patch(f"/api/v1/users/{uid}", json={"display_name": "Phạm Văn Bình", "role": "leader"})
    assert resp.status == 200
    assert (await resp.json())["role"] == "leader"
    resp = await op.patch(f"/api/v1/users/{uid}", json={"role": "classroom"})
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "classroom-required"
    resp = await op.patch(f"/api/v1/users/{uid}", json={"password_hash": "x"})
    assert resp.status == 422

    async with app[DB]() as s:
        actions = list((await s.scalars(select(AuditEntry.action).where(AuditEntry.actor_id == op.user.id))).all())
    assert actions.count("user.create") == 2 and "user.update" in actions


async def test_create_user_validation(login_as: LoginAs, make_user: MakeUser) -> None:
    op = await login_as(Role.OPERATOR)
    await make_user(Role.TRAINER, username="dup")
    cases = [
        ({"username": "dup", "role": "trainer"}, 409, "username-taken"),
        ({"username": "DUP", "role": "trainer"}, 409, "username-taken"),
        ({"username": "bad name", "role": "trainer"}, 422, "invalid-username"),
        ({"username": "ok1", "role": "guest"}, 422, "invalid-role"),
        ({"username": "ok1", "role": "pope"}, 422, "invalid"),
        ({"username": "ok1", "role": "classroom"}, 422, "classroom-required"),
        ({"username": "ok1", "role": "classroom", "classroom_id": 999}, 422, "unknown-classroom"),
        ({"username": "ok1", "role": "trainer", "classroom_id": 1}, 422, "classroom-not-allowed"),
        ({"username": "ok1", "role": "trainer", "unit_id": 999999}, 422, "unknown-unit"),
        ({"username": "ok1", "role": "trainer", "password": "short"}, 422, "invalid"),
        ({"username": "ok1", "role": "trainer", "extra": 1}, 422, "invalid"),
    ]
    for body, status, code in cases:
        resp = await op.post("/api/v1/users", json=body)
        assert resp.status == status, body
        assert (await resp.json())["error"]["code"] == code, body
    resp = await op.post("/api/v1/users", data="not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400


async def test_disable_enable_reset_via_api(login_as: LoginAs, make_user: MakeUser, app: web.Application,
                                            new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    user = await make_user(Role.LEARNER, username="hv1", password="first-password")
    learner = await login_as(user=user)
    sub = await app[BUS].subscribe("logins")
    try:
        resp = await op.post(f"/api/v1/users/{user.id}/reset-password")
        assert resp.status == 200
        password = (await resp.json())["password"]
        msg = await sub.get()
        assert msg["type"] == "login-revoked" and msg["reason"] == "password-reset"
    finally:
        await sub.close()
    assert (await learner.get("/api/v1/me")).status == 401
    fresh = await new_client()
    assert (await api_login(fresh, "hv1", "first-password")).status == 401
    assert (await api_login(fresh, "hv1", password)).status == 200
    resp = await op.post(f"/api/v1/users/{user.id}/disable")
    assert resp.status == 200 and (await resp.json())["disabled"] is True
    assert (await fresh.get("/api/v1/me")).status == 401
    resp = await op.post(f"/api/v1/users/{user.id}/enable")
    assert (await resp.json())["disabled"] is False
    assert (await api_login(await new_client(), "hv1", password)).status == 200
    resp = await op.post(f"/api/v1/users/{op.user.id}/disable")
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "own-account"
    resp = await op.patch(f"/api/v1/users/{op.user.id}", json={"role": "trainer"})
    assert resp.status == 409


async def test_me_and_own_password(login_as: LoginAs, make_user: MakeUser, new_client: NewClient) -> None:
    user = await make_user(Role.TRAINER, username="gv1", password="first-password", display_name="Giảng viên 1")
    t = await login_as(user=user)
    me = await (await t.get("/api/v1/me")).json()
    assert me["username"] == "gv1" and me["role"] == "trainer" and me["id"] == user.id
    resp = await t.post("/api/v1/me/password", json={"old_password": "wrong", "new_password": "second-password"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "wrong-password"
    resp = await t.post("/api/v1/me/password", json={"old_password": "first-password", "new_password": "short"})
    assert resp.status == 422
    resp = await t.post("/api/v1/me/password", json={"old_password": "first-password",
                                                      "new_password": "second-password"})
    assert resp.status == 200
    assert (await t.get("/api/v1/me")).status == 200
    assert (await api_login(await new_client(), "gv1", "second-password")).status == 200


async def test_own_password_change_is_limited_like_a_login(login_as: LoginAs, app: web.Application,
                                                            make_user: MakeUser, new_client: NewClient) -> None:
    user = await make_user(Role.TRAINER, username="gv.doi", password="mat-khau-cu-1")
    t = await login_as(user=user)
    wrong = {"old_password": "doan-mo", "new_password": "mat-khau-moi-1"}
    for _ in range(app[CONFIG].auth.login_failures_per_minute):
        assert (await t.post("/api/v1/me/password", json=wrong)).status == 403
    resp = await t.post("/api/v1/me/password", json={**wrong, "old_password": "mat-khau-cu-1"})
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["error"]["code"] == "rate-limited"
    # one limit for every check of the account's password from this address: its login too
    assert (await api_login(await new_client(), "gv.doi", "mat-khau-cu-1")).status == 429


async def test_a_join_link_login_may_not_change_the_password(login_as: LoginAs, app: web.Application,
                                                             make_user: MakeUser, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    await make_user(Role.CLASSROOM, username="phong.doi", password="mat-khau-phong", classroom_id=room.id)
    meeting = await make_meeting(app)
    pc = await new_client()
    assert (await open_link(pc, token_of((await new_link(op, meeting.id, classroom_id=room.id))["url"]))).status == 303
    change = {"old_password": "mat-khau-phong", "new_password": "mat-khau-moi-1"}
    resp = await pc.post("/api/v1/me/password", json=change, headers={"X-CSRF-Token": await _csrf_of_client(app, pc)})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "link-login"
    assert (await api_login(await new_client(), "phong.doi", "mat-khau-phong")).status == 200  # unchanged


async def test_join_link_api_validation(login_as: LoginAs, app: web.Application) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    meeting = await make_meeting(app, starts_in=200, hours=2)
    base = f"/api/v1/meetings/{meeting.id}/links"
    for body, status in [({}, 422), ({"classroom_id": room.id, "guest_name": "x"}, 422),
                         ({"classroom_id": 9999}, 422), ({"guest_name": "x", "hours": 0}, 422),
                         ({"guest_name": "x", "hours": 10_000}, 422), ({"guest_name": "   "}, 422)]:
        resp = await op.post(base, json=body)
        assert resp.status == status, body
    assert (await op.post("/api/v1/meetings/9999/links", json={"guest_name": "x"})).status == 404
    assert (await op.get("/api/v1/meetings/9999/links")).status == 404
    # default expiry reaches at least the meeting's end (200 h away, beyond join_link_hours = 72)
    link = await new_link(op, meeting.id, classroom_id=room.id)
    expires = dt.datetime.fromisoformat(link["expires_at"])
    assert expires >= meeting.ends_at.replace(microsecond=0)
    short = await new_link(op, meeting.id, guest_name="Khách", hours=2)
    expires = dt.datetime.fromisoformat(short["expires_at"])
    assert dt.timedelta(hours=1.9) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=2)
    assert short["url"].startswith("http://127.0.0.1:") and "/j/" in short["url"]
    listed = await (await op.get(base)).json()
    assert [x["id"] for x in listed] == [short["id"], link["id"]]


async def test_join_url_uses_public_url(make_config: Any, aiohttp_client: Any, make_user: MakeUser) -> None:
    from server.app import create_app

    app = create_app(make_config(**{"server.public_url": "https://taphuan.moet.gov.vn/"}))
    cl = await aiohttp_client(app)
    meeting = await make_meeting(app)
    async with app[DB]() as s:
        from server.auth import create_login

        op = User(username="op.x", display_name="Op", role=Role.OPERATOR)
        s.add(op)
        await s.flush()
        from tests.conftest import _FakeRequest

        login = await create_login(s, _FakeRequest(app), user=op, hours=1)  # type: ignore[arg-type]
        await s.commit()
    from server.auth import COOKIE

    cl.session.cookie_jar.update_cookies({COOKIE: login.id}, response_url=cl.make_url("/"))
    resp = await cl.post(f"/api/v1/meetings/{meeting.id}/links", json={"guest_name": "Khách"},
                         headers={"X-CSRF-Token": login.csrf_token})
    assert resp.status == 201
    assert (await resp.json())["url"].startswith("https://taphuan.moet.gov.vn/j/")


async def test_audit_api(login_as: LoginAs, make_user: MakeUser, app: web.Application) -> None:
    op = await login_as(Role.OPERATOR, username="op.api")
    user = await make_user(Role.TRAINER)
    await op.post(f"/api/v1/users/{user.id}/disable")
    await op.post(f"/api/v1/users/{user.id}/reset-password")
    rows = await (await op.get("/api/v1/audit")).json()
    assert [r["action"] for r in rows][:2] == ["user.reset-password", "user.disable"]
    assert rows[0]["actor_username"] == "op.api" and rows[0]["target"] == f"user:{user.id}"
    assert_no_secrets(rows)
    rows = await (await op.get("/api/v1/audit?action=user.disable")).json()
    assert [r["action"] for r in rows] == ["user.disable"]
    rows = await (await op.get("/api/v1/audit?action=user")).json()
    assert {r["action"] for r in rows} == {"user.disable", "user.reset-password"}
    rows = await (await op.get("/api/v1/audit?actor=someone.else")).json()
    assert rows == []
    today = dt.datetime.now(app[CONFIG].tz).date()
    rows = await (await op.get(f"/api/v1/audit?since={today}&until={today}&limit=1")).json()
    assert len(rows) == 1
    rows = await (await op.get(f"/api/v1/audit?until={today - dt.timedelta(days=1)}")).json()
    assert rows == []
    resp = await op.get("/api/v1/audit?since=yesterday")
    assert resp.status == 422 and (await resp.json())["error"]["code"] == "invalid"


async def test_openapi_declares_account_endpoints(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    paths = doc["paths"]
    for path, method in [("/api/v1/login", "post"), ("/api/v1/logout", "post"), ("/api/v1/me", "get"),
                         ("/api/v1/me/password", "post"), ("/api/v1/users", "get"), ("/api/v1/users", "post"),
                         ("/api/v1/users/{id}", "patch"), ("/api/v1/users/{id}/reset-password", "post"),
                         ("/api/v1/meetings/{id}/links", "post"), ("/api/v1/meetings/{id}/links/{link_id}", "delete"),
                         ("/api/v1/audit", "get"), ("/api/v1/csrf", "get")]:
        assert method in paths[path], (path, method)
    assert "password_hash" not in str(doc["components"]["schemas"]["UserOut"])
