"""server.pages.archive: /archive (the library of recordings) and /archive/{id} (the player).

Both pages are shells filled from /api/v1/recordings by web/static/archive.js: the library lists what the
caller may watch, by program, meeting and date, with title search, and follows recordings still being
made (state and percentage, polled); the player seeks with HTTP Range requests, shows the chapter list and
offers the download. Operators publish, unpublish and delete (with confirmation) from both. A published
recording is also a lecture video of its program's self-study (`server.learning.selfstudy.program_videos`): for a
learner of the program the player resumes where they stopped and reports watch progress like any study video.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select

from server.auth import require
from server.db.engine import DB
from server.db.models import Program, Recording, RecordingState, Role, StudyProgress
from server.errors import ApiError
from server.live.recordings import may_view, visible
from server.people import enrolment


@aiohttp_jinja2.template("archive.html")
async def archive_page(request: web.Request) -> dict[str, Any]:
    """archive_page: the library of recordings the caller may watch."""
    ident = require(request)
    async with request.app[DB]() as s:
        programs = (await s.execute(
            select(Program.id, Program.title).where(Program.id.in_(
                select(Recording.program_id).where(visible(ident)))).order_by(Program.title))).all()
    return {"programs": [{"id": pid, "title": title} for pid, title in programs],
            "operator": ident.role == Role.OPERATOR}


@aiohttp_jinja2.template("archive_player.html")
async def player_page(request: web.Request) -> dict[str, Any]:
    """player_page: one recording: player, chapters, download (403 when the caller may not watch it)."""
    ident = require(request)
    try:
        rid = int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.") from None
    async with request.app[DB]() as s:
        row = await s.get(Recording, rid)
        if row is None:
            raise ApiError(404, "not-found", "Không có bản ghi hình này. / No such recording.")
        if not await may_view(s, ident, rid):
            raise ApiError(403, "forbidden", "Bạn không được xem bản ghi hình này. / You may not watch this recording.")
        study: dict[str, Any] | None = None
        if (row.program_id is not None and row.published and row.state == RecordingState.READY
                and ident.user_id is not None):
            access = await enrolment.program_access(s, ident, row.program_id)
            if access.learner:
                item = f"recording:{row.id}"
                progress = await s.scalar(select(StudyProgress).where(StudyProgress.user_id == ident.user_id,
                                                                      StudyProgress.item == item))
                study = {"item": item, "program_id": row.program_id,
                         "position": progress.position if progress else 0.0}
    return {"recording": row, "operator": ident.role == Role.OPERATOR,
            "staff": ident.role in (Role.OPERATOR, Role.TRAINER, Role.LEADER), "study": study}


def setup(app: web.Application) -> None:
    """setup: the archive's routes."""
    app.router.add_get("/archive", archive_page, name="archive")
    app.router.add_get("/archive/{id}", player_page, name="archive-player")
