"""server.auth: passwords, login sessions, join links, CSRF and role checks.

Who owns what:
- `LoginSession` rows (the only "sessions" in Taphuan) are created by `login()` and `open_join_link()`
  and revoked by `logout()`, by an operator disabling an account, or when the same classroom opens a
  join link for the same meeting on a second PC (reason "replaced"; the bus tells the live connection).
- `ApiToken` rows are bearer tokens for clients that are not browsers (`Authorization: Bearer …`), issued by
  `POST /api/v1/tokens` (server.people.tokens) against a password; they end like logins (`revoke_logins`, their
  login id is `token:<id>`).
- `auth_middleware` resolves the bearer token, else the cookie, into an `Identity` for each request, stored in
  `request["identity"]`. Handlers call `require(request, *roles)`, or use the `@requires` decorator.
- `csrf_middleware` refuses state-changing requests without the login's CSRF token (header
  `X-CSRF-Token` or form field `csrf_token`); anonymous forms (login) use a double-submit cookie. A request
  with a bearer token needs none: no other site's page can add that header.
- Password hashing for requests runs off the event loop (server.passwords); failures are limited by
  `server.ratelimit.LoginLimiter`; the client's address is `client_ip` (server.forwarded believes proxies).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
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

from server.config import CONFIG, SecretsSection
from server.db.engine import DB
from server.db.models import ApiToken, JoinLink, LoginSession, Meeting, Role, User, utcnow
from server.errors import ApiError
from server.forwarded import same_origin
from server.inputs import read_form

COOKIE = "taphuan_login"
TOKEN_PREFIX = "token:"  # the login id of a bearer token: "token:<ApiToken.id>"
CSRF_COOKIE = "taphuan_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """hash_password: an argon2id hash of the password, on the calling thread (start-up, scripts; requests use
    server.passwords)."""
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """verify_password: True when the password matches the stored argon2 hash (on the calling thread)."""
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
    def load_or_create(cls, data_dir: Path, configured: SecretsSection | None = None) -> Secrets:
        """Secrets.load_or_create: each key from the configuration (`secrets.*`, the same on every node) when set,
        else read from data_dir/secrets/<name>.key, created (mode 0600) if missing."""
        given = {"session": configured.session_key if configured else "",
                 "link": configured.link_key if configured else ""}
        folder = data_dir / "secrets"
        values = []
        for name in ("session", "link"):
            if given[name]:
                values.append(given[name].encode())
                continue
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = folder / f"{name}.key"
            if not path.exists():
                path.write_bytes(secrets.token_hex(32).encode())
                path.chmod(0o600)
            values.append(path.read_bytes().strip())
        return cls(session_key=values[0], link_key=values[1])


@dataclass(frozen=True)
class Identity:
    """Identity: who made a request (from the login cookie, or a bearer token when `bearer`)."""

    login_id: str
    role: Role
    csrf_token: str
    user_id: int | None = None
    username: str = ""
    display_name: str = ""
    classroom_id: int | None = None
    meeting_id: int | None = None
    language: str = "vi"
    bearer: bool = False

    @property
    def link_scoped(self) -> bool:
        """Identity.link_scoped: a join-link login, scoped to one meeting (it sees that meeting only and may not
        change the account: its password, its calendar feed, its tokens)."""
        return self.meeting_id is not None

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
        if request.get(BEARER_REFUSED):
            raise ApiError(401, "token-invalid", "Mã truy cập không hợp lệ, đã hết hạn hoặc bị thu hồi. / "
                                                 "The bearer token is invalid, expired or revoked.")
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
    """client_ip: the client's address: the peer, or what a trusted proxy forwarded (server.forwarded rewrote the
    request; a header from anyone else is never believed)."""
    return request.remote or ""


def cookie_secure(request: web.Request) -> bool:
    """cookie_secure: whether cookies get the Secure flag (auto: the request came over https, as the client made
    it: a trusted proxy's X-Forwarded-Proto counts, anyone else's does not)."""
    mode = request.app[CONFIG].auth.cookie_secure
    if mode == "always":
        return True
    if mode == "never":
        return False
    return request.secure


def set_login_cookie(request: web.Request, response: web.StreamResponse, login: LoginSession) -> None:
    """set_login_cookie: HttpOnly, SameSite=Lax cookie holding the login token."""
    max_age = int((login.expires_at - utcnow()).total_seconds())
    response.set_cookie(COOKIE, login.id, max_age=max(max_age, 0), httponly=True, samesite="Lax",
                        secure=cookie_secure(request), path="/")


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
    """revoke_logins: revoke matching live logins and bearer tokens (`token:<id>`: all of an account's when
    `user_id` is given without `login_ids`); returns their login ids (caller commits and notifies)."""
    q = select(LoginSession.id).where(LoginSession.revoked_at.is_(None))
    t = select(ApiToken.id).where(ApiToken.revoked_at.is_(None))
    if user_id is not None:
        q = q.where(LoginSession.user_id == user_id)
        t = t.where(ApiToken.user_id == user_id)
    if login_ids is not None:
        q = q.where(LoginSession.id.in_([i for i in login_ids if not i.startswith(TOKEN_PREFIX)]))
        t = t.where(ApiToken.id.in_([int(i[len(TOKEN_PREFIX):]) for i in login_ids
                                     if i.startswith(TOKEN_PREFIX) and i[len(TOKEN_PREFIX):].isdigit()]))
    ids = list((await s.scalars(q)).all())
    tokens = list((await s.scalars(t)).all())
    now = utcnow()
    if ids:
        await s.execute(update(LoginSession).where(LoginSession.id.in_(ids))
                        .values(revoked_at=now, revoked_reason=reason))
    if tokens:
        await s.execute(update(ApiToken).where(ApiToken.id.in_(tokens)).values(revoked_at=now, revoked_reason=reason))
    return ids + [f"{TOKEN_PREFIX}{i}" for i in tokens]


def token_digest(secret: str) -> str:
    """token_digest: the SHA-256 (hex) under which a bearer token's secret is stored."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


async def load_token_identity(s: AsyncSession, secret: str) -> Identity | None:
    """load_token_identity: the Identity of a bearer token (the account's role, no meeting scope), or None if
    unknown, expired, revoked or its account disabled."""
    token = await s.scalar(select(ApiToken).where(ApiToken.secret_hash == token_digest(secret)))
    if token is None or token.revoked_at is not None or token.expires_at <= utcnow():
        return None
    user = await s.get(User, token.user_id)
    if user is None or user.disabled or user.role == Role.GUEST:
        return None
    return Identity(login_id=f"{TOKEN_PREFIX}{token.id}", role=user.role, csrf_token="", user_id=user.id,
                    username=user.username, display_name=user.display_name, classroom_id=user.classroom_id,
                    language=user.language, bearer=True)


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


def bearer_secret(request: web.Request) -> str | None:
    """bearer_secret: the token of an `Authorization: Bearer …` header, None without one ("" when malformed)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    return value if 0 < len(value) <= 200 else ""


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """auth_middleware: resolve the bearer token, else the login cookie, into request["identity"].

    The cookie is not looked at when a bearer token is sent. A token that is not one of ours (wrong, expired,
    revoked; or another credential, e.g. a metrics scraper's) leaves the request anonymous and marked, so that
    `require` answers 401 `token-invalid` rather than "login required".
    """
    secret = bearer_secret(request)
    if secret is not None:
        async with request.app[DB]() as s:
            ident = await load_token_identity(s, secret) if secret else None
        if ident is not None:
            request[IDENTITY] = ident
        else:
            request[BEARER_REFUSED] = True
        return await handler(request)
    token = request.cookies.get(COOKIE)
    if token and len(token) <= 64:
        async with request.app[DB]() as s:
            ident = await load_identity(s, token)
        if ident is not None:
            request[IDENTITY] = ident
    return await handler(request)


def websocket_origin_ok(request: web.Request) -> bool:
    """websocket_origin_ok: may this WebSocket upgrade go on? One authenticated by the login cookie must carry an
    `Origin` naming this server, scheme, host and port (server.forwarded.same_origin): a browser always sends it,
    and it is what stops another site's page from using the visitor's cookie. One authenticated by a bearer token
    needs none: a page cannot add that header to a WebSocket."""
    ident = identity(request)
    return ident is not None and (ident.bearer or same_origin(request))


UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# /api/v1/tokens answers with a token in its body and sets no cookie: another site's form gains nothing by it.
CSRF_EXEMPT = frozenset({"/healthz", "/metrics", "/api/v1/tokens"})


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
    ident = identity(request)
    # A request with an Authorization header was not forged by another site's page (a form cannot add it, a
    # script cannot without a CORS preflight Taphuan never grants): it needs no CSRF token. A request no route
    # takes (404, 405) changes nothing: it gets that answer, not a CSRF refusal.
    routed = request.match_info.http_exception is None
    if request.method in UNSAFE and request.path not in CSRF_EXEMPT and routed and bearer_secret(request) is None:
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
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")  # set by auth_middleware
ANON_CSRF: web.RequestKey[str] = web.RequestKey("anon_csrf")  # an anonymous visitor's CSRF token
BEARER_REFUSED: web.RequestKey[bool] = web.RequestKey("bearer_refused")  # set by auth_middleware
