"""Tests of server.pages.context: what every template sees; the empty-state macro every page shares."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
from aiohttp import web


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
