"""server.people.tokens: API bearer tokens for clients that are not browsers (bots, scripts, tests).

A browser authenticates with the login cookie and proves where it comes from (CSRF token, `Origin` on the
WebSocket). A client that is not a browser asks `POST /api/v1/tokens` with its username and password instead and
sends `Authorization: Bearer <token>` (server.auth): the account's roles, no CSRF token, no `Origin`.

- `issue_token` checks the password exactly as a login does (`authenticate`: the failure limits, the check off the
  event loop, failures audit-logged), then makes an `ApiToken` valid `hours` (at most `auth.token_hours`, the
  default). The secret is in the answer only; the database keeps its SHA-256.
- `live_tokens` lists an account's tokens still valid; `revoke_token` ends one (the caller announces
  `login-revoked`, reason `logout`, with `token:<id>` so its WebSockets close). `POST /api/v1/logout` with a
  token ends that token; a password change, a reset or disabling the account ends them all
  (`server.auth.revoke_logins`).
- A join-link login may neither list nor revoke tokens (it serves one meeting, never the account).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import record
from server.auth import TOKEN_PREFIX, Identity, client_ip, revoke_logins, token_digest
from server.config import CONFIG
from server.db.models import ApiToken, Role, utcnow
from server.people.accounts import AccountError, Ended, authenticate, refuse_link_login

SECRET_PREFIX = "tph_"  # makes a leaked token easy to recognise (secret scanners, logs)


@dataclass
class IssuedToken:
    """IssuedToken: a new token row, its secret (shown once) and the role it carries (the account's)."""

    token: ApiToken
    secret: str
    role: Role


async def issue_token(s: AsyncSession, request: web.Request, username: str, password: str, *, name: str = "",
                      hours: float | None = None) -> IssuedToken:
    """issue_token: a bearer token of the account whose password is given (401/403/429/503 as for a login),
    audit-logged; valid `hours`, at most and by default `auth.token_hours`."""
    user = await authenticate(s, request, username, password)
    longest = request.app[CONFIG].auth.token_hours
    hours = longest if hours is None else min(hours, longest)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    token = ApiToken(user_id=user.id, secret_hash=token_digest(secret), name=name.strip()[:100], created_at=now,
                     expires_at=(now + dt.timedelta(hours=hours)).replace(microsecond=0), ip=client_ip(request)[:64])
    s.add(token)
    await s.flush()
    record(s, request, "token.create", f"user:{user.id}", actor_id=user.id, token_id=token.id, name=token.name)
    return IssuedToken(token, secret, user.role)


async def live_tokens(s: AsyncSession, ident: Identity) -> list[ApiToken]:
    """live_tokens: the caller's account's tokens neither revoked nor expired, newest first."""
    refuse_link_login(ident)
    if ident.user_id is None:
        raise AccountError(403, "forbidden", "Cần một tài khoản. / An account is needed.")
    rows = await s.scalars(select(ApiToken).where(ApiToken.user_id == ident.user_id, ApiToken.revoked_at.is_(None),
                                                  ApiToken.expires_at > utcnow()).order_by(ApiToken.id.desc()))
    return list(rows.all())


async def revoke_token(s: AsyncSession, request: web.Request | None, ident: Identity,
                       token_id: int) -> tuple[ApiToken, Ended]:
    """revoke_token: end one of the caller's account's tokens (404 for anyone else's), audit-logged; the token and
    the login ids to announce."""
    refuse_link_login(ident)
    token = await s.get(ApiToken, token_id)
    if token is None or ident.user_id is None or token.user_id != ident.user_id:
        raise AccountError(404, "not-found", "Không tìm thấy mã truy cập. / Token not found.")
    ids = await revoke_logins(s, reason="logout", login_ids=[f"{TOKEN_PREFIX}{token.id}"])
    record(s, request, "token.revoke", f"user:{token.user_id}", token_id=token.id)
    return token, Ended("logout", ids)
