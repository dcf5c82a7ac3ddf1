"""server.people.enrolment: who belongs to a program, and what each role may do with its learning content.

A program has trainers (`program_trainers`) and enrolled learners (`program_learners`); operators set
both (audited). `program_access(s, ident, program_id)` is the one answer to "may this login read this
program's materials, forum and quizzes, and may it manage them?":

- operators: read and manage every program;
- trainers and leaders: read and manage the programs they train or whose meetings they present;
- learners: read the programs they are enrolled in (their study progress is tracked);
- classrooms: read the programs of the published meetings they are invited to (a join-link login: only
  the program of its one meeting);
- guests: nothing.

`require_access` turns a refusal into 403 (404 when the program does not exist).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import CompoundSelect, Select, Table, delete, exists, false, func, insert, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.auth import Identity
from server.db.models import (
    PRESENTER_ROLES,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    User,
    meeting_classrooms,
    meeting_presenters,
    program_learners,
    program_trainers,
)
from server.errors import ApiError

MAX_CSV_BYTES = 1_048_576


@dataclass(frozen=True)
class Access:
    """Access: what a login may do with one program's learning content."""

    program_id: int
    read: bool = False
    manage: bool = False
    learner: bool = False


def forbidden() -> ApiError:
    """forbidden: the 403 for a program the caller does not belong to."""
    return ApiError(403, "forbidden", "Bạn không tham gia chương trình này. / You do not belong to this program.")


def readable_ids(ident: Identity) -> Select[Any] | CompoundSelect | None:
    """readable_ids: a query of the program ids `ident` may read (None: every program, for operators)."""
    if ident.role == Role.OPERATOR:
        return None
    uid = ident.user_id if ident.user_id is not None else -1
    if ident.role in PRESENTER_ROLES:
        return union(select(program_trainers.c.program_id).where(program_trainers.c.user_id == uid),
                     select(Meeting.program_id).join(meeting_presenters, meeting_presenters.c.meeting_id == Meeting.id)
                     .where(meeting_presenters.c.user_id == uid))
    if ident.role == Role.LEARNER:
        return select(program_learners.c.program_id).where(program_learners.c.user_id == uid)
    if ident.role == Role.CLASSROOM and ident.classroom_id is not None:
        q = (select(Meeting.program_id).join(meeting_classrooms, meeting_classrooms.c.meeting_id == Meeting.id)
             .where(Meeting.status == MeetingStatus.PUBLISHED,
                    meeting_classrooms.c.classroom_id == ident.classroom_id))
        if ident.meeting_id is not None:
            q = q.where(Meeting.id == ident.meeting_id)
        return q
    return select(Program.id).where(false())


async def program_access(s: AsyncSession, ident: Identity | None, program_id: int) -> Access:
    """program_access: what `ident` may do with program `program_id` (see the module docstring)."""
    if ident is None:
        return Access(program_id)
    ids = readable_ids(ident)
    if ids is None:
        return Access(program_id, read=True, manage=True)
    ok = bool(await s.scalar(select(exists().where(Program.id == program_id, Program.id.in_(ids)))))
    return Access(program_id, read=ok, manage=ok and ident.role in PRESENTER_ROLES,
                  learner=ok and ident.role == Role.LEARNER)


async def require_access(s: AsyncSession, ident: Identity, program_id: int, manage: bool = False) -> Access:
    """require_access: the caller's Access to an existing program, or 404 (no program) / 403 (not allowed)."""
    if await s.get(Program, program_id) is None:
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
    access = await program_access(s, ident, program_id)
    if not access.read or (manage and not access.manage):
        raise forbidden()
    return access


async def program_for(s: AsyncSession, ident: Identity, program_id: int,
                      manage: bool = False) -> tuple[Program, Access]:
    """program_for: the program and the caller's Access to it (`require_access`: 404 / 403)."""
    access = await require_access(s, ident, program_id, manage=manage)
    program = await s.get(Program, program_id)
    assert program is not None
    return program, access


async def my_programs(s: AsyncSession, ident: Identity) -> list[Program]:
    """my_programs: the programs `ident` may read, newest first."""
    q = select(Program).order_by(Program.created_at.desc(), Program.id.desc())
    ids = readable_ids(ident)
    if ids is not None:
        q = q.where(Program.id.in_(ids))
    return list((await s.scalars(q)).all())


# --- people ---------------------------------------------------------------------------------------

async def learners(s: AsyncSession, program_id: int) -> list[User]:
    """learners: the enrolled learners of a program, by name."""
    q = (select(User).join(program_learners, program_learners.c.user_id == User.id)
         .where(program_learners.c.program_id == program_id).order_by(User.display_name, User.id))
    return list((await s.scalars(q)).all())


async def trainers(s: AsyncSession, program_id: int) -> list[User]:
    """trainers: the assigned trainers of a program, by name."""
    q = (select(User).join(program_trainers, program_trainers.c.user_id == User.id)
         .where(program_trainers.c.program_id == program_id).order_by(User.display_name, User.id))
    return list((await s.scalars(q)).all())


async def staff_of(s: AsyncSession, program_id: int) -> list[User]:
    """staff_of: assigned trainers and presenters of the program's meetings (who answer its forum)."""
    presenters = (select(meeting_presenters.c.user_id).join(Meeting, Meeting.id == meeting_presenters.c.meeting_id)
                  .where(Meeting.program_id == program_id))
    assigned = select(program_trainers.c.user_id).where(program_trainers.c.program_id == program_id)
    q = select(User).where(or_(User.id.in_(presenters), User.id.in_(assigned))).order_by(User.display_name)
    return list((await s.scalars(q)).all())


async def choices(s: AsyncSession, roles: Sequence[Role]) -> list[User]:
    """choices: active accounts of `roles`, by name (for the enrolment pickers)."""
    q = (select(User).where(User.role.in_(list(roles)), User.disabled.is_(False))
         .order_by(User.display_name, User.id))
    return list((await s.scalars(q)).all())


def _invalid(field: str, vi: str, en: str) -> ApiError:
    return ApiError(422, "invalid", f"{field}: {vi} / {en}", field=field)


async def resolve_users(s: AsyncSession, field: str, roles: Sequence[Role], user_ids: Sequence[int] = (),
                        usernames: Sequence[str] = ()) -> list[User]:
    """resolve_users: accounts named by id or username, each of one of `roles` (422 naming the first wrong one)."""
    out: dict[int, User] = {}
    if user_ids:
        found = {u.id: u for u in (await s.scalars(select(User).where(User.id.in_(list(user_ids))))).all()}
        for uid in user_ids:
            if uid not in found:
                raise _invalid(field, f"không có tài khoản {uid}", f"no account {uid}")
            out[uid] = found[uid]
    names = [n.strip() for n in usernames if n.strip()]
    if names:
        q = select(User).where(func.lower(User.username).in_([n.lower() for n in names]))
        by_name = {u.username.lower(): u for u in (await s.scalars(q)).all()}
        for name in names:
            user = by_name.get(name.lower())
            if user is None:
                raise _invalid(field, f"không có tài khoản {name}", f"no account {name}")
            out[user.id] = user
    for user in out.values():
        if user.role not in roles:
            wanted = ", ".join(r.value for r in roles)
            raise _invalid(field, f"{user.username} không có vai trò {wanted}", f"{user.username} is not a {wanted}")
    return list(out.values())


async def _set(s: AsyncSession, t: Table, program_id: int, users: Sequence[User]) -> tuple[int, int]:
    current = set((await s.scalars(select(t.c.user_id).where(t.c.program_id == program_id))).all())
    wanted = {u.id for u in users}
    added, removed = wanted - current, current - wanted
    if removed:
        await s.execute(delete(t).where(t.c.program_id == program_id, t.c.user_id.in_(removed)))
    if added:
        await s.execute(insert(t), [{"program_id": program_id, "user_id": uid} for uid in sorted(added)])
    return len(added), len(removed)


async def set_learners(s: AsyncSession, request: web.Request | None, program_id: int,
                       users: Sequence[User]) -> tuple[int, int]:
    """set_learners: make `users` the program's learners exactly; returns (added, removed); audited."""
    added, removed = await _set(s, program_learners, program_id, users)
    audit.record(s, request, "program.learners", f"program:{program_id}", added=added, removed=removed)
    return added, removed


async def add_learners(s: AsyncSession, request: web.Request | None, program_id: int,
                       users: Sequence[User]) -> int:
    """add_learners: enrol `users` (those already enrolled stay); returns how many were added; audited."""
    current = {u.id for u in await learners(s, program_id)}
    new = [u for u in users if u.id not in current]
    if new:
        await s.execute(insert(program_learners), [{"program_id": program_id, "user_id": u.id} for u in new])
    audit.record(s, request, "program.learners", f"program:{program_id}", added=len(new), removed=0)
    return len(new)


async def remove_learner(s: AsyncSession, request: web.Request | None, program_id: int, user_id: int) -> bool:
    """remove_learner: un-enrol one learner; False when not enrolled; audited."""
    result = await s.execute(delete(program_learners).where(program_learners.c.program_id == program_id,
                                                            program_learners.c.user_id == user_id))
    done = bool(getattr(result, "rowcount", 0))
    if done:
        audit.record(s, request, "program.learners", f"program:{program_id}", added=0, removed=1)
    return done


async def set_trainers(s: AsyncSession, request: web.Request | None, program_id: int,
                       users: Sequence[User]) -> tuple[int, int]:
    """set_trainers: make `users` the program's trainers exactly; returns (added, removed); audited."""
    added, removed = await _set(s, program_trainers, program_id, users)
    audit.record(s, request, "program.trainers", f"program:{program_id}", added=added, removed=removed)
    return added, removed


def parse_usernames_csv(data: bytes) -> list[str]:
    """parse_usernames_csv: usernames from a CSV (first column; a "username" header row is skipped)."""
    if len(data) > MAX_CSV_BYTES:
        raise ApiError(413, "too-large", "Tệp quá lớn (tối đa 1 MB). / The file is too large (at most 1 MB).")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _invalid("file", "tệp không phải UTF-8", "the file is not UTF-8") from None
    out: list[str] = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0].strip() or row[0].strip().startswith("#"):
            continue
        value = row[0].strip()
        if value.lower() in ("username", "tên đăng nhập", "ten dang nhap") and not out:
            continue
        out.append(value)
    if not out:
        raise _invalid("file", "tệp không có tên đăng nhập nào", "the file names no username")
    return out
