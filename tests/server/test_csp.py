"""Tests of server.csp: the policy on every response, a route's own exception, and templates the policy allows.

Whether the pages still work under the policy in a real browser is checked by every Chromium test (tests/e2e: a
Content-Security-Policy violation in a page's console fails the test).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server import csp
from server.app import WEB_DIR, create_app
from server.config import Config
from tests.server.learning_helpers import make_world, upload

HTML = {"Accept": "text/html"}


def _directives(header: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in out, f"{name} twice in {header}"
        out[name] = sources
    return out


async def test_every_response_carries_the_strict_policy(client: TestClient[Any, Any]) -> None:
    port = client.server.port
    for path, headers in (("/login", HTML), ("/static/app.js", {}), ("/api/v1/me", {}), ("/no-such", HTML)):
        resp = await client.get(path, headers=headers)
        policy = _directives(resp.headers["Content-Security-Policy"])
        assert policy == {
            "default-src": ["'self'"], "script-src": ["'self'"], "style-src": ["'self'"], "img-src": ["'self'"],
            "media-src": ["'self'"], "font-src": ["'self'"], "frame-src": ["'self'"], "worker-src": ["'self'"],
            "connect-src": ["'self'", f"ws://127.0.0.1:{port}", f"wss://127.0.0.1:{port}"],
            "object-src": ["'none'"], "base-uri": ["'none'"], "form-action": ["'self'"],
            "frame-ancestors": ["'none'"]}, path
        assert resp.headers["X-Frame-Options"] == "DENY"
    resp = await client.get("/login", headers={**HTML, "Host": "evil; script-src *"})  # not repeated into the header
    assert _directives(resp.headers["Content-Security-Policy"])["connect-src"] == ["'self'"]


def test_allow_refuses_unknown_directives_and_odd_sources(config: Config) -> None:
    app = create_app(config)
    for bad in ({"scritp_src": ("'self'",)}, {"img_src": ("'self' ; script-src *",)}, {"img_src": ()},
                {"img_src": ("'unsafe-inline' x",)}):
        with pytest.raises(ValueError):
            csp.allow(app, "x", **bad)
    csp.allow(app, "x", media_src=("blob:",), frame_ancestors=("'self'",))
    csp.allow(app, "x", media_src=("blob:",))  # said twice: listed once
    assert app[csp.ROUTES]["x"] == {"media-src": ("blob:",), "frame-ancestors": ("'self'",)}


async def test_a_route_widens_only_its_own_policy(config: Config, aiohttp_client: Any) -> None:
    async def player(request: web.Request) -> web.Response:
        return web.Response(text="player")

    app = create_app(config)
    app.router.add_get("/test/player", player, name="test-player")
    csp.allow(app, "test-player", media_src=("blob:",), worker_src=("blob:",), object_src=("'self'",))
    client = await aiohttp_client(app)
    policy = _directives((await client.get("/test/player")).headers["Content-Security-Policy"])
    assert policy["media-src"] == ["'self'", "blob:"] and policy["worker-src"] == ["'self'", "blob:"]
    assert policy["object-src"] == ["'self'"]  # replaces 'none' (both together would mean 'self')
    assert policy["script-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    other = _directives((await client.get("/login")).headers["Content-Security-Policy"])
    assert other["media-src"] == ["'self'"] and other["object-src"] == ["'none'"]


async def test_a_pdf_material_may_be_framed_by_its_own_page(app: web.Application, login_as: Any,
                                                             make_classroom: Any) -> None:
    world = await make_world(app, login_as, make_classroom)
    material = await (await upload(world.trainer, world.program_id)).json()
    resp = await world.trainer.get(material["file_url"])
    assert resp.status == 200 and resp.content_type == "application/pdf"
    assert _directives(resp.headers["Content-Security-Policy"])["frame-ancestors"] == ["'self'"]
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"
    page = await world.trainer.get(f"/materials/{material['id']}", headers=HTML)  # the page itself: never framed
    assert _directives(page.headers["Content-Security-Policy"])["frame-ancestors"] == ["'none'"]
    assert page.headers["X-Frame-Options"] == "DENY"


# What the policy blocks in markup: a <script> that is not a JSON data block or has no src, an event-handler
# attribute, a style attribute or element, a javascript: URL.
_SCRIPT = re.compile(r"<script\b([^>]*)>", re.I)
_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.I)
_STYLE_ATTR = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.I)


def _blocked(html: str) -> list[str]:
    found = []
    for match in _SCRIPT.finditer(html):
        attrs = match.group(1)
        if "src=" not in attrs and 'type="application/json"' not in attrs:
            found.append(match.group(0))
    found += [m.group(0) for m in _HANDLER.finditer(html)]
    found += [m.group(0) for m in _STYLE_ATTR.finditer(html)]
    found += re.findall(r"<style\b[^>]*>|javascript:", html, re.I)
    return found


def test_no_template_needs_inline_script_or_style() -> None:
    assert _blocked('<p style="x"><script>1</script><a onclick="y"><style>') != []  # the check can fail
    templates = sorted((Path(WEB_DIR) / "templates").glob("*.html"))
    assert len(templates) > 40
    problems = {t.name: _blocked(t.read_text(encoding="utf-8")) for t in templates}
    assert {name: found for name, found in problems.items() if found} == {}


def test_scripts_build_no_inline_style_or_code() -> None:
    for js in sorted((Path(WEB_DIR) / "static").glob("*.js")):
        text = js.read_text(encoding="utf-8")
        assert not re.search(r"""setAttribute\(\s*["']style|style=|\beval\(|new Function\(|javascript:""", text), js
