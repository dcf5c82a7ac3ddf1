"""server.learning.archive: the archive of recordings as the pages and the API read and change it.

Who may see a recording is `server.live.recordings.visible` (for learners, its audience: `server.live.audience`);
here are the lookups built on it (the library's programs, the list with its filters, one recording or 404/403), the
operators' changes (publish to an audience, unpublish, rename, delete; audit-logged, the caller commits) and the
self-study side of the player: a published recording of a program is one of its lecture videos, so a learner of the
program resumes where they stopped.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit import record
from server.auth import Identity
from server.db.models import Program, Recording, RecordingAudience, RecordingState
from server.errors import ApiError
from server.learning import selfstudy
from server.live.audience import learner_counts
from server.live.recordings import delete_recording, may_view, visible
from server.people import enrolment

LIST_LIMIT = 500


def not_found() -> ApiError:
    """not_found: the 404 of an unknown recording."""
    return ApiError(404, "not-found", "Không có bản ghi hình này. / No such recording.")


def forbidden() -> ApiError:
    """forbidden: the 403 of a recording the caller may not watch."""
    return ApiError(403, "forbidden", "Bạn không được xem bản ghi hình này. / You may not watch this recording.")


async def library_programs(s: AsyncSession, ident: Identity) -> list[tuple[int, str]]:
    """library_programs: (id, title) of the programs having a recording `ident` may watch, by title."""
    rows = await s.execute(select(Program.id, Program.title).where(Program.id.in_(
        select(Recording.program_id).where(visible(ident)))).order_by(Program.title))
    return [(pid, title) for pid, title in rows.all()]


async def find(s: AsyncSession, ident: Identity, *, words: list[str], program_id: int | None = None,
               meeting_id: int | None = None, since: dt.datetime | None = None,
               until: dt.datetime | None = None) -> list[tuple[Recording, str]]:
    """find: the recordings `ident` may watch (newest first, at most `LIST_LIMIT`) with their program's title:
    every word in the title, of one program or meeting, started in [since, until)."""
    stmt: Any = (select(Recording, Program.title).outerjoin(Program, Program.id == Recording.program_id)
                 .where(visible(ident)).order_by(Recording.started_at.desc(), Recording.id.desc()).limit(LIST_LIMIT))
    for word in words:
        stmt = stmt.where(Recording.title.ilike(f"%{word}%"))
    if program_id is not None:
        stmt = stmt.where(Recording.program_id == program_id)
    if meeting_id is not None:
        stmt = stmt.where(Recording.meeting_id == meeting_id)
    if since is not None:
        stmt = stmt.where(Recording.started_at >= since)
    if until is not None:
        stmt = stmt.where(Recording.started_at < until)
    return [(row, title or "") for row, title in (await s.execute(stmt)).all()]


async def viewable(s: AsyncSession, ident: Identity, recording_id: int) -> Recording:
    """viewable: the recording if `ident` may watch it (404 unknown, 403 not allowed)."""
    row = await s.get(Recording, recording_id)
    if row is None:
        raise not_found()
    if not await may_view(s, ident, recording_id):
        raise forbidden()
    return row


async def program_title(s: AsyncSession, row: Recording) -> str:
    """program_title: the title of the recording's program ("" without one)."""
    if row.program_id is None:
        return ""
    return await s.scalar(select(Program.title).where(Program.id == row.program_id)) or ""


async def study_video(s: AsyncSession, ident: Identity, row: Recording) -> dict[str, Any] | None:
    """study_video: for a learner of the recording's program, the player's self-study item and where they stopped
    (None for everyone else, and for a recording that is not a published lecture video)."""
    if row.program_id is None or not row.published or row.state != RecordingState.READY or ident.user_id is None:
        return None
    access = await enrolment.program_access(s, ident, row.program_id)
    if not access.learner:
        return None
    item = f"recording:{row.id}"
    return {"item": item, "program_id": row.program_id, "position": await selfstudy.position(s, ident.user_id, item)}


async def audience(s: AsyncSession, recording_id: int) -> tuple[Recording, dict[RecordingAudience, int]]:
    """audience: the recording and how many learners each audience would reach (404 unknown)."""
    row = await s.get(Recording, recording_id)
    if row is None:
        raise not_found()
    return row, await learner_counts(s, row)


async def change(s: AsyncSession, request: web.Request | None, recording_id: int, *, published: bool | None = None,
                 title: str | None = None, audience: RecordingAudience | None = None) -> Recording:
    """change: publish (ready recordings only: 409), unpublish, rename a recording or choose its audience;
    audit-logged (404 unknown)."""
    row = await s.get(Recording, recording_id)
    if row is None:
        raise not_found()
    if audience is not None and audience != row.audience:
        record(s, request, "recording.audience", f"recording:{row.id}", old=row.audience.value, new=audience.value)
        row.audience = audience
    if published is not None and published != row.published:
        if published and row.state != RecordingState.READY:
            raise ApiError(409, "not-ready", "Chỉ công bố được bản ghi đã sẵn sàng. / Only a ready recording can "
                                             "be published.")
        row.published = published
        record(s, request, "recording.publish" if published else "recording.unpublish", f"recording:{row.id}",
               title=row.title)
    if title is not None and title.strip() != row.title:
        record(s, request, "recording.rename", f"recording:{row.id}", old=row.title, new=title.strip())
        row.title = title.strip()
    return row


async def remove(s: AsyncSession, request: web.Request | None, root: Path, recording_id: int) -> None:
    """remove: delete a recording's files and row (404 unknown; 409 while it is recorded or processed)."""
    row = await s.get(Recording, recording_id)
    if row is None:
        raise not_found()
    if row.state in (RecordingState.RECORDING, RecordingState.PROCESSING):
        raise ApiError(409, "busy", "Bản ghi đang được ghi hoặc xử lý. / The recording is still being made.")
    await delete_recording(s, root, row, request, reason="deleted by an operator")
