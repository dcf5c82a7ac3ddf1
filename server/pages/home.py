"""server.pages.home: the home page (upcoming meetings for the role) and the language switch."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Role
from server.i18n import LANG_COOKIE, LANGUAGES, language
from server.schedule import deadlines, notifications
from server.schedule import meetings as svc
from server.schedule import rules as schedule

# (label, path, icon) of the operator's shortcuts; the pages are written by each area.
OPERATOR_SHORTCUTS = (
    ("Programs", "/programs", "program"),
    ("Meetings", "/meetings", "meeting"),
    ("Classrooms", "/classrooms", "classroom"),
    ("Units", "/units", "unit"),
    ("Accounts", "/accounts", "account"),
    ("Audit log", "/audit", "audit"),
    ("Calendar", "/calendar", "meeting"),
    ("Deadlines", "/deadlines", "document"),
)


@aiohttp_jinja2.template("home.html")
async def home(request: web.Request) -> dict[str, Any]:
    """home: upcoming meetings for the role, with its shortcuts.

    Operators see every upcoming meeting with its status, and the regional-meeting documents past their due day;
    trainers and leaders the ones they present;
    classrooms their published invitations (with "Join class" from 30 minutes before the start);
    a guest its one meeting; learners nothing yet (recordings come later).
    """
    ident = require(request)
    meetings: list[Any] = []
    overdue: list[deadlines.Overdue] = []
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        if svc.can_read_meetings(ident):
            meetings = await svc.upcoming_meetings(s, ident, include_cancelled=ident.role != Role.CLASSROOM)
        if ident.role == Role.OPERATOR:
            overdue = await deadlines.overdue(s, ident, schedule.today_in(tz), tz)
        notes = await notifications.list_for(s, ident, unread_only=True, limit=10)  # schedule changes (issue 6)
    shortcuts = OPERATOR_SHORTCUTS if ident.role == Role.OPERATOR else ()
    now = svc.utcnow()
    lang = language(request)
    return {"meetings": meetings, "shortcuts": shortcuts, "now": now, "notes": notes, "overdue": overdue,
            "doc_labels": {k: v[0] if lang == "vi" else v[1] for k, v in deadlines.KIND_LABELS.items()},
            "joinable": {m.id for m in meetings if svc.is_joinable(m, now)},
            "live": {m.id for m in meetings if svc.is_live(m, now)}}


async def set_language(request: web.Request) -> web.Response:
    """set_language: remember the chosen language in a cookie and go back."""
    lang = request.match_info["lang"]
    if lang not in LANGUAGES:
        raise web.HTTPNotFound()
    back = request.query.get("next", "/")
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    resp = web.HTTPSeeOther(location=back)
    resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="Lax", path="/")
    raise resp


def setup(app: web.Application) -> None:
    """setup: add the home and language routes."""
    app.router.add_get("/", home, name="home")
    app.router.add_get("/lang/{lang}", set_language, name="set-language")
