"""server.pages.joinlinks: the join links of every invited classroom at once (operators only).

Routes:
- `POST /meetings/{id}/links/invited`: a link for each active invited classroom that has no valid one (valid: not
  revoked, not expired); each is audit-logged like one made by hand. Back to the links page, which says how many.
- `GET /meetings/{id}/links.csv`: the valid classroom links (code, classroom, unit, link, valid until), UTF-8
  with a byte order mark so that spreadsheet programs read the Vietnamese letters.
- `GET /meetings/{id}/links/print`: the same list as a page to print and hand out.

The single-link page (create one, revoke) is server.pages.accounts.links_page.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Classroom, JoinLink, Meeting, Role, Unit, utcnow
from server.openapi import int_param
from server.pages.accounts import local_time
from server.people.accounts import add_join_link, join_url, link_classrooms, meeting_links, meeting_or_404

OPS = (Role.OPERATOR,)


@dataclass
class ClassroomLink:
    """ClassroomLink: the newest valid join link of one classroom of a meeting (its address, its expiry)."""

    classroom: Classroom
    unit: str
    url: str
    expires: str


async def _valid_links(s: AsyncSession, meeting_id: int) -> dict[int, JoinLink]:
    """_valid_links: each classroom's newest link of the meeting that is neither revoked nor expired."""
    now = utcnow()
    found: dict[int, JoinLink] = {}
    for link, _classroom in await meeting_links(s, meeting_id):  # newest first
        if link.classroom_id is not None and not link.revoked and link.expires_at > now:
            found.setdefault(link.classroom_id, link)
    return found


async def _rows(request: web.Request, meeting_id: int) -> tuple[Meeting, list[ClassroomLink]]:
    """_rows: the meeting and its classrooms' valid links, by classroom code."""
    async with request.app[DB]() as s:
        meeting = await meeting_or_404(s, meeting_id)
        links = await _valid_links(s, meeting_id)
        rows = []
        for link, classroom in await meeting_links(s, meeting_id):
            if classroom is None or links.get(classroom.id) is not link:
                continue
            unit = await s.get(Unit, classroom.unit_id)
            rows.append(ClassroomLink(classroom=classroom, unit=unit.name if unit else "", url=join_url(request, link),
                                      expires=local_time(request, link.expires_at)))
    rows.sort(key=lambda r: (r.classroom.code, r.classroom.name))
    return meeting, rows


async def links_for_invited(request: web.Request) -> web.Response:
    """links_for_invited: a join link for every active invited classroom that has no valid one."""
    ident = require(request, *OPS)
    meeting_id = int_param(request, "id")
    async with request.app[DB]() as s:
        await meeting_or_404(s, meeting_id)
        invited, _others = await link_classrooms(s, meeting_id)
        have = await _valid_links(s, meeting_id)
        made = 0
        for classroom in invited:
            if classroom.id in have:
                continue
            await add_join_link(s, request, request.app[CONFIG], meeting_id, classroom_id=classroom.id, guest_name="",
                                hours=None, created_by=ident.user_id)
            made += 1
        await s.commit()
    raise web.HTTPSeeOther(location=f"/meetings/{meeting_id}/links?done=invited&made={made}")


async def links_csv(request: web.Request) -> web.Response:
    """links_csv: the meeting's valid classroom links as CSV (one row per classroom)."""
    require(request, *OPS)
    meeting, rows = await _rows(request, int_param(request, "id"))
    out = io.StringIO()
    out.write("\ufeff")  # spreadsheet programs read UTF-8 only with it
    writer = csv.writer(out)
    writer.writerow(["code", "classroom", "unit", "link", "valid_until"])
    for r in rows:
        writer.writerow([r.classroom.code, r.classroom.name, r.unit, r.url, r.expires])
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="meeting-{meeting.id}-join-links.csv"'})


async def links_print(request: web.Request) -> web.Response:
    """links_print: the meeting's valid classroom links as a page to print."""
    require(request, *OPS)
    meeting, rows = await _rows(request, int_param(request, "id"))
    context: dict[str, Any] = {"meeting": meeting, "rows": rows, "starts": local_time(request, meeting.starts_at),
                               "ends": local_time(request, meeting.ends_at)}
    return aiohttp_jinja2.render_template("joinlinks_print.html", request, context)


def setup(app: web.Application) -> None:
    """setup: add the routes of the invited classrooms' links."""
    r = app.router
    r.add_post(r"/meetings/{id:\d+}/links/invited", links_for_invited, name="meeting-links-invited")
    r.add_get(r"/meetings/{id:\d+}/links.csv", links_csv, name="meeting-links-csv")
    r.add_get(r"/meetings/{id:\d+}/links/print", links_print, name="meeting-links-print")
