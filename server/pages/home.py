"""server.pages.home: the home page (upcoming meetings for the role) and the language switch."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.auth import require
from server.i18n import LANG_COOKIE, LANGUAGES


@aiohttp_jinja2.template("home.html")
async def home(request: web.Request) -> dict[str, Any]:
    """home: upcoming meetings for the logged-in role."""
    require(request)
    return {}


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
