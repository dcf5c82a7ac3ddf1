"""server.people.accounts: accounts, password logins, join links and the `taphuan user` command.

The pages (`server.pages.accounts`), the API (`server.api.accounts`) and the CLI all call these functions,
so the rules live in one place:

- usernames are lower-case (2–64 of a-z, 0-9, `.`, `_`, `-`); a classroom account belongs to one Classroom;
- `authenticate` applies the login limits (server.ratelimit.LoginLimiter: refused per account and address and
  per address, only slowed down per account) before checking the password, off the event loop
  (server.passwords); so does a user's own password change, which a join-link login may not make;
- `start_login` creates a password login; a classroom account has one live PC at a time, so an earlier
  login of that account that could be in the same meeting is revoked (reason "replaced");
- `open_join_link` turns a signed join link into a login scoped to its meeting (same replacement rule);
- every revocation is announced on the bus channel "logins" by `announce_revoked` as
  `{"type": "login-revoked", "login_ids": [...], "reason": "..."}` so the live layer can close those
  connections and tell the user why.

Functions taking an `AsyncSession` add rows but leave the commit to the caller (one commit per action,
together with its audit entry), except where a docstring says otherwise. The actions of the pages and the
API (`log_in`, `add_account`, `reset_account`, `add_join_link`, ...) write their audit entry themselves and
return the logins they ended as `Ended`, which the caller announces after its commit (`announce`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import record
from server.auth import (
    TOKEN_PREFIX,
    Identity,
    client_ip,
    create_login,
    generate_password,
    identity,
    join_link_token,
    meeting_login_expiry,
    resolve_join_link,
    revoke_logins,
)
from server.bus import BUS
from server.config import CONFIG, Config
from server.db.models import (
    ApiToken,
    AuditEntry,
    Classroom,
    JoinLink,
    LoginSession,
    Meeting,
    MeetingStatus,
    Role,
    Unit,
    UnitLevel,
    User,
    meeting_classrooms,
    utcnow,
)
from server.errors import ApiError
from server.metrics import METRICS
from server.passwords import PasswordPool, hash_in, passwords_of, verify_in
from server.people.classrooms import all_classrooms
from server.ratelimit import LOGIN_LIMITER

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 8
ACCOUNT_ROLES = (Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER)
LOGINS_CHANNEL = "logins"


class AccountError(ApiError):
    """AccountError: a refused account action (bad input, conflict, unknown account)."""


def normalize_username(username: str) -> str:
    """normalize_username: usernames are compared in lower case without surrounding spaces."""
    return username.strip().lower()


def check_username(username: str) -> str:
    """check_username: the normalized username, or a 422 AccountError explaining the rule."""
    name = normalize_username(username)
    if not USERNAME_RE.match(name):
        raise AccountError(422, "invalid-username",
                           "Tên đăng nhập gồm 2–64 ký tự a-z, 0-9, dấu chấm, gạch dưới hoặc gạch ngang. / "
                           "A username has 2–64 characters: a-z, 0-9, '.', '_' or '-'.", field="username")
    return name


def check_new_password(password: str) -> None:
    """check_new_password: a 422 AccountError when the password is too short."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(422, "weak-password",
                           f"Mật khẩu cần ít nhất {MIN_PASSWORD} ký tự. / "
                           f"A password needs at least {MIN_PASSWORD} characters.", field="new_password")


def safe_next(value: str | None, default: str = "/") -> str:
    """safe_next: `value` if it is a local path (no scheme, host or backslash), else `default`."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


# ---------------------------------------------------------------- bus


async def announce_revoked(app: web.Application, login_ids: list[str], reason: str) -> None:
    """announce_revoked: publish `login-revoked` on the "logins" channel (after the commit)."""
    if login_ids:
        await app[BUS].publish(LOGINS_CHANNEL, {"type": "login-revoked", "login_ids": login_ids,
                                                     "reason": reason})


# ---------------------------------------------------------------- logins


def _too_many(wait: int) -> AccountError:
    exc = AccountError(429, "rate-limited", f"Nhập sai mật khẩu quá nhiều lần. Thử lại sau {wait} giây. / "
                                            f"Too many wrong passwords. Try again in {wait} s.", retry_after=wait)
    exc.headers["Retry-After"] = str(wait)
    return exc


async def _limited_check(request: web.Request, account: str) -> None:
    """_limited_check: before checking a password of `account`: 429 when this address may not try it now, else
    wait the account's slow-down (server.ratelimit.LoginLimiter)."""
    limiter = request.app[LOGIN_LIMITER]
    wait = await limiter.retry_after(account, client_ip(request))
    if wait:
        raise _too_many(wait)
    delay = await limiter.delay(account)
    if delay:
        await asyncio.sleep(delay)


async def authenticate(s: AsyncSession, request: web.Request, username: str, password: str) -> User:
    """authenticate: the User for a username and password, or 401/403/429 (failures are limited: see the module
    doc), or 503 when the password threads are full. The password is checked off the event loop.

    Failed attempts are audit-logged and committed here.
    """
    limiter = request.app[LOGIN_LIMITER]
    logins = request.app[METRICS].logins
    name = normalize_username(username)
    account, ip = f"user:{name}", client_ip(request)
    try:
        await _limited_check(request, account)
    except AccountError:
        logins.labels(result="rate-limited").inc()
        raise
    user = await s.scalar(select(User).where(User.username == name)) if name else None
    pool = passwords_of(request)
    assert pool is not None
    ok = await pool.verify(user.password_hash, password) if user else await pool.verify_unknown(password)
    if user is None or not ok or user.role == Role.GUEST:
        await limiter.failed(account, ip)
        record(s, request, "login.failed", f"user:{name[:60]}", username=name[:64])
        await s.commit()
        logins.labels(result="failed").inc()
        raise AccountError(401, "login-failed", "Sai tên đăng nhập hoặc mật khẩu. / Wrong username or password.")
    if user.disabled:
        logins.labels(result="disabled").inc()
        raise AccountError(403, "account-disabled", "Tài khoản này đã bị khoá; hãy liên hệ quản trị viên. / "
                                                    "This account is disabled; contact an operator.")
    await limiter.succeeded(account, ip)
    logins.labels(result="ok").inc()
    return user


async def _earlier_logins(s: AsyncSession, user_id: int, meeting_id: int | None) -> list[str]:
    """_earlier_logins: live logins of an account that could be in `meeting_id` (all when None)."""
    q = select(LoginSession.id).where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None),
                                      LoginSession.expires_at > utcnow())
    if meeting_id is not None:
        q = q.where(or_(LoginSession.meeting_id == meeting_id, LoginSession.meeting_id.is_(None)))
    return list((await s.scalars(q)).all())


@dataclass
class NewLogin:
    """NewLogin: a created login and the earlier logins it replaced (to announce after the commit)."""

    login: LoginSession
    replaced: list[str]


async def start_login(s: AsyncSession, request: web.Request, user: User) -> NewLogin:
    """start_login: a password login of `user` (a classroom account replaces its earlier logins)."""
    replaced: list[str] = []
    if user.role == Role.CLASSROOM:
        replaced = await revoke_logins(s, reason="replaced", login_ids=await _earlier_logins(s, user.id, None))
    login = await create_login(s, request, user=user, hours=request.app[CONFIG].auth.session_hours)
    record(s, request, "login", f"user:{user.id}", actor_id=user.id, replaced=len(replaced))
    return NewLogin(login, replaced)


async def end_login(s: AsyncSession, login_id: str) -> list[str]:
    """end_login: revoke one login (logout)."""
    return await revoke_logins(s, reason="logout", login_ids=[login_id])


# ---------------------------------------------------------------- accounts


async def user_by_id(s: AsyncSession, user_id: int) -> User:
    """user_by_id: the User or a 404 AccountError."""
    user = await s.get(User, user_id)
    if user is None:
        raise AccountError(404, "not-found", "Không tìm thấy tài khoản. / Account not found.")
    return user


async def find_user(s: AsyncSession, user_id: int | None) -> User | None:
    """find_user: the User of an id (None for None, e.g. a guest's, or an unknown id)."""
    return await s.get(User, user_id) if user_id is not None else None


async def user_by_name(s: AsyncSession, username: str) -> User:
    """user_by_name: the User or a 404 AccountError naming the username."""
    name = normalize_username(username)
    user = await s.scalar(select(User).where(User.username == name))
    if user is None:
        raise AccountError(404, "not-found", f"Không có tài khoản '{name}'. / No account '{name}'.")
    return user


async def search_users(s: AsyncSession, q: str = "", role: Role | None = None, disabled: bool | None = None,
                       limit: int = 200, offset: int = 0) -> list[User]:
    """search_users: accounts matching a text (username, name, e-mail), a role and a status."""
    query = select(User).order_by(User.role, User.username)
    text = q.strip().lower()
    if text:
        like = f"%{text}%"
        query = query.where(or_(func.lower(User.username).like(like), func.lower(User.display_name).like(like),
                                func.lower(User.email).like(like)))
    if role is not None:
        query = query.where(User.role == role)
    if disabled is not None:
        query = query.where(User.disabled.is_(disabled))
    return list((await s.scalars(query.limit(limit).offset(offset))).all())


async def _check_links(s: AsyncSession, role: Role, classroom_id: int | None, unit_id: int | None) -> None:
    if role not in ACCOUNT_ROLES:
        raise AccountError(422, "invalid-role", "Vai trò không hợp lệ. / Invalid role.", field="role")
    if role == Role.CLASSROOM:
        if classroom_id is None:
            raise AccountError(422, "classroom-required", "Tài khoản lớp học cần chọn lớp học. / "
                                                          "A classroom account needs a classroom.",
                               field="classroom_id")
    elif classroom_id is not None:
        raise AccountError(422, "classroom-not-allowed", "Chỉ tài khoản lớp học mới gắn với lớp học. / "
                                                         "Only classroom accounts belong to a classroom.",
                           field="classroom_id")
    if classroom_id is not None and await s.get(Classroom, classroom_id) is None:
        raise AccountError(422, "unknown-classroom", "Không có lớp học này. / Unknown classroom.",
                           field="classroom_id")
    if unit_id is not None and await s.get(Unit, unit_id) is None:
        raise AccountError(422, "unknown-unit", "Không có đơn vị này. / Unknown unit.", field="unit_id")


async def _check_free(s: AsyncSession, username: str) -> None:
    if await s.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError(409, "username-taken", f"Tên đăng nhập '{username}' đã có. / "
                                                  f"Username '{username}' is taken.", field="username")


@dataclass
class CreatedUser:
    """CreatedUser: a new account and its generated password (None when the caller chose one)."""

    user: User
    password: str | None


async def create_user(s: AsyncSession, *, username: str, display_name: str, role: Role, email: str = "",
                      classroom_id: int | None = None, unit_id: int | None = None, language: str = "vi",
                      password: str | None = None, pool: PasswordPool | None = None) -> CreatedUser:
    """create_user: a new account (flushed so it has an id); generates a password unless given (hashed in `pool`,
    without one in a worker thread)."""
    name = check_username(username)
    await _check_links(s, role, classroom_id, unit_id)
    await _check_free(s, name)
    generated = None
    if password is None:
        generated = password = generate_password()
    else:
        check_new_password(password)
    user = User(username=name, display_name=display_name.strip() or name, role=role, email=email.strip(),
                classroom_id=classroom_id, unit_id=unit_id, language=language,
                password_hash=await hash_in(pool, password), password_changed_at=utcnow())
    s.add(user)
    await s.flush()
    return CreatedUser(user, generated)


async def update_user(s: AsyncSession, user: User, changes: dict[str, Any], actor_id: int | None) -> dict[str, Any]:
    """update_user: apply changes (display_name, role, email, classroom_id, unit_id, language); returns them.

    An operator may not change their own role (so the last operator cannot lock everyone out).
    """
    role = Role(changes.get("role", user.role))
    if actor_id == user.id and role != user.role:
        raise AccountError(409, "own-role", "Không thể đổi vai trò của chính mình. / You cannot change your own role.",
                           field="role")
    classroom_id = changes.get("classroom_id", user.classroom_id)
    if role != Role.CLASSROOM and "classroom_id" not in changes:
        classroom_id = None
    unit_id = changes.get("unit_id", user.unit_id)
    await _check_links(s, role, classroom_id, unit_id)
    done: dict[str, Any] = {}
    values = {**changes, "role": role, "classroom_id": classroom_id, "unit_id": unit_id}
    for field in ("display_name", "role", "email", "classroom_id", "unit_id", "language"):
        if field in values and values[field] != getattr(user, field):
            value = values[field].strip() if isinstance(values[field], str) else values[field]
            if field == "display_name" and not value:
                continue
            setattr(user, field, value)
            done[field] = value.value if isinstance(value, Role) else value
    return done


async def set_disabled(s: AsyncSession, user: User, disabled: bool, actor_id: int | None) -> list[str]:
    """set_disabled: disable (revoking its live logins) or enable an account; returns revoked login ids."""
    if disabled and actor_id == user.id:
        raise AccountError(409, "own-account", "Không thể khoá tài khoản của chính mình. / "
                                               "You cannot disable your own account.")
    user.disabled = disabled
    if disabled:
        return await revoke_logins(s, reason="disabled", user_id=user.id)
    return []


async def reset_password(s: AsyncSession, user: User, password: str | None = None,
                         pool: PasswordPool | None = None) -> tuple[str, list[str]]:
    """reset_password: set a new (generated unless given) password and revoke the account's logins and tokens."""
    if password is None:
        password = generate_password()
    else:
        check_new_password(password)
    user.password_hash = await hash_in(pool, password)
    user.password_changed_at = utcnow()
    return password, await revoke_logins(s, reason="password-reset", user_id=user.id)


async def change_password(s: AsyncSession, user: User, old: str, new: str, keep_login: str,
                          pool: PasswordPool | None = None) -> list[str]:
    """change_password: the user's own change (old password required); ends their other logins and tokens."""
    if not await verify_in(pool, user.password_hash, old):
        raise AccountError(403, "wrong-password", "Mật khẩu hiện tại không đúng. / The current password is wrong.",
                           field="old_password")
    check_new_password(new)
    user.password_hash = await hash_in(pool, new)
    user.password_changed_at = utcnow()
    tokens = (await s.scalars(select(ApiToken.id).where(ApiToken.user_id == user.id,
                                                         ApiToken.revoked_at.is_(None)))).all()
    others = [i for i in [*await _earlier_logins(s, user.id, None), *(f"{TOKEN_PREFIX}{t}" for t in tokens)]
              if i != keep_login]
    return await revoke_logins(s, reason="password-changed", login_ids=others)


# ---------------------------------------------------------------- join links


async def classroom_account(s: AsyncSession, classroom: Classroom) -> User:
    """classroom_account: the classroom's account of role classroom, created (named after its code) if none."""
    user = await s.scalar(select(User).where(User.classroom_id == classroom.id, User.role == Role.CLASSROOM)
                          .order_by(User.id).limit(1))
    if user is not None:
        return user
    base = re.sub(r"[^a-z0-9._-]+", "-", classroom.code.lower()).strip("-._")[:56] or f"classroom-{classroom.id}"
    if len(base) < 2:
        base = f"classroom-{base}"
    name, n = base, 1
    while await s.scalar(select(User.id).where(User.username == name)) is not None:
        n += 1
        name = f"{base}-{n}"
    user = User(username=name, display_name=classroom.name, role=Role.CLASSROOM, classroom_id=classroom.id,
                unit_id=classroom.unit_id, password_hash="")
    s.add(user)
    try:
        async with s.begin_nested():
            await s.flush()
    except IntegrityError:  # created at the same moment by another request: use that one
        existing = await s.scalar(select(User).where(User.classroom_id == classroom.id,
                                                     User.role == Role.CLASSROOM).limit(1))
        if existing is None:
            raise
        return existing
    return user


async def meeting_or_404(s: AsyncSession, meeting_id: int) -> Meeting:
    """meeting_or_404: the Meeting or a 404."""
    meeting = await s.get(Meeting, meeting_id)
    if meeting is None:
        raise AccountError(404, "not-found", "Không tìm thấy buổi tập huấn. / Meeting not found.")
    return meeting


async def create_join_link(s: AsyncSession, config: Config, meeting: Meeting, *, classroom_id: int | None,
                           guest_name: str, hours: float | None, created_by: int | None) -> JoinLink:
    """create_join_link: a link for one classroom or one named guest (expiry: `hours` from now, or by
    default the later of `auth.join_link_hours` from now and the meeting's end)."""
    guest = guest_name.strip()
    if (classroom_id is None) == (not guest):
        raise AccountError(422, "classroom-or-guest", "Chọn một lớp học hoặc nhập tên khách mời. / "
                                                      "Give either a classroom or a guest name.",
                           field="classroom_id")
    if classroom_id is not None:
        classroom = await s.get(Classroom, classroom_id)
        if classroom is None:
            raise AccountError(422, "unknown-classroom", "Không có lớp học này. / Unknown classroom.",
                               field="classroom_id")
        await classroom_account(s, classroom)
    now = utcnow()
    if hours is not None:
        expires = now + dt.timedelta(hours=hours)
    else:
        expires = max(now + dt.timedelta(hours=config.auth.join_link_hours), meeting.ends_at)
    link = JoinLink(meeting_id=meeting.id, classroom_id=classroom_id, guest_name=guest[:200],
                    expires_at=expires.replace(microsecond=0), created_by=created_by, created_at=now)
    s.add(link)
    await s.flush()
    return link


def join_url(request: web.Request, link: JoinLink) -> str:
    """join_url: the absolute address of a join link (config server.public_url, else this request's host)."""
    base = request.app[CONFIG].server.public_url.rstrip("/") or f"{request.scheme}://{request.host}"
    return f"{base}/j/{join_link_token(request.app, link)}"


async def meeting_links(s: AsyncSession, meeting_id: int) -> list[tuple[JoinLink, Classroom | None]]:
    """meeting_links: a meeting's join links (newest first) with their classrooms."""
    rows = await s.execute(select(JoinLink, Classroom).outerjoin(Classroom, Classroom.id == JoinLink.classroom_id)
                           .where(JoinLink.meeting_id == meeting_id).order_by(JoinLink.id.desc()))
    return [(link, classroom) for link, classroom in rows.all()]


async def revoke_join_link(s: AsyncSession, meeting_id: int, link_id: int, end_logins: bool) -> tuple[JoinLink,
                                                                                                     list[str]]:
    """revoke_join_link: stop new joins by a link; with `end_logins` also revoke the logins it made."""
    link = await s.get(JoinLink, link_id)
    if link is None or link.meeting_id != meeting_id:
        raise AccountError(404, "not-found", "Không tìm thấy liên kết. / Link not found.")
    link.revoked = True
    ended: list[str] = []
    if end_logins:
        ids = list((await s.scalars(select(LoginSession.id).where(LoginSession.join_link_id == link.id))).all())
        ended = await revoke_logins(s, reason="link-revoked", login_ids=ids)
    return link, ended


async def open_join_link(s: AsyncSession, request: web.Request, token: str) -> NewLogin:
    """open_join_link: verify a token and create the meeting-scoped login (400 tampered, 410 expired).

    A classroom link logs in as the classroom's account and replaces that account's earlier logins that
    could be in the same meeting; a guest link creates a login without account (role guest, the lobby).
    """
    link = await resolve_join_link(s, request.app, token)
    meeting = await meeting_or_404(s, link.meeting_id)
    if meeting.status == MeetingStatus.CANCELLED:
        raise AccountError(410, "meeting-cancelled", "Buổi tập huấn này đã bị huỷ. / This meeting was cancelled.")
    expires = await meeting_login_expiry(s, meeting.id, request.app[CONFIG].auth.session_hours)
    replaced: list[str] = []
    user: User | None = None
    if link.classroom_id is not None:
        classroom = await s.get(Classroom, link.classroom_id)
        if classroom is None:
            raise AccountError(410, "link-revoked", "Liên kết đã bị thu hồi. / This link was revoked.")
        user = await classroom_account(s, classroom)
        if user.disabled:
            raise AccountError(403, "account-disabled", "Tài khoản của lớp học này đã bị khoá. / "
                                                        "This classroom's account is disabled.")
        replaced = await revoke_logins(s, reason="replaced",
                                       login_ids=await _earlier_logins(s, user.id, meeting.id))
    login = await create_login(s, request, user=user, hours=0, meeting_id=meeting.id, join_link_id=link.id,
                               guest_name="" if user else link.guest_name, expires_at=expires)
    record(s, request, "joinlink.open", f"meeting:{meeting.id}", actor_id=user.id if user else None,
           link_id=link.id, classroom_id=link.classroom_id, guest_name=link.guest_name, replaced=len(replaced))
    return NewLogin(login, replaced)


# ---------------------------------------------------------------- actions of the pages and the API


@dataclass(frozen=True)
class Ended:
    """Ended: the logins an action revoked and why (the reason of `login-revoked`), to announce after the commit."""

    reason: str
    login_ids: list[str]


async def announce(app: web.Application, *ended: Ended) -> None:
    """announce: publish every `Ended` of an action (call it after the commit)."""
    for e in ended:
        await announce_revoked(app, e.login_ids, e.reason)


@dataclass
class LoginDone:
    """LoginDone: a password login: the account, its new login, and the logins it ended."""

    user: User
    login: LoginSession
    ended: tuple[Ended, Ended]


async def log_in(s: AsyncSession, request: web.Request, username: str, password: str) -> LoginDone:
    """log_in: check the password (`authenticate`), start the login and end the caller's current one."""
    current = identity(request)
    user = await authenticate(s, request, username, password)
    new = await start_login(s, request, user)
    previous = await end_login(s, current.login_id) if current else []
    return LoginDone(user, new.login, (Ended("replaced", new.replaced), Ended("logout", previous)))


async def log_out(s: AsyncSession, login_id: str) -> Ended:
    """log_out: end one login."""
    return Ended("logout", await end_login(s, login_id))


def refuse_link_login(ident: Identity) -> None:
    """refuse_link_login: a 403 `link-login` for a join-link login (it serves its meeting, never the account)."""
    if ident.link_scoped:
        raise AccountError(403, "link-login", "Đăng nhập bằng liên kết tham gia chỉ dùng cho buổi tập huấn của liên "
                                              "kết; hãy đăng nhập bằng mật khẩu để làm việc này. / A join-link login "
                                              "serves its meeting only; log in with the password to do this.")


async def change_own_password(s: AsyncSession, request: web.Request | None, ident: Identity, old: str,
                              new: str) -> Ended:
    """change_own_password: the caller's own change (`change_password`), audit-logged; their other logins end.

    Refused to a join-link login (403 `link-login`); with a request, a wrong current password counts as a failed
    login of the account from this address (429 like a login; the check runs off the event loop).
    """
    refuse_link_login(ident)
    user = await user_by_id(s, ident.user_id or 0)
    if request is None:
        ids = await change_password(s, user, old, new, keep_login=ident.login_id)
    else:
        limiter, account, ip = request.app[LOGIN_LIMITER], f"user:{user.username}", client_ip(request)
        await _limited_check(request, account)
        try:
            ids = await change_password(s, user, old, new, keep_login=ident.login_id, pool=passwords_of(request))
        except AccountError as exc:
            if exc.code == "wrong-password":
                await limiter.failed(account, ip)
            raise
        await limiter.succeeded(account, ip)
    record(s, request, "user.password-change", f"user:{user.id}", ended=len(ids))
    return Ended("password-changed", ids)


async def add_account(s: AsyncSession, request: web.Request | None, *, username: str, display_name: str, role: Role,
                      email: str = "", classroom_id: int | None = None, unit_id: int | None = None,
                      language: str = "vi", password: str | None = None) -> CreatedUser:
    """add_account: `create_user`, audit-logged."""
    created = await create_user(s, username=username, display_name=display_name, role=role, email=email,
                                classroom_id=classroom_id, unit_id=unit_id, language=language, password=password,
                                pool=passwords_of(request))
    record(s, request, "user.create", f"user:{created.user.id}", username=created.user.username,
           role=created.user.role.value)
    return created


async def edit_account(s: AsyncSession, request: web.Request | None, user: User, changes: dict[str, Any],
                       actor_id: int | None) -> dict[str, Any]:
    """edit_account: `update_user`, audit-logged when something changed; returns what changed."""
    done = await update_user(s, user, changes, actor_id=actor_id)
    if done:
        record(s, request, "user.update", f"user:{user.id}", **done)
    return done


async def reset_account(s: AsyncSession, request: web.Request | None, user_id: int) -> tuple[User, str, Ended]:
    """reset_account: a new generated password (`reset_password`), audit-logged; the account's logins end."""
    user = await user_by_id(s, user_id)
    password, ids = await reset_password(s, user, pool=passwords_of(request))
    record(s, request, "user.reset-password", f"user:{user.id}", ended=len(ids))
    return user, password, Ended("password-reset", ids)


async def disable_account(s: AsyncSession, request: web.Request | None, user_id: int, disabled: bool,
                          actor_id: int | None) -> tuple[User, Ended]:
    """disable_account: disable (its logins end) or enable an account (`set_disabled`), audit-logged."""
    user = await user_by_id(s, user_id)
    ids = await set_disabled(s, user, disabled, actor_id=actor_id)
    record(s, request, "user.disable" if disabled else "user.enable", f"user:{user.id}", ended=len(ids))
    return user, Ended("disabled", ids)


async def account_choices(s: AsyncSession, user: User | None = None) -> tuple[list[Classroom], list[Unit]]:
    """account_choices: the account form's classrooms (by code) and current provinces (by name; the account's own
    unit first when it is not one of them)."""
    classrooms = await all_classrooms(s)
    units = list((await s.scalars(select(Unit).where(Unit.level == UnitLevel.PROVINCE, Unit.valid_to.is_(None))
                                  .order_by(Unit.name))).all())
    if user is not None and user.unit_id and all(u.id != user.unit_id for u in units):
        extra = await s.get(Unit, user.unit_id)
        if extra is not None:
            units.insert(0, extra)
    return classrooms, units


async def add_join_link(s: AsyncSession, request: web.Request | None, config: Config, meeting_id: int, *,
                        classroom_id: int | None, guest_name: str, hours: float | None,
                        created_by: int | None) -> tuple[JoinLink, Classroom | None]:
    """add_join_link: `create_join_link` for a meeting (404 unknown), audit-logged; with the link's classroom."""
    meeting = await meeting_or_404(s, meeting_id)
    link = await create_join_link(s, config, meeting, classroom_id=classroom_id, guest_name=guest_name,
                                  hours=hours, created_by=created_by)
    classroom = await s.get(Classroom, link.classroom_id) if link.classroom_id else None
    record(s, request, "joinlink.create", f"meeting:{meeting.id}", link_id=link.id, classroom_id=link.classroom_id,
           guest_name=link.guest_name)
    return link, classroom


async def remove_join_link(s: AsyncSession, request: web.Request | None, meeting_id: int, link_id: int,
                           end_logins: bool) -> tuple[JoinLink, Classroom | None, Ended]:
    """remove_join_link: `revoke_join_link`, audit-logged; with the link's classroom and the logins it ended."""
    link, ids = await revoke_join_link(s, meeting_id, link_id, end_logins)
    classroom = await s.get(Classroom, link.classroom_id) if link.classroom_id else None
    record(s, request, "joinlink.revoke", f"meeting:{meeting_id}", link_id=link.id, ended=len(ids))
    return link, classroom, Ended("link-revoked", ids)


async def link_classrooms(s: AsyncSession, meeting_id: int) -> tuple[list[Classroom], list[Classroom]]:
    """link_classrooms: the active classrooms invited to a meeting and the other active ones, by code."""
    invited = set((await s.scalars(select(meeting_classrooms.c.classroom_id)
                                   .where(meeting_classrooms.c.meeting_id == meeting_id))).all())
    classrooms = await all_classrooms(s, active_only=True)
    return [c for c in classrooms if c.id in invited], [c for c in classrooms if c.id not in invited]


# ---------------------------------------------------------------- CLI


async def run_user_command(config: Config, args: argparse.Namespace) -> int:
    """run_user_command: `taphuan user add|list|passwd|disable|enable` on the configured database."""
    from server.db.engine import make_engine, make_sessionmaker, migrate

    config.data_path.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.database_url)
    try:
        await migrate(engine)
        async with make_sessionmaker(engine)() as s:
            return await _user_command(s, args)
    except AccountError as exc:
        print(f"taphuan user: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()


async def _user_command(s: AsyncSession, args: argparse.Namespace) -> int:
    cmd = args.user_command
    if cmd == "list":
        users = await search_users(s, limit=100_000)
        print(f"{'USERNAME':<24} {'ROLE':<10} {'STATUS':<9} NAME")
        for u in users:
            print(f"{u.username:<24} {u.role.value:<10} {'disabled' if u.disabled else 'active':<9} {u.display_name}")
        return 0
    if cmd == "add":
        classroom_id = None
        if args.classroom:
            classroom = await s.scalar(select(Classroom).where(Classroom.code == args.classroom))
            if classroom is None:
                raise AccountError(404, "unknown-classroom", f"Không có lớp học mã '{args.classroom}'. / "
                                                             f"No classroom with code '{args.classroom}'.")
            classroom_id = classroom.id
        created = await create_user(s, username=args.username, display_name=args.name or args.username,
                                    role=Role(args.role), classroom_id=classroom_id, password=args.password)
        record(s, None, "user.create", f"user:{created.user.id}", via="cli", username=created.user.username,
               role=created.user.role.value)
        await s.commit()
        print(f"Account created: {created.user.username} ({created.user.role.value})")
        if created.password:
            print(f"  password: {created.password}")
        return 0
    user = await user_by_name(s, args.username)
    if cmd == "passwd":
        password, _ids = await reset_password(s, user, args.password)
        record(s, None, "user.reset-password", f"user:{user.id}", via="cli")
        await s.commit()
        print(f"Password changed for {user.username}; its logins were ended.")
        if args.password is None:
            print(f"  password: {password}")
        return 0
    if cmd in ("disable", "enable"):
        await set_disabled(s, user, cmd == "disable", actor_id=None)
        record(s, None, f"user.{cmd}", f"user:{user.id}", via="cli")
        await s.commit()
        print(f"Account {user.username} {'disabled; its logins were ended' if cmd == 'disable' else 'enabled'}.")
        return 0
    raise AccountError(400, "unknown-command", f"Lệnh không rõ: {cmd}. / Unknown command: {cmd}.")


# ---------------------------------------------------------------- audit log


@dataclass
class AuditFilter:
    """AuditFilter: what the audit log pages and API filter on (dates are local days, inclusive)."""

    action: str = ""
    actor: str = ""
    since: dt.date | None = None
    until: dt.date | None = None
    limit: int = 100
    offset: int = 0


def parse_day(value: str | None, field: str) -> dt.date | None:
    """parse_day: a YYYY-MM-DD query value, None when empty, or a 422 naming the field."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise AccountError(422, "invalid", f"{field}: cần ngày dạng YYYY-MM-DD. / {field}: expected YYYY-MM-DD.",
                           field=field) from None


async def audit_entries(s: AsyncSession, config: Config, f: AuditFilter) -> list[tuple[AuditEntry, str | None]]:
    """audit_entries: matching audit entries, newest first, with the actor's username."""
    q = (select(AuditEntry, User.username).outerjoin(User, User.id == AuditEntry.actor_id)
         .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()))
    if f.action:
        q = q.where(or_(AuditEntry.action == f.action, AuditEntry.action.like(f"{f.action}.%")))
    if f.actor:
        q = q.where(User.username == normalize_username(f.actor))
    tz = config.tz
    if f.since is not None:
        q = q.where(AuditEntry.at >= dt.datetime.combine(f.since, dt.time(), tz))
    if f.until is not None:
        q = q.where(AuditEntry.at < dt.datetime.combine(f.until + dt.timedelta(days=1), dt.time(), tz))
    rows = await s.execute(q.limit(max(1, min(f.limit, 500))).offset(max(0, f.offset)))
    return [(entry, username) for entry, username in rows.all()]


async def audit_actions(s: AsyncSession) -> list[str]:
    """audit_actions: the distinct actions present in the log (for the filter list)."""
    return list((await s.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action))).all())
