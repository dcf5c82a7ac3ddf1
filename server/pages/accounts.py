"""server.pages.accounts: login/logout, join links (/j/{token}), account pages, own password, audit log.

Routes (HTML; operators only unless noted):
- `/login` (GET form, POST; anyone), `/logout` (POST; any login), `/j/{token}` (GET; anyone),
- `/me/password` (GET/POST; accounts with a password),
- `/accounts`, `/accounts/new`, `/accounts/{id}`, `/accounts/{id}/reset-password|disable|enable`,
- `/meetings/{id}/links` (list and create), `/meetings/{id}/links/{link_id}/revoke`,
- `/audit`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server import formats
from server.audit import ACTIONS, readable, target_names
from server.auth import COOKIE, JoinLinkError, cookie_secure, identity, require, set_login_cookie
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Role, User, utcnow
from server.errors import ApiError
from server.i18n import language, localized, translator
from server.inputs import MAX_PAGE, read_form
from server.openapi import int_param, parse_int
from server.people.accounts import (
    ACCOUNT_ROLES,
    AccountError,
    AuditFilter,
    Ended,
    account_choices,
    add_account,
    add_join_link,
    announce,
    audit_actions,
    audit_entries,
    change_own_password,
    disable_account,
    edit_account,
    join_url,
    link_classrooms,
    log_in,
    log_out,
    meeting_links,
    meeting_or_404,
    open_join_link,
    parse_day,
    refuse_link_login,
    remove_join_link,
    reset_account,
    safe_next,
    search_users,
    user_by_id,
)
from server.people.classrooms import all_classrooms

OPS = (Role.OPERATOR,)
PASSWORD_ROLES = (Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER)


def local_time(request: web.Request, value: dt.datetime | None) -> str:
    """local_time: a datetime in the configured timezone and the request's language (05/12/2026 14:05)."""
    return formats.datetime(value, language(request), request.app[CONFIG].tz)


def _render(template: str, request: web.Request, context: dict[str, Any], status: int = 200) -> web.Response:
    return aiohttp_jinja2.render_template(template, request, context, status=status)


# ---------------------------------------------------------------- login / logout


async def login_form(request: web.Request) -> web.Response:
    """login_form: the login page (a logged-in visitor goes straight on)."""
    target = safe_next(request.query.get("next"))
    if identity(request) is not None:
        raise web.HTTPSeeOther(location=target)
    return _render("login.html", request, {"next": target, "username": "", "error": ""})


async def login_submit(request: web.Request) -> web.Response:
    """login_submit: check the password and set the login cookie; on error show the form again."""
    form = await read_form(request)
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:200]
    target = safe_next(str(form.get("next", "")))
    try:
        async with request.app[DB]() as s:
            done = await log_in(s, request, username, password)
            await s.commit()
    except AccountError as exc:
        resp = _render("login.html", request, {"next": target, "username": username,
                                               "error": localized(request, exc.message)}, status=exc.status)
        if "Retry-After" in exc.headers:
            resp.headers["Retry-After"] = exc.headers["Retry-After"]
        return resp
    await announce(request.app, *done.ended)
    resp = web.HTTPSeeOther(location=target)
    set_login_cookie(request, resp, done.login)
    raise resp


async def logout(request: web.Request) -> web.Response:
    """logout: revoke this login, clear the cookie and go to the login page."""
    ident = identity(request)
    resp = web.HTTPSeeOther(location="/login")
    if ident is not None:
        async with request.app[DB]() as s:
            ended = await log_out(s, ident.login_id)
            await s.commit()
        await announce(request.app, ended)
    resp.del_cookie(COOKIE, path="/", secure=cookie_secure(request), samesite="Lax")
    raise resp


async def join(request: web.Request) -> web.Response:
    """join: open a signed join link: a meeting-scoped login, then the meeting's live page."""
    token = request.match_info["token"]
    try:
        if len(token) > 200:
            raise JoinLinkError(400, "link-invalid", "Liên kết không hợp lệ. / This link is not valid.")
        async with request.app[DB]() as s:
            new = await open_join_link(s, request, token)
            await s.commit()
    except ApiError as exc:
        if not _wants_page(request):
            raise
        return _render("joinlink_error.html", request, {"status": exc.status, "code": exc.code,
                                                        "message": localized(request, exc.message)},
                       status=exc.status)
    await announce(request.app, Ended("replaced", new.replaced))
    resp = web.HTTPSeeOther(location=f"/live/{new.login.meeting_id}")
    set_login_cookie(request, resp, new.login)
    raise resp


def _wants_page(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "")


# ---------------------------------------------------------------- own password


async def my_password(request: web.Request) -> web.Response:
    """my_password: change one's own password (the current one is required; failures limited like logins; not
    for a join-link login)."""
    ident = require(request, *PASSWORD_ROLES)
    refuse_link_login(ident)
    error, done = "", False
    status = 200
    retry_after = ""
    if request.method == "POST":
        form = await read_form(request)
        old, new, again = (str(form.get(k, ""))[:200] for k in ("old_password", "new_password", "new_password2"))
        try:
            if new != again:
                raise AccountError(422, "mismatch", "Hai lần nhập mật khẩu mới không khớp. / "
                                                    "The two new passwords differ.")
            async with request.app[DB]() as s:
                ended = await change_own_password(s, request, ident, old, new)
                await s.commit()
            await announce(request.app, ended)
            done = True
        except AccountError as exc:
            error, status = localized(request, exc.message), exc.status
            retry_after = exc.headers.get("Retry-After", "")
    resp = _render("accounts_me_password.html", request, {"error": error, "done": done}, status=status)
    if retry_after:
        resp.headers["Retry-After"] = retry_after
    return resp


# ---------------------------------------------------------------- accounts


async def _choices(request: web.Request, user: User | None = None) -> dict[str, Any]:
    async with request.app[DB]() as s:
        classrooms, units = await account_choices(s, user)
    return {"classrooms": classrooms, "units": units, "roles": ACCOUNT_ROLES}


async def accounts_list(request: web.Request) -> web.Response:
    """accounts_list: accounts with search, role and status filters."""
    require(request, *OPS)
    q = request.query.get("q", "")[:100]
    role_value = request.query.get("role", "")
    role = Role(role_value) if role_value in {r.value for r in ACCOUNT_ROLES} else None
    status = request.query.get("status", "")
    disabled = {"active": False, "disabled": True}.get(status)
    async with request.app[DB]() as s:
        users = await search_users(s, q, role, disabled, limit=500)
        classrooms = {c.id: c for c in await all_classrooms(s)}
    return _render("accounts.html", request, {
        "users": users, "q": q, "role": role_value if role else "", "status": status, "roles": ACCOUNT_ROLES,
        "classrooms": classrooms, "done": request.query.get("done", ""), "local_time": lambda v: local_time(request, v),
    })


def _user_fields(form: Any) -> dict[str, Any]:
    return {
        "username": str(form.get("username", "")).strip()[:64],
        "display_name": str(form.get("display_name", "")).strip()[:200],
        "role": str(form.get("role", "")),
        "email": str(form.get("email", "")).strip()[:200],
        "classroom_id": parse_int(form.get("classroom_id")),
        "unit_id": parse_int(form.get("unit_id")),
        "language": "en" if form.get("language") == "en" else "vi",
    }


async def account_new(request: web.Request) -> web.Response:
    """account_new: the create form; on success show the generated password once."""
    require(request, *OPS)
    values: dict[str, Any] = {"username": "", "display_name": "", "role": Role.TRAINER.value, "email": "",
                              "classroom_id": None, "unit_id": None, "language": "vi"}
    error, status = "", 200
    if request.method == "POST":
        values = _user_fields(await read_form(request))
        try:
            if values["role"] not in {r.value for r in ACCOUNT_ROLES}:
                raise AccountError(422, "invalid-role", "Vai trò không hợp lệ. / Invalid role.")
            async with request.app[DB]() as s:
                created = await add_account(s, request, username=values["username"],
                                            display_name=values["display_name"], role=Role(values["role"]),
                                            email=values["email"],
                                            classroom_id=values["classroom_id"] if values["role"] == "classroom"
                                            else None, unit_id=values["unit_id"], language=values["language"])
                await s.commit()
            return _render("accounts_password.html", request, {"user": created.user, "password": created.password,
                                                               "created": True})
        except AccountError as exc:
            error, status = localized(request, exc.message), exc.status
    ctx = {"user": None, "values": values, "error": error, **await _choices(request)}
    return _render("accounts_form.html", request, ctx, status=status)


async def account_edit(request: web.Request) -> web.Response:
    """account_edit: change an account; the page also offers reset password and disable/enable."""
    ident = require(request, *OPS)
    user_id = int_param(request, "id")
    error, status = "", 200
    async with request.app[DB]() as s:
        user = await user_by_id(s, user_id)
        values: dict[str, Any] = {"username": user.username, "display_name": user.display_name,
                                  "role": user.role.value, "email": user.email, "classroom_id": user.classroom_id,
                                  "unit_id": user.unit_id, "language": user.language}
        if request.method == "POST":
            values = {**_user_fields(await read_form(request)), "username": user.username}
            try:
                if values["role"] not in {r.value for r in ACCOUNT_ROLES}:
                    raise AccountError(422, "invalid-role", "Vai trò không hợp lệ. / Invalid role.")
                changes = {k: values[k] for k in ("display_name", "role", "email", "unit_id", "language")}
                changes["classroom_id"] = values["classroom_id"] if values["role"] == "classroom" else None
                await edit_account(s, request, user, changes, actor_id=ident.user_id)
                await s.commit()
                raise web.HTTPSeeOther(location=f"/accounts/{user.id}?done=saved")
            except AccountError as exc:
                error, status = localized(request, exc.message), exc.status
    ctx = {"user": user, "values": values, "error": error, "done": request.query.get("done", ""),
           "is_self": user.id == ident.user_id, "created_at": local_time(request, user.created_at),
           "password_changed_at": local_time(request, user.password_changed_at), **await _choices(request, user)}
    return _render("accounts_form.html", request, ctx, status=status)


async def account_reset(request: web.Request) -> web.Response:
    """account_reset: generate a new password (shown once) and end the account's logins."""
    require(request, *OPS)
    async with request.app[DB]() as s:
        user, password, ended = await reset_account(s, request, int_param(request, "id"))
        await s.commit()
    await announce(request.app, ended)
    return _render("accounts_password.html", request, {"user": user, "password": password, "created": False})


async def account_disable(request: web.Request) -> web.Response:
    """account_disable: disable an account (its logins end) or, for /enable, enable it."""
    ident = require(request, *OPS)
    disabled = request.path.endswith("/disable")
    user_id = int_param(request, "id")
    try:
        async with request.app[DB]() as s:
            user, ended = await disable_account(s, request, user_id, disabled, actor_id=ident.user_id)
            await s.commit()
    except AccountError as exc:
        if exc.status == 404:
            raise
        raise web.HTTPSeeOther(location=f"/accounts/{user_id}?done=own-account") from None
    await announce(request.app, ended)
    raise web.HTTPSeeOther(location=f"/accounts/{user.id}?done={'disabled' if disabled else 'enabled'}")


# ---------------------------------------------------------------- join links page


async def links_page(request: web.Request) -> web.Response:
    """links_page: a meeting's join links with copy buttons, a create form and revoke buttons."""
    ident = require(request, *OPS)
    meeting_id = int_param(request, "id")
    error, status, fresh = "", 200, parse_int(request.query.get("new"))
    form_values: dict[str, Any] = {"kind": "classroom", "classroom_id": None, "guest_name": "", "hours": ""}
    if request.method == "POST":
        form = await read_form(request)
        kind = "guest" if form.get("kind") == "guest" else "classroom"
        form_values = {"kind": kind, "classroom_id": parse_int(form.get("classroom_id")),
                       "guest_name": str(form.get("guest_name", ""))[:200], "hours": str(form.get("hours", ""))[:8]}
        try:
            hours: float | None = None
            if form_values["hours"].strip():
                try:
                    hours = float(form_values["hours"].replace(",", "."))
                except ValueError:
                    hours = -1
                if not 0 < hours <= 24 * 90:
                    raise AccountError(422, "invalid", "Số giờ hiệu lực phải từ 1 đến 2160. / "
                                                       "Hours must be between 1 and 2160.")
            async with request.app[DB]() as s:
                link, _classroom = await add_join_link(
                    s, request, request.app[CONFIG], meeting_id,
                    classroom_id=form_values["classroom_id"] if kind == "classroom" else None,
                    guest_name=form_values["guest_name"] if kind == "guest" else "", hours=hours,
                    created_by=ident.user_id)
                await s.commit()
            raise web.HTTPSeeOther(location=f"/meetings/{meeting_id}/links?new={link.id}")
        except AccountError as exc:
            if exc.status == 404:
                raise
            error, status = localized(request, exc.message), exc.status
    async with request.app[DB]() as s:
        meeting = await meeting_or_404(s, meeting_id)
        rows = await meeting_links(s, meeting_id)
        invited, others = await link_classrooms(s, meeting_id)
    now = utcnow()
    links = [{"link": link, "classroom": classroom, "url": join_url(request, link),
              "expired": link.expires_at <= now, "expires": local_time(request, link.expires_at),
              "created": local_time(request, link.created_at), "fresh": link.id == fresh}
             for link, classroom in rows]
    return _render("joinlinks.html", request, {
        "meeting": meeting, "links": links, "error": error, "values": form_values,
        "invited": invited, "others": others,
        "starts": local_time(request, meeting.starts_at), "ends": local_time(request, meeting.ends_at),
        "default_hours": request.app[CONFIG].auth.join_link_hours, "done": request.query.get("done", ""),
        "made": parse_int(request.query.get("made")) or 0,
    }, status=status)


async def link_revoke(request: web.Request) -> web.Response:
    """link_revoke: stop new joins by a link (form field end_logins also ends its logins)."""
    require(request, *OPS)
    meeting_id, link_id = int_param(request, "id"), int_param(request, "link_id")
    form = await read_form(request)
    end = form.get("end_logins") == "1"
    async with request.app[DB]() as s:
        _link, _classroom, ended = await remove_join_link(s, request, meeting_id, link_id, end)
        await s.commit()
    await announce(request.app, ended)
    raise web.HTTPSeeOther(location=f"/meetings/{meeting_id}/links?done=revoked")


# ---------------------------------------------------------------- audit log


async def audit_page(request: web.Request) -> web.Response:
    """audit_page: the audit log with filters on action, actor and dates."""
    require(request, *OPS)
    q = request.query
    error = ""
    try:
        since, until = parse_day(q.get("since"), "since"), parse_day(q.get("until"), "until")
    except AccountError as exc:
        since = until = None
        error = localized(request, exc.message)
    page = min(MAX_PAGE, max(0, parse_int(q.get("page"), "page") or 0))
    f = AuditFilter(action=q.get("action", "")[:60], actor=q.get("actor", "")[:64], since=since, until=until,
                    limit=101, offset=page * 100)
    async with request.app[DB]() as s:
        rows = await audit_entries(s, request.app[CONFIG], f)
        actions = await audit_actions(s)
        names = await target_names(s, [e for e, _name in rows[:100]])
    words = translator(request).gettext
    entries = [{"at": local_time(request, e.at), "actor": name or "", "entry": readable(e, words, names), "ip": e.ip}
               for e, name in rows[:100]]
    choices = [(a, words(ACTIONS[a]) if a in ACTIONS else a) for a in actions]
    return _render("audit.html", request, {
        "entries": entries, "actions": choices, "f": f, "since": q.get("since", "")[:10] if since else "",
        "until": q.get("until", "")[:10] if until else "", "page": page, "more": len(rows) > 100, "error": error,
    })


def setup(app: web.Application) -> None:
    """setup: add the login, join-link, account, join-link management and audit routes."""
    r = app.router
    r.add_get("/login", login_form, name="login")
    r.add_post("/login", login_submit, name="login-submit")
    r.add_post("/logout", logout, name="logout")
    r.add_get("/j/{token}", join, name="join")
    r.add_get("/me/password", my_password, name="my-password")
    r.add_post("/me/password", my_password)
    r.add_get("/accounts", accounts_list, name="accounts")
    r.add_get("/accounts/new", account_new, name="account-new")
    r.add_post("/accounts/new", account_new)
    r.add_get(r"/accounts/{id:\d+}", account_edit, name="account")
    r.add_post(r"/accounts/{id:\d+}", account_edit)
    r.add_post(r"/accounts/{id:\d+}/reset-password", account_reset, name="account-reset")
    r.add_post(r"/accounts/{id:\d+}/disable", account_disable, name="account-disable")
    r.add_post(r"/accounts/{id:\d+}/enable", account_disable, name="account-enable")
    r.add_get(r"/meetings/{id:\d+}/links", links_page, name="meeting-links")
    r.add_post(r"/meetings/{id:\d+}/links", links_page)
    r.add_post(r"/meetings/{id:\d+}/links/{link_id:\d+}/revoke", link_revoke, name="meeting-link-revoke")
    r.add_get("/audit", audit_page, name="audit")
