"""A classroom behind a school firewall that drops all UDP joins through TURN (real coturn, real Chromium).

The classroom's Chromium runs in a network namespace (tests/netlab.py) whose nftables rules drop every UDP
datagram; coturn (Debian's) listens on the lab's address, port 443, for TURN over TCP and over TLS (a self-signed
certificate made for the run, whose key the classroom's Chromium is told to trust) with the shared secret the test
gives Taphuan's `sfu.turn`. The classroom must hear and see the presenter, its down connection's selected pair must
be a relay candidate reached over the transport under test, and the studio must see the classroom's camera. Root
only (namespaces, port 443); skipped elsewhere with the reason.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright

from server.config import Config
from server.db.models import Role, User
from tests import netlab
from tests.e2e.browser import CHROMIUM, FLAGS, WAIT_MS, logged_in_context, media_stats, wait_rising
from tests.netlab import Coturn, Lab

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(netlab.unavailable() is not None, reason=f"netlab: {netlab.unavailable()}")]

Factory = Callable[..., Awaitable[Any]]
SECRET = "turn-secret-of-the-test"


@pytest.fixture(params=["tcp", "tls"])
def turn(request: pytest.FixtureRequest, lab: Lab) -> tuple[str, Coturn]:
    """turn: coturn for the run and the transport under test."""
    return str(request.param), lab.turn(SECRET)


@pytest.fixture
def config(make_config: Callable[..., Config], lab: Lab, turn: tuple[str, Coturn]) -> Config:
    """config: ICE on the lab's address; the one TURN URL of the transport under test, with coturn's secret."""
    transport, server = turn
    urls = [u for u in server.urls if u.startswith("turns:" if transport == "tls" else "turn:")]
    return make_config(sfu__ice_addresses=[lab.server_ip], sfu__turn__urls=urls, sfu__turn__secret=SECRET)


async def enter(page: Page, meeting_id: int) -> None:
    await page.goto(f"/live/{meeting_id}")
    await page.click("[data-action=join]")
    await page.wait_for_selector("[data-stage]:not([hidden])", timeout=WAIT_MS)


async def selected_pair(page: Page) -> dict[str, Any]:
    """selected_pair: the local side of the down connection's selected candidate pair, once there is one."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        got = await media_stats(page)
        if got and got["pair"]:
            return dict(got["pair"])
        await asyncio.sleep(0.5)
    raise AssertionError("the down connection selected no candidate pair")


async def test_a_classroom_without_udp_joins_through_turn(app: web.Application, aiohttp_server: Any, lab: Lab,
                                                          turn: tuple[str, Coturn], make_user: Factory,
                                                          make_classroom: Factory, make_meeting: Factory) -> None:
    transport, coturn = turn
    server = await aiohttp_server(app, host=lab.server_ip)
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Minh")
    cid = await make_classroom(name="Lớp sau tường lửa")
    room: User = await make_user(Role.CLASSROOM, classroom_id=cid, display_name="Lớp học sau tường lửa")
    meeting = await make_meeting(presenters=[trainer], classrooms=[cid])
    ns = lab.add(block_udp=True)
    args = FLAGS + netlab.insecure_origin_args(base)
    async with async_playwright() as pw:
        host = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        inside = await pw.chromium.launch(executable_path=ns.chromium(), headless=True,
                                          args=args + coturn.browser_args())
        try:
            studio = await (await logged_in_context(host, app, base, trainer)).new_page()
            await enter(studio, meeting.id)
            page = await (await logged_in_context(inside, app, base, room)).new_page()
            await enter(page, meeting.id)
            await wait_rising(page, "presenter-video", "frames")
            await wait_rising(page, "presenter-audio", "energy")
            pair = await selected_pair(page)
            assert pair["type"] == "relay", pair
            assert pair["relay_protocol"] == transport, pair
            assert pair["address"] == lab.server_ip, pair  # relayed by our coturn
            # the classroom publishes through TURN too: the studio's grid shows its camera
            await wait_rising(studio, "grid-0", "frames")
        finally:
            await inside.close()
            await host.close()
