"""Real Chromium through network cuts (tests/netlab.py): a classroom in a network namespace loses its link for 10 s
and keeps its place in the meeting; its media comes back once the link returns. Then the server's media
connections of the classroom fail (as when ICE consent expires) and the page renews them with `restart`.

The presenter runs on the host, the classroom's Chromium in the namespace. Recovery times are printed (run with
`-s`; docs/protocol.md "Recovery"); the test asserts only outcomes, within generous bounds. Root only (network
namespaces); skipped elsewhere with the reason.
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
from server.live.service import LIVE
from tests import netlab
from tests.e2e.browser import CHROMIUM, FLAGS, WAIT_MS, logged_in_context, slot_stats, wait_rising
from tests.e2e.labpages import enter
from tests.netlab import Lab

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(netlab.unavailable() is not None, reason=f"netlab: {netlab.unavailable()}")]

Factory = Callable[..., Awaitable[Any]]
CUT_S = 10.0
BACK_WITHIN_S = 60.0  # generous: a busy two-core machine runs both browsers and the server
WATCH = """() => {
  window.__left = []; window.__states = []; window.__reconnecting = 0; window.__offers = 0;
  window.live.addEventListener("offer", () => { window.__offers += 1; });
  window.live.addEventListener("participant-left", (e) => window.__left.push(e.detail.participant_id));
  window.live.addEventListener("participant-state", (e) => window.__states.push(e.detail.state));
  window.live.addEventListener("reconnecting", () => { window.__reconnecting += 1; });
}"""


@pytest.fixture
def config(make_config: Callable[..., Config], lab: Lab) -> Config:
    """config: ICE gathers on the lab's address, which the namespaces and the host both reach."""
    return make_config(sfu__ice_addresses=[lab.server_ip])


async def time_to_media(page: Page, since: float) -> tuple[float, float]:
    """time_to_media: seconds from `since` until the presenter's audio (≥ 5 packets in 0.3 s) and video (≥ 2
    frames in 0.5 s) flow again on the page; a renewed connection's counters start again from 0."""
    audio: float | None = None
    video: float | None = None
    samples: list[tuple[float, float, float]] = []
    deadline = since + BACK_WITHIN_S
    while (audio is None or video is None) and time.monotonic() < deadline:
        a = float((await slot_stats(page, "presenter-audio"))["packets"])
        v = float((await slot_stats(page, "presenter-video"))["frames"])
        now = time.monotonic()
        samples.append((now, a, v))
        for then, a0, v0 in samples:
            if audio is None and now - then >= 0.3 and a - (a0 if a0 <= a else 0) >= 5:
                audio = then - since
            if video is None and now - then >= 0.5 and v - (v0 if v0 <= v else 0) >= 2:
                video = then - since
        samples = [s for s in samples if now - s[0] <= 1.0]
        await asyncio.sleep(0.1)
    assert audio is not None, f"no presenter audio within {BACK_WITHIN_S} s"
    assert video is not None, f"no presenter video within {BACK_WITHIN_S} s"
    return max(0.0, audio), max(0.0, video)


async def test_a_classroom_keeps_its_place_through_a_cut_and_a_failed_connection(
        app: web.Application, aiohttp_server: Any, lab: Lab, make_user: Factory, make_classroom: Factory,
        make_meeting: Factory) -> None:
    server = await aiohttp_server(app, host=lab.server_ip)
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Lan")
    cid = await make_classroom(name="Lớp Mường Tè")
    room_user: User = await make_user(Role.CLASSROOM, classroom_id=cid, display_name="Lớp Mường Tè")
    meeting = await make_meeting(presenters=[trainer], classrooms=[cid])
    ns = lab.add()
    args = FLAGS + netlab.insecure_origin_args(base)
    async with async_playwright() as pw:
        host = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        inside = await pw.chromium.launch(executable_path=ns.chromium(), headless=True, args=args)
        try:
            studio = await (await logged_in_context(host, app, base, trainer)).new_page()
            await enter(studio, meeting.id)
            await studio.evaluate(WATCH)
            classroom = await (await logged_in_context(inside, app, base, room_user)).new_page()
            await enter(classroom, meeting.id)
            await classroom.evaluate(WATCH)
            pid = str(await classroom.evaluate("window.live.participantId"))
            await wait_rising(classroom, "presenter-video", "frames")
            await wait_rising(classroom, "presenter-audio", "packets")
            await wait_rising(studio, "grid-0", "frames")  # the classroom's camera reaches the presenter

            # 1. The link drops to 1 kbit/s for 10 s, then comes back.
            back = await ns.cut(CUT_S)
            audio_s, video_s = await time_to_media(classroom, back)
            renewed = await classroom.evaluate("window.__offers") > 0  # it had to renew its connections
            print(f"\n10 s cut: presenter audio back after {audio_s:.2f} s, video after {video_s:.2f} s"
                  f" ({'renewed' if renewed else 'the same'} connections)")
            await wait_rising(studio, "grid-0", "frames")
            assert await classroom.evaluate("window.__reconnecting") >= 1  # it showed "Đang kết nối lại…"
            await classroom.wait_for_function("() => document.getElementById('live').dataset.state === 'connected'",
                                              timeout=WAIT_MS)
            assert await classroom.evaluate("window.live.participantId") == pid
            assert pid not in await studio.evaluate("window.__left")

            # 2. The server's connections of the classroom fail (as when ICE consent expires): the classroom
            # gets peer-failed, is reconnecting meanwhile, renews them with `restart` and keeps its place.
            room = app[LIVE].sfu.rooms[str(meeting.id)]
            participant = room.participants[pid]
            assert participant.up is not None and participant.down is not None
            await classroom.evaluate("window.__down = window.live.down")
            failed = time.monotonic()
            await participant.up.pc.close()  # not Peer.close: the room sees a connection that ended by itself
            await classroom.wait_for_function("() => window.live.down && window.live.down !== window.__down",
                                              timeout=WAIT_MS)  # renewed: what it receives now is the new one's
            audio_s, video_s = await time_to_media(classroom, failed)
            print(f"server-side failure: presenter audio back after {audio_s:.2f} s, video after {video_s:.2f} s")
            await wait_rising(studio, "grid-0", "frames")
            await studio.wait_for_function("() => window.__states.includes('reconnecting') "
                                           "&& window.__states[window.__states.length - 1] === 'connected'",
                                           timeout=WAIT_MS)
            assert await classroom.evaluate("window.live.participantId") == pid
            assert pid not in await studio.evaluate("window.__left")
            assert room.participants[pid].state == "connected"
        finally:
            await host.close()
            await inside.close()
