"""server.auth: passwords, login sessions, join links, CSRF and role checks.

Who owns what:
- `LoginSession` rows (the only "sessions" in Taphuan) are created by `login()` and `open_join_link()`
  and revoked by `logout()`, by an operator disabling an account, or when the same classroom opens a
  join link for the same meeting on a second PC (reason "replaced"; the bus tells the live connection).
- `auth_middleware` resolves the cookie into an `Identity` for each request, stored in
  `request["identity"]`. Handlers call `require(request, *roles)`, or use the `@requires` decorator.
- `csrf_middleware` refuses state-changing requests without the login's CSRF token (header
  `X-CSRF-Token` or form field `csrf_token`); anonymous forms (login) use a double-submit cookie.
- `LoginLimiter` counts failures per account and per IP in memory, with an injectable clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import CONFIG
from server.db.engine import DB
from server.db.models import JoinLink, LoginSession, Meeting, Role, User, utcnow
from server.errors import ApiError
from server.inputs import read_form

COOKIE = "taphuan_login"
CSRF_COOKIE = "taphuan_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """hash_password: an argon2id hash of the password."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """verify_password: True when the password matches the stored argon2 hash."""
    if not stored_hash:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """generate_password: a random password that is easy to read aloud and type."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    groups = ["".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4)]
    return "-".join(groups)


@dataclass(frozen=True)
class Secrets:
    """Secrets: keys generated into the data directory on first run (never committed)."""

    session_key: bytes
    link_key: bytes

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Secrets:
        """Secrets.load_or_create: read data_dir/secrets/*.key, creating them (mode 0600) if missing."""
        folder = data_dir / "secrets"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        values = []
        for name in ("session", "link"):
            path = folder / f"{name}.key"
            if not path.exists():
                path.write_bytes(secrets.token_hex(32).encode())
                path.chmod(0o600)
            values.append(path.read_bytes().strip())
        return cls(session_key=values[0], link_key=values[1])


@dataclass(frozen=True)
class Identity:
    """Identity: who made a request (from the login cookie)."""

    login_id: str
    role: Role
    csrf_token: str
    user_id: int | None = None
    username: str = ""
    display_name: str = ""
    classroom_id: int | None = None
    meeting_id: int | None = None
    language: str = "vi"

    @property
    def is_presenter(self) -> bool:
        """Identity.is_presenter: trainers and leaders present."""
        return self.role in (Role.TRAINER, Role.LEADER)

    @property
    def is_staff(self) -> bool:
        """Identity.is_staff: operators, trainers and leaders."""
        return self.role in (Role.OPERATOR, Role.TRAINER, Role.LEADER)


def identity(request: web.Request) -> Identity | None:
    """identity: the request's Identity, or None when not logged in."""
    value = request.get(IDENTITY)
    return value if isinstance(value, Identity) else None


def _wants_html(request: web.Request) -> bool:
    return not request.path.startswith("/api/") and "text/html" in request.headers.get("Accept", "")


def require(request: web.Request, *roles: Role) -> Identity:
    """require: the Identity if its role is among `roles` (any role when none given); else 401/403."""
    ident = identity(request)
    if ident is None:
        if _wants_html(request):
            raise web.HTTPSeeOther(location=f"/login?next={request.path_qs}")
        raise ApiError(401, "unauthenticated", "Cần đăng nhập. / Login required.")
    if roles and ident.role not in roles:
        raise ApiError(403, "forbidden", "Vai trò của bạn không được phép làm việc này. / Your role may not do this.")
    return ident


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def requires(*roles: Role) -> Callable[[Handler], Handler]:
    """requires: decorator form of `require` for handlers (roles are also read by the OpenAPI builder)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def inner(request: web.Request) -> web.StreamResponse:
            require(request, *roles)
            return await handler(request)

        inner.roles = roles  # type: ignore[attr-defined]
        return inner

    return wrap


def client_ip(request: web.Request) -> str:
    """client_ip: the peer address (X-Forwarded-For only from configured trusted proxies)."""
    peer = request.remote or ""
    cfg = request.app[CONFIG]
    if peer in cfg.server.trusted_proxies:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()
    return peer


def cookie_secure(request: web.Request) -> bool:
    """cookie_secure: whether cookies get the Secure flag."""
    mode = request.app[CONFIG].auth.cookie_secure
    if mode == "always":
        return True
    if mode == "never":
        return False
    return request.secure or request.headers.get("X-Forwarded-Proto") == "https"


def set_login_cookie(request: web.Request, response: web.StreamResponse, login: LoginSession) -> None:
    """set_login_cookie: HttpOnly, SameSite=Lax cookie holding the login token."""
    max_age = int((login.expires_at - utcnow()).total_seconds())
    response.set_cookie(COOKIE, login.id, max_age=max(max_age, 0), httponly=True, samesite="Lax",
                        secure=cookie_secure(request), path="/")


class LoginLimiter:
    """LoginLimiter: at most N failures per minute per account and per IP, then "try again in N s"."""

    WINDOW = 60.0

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.WINDOW:
            q.popleft()
        if not q:
            self._failures.pop(key, None)
            return deque()
        return q

    def retry_after(self, *keys_: str) -> int:
        """LoginLimiter.retry_after: seconds to wait (0 when allowed)."""
        now = self.clock()
        wait = 0.0
        for key in keys_:
            q = self._prune(key, now)
            if len(q) >= self.limit:
                wait = max(wait, q[0] + self.WINDOW - now)
        return int(wait) + (1 if wait > int(wait) else 0)

    def failed(self, *keys_: str) -> None:
        """LoginLimiter.failed: record one failure for each key."""
        now = self.clock()
        for key in keys_:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, account_key: str) -> None:
        """LoginLimiter.succeeded: forget the account's failures (the IP's stay)."""
        self._failures.pop(account_key, None)


async def create_login(s: AsyncSession, request: web.Request, *, user: User | None, hours: float,
                       meeting_id: int | None = None, join_link_id: int | None = None,
                       guest_name: str = "", expires_at: dt.datetime | None = None) -> LoginSession:
    """create_login: a new LoginSession row (caller commits)."""
    login = LoginSession(
        id=secrets.token_urlsafe(32),
        user_id=user.id if user else None,
        meeting_id=meeting_id,
        join_link_id=join_link_id,
        guest_name=guest_name,
        csrf_token=secrets.token_urlsafe(24),
        created_at=utcnow(),
        expires_at=expires_at or utcnow() + dt.timedelta(hours=hours),
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:300],
    )
    s.add(login)
    return login


async def revoke_logins(s: AsyncSession, *, reason: str, user_id: int | None = None,
                        login_ids: list[str] | None = None) -> list[str]:
    """revoke_logins: revoke matching live logins; returns their ids (caller commits and notifies)."""
    q = select(LoginSession.id).where(LoginSession.revoked_at.is_(None))
    if user_id is not None:
        q = q.where(LoginSession.user_id == user_id)
    if login_ids is not None:
        q = q.where(LoginSession.id.in_(login_ids))
    ids = list((await s.scalars(q)).all())
    if ids:
        await s.execute(update(LoginSession).where(LoginSession.id.in_(ids))
                        .values(revoked_at=utcnow(), revoked_reason=reason))
    return ids


async def load_identity(s: AsyncSession, token: str) -> Identity | None:
    """load_identity: the Identity for a login token, or None if unknown, expired, revoked or disabled."""
    login = await s.get(LoginSession, token)
    if login is None or login.revoked_at is not None or login.expires_at <= utcnow():
        return None
    if login.user_id is None:
        return Identity(login_id=login.id, role=Role.GUEST, csrf_token=login.csrf_token,
                        display_name=login.guest_name, meeting_id=login.meeting_id)
    user = await s.get(User, login.user_id)
    if user is None or user.disabled:
        return None
    return Identity(login_id=login.id, role=user.role, csrf_token=login.csrf_token, user_id=user.id,
                    username=user.username, display_name=user.display_name,
                    classroom_id=user.classroom_id, meeting_id=login.meeting_id, language=user.language)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """auth_middleware: resolve the login cookie into request["identity"]."""
    token = request.cookies.get(COOKIE)
    if token and len(token) <= 64:
        async with request.app[DB]() as s:
            ident = await load_identity(s, token)
        if ident is not None:
            request[IDENTITY] = ident
    return await handler(request)


UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_EXEMPT = frozenset({"/healthz", "/metrics"})


def csrf_token_for_form(request: web.Request) -> str:
    """csrf_token_for_form: the token a form on this page must carry (login's, or the anonymous cookie)."""
    ident = identity(request)
    if ident is not None:
        return ident.csrf_token
    token = request.get(ANON_CSRF) or request.cookies.get(CSRF_COOKIE)
    if not token or len(token) > 64:
        token = secrets.token_urlsafe(24)
    request[ANON_CSRF] = token
    return str(token)


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """csrf_middleware: refuse unsafe requests without a matching CSRF token; set the anonymous cookie."""
    if request.method in UNSAFE and request.path not in CSRF_EXEMPT:
        ident = identity(request)
        expected = ident.csrf_token if ident else request.cookies.get(CSRF_COOKIE, "")
        given = request.headers.get(CSRF_HEADER, "")
        if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            if request.content_type == "application/x-www-form-urlencoded":
                form = await read_form(request)
                given = str(form.get(CSRF_FIELD, ""))
            else:
                given = request.query.get(CSRF_FIELD, "")
        if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
            raise ApiError(403, "csrf", "Phiên biểu mẫu đã hết hạn, hãy tải lại trang. / "
                                        "Missing or wrong CSRF token: reload the page.")
    response = await handler(request)
    anon = request.get(ANON_CSRF)
    if anon and request.cookies.get(CSRF_COOKIE) != anon and not response.prepared:
        response.set_cookie(CSRF_COOKIE, anon, httponly=True, samesite="Strict", secure=cookie_secure(request),
                            path="/")
    return response


def link_serializer(request_or_app: web.Request | web.Application) -> URLSafeSerializer:
    """link_serializer: signs join-link tokens with the link key (expiry lives in the JoinLink row)."""
    app = request_or_app.app if isinstance(request_or_app, web.Request) else request_or_app
    return URLSafeSerializer(app[SECRETS].link_key, salt="join-link")


def join_link_token(app: web.Application, link: JoinLink) -> str:
    """join_link_token: the signed token of a JoinLink (binds id and expiry)."""
    return link_serializer(app).dumps({"l": link.id, "e": int(link.expires_at.timestamp())})


class JoinLinkError(ApiError):
    """JoinLinkError: a join link that is tampered with, unknown, revoked or expired."""


async def resolve_join_link(s: AsyncSession, app: web.Application, token: str) -> JoinLink:
    """resolve_join_link: the JoinLink of a token, or JoinLinkError (400 tampered, 410 expired/revoked)."""
    try:
        data: Any = link_serializer(app).loads(token)
    except BadSignature:
        raise JoinLinkError(400, "link-invalid", "Liên kết không hợp lệ. / This link is not valid.") from None
    if not isinstance(data, dict) or not isinstance(data.get("l"), int):
        raise JoinLinkError(400, "link-invalid", "Liên kết không hợp lệ. / This link is not valid.")
    link = await s.get(JoinLink, data["l"])
    if link is None or int(link.expires_at.timestamp()) != data.get("e"):
        raise JoinLinkError(400, "link-invalid", "Liên kết không hợp lệ. / This link is not valid.")
    if link.revoked:
        raise JoinLinkError(410, "link-revoked", "Liên kết đã bị thu hồi. / This link was revoked.")
    if link.expires_at <= utcnow():
        raise JoinLinkError(410, "link-expired", "Liên kết đã hết hạn. / This link has expired.")
    return link


async def meeting_login_expiry(s: AsyncSession, meeting_id: int, hours: float) -> dt.datetime:
    """meeting_login_expiry: a join-link login lasts until the meeting's end plus a margin."""
    meeting = await s.get(Meeting, meeting_id)
    base = utcnow() + dt.timedelta(hours=hours)
    if meeting is not None:
        base = max(base, meeting.ends_at + dt.timedelta(hours=6))
    return base

SECRETS: web.AppKey[Secrets] = web.AppKey("secrets")
LOGIN_LIMITER: web.AppKey[LoginLimiter] = web.AppKey("login_limiter")
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")  # set by auth_middleware
ANON_CSRF: web.RequestKey[str] = web.RequestKey("anon_csrf")  # an anonymous visitor's CSRF token
