"""Tests of server.api.tokens: bearer tokens for clients that are not browsers (issue, use, list, revoke, limits)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update

from server.auth import COOKIE
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import ApiToken, AuditEntry, Role, User, utcnow
from tests.conftest import LoggedIn
from tests.server.people.test_accounts import make_classroom, make_meeting, new_client, new_link, open_link, token_of

__all__ = ["new_client"]  # the fixture is used by name

MakeUser = Callable[..., Awaitable[User]]
LoginAs = Callable[..., Awaitable[LoggedIn]]
NewClient = Callable[[], Awaitable[TestClient[Any, Any]]]
PASSWORD = "mat-khau-cua-bot"


async def issue(client: TestClient[Any, Any], username: str, password: str = PASSWORD, **extra: Any) -> Any:
    """issue: POST /api/v1/tokens as a script would (no cookie, no CSRF token)."""
    return await client.post("/api/v1/tokens", json={"username": username, "password": password, **extra})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_acts_as_its_account_without_cookie_or_csrf(client: TestClient[Any, Any], app: web.Application,
                                                                  make_user: MakeUser) -> None:
    op = await make_user(Role.OPERATOR, username="bot.op", password=PASSWORD)
    resp = await issue(client, "bot.op", name="báo cáo đêm")
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    token = body["token"]
    assert token.startswith("tph_") and body["role"] == "operator" and body["name"] == "báo cáo đêm"
    assert COOKIE not in client.session.cookie_jar.filter_cookies(client.make_url("/"))  # no login cookie was set
    me = await (await client.get("/api/v1/me", headers=bearer(token))).json()
    assert me["id"] == op.id and me["role"] == "operator" and me["meeting_id"] is None
    # an operator's action, unsafe, without any CSRF token
    resp = await client.post("/api/v1/users", json={"username": "gv.moi", "role": "trainer"}, headers=bearer(token))
    assert resp.status == 201
    # the same client without the token is nobody; a wrong token is refused, not ignored
    assert (await client.get("/api/v1/me")).status == 401
    resp = await client.get("/api/v1/me", headers=bearer("tph_wrong"))
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "token-invalid"
    # a credential that is not ours (a metrics scraper's, say) leaves public routes alone
    assert (await client.get("/api/v1/openapi.json", headers=bearer("scraper-secret"))).status == 200
    async with app[DB]() as s:
        row = await s.scalar(select(ApiToken).where(ApiToken.user_id == op.id))
        assert row is not None and token not in (row.secret_hash, row.name)  # only the digest is stored
        actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert "token.create" in actions


async def test_roles_are_the_accounts(client: TestClient[Any, Any], make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="bot.gv", password=PASSWORD)
    token = (await (await issue(client, "bot.gv")).json())["token"]
    resp = await client.get("/api/v1/users", headers=bearer(token))
    assert resp.status == 403


async def test_credentials_are_checked_and_limited_like_a_login(client: TestClient[Any, Any], app: web.Application,
                                                                make_user: MakeUser) -> None:
    await make_user(Role.TRAINER, username="bot.sai", password=PASSWORD)
    assert (await issue(client, "nobody")).status == 401
    limit = app[CONFIG].auth.login_failures_per_minute
    for _ in range(limit - 1):
        resp = await issue(client, "bot.sai", "doan-mo")
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "login-failed"
    resp = await issue(client, "bot.sai", PASSWORD)
    assert resp.status == 201  # not yet at the limit; success forgets this address's failures
    for _ in range(limit):
        assert (await issue(client, "bot.sai", "doan-mo")).status == 401
    resp = await issue(client, "bot.sai", PASSWORD)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    other = await make_user(Role.TRAINER, username="bot.khoa", password=PASSWORD, disabled=True)
    resp = await issue(client, other.username)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "account-disabled"
    for body in ({}, {"username": "bot.sai"}, {"username": "bot.sai", "password": PASSWORD, "hours": 0},
                 {"username": "bot.sai", "password": PASSWORD, "extra": 1}):
        assert (await client.post("/api/v1/tokens", json=body)).status == 422, body


async def test_expiry_is_capped_and_enforced(client: TestClient[Any, Any], app: web.Application,
                                             make_user: MakeUser) -> None:
    await make_user(Role.LEARNER, username="bot.hv", password=PASSWORD)
    longest = app[CONFIG].auth.token_hours
    short = await (await issue(client, "bot.hv", hours=2)).json()
    long = await (await issue(client, "bot.hv", hours=longest * 10)).json()
    now = utcnow()
    assert dt.timedelta(hours=1.9) < dt.datetime.fromisoformat(short["expires_at"]) - now < dt.timedelta(hours=2.1)
    assert dt.datetime.fromisoformat(long["expires_at"]) - now <= dt.timedelta(hours=longest)
    async with app[DB]() as s:
        await s.execute(update(ApiToken).where(ApiToken.id == short["id"])
                        .values(expires_at=now - dt.timedelta(seconds=1)))
        await s.commit()
    assert (await client.get("/api/v1/me", headers=bearer(short["token"]))).status == 401
    assert (await client.get("/api/v1/me", headers=bearer(long["token"]))).status == 200


async def test_list_revoke_logout_and_what_ends_every_token(client: TestClient[Any, Any], login_as: LoginAs,
                                                            make_user: MakeUser) -> None:
    user = await make_user(Role.TRAINER, username="bot.list", password=PASSWORD)
    other = await make_user(Role.TRAINER, username="bot.other", password=PASSWORD)
    first, second, third = [(await (await issue(client, "bot.list", name=n)).json()) for n in ("a", "b", "c")]
    theirs = await (await issue(client, "bot.other")).json()
    listed = await (await client.get("/api/v1/tokens", headers=bearer(first["token"]))).json()
    assert [t["name"] for t in listed] == ["c", "b", "a"] and all("token" not in t for t in listed)
    # revoke one's own; another account's is not found
    resp = await client.delete(f"/api/v1/tokens/{theirs['id']}", headers=bearer(first["token"]))
    assert resp.status == 404
    resp = await client.delete(f"/api/v1/tokens/{second['id']}", headers=bearer(first["token"]))
    assert resp.status == 200 and (await resp.json())["id"] == second["id"]
    assert (await client.get("/api/v1/me", headers=bearer(second["token"]))).status == 401
    # logout with a token ends that token
    assert (await client.post("/api/v1/logout", headers=bearer(third["token"]))).status == 200
    assert (await client.get("/api/v1/me", headers=bearer(third["token"]))).status == 401
    # a password change from a browser login ends the account's tokens, not other accounts'
    browser = await login_as(user=user)
    resp = await browser.post("/api/v1/me/password", json={"old_password": PASSWORD, "new_password": "mat-khau-moi-1"})
    assert resp.status == 200
    assert (await client.get("/api/v1/me", headers=bearer(first["token"]))).status == 401
    assert (await client.get("/api/v1/me", headers=bearer(theirs["token"]))).status == 200
    # an operator disabling the account ends its tokens
    op = await login_as(Role.OPERATOR)
    assert (await op.post(f"/api/v1/users/{other.id}/disable")).status == 200
    assert (await client.get("/api/v1/me", headers=bearer(theirs["token"]))).status == 401


async def test_a_join_link_login_cannot_manage_tokens(login_as: LoginAs, app: web.Application,
                                                      make_user: MakeUser, new_client: NewClient) -> None:
    op = await login_as(Role.OPERATOR)
    room = await make_classroom(app)
    await make_user(Role.CLASSROOM, username="phong.bot", password=PASSWORD, classroom_id=room.id)
    meeting = await make_meeting(app)
    pc = await new_client()
    assert (await open_link(pc, token_of((await new_link(op, meeting.id, classroom_id=room.id))["url"]))).status == 303
    resp = await pc.get("/api/v1/tokens")
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "link-login"


async def test_the_openapi_document_describes_bearer_tokens(client: TestClient[Any, Any]) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "A token from POST /api/v1/tokens (clients that are not "
                                                           "browsers)"}
    assert {"bearer": []} in doc["security"]
    assert doc["paths"]["/api/v1/tokens"]["post"]["security"] == []
    assert {"get", "post"} <= set(doc["paths"]["/api/v1/tokens"]) and "delete" in doc["paths"]["/api/v1/tokens/{id}"]
