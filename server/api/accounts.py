"""server.api.accounts: /api/v1 login, me, users, join links and audit log.

Password hashes never leave the server: every response is built from the `*Out` models below.
Operator actions are audit-logged; revoked logins are announced on the bus (see server.people.accounts).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.auth import COOKIE, Identity, cookie_secure, csrf_token_for_form, require, set_login_cookie
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import AuditEntry, Classroom, JoinLink, Role, User, utcnow
from server.inputs import Id
from server.openapi import endpoint, int_param, int_query, json_response, one_of, parse_body
from server.people.accounts import (
    AccountError,
    AuditFilter,
    add_account,
    add_join_link,
    announce,
    audit_entries,
    change_own_password,
    disable_account,
    edit_account,
    join_url,
    log_in,
    log_out,
    meeting_links,
    meeting_or_404,
    parse_day,
    remove_join_link,
    reset_account,
    search_users,
    user_by_id,
)

OPS = (Role.OPERATOR,)


# ---------------------------------------------------------------- models


class UserOut(BaseModel):
    """UserOut: an account as the API shows it (never its password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: Role
    email: str
    classroom_id: int | None
    unit_id: int | None
    disabled: bool
    language: str
    created_at: dt.datetime
    password_changed_at: dt.datetime | None


class UserCreate(BaseModel):
    """UserCreate: a new account; the password is generated (and returned once) when omitted."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=64)
    display_name: str = Field("", max_length=200)
    role: Role
    email: str = Field("", max_length=200)
    classroom_id: Id | None = None
    unit_id: Id | None = None
    language: Literal["vi", "en"] = "vi"
    password: str | None = Field(None, min_length=8, max_length=200)


class UserCreated(BaseModel):
    """UserCreated: the new account and its generated password (null when one was given)."""

    user: UserOut
    password: str | None


class UserUpdate(BaseModel):
    """UserUpdate: fields to change (omitted fields stay)."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(None, min_length=1, max_length=200)
    role: Role | None = None
    email: str | None = Field(None, max_length=200)
    classroom_id: Id | None = None
    unit_id: Id | None = None
    language: Literal["vi", "en"] | None = None


class PasswordOut(BaseModel):
    """PasswordOut: a generated password, shown once."""

    password: str


class PasswordChange(BaseModel):
    """PasswordChange: the user's own password change."""

    model_config = ConfigDict(extra="forbid")

    old_password: str = Field(max_length=200)
    new_password: str = Field(min_length=8, max_length=200)


class LoginIn(BaseModel):
    """LoginIn: username and password."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class MeOut(BaseModel):
    """MeOut: who is logged in (guests have no id or username)."""

    id: int | None
    username: str
    display_name: str
    role: Role
    classroom_id: int | None
    meeting_id: int | None
    language: str


class LoginOut(BaseModel):
    """LoginOut: the login's identity and the CSRF token to send as X-CSRF-Token."""

    me: MeOut
    csrf_token: str


class CsrfOut(BaseModel):
    """CsrfOut: the anonymous CSRF token (also set as a cookie) to send with POST /api/v1/login."""

    csrf_token: str


class OkOut(BaseModel):
    """OkOut: the action was done."""

    ok: bool = True


class JoinLinkIn(BaseModel):
    """JoinLinkIn: a link for a classroom or a named guest; `hours` of validity (default: see docs)."""

    model_config = ConfigDict(extra="forbid")

    classroom_id: Id | None = None
    guest_name: str = Field("", max_length=200)
    hours: float | None = Field(None, gt=0, le=24 * 90)


class JoinLinkOut(BaseModel):
    """JoinLinkOut: a join link with its address (valid until `expires_at` unless revoked)."""

    id: int
    meeting_id: int
    classroom_id: int | None
    classroom_code: str
    classroom_name: str
    guest_name: str
    expires_at: dt.datetime
    expired: bool
    revoked: bool
    created_at: dt.datetime
    url: str


class AuditOut(BaseModel):
    """AuditOut: one audit log entry."""

    id: int
    at: dt.datetime
    actor_id: int | None
    actor_username: str | None
    action: str
    target: str
    details: dict[str, Any]
    ip: str


def user_out(user: User) -> UserOut:
    """user_out: the API view of an account."""
    return UserOut.model_validate(user)


def me_out(ident: Identity) -> MeOut:
    """me_out: the API view of an Identity."""
    return MeOut(id=ident.user_id, username=ident.username, display_name=ident.display_name, role=ident.role,
                 classroom_id=ident.classroom_id, meeting_id=ident.meeting_id, language=ident.language)


def link_out(request: web.Request, link: JoinLink, classroom: Classroom | None) -> JoinLinkOut:
    """link_out: the API view of a join link."""
    return JoinLinkOut(id=link.id, meeting_id=link.meeting_id, classroom_id=link.classroom_id,
                       classroom_code=classroom.code if classroom else "",
                       classroom_name=classroom.name if classroom else "", guest_name=link.guest_name,
                       expires_at=link.expires_at, expired=link.expires_at <= utcnow(), revoked=link.revoked,
                       created_at=link.created_at, url=join_url(request, link))


def audit_out(entry: AuditEntry, username: str | None) -> AuditOut:
    """audit_out: the API view of an audit entry."""
    return AuditOut(id=entry.id, at=entry.at, actor_id=entry.actor_id, actor_username=username, action=entry.action,
                    target=entry.target, details=entry.details or {}, ip=entry.ip)


# ---------------------------------------------------------------- login


@endpoint("GET", "/api/v1/csrf", name="api-csrf", summary="Anonymous CSRF token for POST /api/v1/login",
          public=True, response=CsrfOut, tag="login")
async def get_csrf(request: web.Request) -> web.Response:
    """get_csrf: the token a not-yet-logged-in client sends with its login (double-submit cookie)."""
    return json_response(CsrfOut(csrf_token=csrf_token_for_form(request)))


@endpoint("POST", "/api/v1/login", name="api-login", summary="Log in with username and password", public=True,
          body=LoginIn, response=LoginOut, tag="login",
          errors=(401, 429))
async def login(request: web.Request) -> web.Response:
    """login: check the password (rate limited), set the login cookie, return me and the CSRF token."""
    data = await parse_body(request, LoginIn)
    async with request.app[DB]() as s:
        done = await log_in(s, request, data.username, data.password)
        await s.commit()
    await announce(request.app, *done.ended)
    user = done.user
    me = MeOut(id=user.id, username=user.username, display_name=user.display_name, role=user.role,
               classroom_id=user.classroom_id, meeting_id=None, language=user.language)
    resp = json_response(LoginOut(me=me, csrf_token=done.login.csrf_token))
    set_login_cookie(request, resp, done.login)
    return resp


@endpoint("POST", "/api/v1/logout", name="api-logout", summary="Log out (ends this login)", response=OkOut,
          tag="login")
async def logout(request: web.Request) -> web.Response:
    """logout: revoke this login and clear the cookie."""
    ident = require(request)
    async with request.app[DB]() as s:
        ended = await log_out(s, ident.login_id)
        await s.commit()
    await announce(request.app, ended)
    resp = json_response(OkOut())
    resp.del_cookie(COOKIE, path="/", secure=cookie_secure(request), samesite="Lax")
    return resp


@endpoint("GET", "/api/v1/me", name="api-me", summary="Who is logged in", response=MeOut, tag="login")
async def me(request: web.Request) -> web.Response:
    """me: the logged-in identity (any role, guests included)."""
    return json_response(me_out(require(request)))


@endpoint("POST", "/api/v1/me/password", name="api-me-password", summary="Change my password",
          roles=(Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER), body=PasswordChange,
          response=OkOut, tag="login",
          errors=(429,))
async def me_password(request: web.Request) -> web.Response:
    """me_password: change one's own password (old one required); other logins of the account end."""
    ident = require(request)
    data = await parse_body(request, PasswordChange)
    async with request.app[DB]() as s:
        ended = await change_own_password(s, request, ident, data.old_password, data.new_password)
        await s.commit()
    await announce(request.app, ended)
    return json_response(OkOut())


# ---------------------------------------------------------------- users


@endpoint("GET", "/api/v1/users", name="api-users-list", summary="List accounts", roles=OPS, response=UserOut,
          response_list=True, tag="users",
          query=(("q", "text in username, name or e-mail"), ("role", "a role"),
                 ("disabled", "true or false"), ("limit", "at most 1000"), ("offset", "skip this many")),
          schemas={"role": one_of(*(r.value for r in Role))})
async def list_users(request: web.Request) -> web.Response:
    """list_users: accounts matching the filters."""
    q = request.query
    role = _role_param(q.get("role", ""))
    disabled = {"true": True, "1": True, "false": False, "0": False}.get(q.get("disabled", "").lower())
    limit = int_query(request, "limit", 200, low=1, high=1000)
    offset = int_query(request, "offset", 0, low=0, high=10**9)
    async with request.app[DB]() as s:
        users = await search_users(s, q.get("q", ""), role, disabled, limit, offset)
    return json_response([user_out(u) for u in users])


@endpoint("POST", "/api/v1/users", name="api-users-create", summary="Create an account", roles=OPS,
          body=UserCreate, response=UserCreated, status=201, tag="users")
async def create(request: web.Request) -> web.Response:
    """create: a new account; the generated password is in the answer only."""
    data = await parse_body(request, UserCreate)
    async with request.app[DB]() as s:
        created = await add_account(s, request, username=data.username, display_name=data.display_name,
                                    role=data.role, email=data.email, classroom_id=data.classroom_id,
                                    unit_id=data.unit_id, language=data.language, password=data.password)
        await s.commit()
    return json_response(UserCreated(user=user_out(created.user), password=created.password), status=201)


@endpoint("GET", "/api/v1/users/{id}", name="api-users-get", summary="One account", roles=OPS, response=UserOut,
          tag="users")
async def get_user(request: web.Request) -> web.Response:
    """get_user: one account."""
    async with request.app[DB]() as s:
        user = await user_by_id(s, int_param(request, "id"))
    return json_response(user_out(user))


@endpoint("PATCH", "/api/v1/users/{id}", name="api-users-update", summary="Change an account", roles=OPS,
          body=UserUpdate, response=UserOut, tag="users")
async def update(request: web.Request) -> web.Response:
    """update: change the given fields of an account."""
    user_id = int_param(request, "id")
    data = await parse_body(request, UserUpdate)
    ident = require(request, *OPS)
    changes = data.model_dump(exclude_unset=True)
    for field in ("display_name", "role", "email", "language"):
        if field in changes and changes[field] is None:
            del changes[field]
    async with request.app[DB]() as s:
        user = await user_by_id(s, user_id)
        await edit_account(s, request, user, changes, actor_id=ident.user_id)
        await s.commit()
    return json_response(user_out(user))


async def _set_disabled(request: web.Request, disabled: bool) -> web.Response:
    user_id = int_param(request, "id")
    ident = require(request, *OPS)
    async with request.app[DB]() as s:
        user, ended = await disable_account(s, request, user_id, disabled, actor_id=ident.user_id)
        await s.commit()
    await announce(request.app, ended)
    return json_response(user_out(user))


@endpoint("POST", "/api/v1/users/{id}/disable", name="api-users-disable",
          summary="Disable an account (its logins end)", roles=OPS, response=UserOut, tag="users")
async def disable(request: web.Request) -> web.Response:
    """disable: the account can no longer log in; its live logins are revoked."""
    return await _set_disabled(request, True)


@endpoint("POST", "/api/v1/users/{id}/enable", name="api-users-enable", summary="Enable an account", roles=OPS,
          response=UserOut, tag="users")
async def enable(request: web.Request) -> web.Response:
    """enable: the account may log in again."""
    return await _set_disabled(request, False)


@endpoint("POST", "/api/v1/users/{id}/reset-password", name="api-users-reset-password",
          summary="Reset a password (new one generated, shown once)", roles=OPS, response=PasswordOut, tag="users")
async def reset(request: web.Request) -> web.Response:
    """reset: generate a new password and end the account's logins."""
    user_id = int_param(request, "id")
    async with request.app[DB]() as s:
        _user, password, ended = await reset_account(s, request, user_id)
        await s.commit()
    await announce(request.app, ended)
    return json_response(PasswordOut(password=password))


# ---------------------------------------------------------------- join links


@endpoint("GET", "/api/v1/meetings/{id}/links", name="api-meeting-links", summary="A meeting's join links",
          roles=OPS, response=JoinLinkOut, response_list=True, tag="join-links")
async def list_links(request: web.Request) -> web.Response:
    """list_links: every join link of a meeting, newest first."""
    meeting_id = int_param(request, "id")
    async with request.app[DB]() as s:
        await meeting_or_404(s, meeting_id)
        rows = await meeting_links(s, meeting_id)
    return json_response([link_out(request, link, classroom) for link, classroom in rows])


@endpoint("POST", "/api/v1/meetings/{id}/links", name="api-meeting-links-create",
          summary="Create a signed join link for a classroom or a guest", roles=OPS, body=JoinLinkIn,
          response=JoinLinkOut, status=201, tag="join-links")
async def create_link(request: web.Request) -> web.Response:
    """create_link: a link valid `hours` from now (default: until the later of auth.join_link_hours and the
    meeting's end)."""
    meeting_id = int_param(request, "id")
    data = await parse_body(request, JoinLinkIn)
    ident = require(request, *OPS)
    async with request.app[DB]() as s:
        link, classroom = await add_join_link(s, request, request.app[CONFIG], meeting_id,
                                              classroom_id=data.classroom_id, guest_name=data.guest_name,
                                              hours=data.hours, created_by=ident.user_id)
        await s.commit()
    return json_response(link_out(request, link, classroom), status=201)


@endpoint("DELETE", "/api/v1/meetings/{id}/links/{link_id}", name="api-meeting-links-revoke",
          summary="Revoke a join link (no new joins; end_logins=true also ends the logins it made)", roles=OPS,
          response=JoinLinkOut, tag="join-links", query=(("end_logins", "true: also end the logins it made"),))
async def revoke_link(request: web.Request) -> web.Response:
    """revoke_link: nobody new can join with the link; those already in stay unless end_logins=true."""
    meeting_id, link_id = int_param(request, "id"), int_param(request, "link_id")
    end = request.query.get("end_logins", "").lower() in ("1", "true", "yes")
    async with request.app[DB]() as s:
        link, classroom, ended = await remove_join_link(s, request, meeting_id, link_id, end)
        await s.commit()
    await announce(request.app, ended)
    return json_response(link_out(request, link, classroom))


# ---------------------------------------------------------------- audit


@endpoint("GET", "/api/v1/audit", name="api-audit", summary="Audit log (newest first)", roles=OPS,
          response=AuditOut, response_list=True, tag="audit",
          query=(("action", "an action, or a prefix such as 'user'"), ("actor", "username of the actor"),
                 ("since", "first day, YYYY-MM-DD (local time)"), ("until", "last day, YYYY-MM-DD"),
                 ("limit", "at most 500"), ("offset", "skip this many")))
async def audit_log(request: web.Request) -> web.Response:
    """audit_log: audit entries matching the filters."""
    q = request.query
    f = AuditFilter(action=q.get("action", "")[:60], actor=q.get("actor", "")[:64],
                    since=parse_day(q.get("since"), "since"), until=parse_day(q.get("until"), "until"),
                    limit=int_query(request, "limit", 100, low=1, high=500),
                    offset=int_query(request, "offset", 0, low=0, high=10**9))
    async with request.app[DB]() as s:
        rows = await audit_entries(s, request.app[CONFIG], f)
    return json_response([audit_out(entry, username) for entry, username in rows])


# ---------------------------------------------------------------- helpers


def _role_param(value: str) -> Role | None:
    if not value:
        return None
    try:
        return Role(value)
    except ValueError:
        raise AccountError(422, "invalid", "role: vai trò không hợp lệ. / role: unknown role.", field="role") from None
