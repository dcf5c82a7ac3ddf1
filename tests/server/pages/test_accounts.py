"""Tests of server.pages.accounts: the account, own password, join link and audit pages, per role."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.config import CONFIG
from server.db.engine import DB
from server.db.models import AuditEntry, Role, User
from tests.server.people.test_accounts import (
    HTML,
    JSON,
    LoginAs,
    MakeUser,
    NewClient,
    login_csrf,
    make_classroom,
    make_meeting,
    new_client,
    new_link,
    open_link,
    token_of,
)

__all__ = ["new_client"]  # a fixture, used by name


async def test_pages_refuse_other_roles(login_as: LoginAs, app: web.Application) -> None:
    meeting = await make_meeting(app)
    paths = ["/accounts", "/accounts/new", "/accounts/1", "/audit", f"/meetings/{meeting.id}/links"]
    for role in (Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER):
        who = await login_as(role)
        for path in paths:
            resp = await who.get(path, headers=JSON)
            assert resp.status == 403, (role, path)
            assert (await resp.json())["error"]["code"] == "forbidden"
        for path in ("/accounts/new", "/accounts/1/disable", "/accounts/1/reset-password",
                     f"/meetings/{meeting.id}/links"):
            resp = await who.post(path, data={"csrf_token": who.csrf}, headers=JSON)
            assert resp.status == 403, (role, path)
        html = await who.get("/accounts", headers=HTML)
        assert html.status == 403 and "Vai trò của bạn không được phép" in await html.text()


async def test_guest_is_refused_pages(login_as: LoginAs, app: web.Application, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(app)
    link = await new_link(op, meeting.id, guest_name="Khách")
    fresh = await new_client()
    resp = await open_link(fresh, token_of(link["url"]))
    assert resp.status == 303
    for path in ("/accounts", "/audit", f"/meetings/{meeting.id}/links", "/me/password"):
        resp = await fresh.get(path, headers=JSON)
        assert resp.status == 403, path


async def test_anonymous_is_sent_to_login(client: TestClient[Any, Any]) -> None:
    for path in ("/accounts", "/audit", "/me/password", "/meetings/1/links"):
        resp = await client.get(path, headers=HTML, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
        resp = await client.get(path, headers=JSON)
        assert resp.status == 401


async def test_accounts_list_search_and_filter(login_as: LoginAs, make_user: MakeUser) -> None:
    op = await login_as(Role.OPERATOR)
    await make_user(Role.TRAINER, username="tran.thi.lan", display_name="Trần Thị Lan")
    await make_user(Role.LEADER, username="le.van.hung", display_name="Lê Văn Hùng")
    html = await (await op.get("/accounts", headers=HTML)).text()
    assert "tran.thi.lan" in html and "le.van.hung" in html and "Tài khoản" in html
    html = await (await op.get("/accounts?q=Lan", headers=HTML)).text()
    assert "tran.thi.lan" in html and "le.van.hung" not in html
    html = await (await op.get("/accounts?role=leader", headers=HTML)).text()
    assert "le.van.hung" in html and "tran.thi.lan" not in html
    html = await (await op.get("/accounts?role=nonsense&status=disabled", headers=HTML)).text()
    assert "le.van.hung" not in html and "Không có tài khoản nào phù hợp" in html


async def test_create_account_page_shows_password_once(login_as: LoginAs, app: web.Application,
                                                       new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    form = await op.get("/accounts/new", headers=HTML)
    assert form.status == 200 and "Tạo tài khoản" in await form.text()
    resp = await op.post("/accounts/new", data={"csrf_token": op.csrf, "username": "Nguyen.An", "display_name":
                                                "Nguyễn An", "role": "trainer", "email": "an@example.vn"})
    assert resp.status == 200
    html = await resp.text()
    match = re.search(r'<code id="new-password">([^<]+)</code>', html)
    assert match, html
    password = match.group(1)
    async with app[DB]() as s:
        user = await s.scalar(select(User).where(User.username == "nguyen.an"))
        assert user is not None and user.role == Role.TRAINER and user.email == "an@example.vn"
        assert password not in user.password_hash
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "user.create"))
        assert entry is not None and entry.actor_id == op.user.id
    other = await new_client()
    from tests.server.test_auth import api_login

    assert (await api_login(other, "nguyen.an", password)).status == 200


async def test_create_account_page_errors(login_as: LoginAs, make_user: MakeUser) -> None:
    op = await login_as(Role.OPERATOR)
    await make_user(Role.TRAINER, username="taken")
    cases = [
        ({"username": "taken", "role": "trainer"}, 409, "đã có"),
        ({"username": "a b", "role": "trainer"}, 422, "Tên đăng nhập gồm"),
        ({"username": "room1", "role": "classroom"}, 422, "cần chọn lớp học"),
        ({"username": "gg", "role": "guest"}, 422, "Vai trò không hợp lệ"),
    ]
    for data, status, text in cases:
        resp = await op.post("/accounts/new", data={"csrf_token": op.csrf, "display_name": "X", **data})
        assert resp.status == status, data
        assert text in await resp.text()


async def test_edit_reset_disable_enable_pages(login_as: LoginAs, make_user: MakeUser, app: web.Application) -> None:
    op = await login_as(Role.OPERATOR)
    user = await make_user(Role.TRAINER, username="edit.me", display_name="Cũ")
    victim = await login_as(user=user)
    page = await op.get(f"/accounts/{user.id}", headers=HTML)
    assert page.status == 200 and "Đặt lại mật khẩu" in await page.text()
    resp = await op.post(f"/accounts/{user.id}", data={"csrf_token": op.csrf, "display_name": "Mới", "role": "leader",
                                                       "email": "", "language": "en"}, allow_redirects=False)
    assert resp.status == 303
    async with app[DB]() as s:
        fresh = await s.get(User, user.id)
        assert fresh is not None and fresh.display_name == "Mới" and fresh.role == Role.LEADER
        assert fresh.language == "en"
    resp = await op.post(f"/accounts/{user.id}/reset-password", data={"csrf_token": op.csrf})
    assert resp.status == 200
    html = await resp.text()
    assert re.search(r'<code id="new-password">[a-z0-9-]{19}</code>', html)
    assert (await victim.get("/api/v1/me")).status == 401  # the reset ended the login
    resp = await op.post(f"/accounts/{user.id}/disable", data={"csrf_token": op.csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("done=disabled")
    resp = await op.post(f"/accounts/{user.id}/enable", data={"csrf_token": op.csrf}, allow_redirects=False)
    assert resp.status == 303
    async with app[DB]() as s:
        fresh = await s.get(User, user.id)
        assert fresh is not None and not fresh.disabled
        actions = set((await s.scalars(select(AuditEntry.action))).all())
    assert {"user.update", "user.reset-password", "user.disable", "user.enable"} <= actions
    assert (await op.get("/accounts/999999", headers=JSON)).status == 404


async def test_operator_cannot_disable_self_or_change_own_role(login_as: LoginAs, app: web.Application) -> None:
    op = await login_as(Role.OPERATOR)
    resp = await op.post(f"/accounts/{op.user.id}/disable", data={"csrf_token": op.csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("done=own-account")
    resp = await op.post(f"/accounts/{op.user.id}", data={"csrf_token": op.csrf, "display_name": "X",
                                                          "role": "learner"})
    assert resp.status == 409
    async with app[DB]() as s:
        me = await s.get(User, op.user.id)
        assert me is not None and me.role == Role.OPERATOR and not me.disabled


async def test_own_password_page_is_limited_and_not_for_join_link_logins(login_as: LoginAs, make_user: MakeUser,
                                                                        new_client: NewClient,
                                                                        app: web.Application) -> None:
    user = await make_user(Role.TRAINER, username="gv.form", password="mat-khau-cu-1")
    me = await login_as(user=user)
    form = {"csrf_token": me.csrf, "old_password": "doan-mo", "new_password": "mat-khau-moi-1",
            "new_password2": "mat-khau-moi-1"}
    for _ in range(app[CONFIG].auth.login_failures_per_minute):
        assert (await me.post("/me/password", data=form, headers=HTML)).status == 403
    resp = await me.post("/me/password", data={**form, "old_password": "mat-khau-cu-1"}, headers=HTML)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0 and "Thử lại sau" in await resp.text()

    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    await make_user(Role.CLASSROOM, username="phong.form", password="mat-khau-phong", classroom_id=room.id)
    meeting = await make_meeting(app)
    pc = await new_client()
    assert (await open_link(pc, token_of((await new_link(op, meeting.id, classroom_id=room.id))["url"]))).status == 303
    resp = await pc.get("/me/password", headers=HTML)
    assert resp.status == 403 and "liên kết" in await resp.text()
    change = {"csrf_token": await login_csrf(app, pc), "old_password": "mat-khau-phong",
              "new_password": "mat-khau-moi-1", "new_password2": "mat-khau-moi-1"}
    resp = await pc.post("/me/password", data=change, headers=HTML)
    assert resp.status == 403
    from tests.server.test_auth import api_login

    assert (await api_login(await new_client(), "phong.form", "mat-khau-phong")).status == 200  # unchanged


async def test_change_own_password_page(login_as: LoginAs, make_user: MakeUser, new_client: NewClient,
                                        app: web.Application) -> None:
    user = await make_user(Role.LEARNER, username="hocvien", password="old-password")
    me = await login_as(user=user)
    other = await login_as(user=user)
    page = await me.get("/me/password", headers=HTML)
    assert page.status == 200 and "Mật khẩu hiện tại" in await page.text()
    resp = await me.post("/me/password", data={"csrf_token": me.csrf, "old_password": "wrong",
                                               "new_password": "new-password", "new_password2": "new-password"})
    assert resp.status == 403 and "Mật khẩu hiện tại không đúng" in await resp.text()
    resp = await me.post("/me/password", data={"csrf_token": me.csrf, "old_password": "old-password",
                                               "new_password": "new-password", "new_password2": "different"})
    assert resp.status == 422
    resp = await me.post("/me/password", data={"csrf_token": me.csrf, "old_password": "old-password",
                                               "new_password": "short", "new_password2": "short"})
    assert resp.status == 422 and "ít nhất 8 ký tự" in await resp.text()
    resp = await me.post("/me/password", data={"csrf_token": me.csrf, "old_password": "old-password",
                                               "new_password": "new-password", "new_password2": "new-password"})
    assert resp.status == 200 and "Đã đổi mật khẩu" in await resp.text()
    assert (await me.get("/api/v1/me")).status == 200  # this login stays
    assert (await other.get("/api/v1/me")).status == 401  # the other one ended
    from tests.server.test_auth import api_login

    fresh = await new_client()
    assert (await api_login(fresh, "hocvien", "old-password")).status == 401
    assert (await api_login(fresh, "hocvien", "new-password")).status == 200


async def test_top_bar_name_opens_the_password_page_and_the_menu_has_the_archive(
        login_as: LoginAs, app: web.Application, new_client: NewClient) -> None:
    for role in (Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER):
        who = await login_as(role, display_name=f"Người dùng {role.value}")
        html = await (await who.get("/me/password", headers=HTML)).text()
        assert f'<a class="whoami" href="/me/password" title="{who.user.username} · Đổi mật khẩu">' \
               f"Người dùng {role.value}</a>" in html, role
        assert '<a href="/archive">Lưu trữ</a>' in html, role
    # A guest (join link, no password) has neither.
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(app)
    link = await new_link(op, meeting.id, guest_name="Khách Hà")
    guest = await new_client()
    assert (await open_link(guest, token_of(link["url"]))).status == 303
    html = await (await guest.get(f"/live/{meeting.id}", headers=HTML)).text()
    assert '<span class="lv-who" title="">Khách Hà</span>' in html  # the live page's own header
    assert 'href="/me/password"' not in html and 'href="/archive"' not in html


async def test_links_page_create_list_and_copy(login_as: LoginAs, app: web.Application) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    meeting = await make_meeting(app)
    page = await op.get(f"/meetings/{meeting.id}/links", headers=HTML)
    assert page.status == 200
    html = await page.text()
    assert "Liên kết tham gia" in html and "HN-BD-01" in html and "Chưa có liên kết" in html
    resp = await op.post(f"/meetings/{meeting.id}/links", data={"csrf_token": op.csrf, "kind": "classroom",
                                                               "classroom_id": str(room.id), "hours": ""},
                         allow_redirects=False)
    assert resp.status == 303
    resp = await op.post(f"/meetings/{meeting.id}/links", data={"csrf_token": op.csrf, "kind": "guest",
                                                               "guest_name": "Bà Hạnh", "hours": "5"},
                         allow_redirects=False)
    assert resp.status == 303
    html = await (await op.get(resp.headers["Location"], headers=HTML)).text()
    assert html.count('data-copy="link-') == 2 and "/j/" in html and "Bà Hạnh" in html
    resp = await op.post(f"/meetings/{meeting.id}/links", data={"csrf_token": op.csrf, "kind": "guest",
                                                               "guest_name": ""})
    assert resp.status == 422 and "tên khách mời" in await resp.text()
    resp = await op.post(f"/meetings/{meeting.id}/links", data={"csrf_token": op.csrf, "kind": "guest",
                                                               "guest_name": "X", "hours": "abc"})
    assert resp.status == 422
    assert (await op.get("/meetings/99999/links", headers=JSON)).status == 404


async def test_audit_page_filters(login_as: LoginAs, make_user: MakeUser, app: web.Application) -> None:
    op = await login_as(Role.OPERATOR, username="op.audit")
    user = await make_user(Role.TRAINER, username="audited")
    await op.post(f"/api/v1/users/{user.id}/disable")
    await op.post(f"/api/v1/users/{user.id}/enable")
    html = await (await op.get("/audit", headers=HTML)).text()
    assert "Nhật ký hoạt động" in html and "user.disable" in html and "user.enable" in html and "op.audit" in html
    html = await (await op.get("/audit?action=user.disable", headers=HTML)).text()
    assert '<td data-action="user.disable">Khoá tài khoản</td>' in html and 'data-action="user.enable"' not in html
    html = await (await op.get("/audit?actor=nobody", headers=HTML)).text()
    assert "Không có bản ghi nào" in html
    today = dt.datetime.now(app[CONFIG].tz).date()
    html = await (await op.get(f"/audit?since={today}&until={today}", headers=HTML)).text()
    assert 'data-action="user.disable"' in html
    html = await (await op.get(f"/audit?since={today + dt.timedelta(days=1)}", headers=HTML)).text()
    assert 'data-action="user.disable"' not in html
    resp = await op.get("/audit?since=bad-date", headers=HTML)
    assert resp.status == 200 and "YYYY-MM-DD" in await resp.text()
    async with app[DB]() as s:
        n = len((await s.scalars(select(AuditEntry))).all())
    assert n >= 2
