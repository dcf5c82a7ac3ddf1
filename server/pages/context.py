"""server.pages.context: what every template sees (translations, identity, CSRF token, language)."""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

from server.auth import csrf_token_for_form, identity
from server.config import CONFIG
from server.formats import setup_filters
from server.i18n import I18N, LANGUAGES, language


async def template_context(request: web.Request) -> dict[str, Any]:
    """template_context: the per-request variables of every template."""
    lang = language(request)
    catalog = request.app[I18N].get(lang)
    return {
        "gettext": catalog.gettext,
        "ngettext": catalog.ngettext,
        "_": catalog.gettext,
        "lang": lang,
        "languages": LANGUAGES,
        "me": identity(request),
        "csrf_token": csrf_token_for_form(request),
        "request": request,
        "tz": request.app[CONFIG].tz,
    }


def pct_class(value: float | None) -> str:
    """pct_class: the CSS class "pct-N" (N: `value` rounded into 0-100) that sets --pct for a bar or ring, where a
    style attribute would break the Content-Security-Policy (web/static/app.css)."""
    return f"pct-{min(100, max(0, round(value or 0)))}"


def setup_jinja(app: web.Application, env: jinja2.Environment) -> None:
    """setup_jinja: globals and filters of the app's jinja2 environment."""
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]

    def url(name: str, **parts: Any) -> str:
        return str(app.router[name].url_for(**{k: str(v) for k, v in parts.items()}))

    env.globals["url"] = url
    env.filters["pct"] = pct_class
    setup_filters(env, app[CONFIG].tz)
