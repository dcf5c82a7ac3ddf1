"""Real Chromium with two nodes (server.live.cluster), each on its own address: the live page of node b, whose
meeting went to node a meanwhile, gets `moved` on its join and follows it to node a's socket by itself
(web/static/protocol.js), within its Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import async_playwright

from server.app import create_app
from server.config import Config
from server.db.models import Role, User
from server.live.cluster import draining_key, room_key
from server.live.rooms import open_meetings
from server.live.service import LIVE
from tests.e2e.browser import WAIT_MS, launch, logged_in_context
from tests.server.live.test_cluster import config, node_config, ports, redis  # noqa: F401  (fixtures)
from tests.server.test_bus import redis_url  # noqa: F401  (fixture: a real redis-server)

pytestmark = [pytest.mark.browser, pytest.mark.redis]
Factory = Callable[..., Awaitable[Any]]


async def test_the_page_follows_moved_to_the_node_holding_the_room(
        app: web.Application, aiohttp_server: Any, node_config: Callable[..., Config],  # noqa: F811
        ports: dict[str, int], redis: Any, make_user: Factory, make_classroom: Factory,  # noqa: F811
        make_meeting: Factory) -> None:
    node_a = await aiohttp_server(app, host="127.0.0.1", port=ports["a"])
    b_app = create_app(node_config("b"))
    node_b = await aiohttp_server(b_app, host="127.0.0.1", port=ports["b"])
    base_b = str(node_b.make_url("/")).rstrip("/")
    classroom_id = await make_classroom(name="Lớp 1")
    user: User = await make_user(Role.CLASSROOM, classroom_id=classroom_id, display_name="Lớp học 1")
    meeting = await make_meeting(classrooms=[classroom_id])

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            ctx = await logged_in_context(browser, app, base_b, user)
            page = await ctx.new_page()
            await redis.set(draining_key("a"), "1")  # the page is placed on node b, and served there
            response = await page.goto(f"/live/{meeting.id}")
            assert response is not None and response.url.startswith(base_b)
            await redis.delete(draining_key("a"))
            assert await redis.get(room_key(meeting.id)) == b"b"
            await redis.set(room_key(meeting.id), "a", px=30_000)  # meanwhile the meeting went to node a
            await page.click("[data-action=join]")
            await page.wait_for_selector("[data-stage]:not([hidden])", timeout=WAIT_MS)
            url = await page.evaluate("window.live.url")
            assert url == f"ws://127.0.0.1:{ports['a']}/ws?node=a", url
            assert open_meetings(node_a.app[LIVE]) == [meeting.id] and open_meetings(b_app[LIVE]) == []
        finally:
            await browser.close()
