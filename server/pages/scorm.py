"""server.pages.scorm: `/materials/{id}/play`, the page that plays a SCORM package material (issue 21).

The page lists the package's items with the caller's status in each (a menu when there are several), and
frames the content origin's player (server.learning.content) for the chosen item (`?sco=`, else the first one
not completed); web/static/scorm.js launches the attempt and relays its commits. Its Content-Security-Policy
is the site's with `frame-src` narrowed to the content origin. A package that is not SCORM goes back to the
material's page (which shows why).
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server import csp
from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Role, ScormAttempt
from server.learning import materials as materials_svc
from server.learning import scormrt
from server.learning.content import CONTENT
from server.openapi import int_param
from server.people import enrolment


def play_policy(request: web.Request, origin: str) -> str:
    """play_policy: the site's policy for this request with frame-src allowing only the content origin."""
    return re.sub(r"frame-src [^;]*", f"frame-src {origin}", csp.policy(request))


def first_open(items: list[dict[str, Any]], attempts: dict[str, ScormAttempt]) -> dict[str, Any]:
    """first_open: the first SCO not completed (the first item when all are)."""
    for item in items:
        attempt = attempts.get(item["identifier"])
        if item.get("sco", True) and (attempt is None or attempt.completion != "completed"):
            return item
    return items[0]


async def play_page(request: web.Request) -> web.StreamResponse:
    """play_page: the player page of a package material's item."""
    ident = require(request)
    async with request.app[DB]() as s:
        material = await materials_svc.get(s, int_param(request, "id"))
        program, access = await enrolment.program_for(s, ident, material.program_id)
        pkg = await scormrt.ensure(s, request.app[CONFIG], material)
        await s.commit()
        if pkg is None or not scormrt.playable(pkg):
            raise web.HTTPSeeOther(f"/materials/{material.id}")
        attempts = await scormrt.attempts_for(s, ident.user_id, material.id) if ident.user_id else {}
    wanted = request.query.get("sco", "")
    items = pkg.scos
    if wanted:
        current = scormrt.find_sco(pkg, wanted)
    else:
        current = first_open(items, attempts)
    index = next(i for i, x in enumerate(items) if x["identifier"] == current["identifier"])
    result = scormrt.package_result(items, attempts)
    origin = request.app[CONTENT].for_request(request)
    context = {"program": program, "access": access, "tab": "materials", "is_operator": ident.role == Role.OPERATOR,
               "m": material, "pkg": pkg, "items": items, "attempts": attempts, "current": current,
               "previous": items[index - 1] if index > 0 else None,
               "next": items[index + 1] if index + 1 < len(items) else None, "result": result,
               "content_origin": origin, "user_id": ident.user_id or 0,
               "restart": request.query.get("restart") == "1", "notice": ""}
    response = aiohttp_jinja2.render_template("scorm_play.html", request, context)
    response.headers["Content-Security-Policy"] = play_policy(request, origin)
    response.headers["Cache-Control"] = "no-store"
    return response


def setup(app: web.Application) -> None:
    """setup: the package player page."""
    app.router.add_get(r"/materials/{id:\d+}/play", play_page, name="material-play")
