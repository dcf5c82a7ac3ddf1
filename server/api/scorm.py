"""server.api.scorm: /api/v1 SCORM packages: what a package holds, launching an attempt, committing its data.

Anyone who may read the program (`server.people.enrolment.program_access`) and has an account may play its
packages; each gets their own attempts. A commit needs the learner's session (and CSRF token, as every
write) and the attempt's signed token from the launch (server.learning.scormrt): it writes that attempt and
nothing else; at most `learning.commits_per_minute` per attempt (429 with Retry-After).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import SECRETS, Identity, require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Material, MaterialKind, ScormAttempt, ScormPackage, User
from server.errors import ApiError
from server.learning import materials as materials_svc
from server.learning import scormrt, selfstudy
from server.learning.content import CONTENT
from server.openapi import endpoint, int_param, json_response, parse_body
from server.people import enrolment
from server.people.accounts import find_user


class ScoOut(BaseModel):
    """ScoOut: one launchable item of a package, with the caller's status in it."""

    identifier: str
    title: str
    sco: bool
    completion: str
    success: str
    score_scaled: float | None
    total_seconds: float


class PackageOut(BaseModel):
    """PackageOut: a package material: SCORM version (null: not SCORM, `reason` says why) and its items."""

    material_id: int
    version: str | None
    title: str
    reason: str
    scos: list[ScoOut]
    completed: bool
    passed: bool | None
    score: int | None
    seconds: float


class ScormAttemptOut(BaseModel):
    """ScormAttemptOut: one learner's attempt at one SCO, as last committed (times in seconds)."""

    user_id: int
    username: str
    display_name: str
    sco: str
    number: int
    completion: str
    success: str
    lesson_status: str
    score_raw: float | None
    score_min: float | None
    score_max: float | None
    score_scaled: float | None
    total_seconds: float
    sessions: int
    updated_at: dt.datetime


class LaunchIn(BaseModel):
    """LaunchIn: which item to launch (empty: the first) and whether to start a new attempt."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    sco: str = Field("", max_length=200)
    restart: bool = False


class LaunchOut(BaseModel):
    """LaunchOut: what the page hands the player: the attempt, session and token, the launch URL, the data model."""

    attempt_id: int
    number: int
    session: int
    token: str
    version: str
    sco: str
    title: str
    player_url: str
    launch_url: str
    content_origin: str
    cmi: dict[str, str]


class CommitIn(BaseModel):
    """CommitIn: one commit of the player: the attempt's token, its session, the commit's sequence number, the data."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    token: str = Field(max_length=200)
    session: int = Field(ge=1, le=1_000_000)
    seq: int = Field(ge=1, le=100_000_000)
    cmi: dict[str, Any] = Field(max_length=scormrt.MAX_ELEMENTS)
    terminate: bool = False


class CommitOut(BaseModel):
    """CommitOut: whether the data was applied (false: an older commit), whether the lesson was opened again since
    (`superseded`: another PC or tab has a newer session; the page asks to reload), and the attempt's state now."""

    applied: bool
    superseded: bool
    completion: str
    success: str
    score_scaled: float | None
    total_seconds: float
    total_time: str


async def _package(s: AsyncSession, ident: Identity, material_id: int) -> tuple[Material, ScormPackage | None,
                                                                                 enrolment.Access]:
    material = await materials_svc.get(s, material_id)
    access = await enrolment.require_access(s, ident, material.program_id)
    if material.kind != MaterialKind.PACKAGE:
        raise ApiError(422, "not-a-package", "Học liệu này không phải gói bài giảng điện tử. / "
                       "This material is not an e-learning package.")
    return material, await scormrt.package_of(s, material), access


def _user_id(ident: Identity) -> int:
    if ident.user_id is None:
        raise ApiError(403, "forbidden", "Cần tài khoản để học bài giảng điện tử. / "
                       "An account is needed to study an e-learning package.")
    return ident.user_id


def _number(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


@endpoint("GET", "/api/v1/materials/{id}/scorm", name="api-material-scorm",
          summary="A package material: SCORM version (or why it is not SCORM), its items and the caller's status",
          response=PackageOut, tag="scorm", errors=(422,))
async def package_info(request: web.Request) -> web.Response:
    """package_info: the package's items with the caller's newest attempt in each."""
    ident = require(request)
    async with request.app[DB]() as s:
        material, pkg, _ = await _package(s, ident, int_param(request, "id"))
        attempts = await scormrt.attempts_for(s, ident.user_id, material.id) if ident.user_id else {}
    scos = pkg.scos if scormrt.playable(pkg) and pkg else []
    result = scormrt.package_result(scos, attempts)
    out = [ScoOut(identifier=x["identifier"], title=x["title"], sco=bool(x.get("sco", True)),
                  completion=a.completion if a else "not attempted", success=a.success if a else "unknown",
                  score_scaled=_number(a.score_scaled) if a else None, total_seconds=a.total_seconds if a else 0.0)
           for x in scos for a in [attempts.get(x["identifier"])]]
    reason = pkg.reason if pkg else ("Gói được tải lên trước khi hỗ trợ SCORM; hãy tải lên lại. / "
                                     "Uploaded before SCORM support; upload it again.")
    return json_response(PackageOut(material_id=material.id, version=pkg.version if pkg else None,
                                    title=pkg.title if pkg else "", reason=reason, scos=out,
                                    completed=result.completed, passed=result.passed, score=result.score,
                                    seconds=result.seconds))


@endpoint("GET", "/api/v1/materials/{id}/scorm/attempts", name="api-material-scorm-attempts",
          summary="Every learner's attempts at a SCORM package (trainers of the program, operators)",
          response=ScormAttemptOut, response_list=True, tag="scorm", errors=(422,))
async def package_attempts(request: web.Request) -> web.Response:
    """package_attempts: the results of a package material per learner, SCO and attempt."""
    ident = require(request)
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        material, _, _ = await _package(s, ident, int_param(request, "id"))
        await enrolment.require_access(s, ident, material.program_id, manage=True)
        rows = await scormrt.material_attempts(s, material.id)
    return json_response([ScormAttemptOut(user_id=u.id, username=u.username, display_name=u.display_name, sco=a.sco,
                                     number=a.number, completion=a.completion, success=a.success,
                                     lesson_status=a.lesson_status, score_raw=_number(a.score_raw),
                                     score_min=_number(a.score_min), score_max=_number(a.score_max),
                                     score_scaled=_number(a.score_scaled), total_seconds=a.total_seconds,
                                     sessions=a.sessions, updated_at=a.updated_at.astimezone(tz))
                          for a, u in rows])


def launch_out(request: web.Request, attempt: ScormAttempt, pkg: ScormPackage, sco: dict[str, Any],
               user: User) -> LaunchOut:
    """launch_out: the LaunchOut of an opened attempt (token signed with the server's session key)."""
    origin = request.app[CONTENT].for_request(request)
    token = scormrt.sign_token(request.app[SECRETS].session_key, attempt.id, attempt.sessions)
    return LaunchOut(attempt_id=attempt.id, number=attempt.number, session=attempt.sessions, token=token,
                     version=attempt.version, sco=sco["identifier"], title=sco["title"],
                     player_url=f"{origin}/player", launch_url=f"{origin}/pkg/{pkg.sha256}/{sco['href']}",
                     content_origin=origin, cmi=scormrt.initial_cmi(attempt, sco, user))


@endpoint("POST", "/api/v1/materials/{id}/scorm/launch", name="api-material-scorm-launch",
          summary="Open (or resume) the caller's attempt at one item of a SCORM package: a new session, its token "
                  "and the data model to start from", body=LaunchIn, response=LaunchOut, tag="scorm",
          errors=(409, 422), body_optional=True)
async def launch(request: web.Request) -> web.Response:
    """launch: open the newest attempt (or a new one with `restart`) at an item; counts the material as opened."""
    ident = require(request)
    data = await parse_body(request, LaunchIn) if request.can_read_body else LaunchIn()
    uid = _user_id(ident)
    for tries in range(3):
        try:
            return await _launch(request, ident, uid, data)
        except IntegrityError:  # the same attempt (or package) made at once by another request (a double click)
            if tries == 2:
                raise ApiError(409, "busy", "Bài học đang được mở ở nơi khác, xin thử lại. / The lesson is being "
                               "opened elsewhere: try again.") from None
    raise AssertionError("unreachable")


async def _launch(request: web.Request, ident: Identity, uid: int, data: LaunchIn) -> web.Response:
    """_launch: one try of `launch` in one transaction (a unique row made meanwhile by another raises)."""
    async with request.app[DB]() as s:
        material, pkg, access = await _package(s, ident, int_param(request, "id"))
        pkg = await scormrt.ensure(s, request.app[CONFIG], material)
        if pkg is None or not scormrt.playable(pkg):
            raise ApiError(422, "not-scorm", "Gói này không phải SCORM: chỉ tải xuống được. / "
                           "This package is not SCORM: it can only be downloaded.",
                           reason=pkg.reason if pkg else "")
        sco = scormrt.find_sco(pkg, data.sco)
        user = await find_user(s, uid)
        if user is None:
            raise ApiError(403, "forbidden", "Cần tài khoản. / An account is needed.")
        attempt = await scormrt.open_attempt(s, user, material, pkg, sco, restart=data.restart)
        if access.learner:
            await selfstudy.record_open(s, uid, material.program_id, f"material:{material.id}")
        await s.commit()
        out = launch_out(request, attempt, pkg, sco, user)
    return json_response(out)


@endpoint("POST", "/api/v1/scorm/attempts/{id}/commit", name="api-scorm-commit",
          summary="Commit an attempt's SCORM data (the player's, relayed by the page): ordered by session and "
                  "sequence number; an older commit is not applied", body=CommitIn, response=CommitOut, tag="scorm",
          errors=(422, 429))
async def commit(request: web.Request) -> web.Response:
    """commit: check the token and limits, then apply the commit to the caller's own attempt."""
    ident = require(request)
    uid = _user_id(ident)
    attempt_id = int_param(request, "id")
    data = await parse_body(request, CommitIn)
    if not scormrt.check_token(request.app[SECRETS].session_key, data.token, attempt_id, data.session):
        raise ApiError(403, "bad-token", "Phiên học không hợp lệ hoặc đã hết hạn, hãy mở lại bài. / "
                       "The study session is not valid or has expired; open the lesson again.")
    limiter = request.app[scormrt.COMMIT_LIMITER]
    wait = limiter.allow(attempt_id)
    if wait:
        raise ApiError(429, "too-many-commits", "Lưu quá nhiều lần, sẽ thử lại sau. / Too many commits; retry later.",
                       retry_after=math.ceil(wait))
    async with request.app[DB]() as s:
        attempt = await s.get(ScormAttempt, attempt_id, with_for_update=True)  # two tabs: one commit at a time
        if attempt is None or attempt.user_id != uid:
            raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
        if data.session > attempt.sessions:
            raise ApiError(403, "bad-token", "Phiên học không hợp lệ. / The study session is not valid.")
        material = await s.get(Material, attempt.material_id)
        pkg = await scormrt.package_of(s, material) if material else None
        if material is None or pkg is None or not scormrt.playable(pkg):
            raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
        sco = scormrt.find_sco(pkg, attempt.sco)
        cmi = scormrt.check_cmi(data.cmi, attempt.version)
        result = scormrt.commit(attempt, sco, data.session, data.seq, cmi)
        await scormrt.touch_progress(s, attempt, pkg)
        await s.commit()
        out = CommitOut(applied=result.applied, superseded=data.session < attempt.sessions,
                        completion=attempt.completion, success=attempt.success,
                        score_scaled=_number(attempt.score_scaled), total_seconds=attempt.total_seconds,
                        total_time=scormrt.format_time(attempt.total_seconds, attempt.version))
    return json_response(out)


def setup(app: web.Application) -> None:
    """setup: the per-attempt commit limiter."""
    app[scormrt.COMMIT_LIMITER] = scormrt.CommitLimiter(app[CONFIG].learning.commits_per_minute)
