"""server.learning.scormrt: SCORM packages in the database and the runtime data of learners' attempts.

- `ensure(s, config, material)` does the same, lazily, for a package material uploaded before SCORM support or
  whose extracted directory is missing (after a restore).
- `register(s, config, sha256, path)` inspects an uploaded ZIP once per content hash (server.learning.scorm),
  extracts a SCORM package to <data_dir>/packages/<sha256>/ and keeps a `ScormPackage` row (or the reason it
  is not SCORM); a broken or unsafe package raises `BadPackage` (the upload is refused).
- `launch` opens (or resumes) a learner's attempt at one SCO: a new session number, a signed per-attempt token
  (`sign_token`: HMAC of attempt, session and expiry; it lets the holder write that attempt's data and nothing
  else) and the data model the runtime starts from (`initial_cmi`: location, suspend data, status, score,
  total time, entry "resume" after an exit "suspend", the manifest's mastery score / scaled passing score).
- `commit` applies a commit of the player: checked (element names, value sizes, suspend_data at most 4096
  characters in 1.2 and 64000 in 2004), ordered by (session, seq) so that a late commit never overwrites newer
  data, the session's reported time kept (the largest seen per session) and summed into the total time.
  1.2's lesson_status becomes passed/failed from the mastery score when the SCO reports a raw score; 2004's
  success status from the scaled passing score and completion from the completion threshold.
- `package_results` sums a program's package attempts per learner and material for progress and reports: the
  best attempt of each SCO (completed, passed, score), the time of every attempt.
- Time: `parse_time` reads 1.2 `HHHH:MM:SS.SS` and 2004 ISO 8601 durations; `format_time` writes them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import math
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server import files
from server.config import Config
from server.db.models import Material, ScormAttempt, ScormPackage, StudyProgress, User, utcnow
from server.errors import ApiError
from server.learning import scorm

TOKEN_DAYS = 30
SUSPEND_LIMIT = {"1.2": 4096, "2004": 64000}
VALUE_LIMIT = 64000
MAX_ELEMENTS = 4000
MAX_SESSIONS_KEPT = 500
MAX_SESSION_SECONDS = 7 * 86400.0
ELEMENT = re.compile(r"^(?:cmi|adl)\.[A-Za-z0-9_.]{1,250}$")
COMPLETED_12 = ("completed", "passed", "failed")


# --- time -----------------------------------------------------------------------------------------

_T12 = re.compile(r"^(\d{2,4}):([0-5]\d):([0-5]\d)(\.\d{1,2})?$")
_ISO = re.compile(r"^P(?:(\d+(?:\.\d+)?)Y)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)D)?"
                  r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_time(text: str) -> float | None:
    """parse_time: seconds of a 1.2 (HHHH:MM:SS.SS) or 2004 (ISO 8601, e.g. PT1H2M3.5S) duration; None if neither."""
    text = (text or "").strip()
    m = _T12.match(text)
    if m:
        return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3]) + float(m[4] or 0)
    m = _ISO.match(text)
    if m and text not in ("P", "PT") and not text.endswith("T"):
        y, mo, d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        return ((y * 365 + mo * 30 + d) * 24 + h) * 3600 + mi * 60 + s
    return None


def format_time(seconds: float, version: str) -> str:
    """format_time: a duration as the version writes it: 1.2 "HHHH:MM:SS.SS", 2004 "PT#H#M#.##S"."""
    cs = max(0, round(seconds * 100))
    h, rest = divmod(cs, 360000)
    m, rest = divmod(rest, 6000)
    s = rest / 100
    if version == "1.2":
        return f"{min(h, 9999):04d}:{m:02d}:{s:05.2f}"
    return f"PT{h}H{m}M{s:.2f}S".replace(".00S", "S")


# --- packages -------------------------------------------------------------------------------------

async def register(s: AsyncSession, config: Config, sha256: str, path: Path) -> ScormPackage:
    """register: the ScormPackage of an uploaded ZIP (inspected and extracted once per hash; BadPackage refuses)."""
    row = await s.get(ScormPackage, sha256)
    root = scorm.packages_root(config.data_path)
    if row is not None and (row.version is None or scorm.package_dir(root, sha256).is_dir()):
        return row
    try:
        manifest = await asyncio.to_thread(scorm.inspect, path, config.learning)
    except scorm.NotScorm as exc:
        row = row or ScormPackage(sha256=sha256)
        row.version, row.title, row.scos, row.reason = None, "", [], f"{exc.vi} / {exc.en}"
        row.files, row.size, row.created_at = 0, 0, utcnow()
        return await _add_once(s, row)
    await asyncio.to_thread(scorm.extract, path, root, sha256, config.learning)
    row = row or ScormPackage(sha256=sha256)
    row.version, row.title, row.scos, row.reason = manifest.version, manifest.title, manifest.sco_dicts(), ""
    row.files, row.size, row.created_at = manifest.files, manifest.size, utcnow()
    return await _add_once(s, row)


async def _add_once(s: AsyncSession, row: ScormPackage) -> ScormPackage:
    """_add_once: `row` added (or updated), or the row of the same hash another request (the same ZIP uploaded twice
    at once) stored meanwhile."""
    try:
        async with s.begin_nested():
            s.add(row)
        return row
    except IntegrityError:
        return await s.get(ScormPackage, row.sha256, populate_existing=True) or row


async def register_upload(s: AsyncSession, config: Config, sha256: str, path: Path) -> ScormPackage:
    """register_upload: `register` for an upload: a bad package is a 422 naming the reason, and its stored file is
    removed unless another material holds the same content."""
    try:
        return await register(s, config, sha256, path)
    except scorm.BadPackage as exc:
        used = await s.scalar(select(Material.id).where(Material.sha256 == sha256).limit(1))
        if used is None:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        raise ApiError(422, "bad-package", f"Gói SCORM bị từ chối: {exc.vi}. / The SCORM package was refused: "
                       f"{exc.en}.", reason_vi=exc.vi, reason_en=exc.en) from None


async def ensure(s: AsyncSession, config: Config, material: Material) -> ScormPackage | None:
    """ensure: the ScormPackage of a package material, inspecting one uploaded before SCORM support and extracting
    again one whose directory is missing (`taphuan backup` leaves <data_dir>/packages out: it comes from the upload).
    A package found unsafe now is kept as a download with the reason. The caller commits."""
    row = await s.get(ScormPackage, material.sha256)
    if row is not None and (row.version is None or scorm.package_dir(scorm.packages_root(config.data_path),
                                                                     material.sha256).is_dir()):
        return row
    path = files.path_of(files.uploads_root(config), material.sha256)
    if not path.is_file():
        return row
    try:
        return await register(s, config, material.sha256, path)
    except scorm.BadPackage as exc:
        row = row or ScormPackage(sha256=material.sha256)
        row.version, row.title, row.scos = None, "", []
        row.reason = f"Gói SCORM bị từ chối: {exc.vi}. / The SCORM package was refused: {exc.en}."
        row.files, row.size, row.created_at = 0, 0, utcnow()
        return await _add_once(s, row)


async def packages_by_hash(s: AsyncSession, hashes: Sequence[str]) -> dict[str, ScormPackage]:
    """packages_by_hash: the ScormPackage rows of these content hashes."""
    if not hashes:
        return {}
    rows = await s.scalars(select(ScormPackage).where(ScormPackage.sha256.in_(list(set(hashes)))))
    return {p.sha256: p for p in rows.all()}


async def package_of(s: AsyncSession, material: Material) -> ScormPackage | None:
    """package_of: the ScormPackage row of a package material (None: not inspected, e.g. uploaded before)."""
    return await s.get(ScormPackage, material.sha256)


def playable(pkg: ScormPackage | None) -> bool:
    """playable: the package is SCORM and has items to launch."""
    return pkg is not None and pkg.version is not None and bool(pkg.scos)


# --- tokens ---------------------------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_token(key: bytes, attempt_id: int, session: int, now: float | None = None) -> str:
    """sign_token: "<attempt>.<session>.<expiry>.<mac>": lets its holder commit that attempt's session only."""
    expiry = int((now or time.time()) + TOKEN_DAYS * 86400)
    body = f"{attempt_id}.{session}.{expiry}"
    mac = hmac.new(hashlib.sha256(b"scorm-attempt:" + key).digest(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def check_token(key: bytes, token: str, attempt_id: int, session: int, now: float | None = None) -> bool:
    """check_token: the token was signed for this attempt and session and has not expired."""
    parts = token.split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
        return False
    body = ".".join(parts[:3])
    mac = hmac.new(hashlib.sha256(b"scorm-attempt:" + key).digest(), body.encode(), hashlib.sha256).digest()
    return (hmac.compare_digest(_b64(mac), parts[3]) and int(parts[0]) == attempt_id and int(parts[1]) == session
            and int(parts[2]) >= (now or time.time()))


# --- attempts -------------------------------------------------------------------------------------

def find_sco(pkg: ScormPackage, identifier: str) -> dict[str, Any]:
    """find_sco: the package's item with this identifier (the first one when empty), or 404."""
    for sco in pkg.scos:
        if not identifier or sco["identifier"] == identifier:
            return sco
    raise ApiError(404, "not-found", "Không tìm thấy bài học trong gói. / No such item in the package.")


async def latest_attempt(s: AsyncSession, user_id: int, material_id: int, sco: str) -> ScormAttempt | None:
    """latest_attempt: a learner's newest attempt at one SCO of a package material (locked: a launch changes it)."""
    q = (select(ScormAttempt).where(ScormAttempt.user_id == user_id, ScormAttempt.material_id == material_id,
                                    ScormAttempt.sco == sco).order_by(ScormAttempt.number.desc()).limit(1)
         .with_for_update())
    return (await s.scalars(q)).first()


async def attempts_for(s: AsyncSession, user_id: int, material_id: int) -> dict[str, ScormAttempt]:
    """attempts_for: a learner's newest attempt per SCO of a package material."""
    q = (select(ScormAttempt).where(ScormAttempt.user_id == user_id, ScormAttempt.material_id == material_id)
         .order_by(ScormAttempt.number))
    return {a.sco: a for a in (await s.scalars(q)).all()}


async def open_attempt(s: AsyncSession, user: User, material: Material, pkg: ScormPackage, sco: dict[str, Any],
                       restart: bool = False) -> ScormAttempt:
    """open_attempt: the attempt to launch (the newest, or a new one when `restart`) with a new session number."""
    attempt = await latest_attempt(s, user.id, material.id, sco["identifier"])
    if attempt is None or restart:
        now = utcnow()
        attempt = ScormAttempt(user_id=user.id, material_id=material.id, program_id=material.program_id,
                               sco=sco["identifier"], number=(attempt.number + 1) if attempt else 1,
                               version=pkg.version or "1.2", sessions=0, last_session=0, last_seq=0,
                               completion="not attempted", success="unknown", lesson_status="not attempted",
                               location="", suspend_data="", exit="", session_seconds={}, total_seconds=0.0,
                               cmi={}, created_at=now, updated_at=now)
        s.add(attempt)
    attempt.sessions = (attempt.sessions or 0) + 1
    await s.flush()
    return attempt


def _num(value: float | None) -> str | None:
    return None if value is None else f"{value:g}"


def initial_cmi(attempt: ScormAttempt, sco: dict[str, Any], user: User) -> dict[str, str]:
    """initial_cmi: the flattened data model the runtime starts the session from (what the SCO may read)."""
    v12 = attempt.version == "1.2"
    started = attempt.sessions > 1 or attempt.last_seq > 0
    entry = "resume" if attempt.exit == "suspend" else ("" if started else "ab-initio")
    total = format_time(attempt.total_seconds, attempt.version)
    score = {"raw": _num(attempt.score_raw), "min": _num(attempt.score_min), "max": _num(attempt.score_max)}
    if v12:
        out = {"cmi.core.student_id": user.username, "cmi.core.student_name": user.display_name[:255],
               "cmi.core.lesson_location": attempt.location, "cmi.core.lesson_status": attempt.lesson_status,
               "cmi.core.entry": entry, "cmi.core.total_time": total, "cmi.suspend_data": attempt.suspend_data,
               "cmi.launch_data": sco.get("launch_data") or "", "cmi.core.credit": "credit",
               "cmi.core.lesson_mode": "normal"}
        out.update({f"cmi.core.score.{k}": v for k, v in score.items() if v is not None})
        if sco.get("mastery_score") is not None:
            out["cmi.student_data.mastery_score"] = f"{sco['mastery_score']:g}"
        return out
    out = {"cmi.learner_id": user.username, "cmi.learner_name": user.display_name[:250],
           "cmi.location": attempt.location, "cmi.completion_status": attempt.completion,
           "cmi.success_status": attempt.success, "cmi.entry": entry, "cmi.total_time": total,
           "cmi.suspend_data": attempt.suspend_data, "cmi.launch_data": sco.get("launch_data") or "",
           "cmi.credit": "credit", "cmi.mode": "normal"}
    out.update({f"cmi.score.{k}": v for k, v in score.items() if v is not None})
    if attempt.score_scaled is not None and attempt.version == "2004":
        out["cmi.score.scaled"] = f"{attempt.score_scaled:g}"
    if sco.get("scaled_passing_score") is not None:
        out["cmi.scaled_passing_score"] = f"{sco['scaled_passing_score']:g}"
    if sco.get("completion_threshold") is not None:
        out["cmi.completion_threshold"] = f"{sco['completion_threshold']:g}"
        # with a threshold the runtime reports completion from the progress measure: hand the last one back
        out["cmi.progress_measure"] = (attempt.cmi or {}).get("cmi.progress_measure", "")
    return {k: v for k, v in out.items() if v != "" or k in ("cmi.entry",)}


def _float(value: str | None) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        f = float(value)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _invalid(field_name: str, vi: str, en: str) -> ApiError:
    return ApiError(422, "invalid", f"{field_name}: {vi} / {en}", field=field_name)


def check_cmi(cmi: dict[str, Any], version: str) -> dict[str, str]:
    """check_cmi: a commit's elements as strings (422 for an unknown name, a value too long, too many elements)."""
    if len(cmi) > MAX_ELEMENTS:
        raise _invalid("cmi", f"quá nhiều phần tử (tối đa {MAX_ELEMENTS})",
                       f"too many elements (at most {MAX_ELEMENTS})")
    out: dict[str, str] = {}
    for key, value in cmi.items():
        if isinstance(value, (dict, list)) and not value:
            continue  # an empty collection (cmi.interactions, cmi.objectives): nothing to keep
        if not isinstance(key, str) or not ELEMENT.match(key):
            raise _invalid("cmi", f"tên phần tử không hợp lệ: {str(key)[:60]!r}", f"not a data-model element: "
                           f"{str(key)[:60]!r}")
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value is None:
            raise _invalid("cmi", f"{key}: giá trị phải là chuỗi hoặc số",
                           f"{key}: the value must be a string or number")
        text = value if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
        if len(text) > VALUE_LIMIT:
            raise _invalid("cmi", f"{key}: giá trị quá dài", f"{key}: the value is too long")
        out[key] = text
    limit = SUSPEND_LIMIT.get(version, 4096)
    if len(out.get("cmi.suspend_data", "")) > limit:
        raise _invalid("cmi", f"cmi.suspend_data dài quá {limit} ký tự (SCORM {version})",
                       f"cmi.suspend_data is longer than {limit} characters (SCORM {version})")
    return out


def derive(attempt: ScormAttempt, sco: dict[str, Any], cmi: dict[str, str]) -> None:
    """derive: the attempt's status, score, location, suspend data and exit from its data model."""
    if attempt.version == "1.2":
        status = cmi.get("cmi.core.lesson_status", attempt.lesson_status) or "not attempted"
        raw = _float(cmi.get("cmi.core.score.raw"))
        lo, hi = _float(cmi.get("cmi.core.score.min")), _float(cmi.get("cmi.core.score.max"))
        mastery = sco.get("mastery_score")
        if mastery is not None and raw is not None and status in COMPLETED_12:
            status = "passed" if raw >= mastery else "failed"
        attempt.lesson_status = status[:20]
        attempt.completion = ("completed" if status in COMPLETED_12 else
                              "incomplete" if status in ("incomplete", "browsed") else "not attempted")
        attempt.success = status if status in ("passed", "failed") else "unknown"
        attempt.score_raw, attempt.score_min, attempt.score_max = raw, lo, hi
        if raw is None:
            attempt.score_scaled = None
        elif hi is not None and hi > (lo or 0.0):
            attempt.score_scaled = max(0.0, min(1.0, (raw - (lo or 0.0)) / (hi - (lo or 0.0))))
        else:
            attempt.score_scaled = max(0.0, min(1.0, raw / 100))
        attempt.location = cmi.get("cmi.core.lesson_location", attempt.location)
        attempt.exit = cmi.get("cmi.core.exit", attempt.exit)[:20]
    else:
        completion = cmi.get("cmi.completion_status", attempt.completion) or "unknown"
        success = cmi.get("cmi.success_status", attempt.success) or "unknown"
        scaled = _float(cmi.get("cmi.score.scaled"))
        progress = _float(cmi.get("cmi.progress_measure"))
        threshold = sco.get("completion_threshold")
        if threshold is not None and progress is not None:
            completion = "completed" if progress >= threshold else "incomplete"
        passing = sco.get("scaled_passing_score")
        if passing is not None and scaled is not None:
            success = "passed" if scaled >= passing else "failed"
        attempt.completion, attempt.success = completion[:20], success[:20]
        attempt.lesson_status = completion[:20]
        attempt.score_raw = _float(cmi.get("cmi.score.raw"))
        attempt.score_min, attempt.score_max = _float(cmi.get("cmi.score.min")), _float(cmi.get("cmi.score.max"))
        attempt.score_scaled = scaled
        attempt.location = cmi.get("cmi.location", attempt.location)
        attempt.exit = cmi.get("cmi.exit", attempt.exit)[:20]
    attempt.suspend_data = cmi.get("cmi.suspend_data", attempt.suspend_data)


@dataclass
class CommitResult:
    """CommitResult: whether the commit's data was applied (False: an older commit than the one held)."""

    applied: bool
    attempt: ScormAttempt


def record_session_time(attempt: ScormAttempt, session: int, cmi: dict[str, str]) -> None:
    """record_session_time: keep the session's reported time (the largest seen) and sum the total time."""
    reported = cmi.get("cmi.core.session_time" if attempt.version == "1.2" else "cmi.session_time")
    seconds = parse_time(reported) if reported else None
    if seconds is None:
        return
    times = dict(attempt.session_seconds or {})
    key = str(session)
    times[key] = max(times.get(key, 0.0), min(seconds, MAX_SESSION_SECONDS))
    if len(times) > MAX_SESSIONS_KEPT:  # fold the oldest sessions into "0"
        keys = sorted((k for k in times if k != "0"), key=int)
        for k in keys[:len(times) - MAX_SESSIONS_KEPT]:
            times["0"] = times.get("0", 0.0) + times.pop(k)
    attempt.session_seconds = times
    attempt.total_seconds = sum(times.values())


def commit(attempt: ScormAttempt, sco: dict[str, Any], session: int, seq: int, cmi: dict[str, str]) -> CommitResult:
    """commit: apply a checked commit unless an equal or newer (session, seq) was applied already."""
    record_session_time(attempt, session, cmi)
    attempt.updated_at = utcnow()
    if (session, seq) <= (attempt.last_session, attempt.last_seq):
        return CommitResult(applied=False, attempt=attempt)
    merged = dict(attempt.cmi or {})
    merged.update(cmi)
    if len(merged) > MAX_ELEMENTS:
        merged = cmi
    attempt.cmi = merged
    attempt.last_session, attempt.last_seq = session, seq
    derive(attempt, sco, merged)
    return CommitResult(applied=True, attempt=attempt)


@dataclass
class CommitLimiter:
    """CommitLimiter: at most `per_minute` commits per attempt in any minute (this process)."""

    per_minute: int
    seen: dict[int, deque[float]] = field(default_factory=dict)

    def allow(self, attempt_id: int, now: float | None = None) -> float:
        """CommitLimiter.allow: 0 when the commit may go ahead, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        q = self.seen.setdefault(attempt_id, deque())
        while q and q[0] <= now - 60:
            q.popleft()
        if len(q) >= self.per_minute:
            return max(0.1, q[0] + 60 - now)
        q.append(now)
        if len(self.seen) > 10_000:
            for key in [k for k, v in self.seen.items() if not v or v[-1] <= now - 60]:
                del self.seen[key]
        return 0.0


COMMIT_LIMITER: web.AppKey[CommitLimiter] = web.AppKey("scorm_commit_limiter", CommitLimiter)


# --- results --------------------------------------------------------------------------------------

@dataclass
class PackageResult:
    """PackageResult: one learner's result in one package material (over the newest attempt of each SCO)."""

    completed: bool = False
    passed: bool | None = None
    score: int | None = None
    seconds: float = 0.0
    last_at: dt.datetime | None = None


def package_result(scos: Sequence[dict[str, Any]], attempts: dict[str, ScormAttempt],
                   seconds: float | None = None) -> PackageResult:
    """package_result: completed when every SCO is; passed when every SCO passed (None: no pass mark); score the
    mean scaled score in percent of the SCOs that have one; seconds the sum of their total times (or `seconds`)."""
    ids = [s["identifier"] for s in scos if s.get("sco", True)]
    got = [attempts[i] for i in ids if i in attempts]
    out = PackageResult()
    if not got:
        return out
    out.completed = len(got) == len(ids) and all(a.completion == "completed" for a in got)
    successes = [a.success for a in got if a.success in ("passed", "failed")]
    if successes:
        out.passed = "failed" not in successes and len(successes) == len(ids) and out.completed
    scaled = [a.score_scaled for a in got if a.score_scaled is not None]
    out.score = round(100 * sum(scaled) / len(scaled)) if scaled else None
    out.seconds = sum(a.total_seconds for a in got) if seconds is None else seconds
    out.last_at = max(a.updated_at for a in got)
    return out


async def package_results(s: AsyncSession, program_id: int,
                          user_ids: Sequence[int]) -> dict[tuple[int, int], PackageResult]:
    """package_results: {(user_id, material_id): PackageResult} of a program's playable package materials."""
    if not user_ids:
        return {}
    pkgs = {m.id: p for m, p in (await s.execute(
        select(Material, ScormPackage).join(ScormPackage, ScormPackage.sha256 == Material.sha256)
        .where(Material.program_id == program_id, ScormPackage.version.is_not(None)))).all()}
    if not pkgs:
        return {}
    rows = (await s.scalars(select(ScormAttempt).where(ScormAttempt.program_id == program_id,
                                                       ScormAttempt.user_id.in_(list(user_ids)),
                                                       ScormAttempt.material_id.in_(list(pkgs)))
                            .order_by(ScormAttempt.number))).all()
    grouped: dict[tuple[int, int], dict[str, ScormAttempt]] = {}
    seconds: dict[tuple[int, int], float] = {}
    for a in rows:  # the best attempt of each SCO counts ("start over" loses nothing); time counts every attempt
        best = grouped.setdefault((a.user_id, a.material_id), {})
        if a.sco not in best or _rank(a) >= _rank(best[a.sco]):
            best[a.sco] = a
        seconds[(a.user_id, a.material_id)] = seconds.get((a.user_id, a.material_id), 0.0) + a.total_seconds
    return {key: package_result(pkgs[key[1]].scos, attempts, seconds[key]) for key, attempts in grouped.items()}


def _rank(a: ScormAttempt) -> tuple[bool, bool, float, int]:
    return (a.completion == "completed", a.success == "passed", a.score_scaled or 0.0, a.number)


async def material_attempts(s: AsyncSession, material_id: int) -> list[tuple[ScormAttempt, User]]:
    """material_attempts: every attempt at a package material with its learner, by learner name, SCO and number."""
    q = (select(ScormAttempt, User).join(User, User.id == ScormAttempt.user_id)
         .where(ScormAttempt.material_id == material_id)
         .order_by(User.display_name, User.id, ScormAttempt.sco, ScormAttempt.number))
    return [(a, u) for a, u in (await s.execute(q)).all()]


async def playable_materials(s: AsyncSession, program_id: int) -> set[int]:
    """playable_materials: the ids of a program's materials that are SCORM packages."""
    q = (select(Material.id).join(ScormPackage, ScormPackage.sha256 == Material.sha256)
         .where(Material.program_id == program_id, ScormPackage.version.is_not(None)))
    return set((await s.scalars(q)).all())


async def touch_progress(s: AsyncSession, attempt: ScormAttempt, pkg: ScormPackage) -> None:
    """touch_progress: the material's StudyProgress row follows the package: last activity, completed."""
    row = await s.scalar(select(StudyProgress).where(StudyProgress.user_id == attempt.user_id,
                                                     StudyProgress.item == f"material:{attempt.material_id}"))
    if row is None:
        return
    result = (await package_results(s, attempt.program_id, [attempt.user_id])).get(
        (attempt.user_id, attempt.material_id), PackageResult())
    row.completed = result.completed
    row.watched = result.seconds
    row.last_at = utcnow()
