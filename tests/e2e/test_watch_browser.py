"""Real Chromium: /watch/{meeting} plays a live HLS broadcast (ffmpeg -re in the broadcaster's layout) with hls.js
(currentTime advances, two renditions offered, automatic by default), counts the viewer in attendance from its
heartbeat, carries a question to a presenter's WebSocket and shows the presenter's answer, and shows the ended state
with the archive link once the broadcast ends. Screenshots in tests/artifacts/ (watch-live.png, watch-ended.png)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from playwright.async_api import Browser

from server.auth import COOKIE, create_login
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import BroadcastView, Recording, RecordingAudience, RecordingState, Role, User
from tests.e2e.browser import ARTIFACTS
from tests.e2e.conftest import LiveServer, _Req, new_context
from tests.hlsgen import LiveHls
from tests.live_client import LiveClient

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


async def test_watch_live_broadcast(browser: Browser, live_server: LiveServer,
                                    make_user: Callable[..., Awaitable[User]],
                                    make_meeting: Callable[..., Awaitable[Any]]) -> None:
    app = live_server.app
    trainer = await make_user(Role.TRAINER, display_name="Cô Nguyễn Thị Hoa")
    meeting = await make_meeting(presenters=[trainer], title="Phát trực tiếp: Toán 6 – Phân số")
    directory = f"{meeting.id}-live"
    async with app[DB]() as s:
        row = Recording(meeting_id=meeting.id, program_id=meeting.program_id, title=meeting.title,
                        directory=directory, audience=RecordingAudience.ALL)
        s.add(row)
        await s.commit()
        rid = row.id
    live = LiveHls(app[CONFIG].data_path / "recordings" / directory / "hls")
    await asyncio.to_thread(live.start)
    learner = await make_user(Role.LEARNER, display_name="Thầy Lò Văn Minh")
    ctx = await new_context(browser, live_server.url, user=learner, app=app)
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # (a cookie for 127.0.0.1)
    presenter: LiveClient | None = None
    try:
        page = await ctx.new_page()
        supported = await page.evaluate("MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.4d401f,mp4a.40.2\"')")
        assert supported, "this Chromium plays no H.264 through MediaSource"
        await page.goto(f"/watch/{meeting.id}")
        await page.wait_for_function("() => document.querySelector('[data-watch-video]').currentTime > 0.5")
        first = await page.evaluate("document.querySelector('[data-watch-video]').currentTime")
        await page.wait_for_function(
            f"() => document.querySelector('[data-watch-video]').currentTime > {first + 1.5}")
        badge = (await page.text_content("[data-watch-badge]") or "").strip()
        assert await page.is_visible("[data-watch-badge]") and badge == "Trực tiếp"
        assert "Cô Nguyễn Thị Hoa" in await page.inner_text("[data-watch-presenters]")
        options = await page.eval_on_selector_all("[data-watch-quality] option", "els => els.map(e => e.textContent)")
        assert options[0].startswith("Tự động") and sorted(options[1:]) == ["180p", "90p"]
        assert await page.input_value("[data-watch-quality]") == "-1"  # automatic by bandwidth

        # The heartbeat on playing counts the viewer (the meeting's attendance).
        async def counted() -> bool:
            async with app[DB]() as s:
                return await s.scalar(sa.select(BroadcastView.id).where(
                    BroadcastView.meeting_id == meeting.id, BroadcastView.user_id == learner.id)) is not None
        for _ in range(100):
            if await counted():
                break
            await asyncio.sleep(0.1)
        assert await counted()

        # A question reaches the presenter's WebSocket; the presenter's answer shows on the page.
        async with app[DB]() as s:
            login = await create_login(s, _Req(app), user=trainer, hours=1)  # type: ignore[arg-type]
            await s.commit()
        session.cookie_jar.update_cookies({COOKIE: login.id}, response_url=aiohttp.client.URL(live_server.url))
        presenter = await LiveClient(session, live_server.url.replace("http", "ws", 1) + "/ws").connect()
        await presenter.join(meeting.id)
        await page.fill("[data-watch-ask] textarea[name=text]", "Xin hỏi: quy đồng mẫu số thế nào?")
        await page.click("[data-watch-ask] button[type=submit]")
        asked = await presenter.wait(lambda m: m.get("type") == "broadcast-question")
        assert asked["question"]["name"] == "Thầy Lò Văn Minh"
        await page.wait_for_selector("[data-question][data-state=pending]")
        await presenter.request("question-answer", question_id=asked["question"]["id"],
                                text="Tìm mẫu số chung nhỏ nhất trước.")
        await page.wait_for_selector("[data-question][data-state=answered] [data-answer]", timeout=30_000)
        assert "mẫu số chung nhỏ nhất" in await page.inner_text("[data-answer]")
        await page.screenshot(path=str(ARTIFACTS / "watch-live.png"))

        # The broadcast ends: the page says so and links to the archive entry.
        await asyncio.to_thread(live.stop)
        await page.wait_for_selector("[data-watch-ended]:not([hidden])", timeout=60_000)
        assert await page.get_attribute("[data-watch-archive-link]", "href") == f"/archive/{rid}"
        await page.screenshot(path=str(ARTIFACTS / "watch-ended.png"))

        # Once the recording is ready and published, the archive player plays the same renditions with hls.js,
        # the rendition chosen by bandwidth; the WebM stays the download.
        async with app[DB]() as s:
            await s.execute(sa.update(Recording).where(Recording.id == rid).values(
                state=RecordingState.READY, published=True, file="lecture.webm", mime="video/webm", duration=10.0))
            await s.commit()
        await page.goto(f"/archive/{rid}")
        await page.wait_for_selector("[data-player-video][data-hls='hls.js']")
        await page.evaluate("document.querySelector('[data-player-video]').play()")
        await page.wait_for_function("() => document.querySelector('[data-player-video]').currentTime > 1")
        assert (await page.get_attribute("[data-download]", "href") or "").endswith("/media?download=1")
    finally:
        await asyncio.to_thread(live.stop)
        if presenter is not None:
            await presenter.close()
        await session.close()
        await ctx.close()


# The studio's publishing is held 4 s (its peer connection's answer applied late), as on a busy machine: the chat
# panel the presenter opens meanwhile must stay open. (It did not: the end of joining, after publishing, put the
# studio back on the hands panel; in full runs of the suite publishing took long enough for the test to click the
# chat tab first, and the questions box was never seen.)
SLOW_PUBLISH = """
(() => {
  const apply = RTCPeerConnection.prototype.setRemoteDescription;
  let first = true;
  RTCPeerConnection.prototype.setRemoteDescription = function (...args) {
    if (!first || !args[0] || args[0].type !== "answer") return apply.apply(this, args);  // publishing's answer
    first = false;
    return new Promise((resolve) => setTimeout(resolve, 4000)).then(() => apply.apply(this, args))
      .then((done) => { setTimeout(() => { window.taphuanAnswerApplied = true; }, 500); return done; });
  };
})();
"""


async def test_studio_moderates_viewers_questions(browser: Browser, live_server: LiveServer,
                                                  make_user: Callable[..., Awaitable[User]],
                                                  make_meeting: Callable[..., Awaitable[Any]]) -> None:
    app = live_server.app
    trainer = await make_user(Role.TRAINER, display_name="Cô Nguyễn Thị Hoa")
    meeting = await make_meeting(presenters=[trainer], title="Phát trực tiếp: Ngữ văn 7")
    async with app[DB]() as s:
        s.add(Recording(meeting_id=meeting.id, program_id=meeting.program_id, title=meeting.title,
                        directory=f"{meeting.id}-q", audience=RecordingAudience.ALL))
        await s.commit()
    learner = await make_user(Role.LEARNER, display_name="Cô Lò Thị Mai")
    async with app[DB]() as s:
        login = await create_login(s, _Req(app), user=learner, hours=1)  # type: ignore[arg-type]
        await s.commit()
    viewer = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                   headers={"X-CSRF-Token": login.csrf_token})
    viewer.cookie_jar.update_cookies({COOKIE: login.id}, response_url=aiohttp.client.URL(live_server.url))
    ctx = await new_context(browser, live_server.url, user=trainer, app=app)
    base = f"{live_server.url}/api/v1/broadcasts/{meeting.id}/questions"
    try:
        studio = await ctx.new_page()
        await studio.add_init_script(SLOW_PUBLISH)
        await studio.goto(f"/live/{meeting.id}")
        await studio.click("[data-action=join]")
        await studio.wait_for_selector("[data-stage]:not([hidden])")
        assert await studio.is_hidden("[data-questions-box]")
        for text in ("Xin cô nhắc lại đề bài?", "Bài tập về nhà nộp khi nào?"):
            async with viewer.post(base, json={"viewer": "viewer-mai-01", "text": text}) as r:
                assert r.status == 201
        await studio.wait_for_selector("[data-badge=questions]:not([hidden])")
        # both questions counted (on a loaded host the badge showed the first before the second arrived)
        await studio.wait_for_function(
            "() => (document.querySelector('[data-badge=questions]') || {}).textContent === '2'")
        await studio.click("[data-tab=chat]")
        await studio.wait_for_selector("[data-panel=chat]:not([hidden]) [data-questions-box]:not([hidden])")
        await studio.wait_for_function("() => window.taphuanAnswerApplied === true")  # publishing done: still open
        first = studio.locator("[data-question]").filter(has_text="nhắc lại đề bài")
        await first.locator("[data-action=question-approve]").click()
        await studio.wait_for_selector("[data-chat-list] >> text=Xin cô nhắc lại đề bài?")
        assert "Người xem · Cô Lò Thị Mai" in await studio.inner_text("[data-chat-list]")  # the viewer's, not ours
        second = studio.locator("[data-question]").filter(has_text="nộp khi nào")
        await second.locator("[data-action=question-answer]").click()
        await second.locator("textarea").fill("Thứ Sáu tuần sau.")
        await studio.screenshot(path=str(ARTIFACTS / "studio-questions.png"))
        await second.locator("button[type=submit]").click()
        await studio.wait_for_selector("[data-questions-box]", state="hidden")
        async with viewer.get(f"{base}?viewer=viewer-mai-01") as r:
            mine = await r.json()
        assert [(q["state"], q["answer"]) for q in mine] == [("approved", ""), ("answered", "Thứ Sáu tuần sau.")]
    finally:
        await viewer.close()
        await ctx.close()


async def test_operator_turns_the_public_link_on(browser: Browser, live_server: LiveServer,
                                                 make_user: Callable[..., Awaitable[User]],
                                                 make_meeting: Callable[..., Awaitable[Any]]) -> None:
    app = live_server.app
    meeting = await make_meeting(title="Phát trực tiếp: Tin học 8")
    async with app[DB]() as s:
        row = Recording(meeting_id=meeting.id, program_id=meeting.program_id, title=meeting.title,
                        directory=f"{meeting.id}-pub")
        s.add(row)
        await s.commit()
        rid = row.id
    op = await make_user(Role.OPERATOR)
    ctx = await new_context(browser, live_server.url, user=op, app=app)
    anon = await new_context(browser, live_server.url)
    try:
        page = await ctx.new_page()
        await page.goto(f"/archive/{rid}")
        await page.click("[data-public-toggle=on]")
        url = await page.input_value("[data-public-url]")
        assert f"/watch/{meeting.id}?k=" in url
        # Anyone with the link, without a login: the page says the broadcast has not started yet.
        viewer = await anon.new_page()
        await viewer.goto(url)
        await viewer.wait_for_selector("[data-watch-waiting]:not([hidden])")
        assert "Phát trực tiếp: Tin học 8" in await viewer.inner_text("h1")
        assert await viewer.is_visible("[data-watch-ask] input[name=name]")  # an anonymous viewer may sign
        await viewer.screenshot(path=str(ARTIFACTS / "watch-waiting.png"))
        await page.click("[data-public-toggle=off]")
        await page.wait_for_selector("[data-public-toggle=on]")
        gone = await viewer.goto(url)  # the link stopped working, and the page says so
        assert gone is not None and gone.status == 403 and "đã bị tắt" in await viewer.inner_text("main")
    finally:
        await anon.close()
        await ctx.close()
