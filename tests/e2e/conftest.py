"""Fixtures of the real-Chromium tests: `live_server` (the app on 127.0.0.1) and `browser` (headless Chromium).

`browser` is function-scoped: Playwright's async objects belong to the event loop that created them and
pytest-asyncio gives each test its own loop. Use `new_context(browser, live_server.url)` (or the
`context` fixture) for a 1366×768, Vietnamese, camera- and microphone-allowed context; pass `user=` to be
logged in as that account without going through the login form. Every `/ws` frame of those contexts'
pages must follow docs/protocol.schema.json (`protocol_frames`, autouse), and none of their consoles may report a
Content-Security-Policy violation (`csp_violations`, autouse).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, async_playwright

from server.auth import COOKIE, create_login
from server.db.engine import DB
from server.db.models import User
from tests.e2e.browser import ARTIFACTS, CHROMIUM, CSP_VIOLATIONS, FLAGS, FRAMES, WAIT_MS, FrameCheck, watch_protocol
from tests.netlab import Lab
from tests.protocol_schema import ProtocolViolation


@dataclass
class LiveServer:
    """LiveServer: the running app and its base URL (no trailing slash)."""

    app: web.Application
    url: str

    def __call__(self, path: str = "/") -> str:
        """LiveServer(path): the absolute URL of a path."""
        return self.url + path


@pytest.fixture(autouse=True)
def protocol_frames() -> Iterator[FrameCheck]:
    """protocol_frames: fails the test if a watched page sent or received a `/ws` frame the schema forbids."""
    FRAMES.frames = 0
    FRAMES.problems.clear()
    yield FRAMES
    problems, FRAMES.problems = FRAMES.problems, []
    if problems:
        raise ProtocolViolation(f"{len(problems)} of {FRAMES.frames} frames break docs/protocol.schema.json:\n"
                                + "\n".join(problems[:20]))


@pytest.fixture(autouse=True)
def csp_violations() -> Iterator[list[str]]:
    """csp_violations: fails the test if a watched page's console reported a Content-Security-Policy violation
    (something the server's policy blocked: an inline script or style, a foreign source)."""
    CSP_VIOLATIONS.clear()
    yield CSP_VIOLATIONS
    found = list(CSP_VIOLATIONS)
    CSP_VIOLATIONS.clear()
    if found:
        pytest.fail(f"{len(found)} Content-Security-Policy violations:\n" + "\n".join(found[:20]))


@pytest.fixture
async def live_server(app: web.Application, aiohttp_server: Any) -> LiveServer:
    """live_server: the test app served over HTTP on 127.0.0.1 (a random port)."""
    server = await aiohttp_server(app, host="127.0.0.1")
    return LiveServer(app=app, url=str(server.make_url("/")).rstrip("/"))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """browser: headless Debian Chromium with a fake camera and microphone."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield b
        finally:
            await b.close()


class _Req:
    """_Req: the few request attributes create_login reads."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.headers = {"User-Agent": "playwright"}
        self.remote = "127.0.0.1"


async def new_context(browser: Browser, base_url: str, *, user: User | None = None,
                      app: web.Application | None = None, locale: str = "vi-VN",
                      viewport: tuple[int, int] = (1366, 768), **options: Any) -> BrowserContext:
    """new_context: a browser context (own cookies) allowed to use camera and microphone.

    With `user` (and `app`) it starts logged in as that account.
    """
    context = await browser.new_context(base_url=base_url, locale=locale,
                                        viewport={"width": viewport[0], "height": viewport[1]},
                                        permissions=["camera", "microphone"], **options)
    context.set_default_timeout(WAIT_MS)
    watch_protocol(context)
    if user is not None:
        if app is None:
            raise ValueError("new_context: pass app= together with user=")
        async with app[DB]() as s:
            login = await create_login(s, _Req(app), user=user, hours=2)  # type: ignore[arg-type]
            await s.commit()
        await context.add_cookies([{"name": COOKIE, "value": login.id, "url": base_url}])
    return context


@pytest.fixture
async def context(browser: Browser, live_server: LiveServer) -> AsyncIterator[BrowserContext]:
    """context: an anonymous context on the live server."""
    ctx = await new_context(browser, live_server.url)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
def lab() -> Iterator[Lab]:
    """lab: the network namespaces, addresses and TURN servers of one test (tests/netlab.py), removed after it."""
    with Lab() as made:
        yield made
