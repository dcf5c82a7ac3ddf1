"""Tests of login, logout, rate limiting, CSRF and disabled accounts (server.auth with server.people.accounts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.app import create_app
from server.auth import COOKIE, CSRF_COOKIE, hash_password
from server.config import Config
from server.db.engine import DB
from server.db.models import AuditEntry, LoginSession, Role, User
from server.ratelimit import LOGIN_LIMITER, LoginLimiter
from tests.conftest import LoggedIn
from tests.server.people.test_accounts import new_client

__all__ = ["new_client"]  # a fixture, used by name

MakeUser = Callable[..., Awaitable[User]]
LoginAs = Callable[..., Awaitable[LoggedIn]]
JSON = {"Accept": "application/json"}


class FakeClock:
    """FakeClock: a monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def anon_csrf(client: TestClient[Any, Any]) -> str:
    """anon_csrf: the anonymous CSRF token (also stored as a cookie by the client)."""
    resp = await client.get("/api/v1/csrf")
    assert resp.status == 200
    return str((await resp.json())["csrf_token"])


async def api_login(client: TestClient[Any, Any], username: str, password: str) -> Any:
    token = await anon_csrf(client)
    return await client.post("/api/v1/login", json={"username": username, "password": password},
                             headers={"X-CSRF-Token": token})


async def form_login(client: TestClient[Any, Any], username: str, password: str, next_: str = "/") -> Any:
    page = await client.get("/login", headers={"Accept": "text/html"})
    assert page.status == 200
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[CSRF_COOKIE].value
    return await client.post("/login", data={"csrf_token": token, "username": username, "password": password,
                                             "next": next_}, allow_redirects=False)


# ---------------------------------------------------------------- login page and API


async def test_login_page_is_vietnamese_and_has_csrf_field(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/login", headers={"Accept": "text/html"})
    assert resp.status == 200
    html = await resp.text()
    assert "Đăng nhập" in html and "Tên đăng nhập" in html and "Mật khẩu" in html
    assert 'name="csrf_token"' in html


async def test_form_login_ok_sets_httponly_cookie_and_redirects(client: TestClient[Any, Any],
                                                                make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="lan", password="good-password")
    resp = await form_login(client, "Lan", "good-password", next_="/accounts?x=1")
    assert resp.status == 303
    assert resp.headers["Location"] == "/accounts?x=1"
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    me = await client.get("/api/v1/me")
    assert (await me.json())["username"] == "lan"
    home = await client.get("/", headers={"Accept": "text/html"})
    assert "Đăng xuất" in await home.text()


async def test_form_login_refuses_foreign_next(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="lan2", password="good-password")
    for bad in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        client.session.cookie_jar.clear()
        resp = await form_login(client, "lan2", "good-password", next_=bad)
        assert resp.status == 303
        assert resp.headers["Location"] == "/", bad


async def test_form_login_wrong_password_shows_form_again(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="minh", password="good-password")
    resp = await form_login(client, "minh", "bad-password")
    assert resp.status == 401
    html = await resp.text()
    assert "Sai tên đăng nhập hoặc mật khẩu" in html
    assert 'value="minh"' in html
    assert COOKIE not in resp.cookies


async def test_api_login_returns_me_and_csrf(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    user = await make_user(Role.LEADER, username="hoa", password="good-password", display_name="Hoa")
    resp = await api_login(client, "hoa", "good-password")
    assert resp.status == 200
    body = await resp.json()
    assert body["me"] == {"id": user.id, "username": "hoa", "display_name": "Hoa", "role": "leader",
                          "classroom_id": None, "meeting_id": None, "language": "vi"}
    assert body["csrf_token"]
    assert "password" not in str(body).lower() or "password_hash" not in str(body)
    # the returned token authorises state-changing calls
    out = await client.post("/api/v1/logout", headers={"X-CSRF-Token": body["csrf_token"]})
    assert out.status == 200


async def test_api_login_failures(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="an", password="good-password")
    resp = await api_login(client, "an", "nope-nope")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "login-failed"
    resp = await api_login(client, "nobody", "nope-nope")
    assert resp.status == 401
    token = await anon_csrf(client)
    resp = await client.post("/api/v1/login", json={"username": "an"}, headers={"X-CSRF-Token": token})
    assert resp.status == 422
    resp = await client.post("/api/v1/login", data="x", headers={"X-CSRF-Token": token})
    assert resp.status == 415
    me = await client.get("/api/v1/me")
    assert me.status == 401
    async with client.app[DB]() as s:
        actions = list((await s.scalars(select(AuditEntry.action))).all())
    assert actions.count("login.failed") == 2


async def test_me_requires_login(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/me")
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "unauthenticated"
    page = await client.get("/accounts", headers={"Accept": "text/html"}, allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/login?next=/accounts"


async def test_logged_in_visitor_of_login_page_goes_on(login_as: LoginAs) -> None:
    op = await login_as(Role.OPERATOR)
    resp = await op.get("/login?next=/audit", headers={"Accept": "text/html"}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/audit"


# ---------------------------------------------------------------- rate limit


async def test_rate_limit_per_account(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    clock = FakeClock()
    client.app[LOGIN_LIMITER].clock = clock
    await make_user(Role.TRAINER, username="binh", password="good-password")
    for _ in range(5):
        assert (await api_login(client, "binh", "wrong-password")).status == 401
    resp = await api_login(client, "binh", "good-password")
    assert resp.status == 429
    body = await resp.json()
    assert body["error"]["code"] == "rate-limited"
    assert "Thử lại sau 60 giây" in body["error"]["message"]
    assert resp.headers["Retry-After"] == "60"
    clock.now += 30
    resp = await api_login(client, "binh", "good-password")
    assert resp.status == 429
    assert "Thử lại sau 30 giây" in (await resp.json())["error"]["message"]
    clock.now += 31
    assert (await api_login(client, "binh", "good-password")).status == 200


async def test_rate_limit_per_ip_across_accounts(aiohttp_client: Any, make_config: Callable[..., Config]) -> None:
    app = create_app(make_config(auth__login_ip_failures_per_minute=3))
    clock = FakeClock()
    app[LOGIN_LIMITER].clock = clock
    client = await aiohttp_client(app)
    async with app[DB]() as s:
        s.add(User(username="chi", display_name="Chi", role=Role.TRAINER, password_hash=hash_password("good-password")))
        await s.commit()
    for i in range(3):
        assert (await api_login(client, f"guess{i}", "wrong-password")).status == 401
    assert (await api_login(client, "chi", "good-password")).status == 429
    clock.now += 61
    assert (await api_login(client, "chi", "good-password")).status == 200


async def test_rate_limit_on_login_page(aiohttp_client: Any, app: web.Application, make_user: MakeUser) -> None:
    clock = FakeClock()
    app[LOGIN_LIMITER] = LoginLimiter(5, 20, clock=clock)
    client = await aiohttp_client(app)
    await make_user(Role.TRAINER, username="dung", password="good-password")
    for _ in range(5):
        assert (await form_login(client, "dung", "bad-password")).status == 401
    resp = await form_login(client, "dung", "good-password")
    assert resp.status == 429
    assert "Thử lại sau 60 giây" in await resp.text()
    assert resp.headers["Retry-After"] == "60"


async def _login_from(client: TestClient[Any, Any], address: str, username: str, password: str) -> Any:
    """_login_from: an API login that the proxy in front (127.0.0.1, when trusted) says comes from `address`."""
    forwarded = {"X-Forwarded-For": address}
    token = (await (await client.get("/api/v1/csrf", headers=forwarded)).json())["csrf_token"]
    return await client.post("/api/v1/login", json={"username": username, "password": password},
                             headers={"X-CSRF-Token": token, **forwarded})


async def test_failures_from_many_addresses_never_lock_the_owner_out(aiohttp_client: Any,
                                                                     make_config: Callable[..., Config]) -> None:
    app = create_app(make_config(server__trusted_proxies=["127.0.0.1"]))
    client = await aiohttp_client(app)
    async with app[DB]() as s:
        s.add(User(username="hoa", display_name="Hoa", role=Role.TRAINER, password_hash=hash_password("mat-khau-dung")))
        await s.commit()
    for i in range(1, 6):  # the attack: 5 wrong passwords from 5 addresses
        assert (await _login_from(client, f"198.51.100.{i}", "hoa", "doan-mo")).status == 401
    # the owner, from a 6th address, gets in (at most slowed down by the account's failures)
    assert await app[LOGIN_LIMITER].delay("user:hoa") > 0
    assert (await _login_from(client, "203.0.113.50", "hoa", "mat-khau-dung")).status == 200
    # an address is refused for the account once it alone failed too often; the others are not
    for _ in range(4):
        assert (await _login_from(client, "198.51.100.1", "hoa", "doan-mo")).status == 401
    assert (await _login_from(client, "198.51.100.1", "hoa", "mat-khau-dung")).status == 429
    assert (await _login_from(client, "203.0.113.51", "hoa", "mat-khau-dung")).status == 200
    async with app[DB]() as s:
        ips = set((await s.scalars(select(AuditEntry.ip).where(AuditEntry.action == "login.failed"))).all())
    assert ips == {f"198.51.100.{i}" for i in range(1, 6)}  # the forwarded addresses, from the trusted proxy


async def test_forwarded_addresses_from_an_untrusted_peer_are_ignored(client: TestClient[Any, Any],
                                                                      make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="lan", password="mat-khau-dung")
    for i in range(1, 6):  # no trusted proxy: every attempt comes from the peer, 127.0.0.1
        assert (await _login_from(client, f"198.51.100.{i}", "lan", "doan-mo")).status == 401
    assert (await _login_from(client, "203.0.113.50", "lan", "mat-khau-dung")).status == 429


# ---------------------------------------------------------------- logout, disabled, CSRF


async def test_logout_revokes_the_login(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="giang", password="good-password")
    await form_login(client, "giang", "good-password")
    token = client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
    me = await client.get("/api/v1/me")
    csrf = "x"
    async with client.app[DB]() as s:
        login = await s.get(LoginSession, token)
        assert login is not None
        csrf = login.csrf_token
    assert me.status == 200
    resp = await client.post("/logout", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    async with client.app[DB]() as s:
        login = await s.get(LoginSession, token)
        assert login is not None and login.revoked_at is not None and login.revoked_reason == "logout"
    # even with the old cookie back, the login no longer works
    client.session.cookie_jar.update_cookies({COOKIE: token}, response_url=client.make_url("/"))
    assert (await client.get("/api/v1/me")).status == 401


async def test_logout_get_is_not_allowed(login_as: LoginAs) -> None:
    op = await login_as(Role.TRAINER)
    resp = await op.get("/logout")
    assert resp.status == 405
    assert (await op.get("/api/v1/me")).status == 200


async def test_api_logout(login_as: LoginAs) -> None:
    t = await login_as(Role.TRAINER)
    assert (await t.post("/api/v1/logout")).status == 200
    assert (await t.get("/api/v1/me")).status == 401


async def test_disabled_account_cannot_log_in_and_its_login_stops(login_as: LoginAs, client: TestClient[Any, Any],
                                                                  new_client: Any, make_user: MakeUser) -> None:
    user = await make_user(Role.TRAINER, username="khanh", password="good-password")
    t = await login_as(user=user)
    assert (await t.get("/api/v1/me")).status == 200
    op = await login_as(Role.OPERATOR)
    resp = await op.post(f"/api/v1/users/{user.id}/disable")
    assert resp.status == 200 and (await resp.json())["disabled"] is True
    assert (await t.get("/api/v1/me")).status == 401
    fresh = await new_client()
    resp = await api_login(fresh, "khanh", "good-password")
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "account-disabled"
    # a wrong password does not reveal that the account is disabled
    assert (await api_login(fresh, "khanh", "bad-password")).status == 401


async def test_post_without_csrf_token_is_refused(login_as: LoginAs, client: TestClient[Any, Any]) -> None:
    op = await login_as(Role.OPERATOR)
    resp = await op.client.post("/api/v1/users", json={"username": "x1", "role": "trainer"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf"
    resp = await op.client.post("/api/v1/users", json={"username": "x1", "role": "trainer"},
                                headers={"X-CSRF-Token": "wrong"})
    assert resp.status == 403
    resp = await op.client.post("/logout", data={})
    assert resp.status == 403
    # anonymous login without the double-submit token
    resp = await client.post("/api/v1/login", json={"username": "a", "password": "b"})
    assert resp.status in (403,)
    assert (await resp.json())["error"]["code"] == "csrf"


async def test_a_method_no_route_takes_gets_405_not_a_csrf_refusal(client: TestClient[Any, Any]) -> None:
    for method in ("PUT", "DELETE"):
        r = await client.request(method, "/api/v1/csrf")
        assert r.status == 405 and "GET" in r.headers["Allow"]
    r = await client.post("/api/v1/no-such-thing")
    assert r.status == 404
    r = await client.post("/api/v1/logout")  # a route: the CSRF check still comes first
    assert r.status == 403 and (await r.json())["error"]["code"] == "csrf"


async def test_form_login_without_csrf_is_refused(aiohttp_client: Any, app: web.Application,
                                                  make_user: MakeUser) -> None:
    client = await aiohttp_client(app)
    await make_user(Role.TRAINER, username="lam", password="good-password")
    resp = await client.post("/login", data={"username": "lam", "password": "good-password"},
                             headers={"Accept": "application/json"})
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf"


async def test_guest_role_cannot_log_in_with_password(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    await make_user(Role.GUEST, username="ghost", password="good-password")
    assert (await api_login(client, "ghost", "good-password")).status == 401


async def test_login_again_ends_the_previous_login(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="mai", password="good-password")
    first = await api_login(client, "mai", "good-password")
    old = first.cookies[COOKIE].value
    csrf = (await first.json())["csrf_token"]
    resp = await client.post("/api/v1/login", json={"username": "mai", "password": "good-password"},
                             headers={"X-CSRF-Token": csrf})
    assert resp.status == 200
    async with client.app[DB]() as s:
        login = await s.get(LoginSession, old)
        assert login is not None and login.revoked_reason == "logout"
