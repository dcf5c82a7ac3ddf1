"""Real Chromium with two nodes (server.live.cluster), each on its own address: the live page of node b, whose
meeting went to node a meanwhile, gets `moved` on its join and follows it to node a's socket by itself
(web/static/protocol.js), within its Content-Security-Policy; and behind the documented nginx, a page whose node
is killed finds the meeting again on the living node by itself."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import async_playwright
from yarl import URL

from server.app import create_app
from server.auth import COOKIE
from server.config import CONFIG, Config
from server.db.models import Role, User
from server.live.cluster import draining_key, room_key
from server.live.rooms import open_meetings
from server.live.service import LIVE
from tests.e2e.browser import WAIT_MS, launch, logged_in_context, wait_rising
from tests.e2e.labpages import enter
from tests.live_client import LiveClient
from tests.server.live.test_cluster import (  # noqa: F401  (fixtures)
    client,
    config,
    enter_like_the_page,
    front,
    node_config,
    ports,
    redis,
    start_node,
)
from tests.server.test_bus import redis_url  # noqa: F401  (fixture: a real redis-server)
from tests.server.test_serve import _read_until

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


@pytest.mark.parametrize("config", [{"front": True}], indirect=True)
async def test_a_page_whose_node_dies_joins_again_on_a_living_node_by_itself(
        client: Any, front: str, redis: Any, ports: dict[str, int], login_as: Factory,  # noqa: F811
        make_user: Factory, make_classroom: Factory, make_meeting: Factory, clients: list[LiveClient]) -> None:
    """Behind the documented nginx, node b (a real `taphuan serve`) holds the meeting; it is killed. The classroom's
    Chromium page, left alone, finds the meeting again on node a (nginx's backup for `node=b`, node a re-creating
    the room once b's lease expired) and receives the presenter there, who came back the way the page does."""
    app = client.app
    trainer_user: User = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    classroom_id = await make_classroom(name="Lớp 1")
    user: User = await make_user(Role.CLASSROOM, classroom_id=classroom_id, display_name="Lớp học 1")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[classroom_id])
    node_b = await asyncio.to_thread(start_node, app[CONFIG], "b", ports["b"], front)
    home = front.replace("http", "ws") + "/ws"
    cookie = trainer.client.session.cookie_jar.filter_cookies(trainer.client.make_url("/"))[COOKIE].value
    presenter = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    presenter.cookie_jar.update_cookies({COOKIE: cookie}, response_url=URL(front))
    try:
        await asyncio.to_thread(_read_until, node_b, "running at")
        await redis.set(draining_key("a"), "1")  # the meeting goes to node b
        t = await enter_like_the_page(presenter, home, front, meeting.id, clients)
        assert await redis.get(room_key(meeting.id)) == b"b"
        await redis.delete(draining_key("a"))
        assert (await t.publish())["type"] == "answer"
        async with async_playwright() as pw:
            browser = await launch(pw)
            try:
                ctx = await logged_in_context(browser, app, front, user)
                page = await ctx.new_page()
                await enter(page, meeting.id)
                assert (await page.evaluate("window.live.url")).endswith("/ws?node=b")
                await wait_rising(page, "presenter-video", "frames")
                before = await page.evaluate("window.live.participantId")

                node_b.send_signal(signal.SIGKILL)  # no clean-up: its heartbeat and leases expire (3 s here)
                killed = time.monotonic()
                t = await asyncio.wait_for(enter_like_the_page(
                    presenter, home, front, meeting.id, clients,
                    {"participant_id": t.participant_id, "token": t.resume_token}), 60)
                assert (await t.publish())["type"] == "answer"
                await page.wait_for_function(
                    "(before) => window.live.participantId && window.live.participantId !== before"
                    " && window.live.down", arg=before, timeout=WAIT_MS)
                await wait_rising(page, "presenter-video", "frames")
                print(f"\nnode b killed: the page receives the presenter from node a after "
                      f"{time.monotonic() - killed:.1f} s")
                assert await redis.get(room_key(meeting.id)) == b"a"
                assert open_meetings(app[LIVE]) == [meeting.id]
            finally:
                await browser.close()
    finally:
        for lc in clients:
            await lc.close()
        await presenter.close()
        if node_b.poll() is None:
            node_b.kill()
        node_b.wait(timeout=10)
