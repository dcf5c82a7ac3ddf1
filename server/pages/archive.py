"""server.pages.archive: /archive (the library of recordings) and /archive/{id} (the player).

Both pages are shells filled from /api/v1/recordings by web/static/archive.js: the library lists what the
caller may watch, one entry per meeting (its recordings are the entry's parts, each with its chapters), by
program and date, with title search, and follows recordings still being
made (state and percentage, polled); the player seeks with HTTP Range requests, shows the chapter list and
offers the download. Operators publish, unpublish and delete (with confirmation) from both. A published
recording is also a lecture video of its program's self-study (`server.learning.selfstudy.program_videos`): for a
learner of the program the player resumes where they stopped and reports watch progress like any study video.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.auth import require
from server.db.engine import DB
from server.db.models import Role
from server.learning import archive
from server.openapi import int_param


@aiohttp_jinja2.template("archive.html")
async def archive_page(request: web.Request) -> dict[str, Any]:
    """archive_page: the library of recordings the caller may watch."""
    ident = require(request)
    async with request.app[DB]() as s:
        programs = await archive.library_programs(s, ident)
    return {"programs": [{"id": pid, "title": title} for pid, title in programs],
            "operator": ident.role == Role.OPERATOR}


@aiohttp_jinja2.template("archive_player.html")
async def player_page(request: web.Request) -> dict[str, Any]:
    """player_page: one recording: player, chapters, download (403 when the caller may not watch it)."""
    ident = require(request)
    rid = int_param(request, "id")
    async with request.app[DB]() as s:
        row = await archive.viewable(s, ident, rid)
        study = await archive.study_video(s, ident, row)
    return {"recording": row, "operator": ident.role == Role.OPERATOR,
            "staff": ident.role in (Role.OPERATOR, Role.TRAINER, Role.LEADER), "study": study}


def setup(app: web.Application) -> None:
    """setup: the archive's routes."""
    app.router.add_get("/archive", archive_page, name="archive")
    app.router.add_get("/archive/{id}", player_page, name="archive-player")
