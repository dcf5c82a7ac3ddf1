"""Tests of server.pages.context: what every template sees (language and its catalog, who is logged in, the form's
CSRF token, the time zone, `url()`); the empty-state macro every page shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
import pytest
from aiohttp import web

from server.app import create_app
from server.auth import CSRF_COOKIE
from server.config import Config
from server.db.models import Role
from server.i18n import LANG_COOKIE
from server.pages.context import template_context

SHOWN = ("{{ lang }}|{{ languages|join(',') }}|{{ _('Log out') }}|{{ gettext('Log out') }}|"
         "{{ me.role if me else 'anonymous' }}|{{ csrf_token }}|{{ tz }}|{{ request.path }}|{{ url('meeting', id=5) }}")


async def show_context(request: web.Request) -> web.Response:
    """show_context: SHOWN rendered with the context of this request in the app's template environment."""
    env = aiohttp_jinja2.get_env(request.app)
    return web.Response(text=env.from_string(SHOWN).render(await template_context(request)))


@pytest.fixture
def app(config: Config) -> web.Application:
    """app: the application with a route showing the template context."""
    application = create_app(config)
    application.router.add_get("/context", show_context)
    return application


async def test_anonymous_context_in_the_default_language(client: Any) -> None:
    r = await client.get("/context")
    assert r.status == 200
    lang, languages, translated, gettext, me, csrf, tz, path, url = (await r.text()).split("|")
    assert (lang, languages, translated, gettext, me) == ("vi", "vi,en", "Đăng xuất", "Đăng xuất", "anonymous")
    assert (tz, path, url) == ("Asia/Ho_Chi_Minh", "/context", "/meetings/5")
    # the anonymous token of the login form is the one the CSRF cookie carries
    assert len(csrf) > 20 and r.cookies[CSRF_COOKIE].value == csrf


async def test_logged_in_context_follows_the_chosen_language(login_as: Any) -> None:
    who = await login_as(Role.TRAINER)
    lang, _languages, translated, _gettext, me, csrf, *_rest = (await (await who.get("/context")).text()).split("|")
    assert (lang, translated, me, csrf) == ("vi", "Đăng xuất", "trainer", who.csrf)
    who.client.session.cookie_jar.update_cookies({LANG_COOKIE: "en"})
    lang, _languages, translated, gettext, *_rest = (await (await who.get("/context")).text()).split("|")
    assert (lang, translated, gettext) == ("en", "Log out", "Log out")
    english = await login_as(Role.LEADER, language="en")  # the account's language, without a cookie
    lang, _languages, translated, *_rest = (await (await english.get("/context")).text()).split("|")
    assert (lang, translated) == ("en", "Log out")


def test_the_empty_state_is_one_macro(app: web.Application) -> None:
    templates = Path(__file__).resolve().parents[3] / "web" / "templates"
    inline = [p.name for p in templates.glob("*.html") if 'class="empty"' in p.read_text() and p.name != "_macros.html"]
    assert inline == []
    env = aiohttp_jinja2.get_env(app)
    module = env.get_template("_macros.html").module
    for icon in ("account", "calendar", "camera", "chart", "document", "link", "log"):
        html = str(module.empty("Trống <b>", "Chưa có gì", "/x", "Tạo", icon=icon,  # type: ignore[attr-defined]
                                action_class="btn-secondary", title_attrs="data-empty-title"))
        assert '<svg viewBox="0 0 48 48" aria-hidden="true"><' in html
        assert '<p class="empty-title" data-empty-title>Trống &lt;b&gt;</p>' in html
        assert '<p class="empty-text">Chưa có gì</p>' in html
        assert '<a class="btn btn-secondary" href="/x">Tạo</a>' in html
    bare = str(module.empty("Trống"))  # type: ignore[attr-defined]
    assert "empty-text" not in bare and "<a " not in bare and '<p class="empty-title">Trống</p>' in bare


def test_pct_class_is_a_bounded_whole_percent() -> None:
    from server.pages.context import pct_class

    assert [pct_class(v) for v in (None, -3, 0, 37.4, 37.6, 100, 250)] == [
        "pct-0", "pct-0", "pct-0", "pct-37", "pct-38", "pct-100", "pct-100"]
    css = (Path(__file__).resolve().parents[3] / "web/static/app.css").read_text(encoding="utf-8")
    assert all(f".pct-{n}{{--pct:{n}}}" in css for n in range(101))  # every class the filter writes exists
