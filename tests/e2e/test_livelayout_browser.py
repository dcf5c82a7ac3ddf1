"""Real Chromium at 1366×768: the live pages as trainers and classrooms meet them (issue 18).

The studio with five classrooms (scripted participants: no media, so the test stays light), the room locked and
recorded: the whole title, chips that do not overlap, all five tiles of the grid on the page without scrolling, tab
labels on one line, a classroom's audio-only choice marked on its tile, "Lock room" disabled after leaving. The
classroom with the floor: one row of controls, "Send" inside the page and not under a toast, poll results beside
the stage instead of over the shared screen, the device check that could not measure the network (it says so and
ticks nothing), audio-only visible and undone with one click. Screenshots go to tests/artifacts/livelayout-*.png.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, Route

from server.auth import COOKIE, create_login
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Role, User
from tests.e2e.browser import ARTIFACTS, SMALL_VIDEO, logged_in_context
from tests.e2e.conftest import LiveServer, _Req, new_context
from tests.live_client import LiveClient

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]
TITLE = "Bài 3: Dạy học phát triển năng lực học sinh qua hoạt động trải nghiệm"

# The boxes (viewport coordinates) of the elements a selector finds, visible ones only.
BOXES = """(sel) => Array.from(document.querySelectorAll(sel)).filter((e) => e.getClientRects().length)
  .map((e) => { const r = e.getBoundingClientRect();
    return {sel, x: r.left, y: r.top, r: r.right, b: r.bottom, w: r.width, h: r.height,
            text: (e.textContent || "").trim().slice(0, 40),
            cut: e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1}; })"""
# Each visible tile of the grid shows a picture or says why not (never a black tile).
BLACK_TILES = """() => Array.from(document.querySelectorAll('[data-grid] [data-tile]:not([hidden])')).filter((t) => {
  const v = t.querySelector('video'), o = t.querySelector('[data-overlay]');
  return !(v && v.videoWidth > 0) && (o.hidden || !o.textContent.trim()); }).length"""
SCROLLED = """() => { const main = document.querySelector('.lv-studio-main');
  return [document.scrollingElement.scrollHeight - innerHeight, main.scrollHeight - main.clientHeight]; }"""
FIVE = "() => document.querySelectorAll('[data-grid] [data-tile]:not([hidden])').length === 5"


async def boxes(page: Page, sel: str) -> list[dict[str, Any]]:
    """boxes: the visible elements of `sel` with their boxes (and whether their text is cut: `cut`)."""
    return list(await page.evaluate(BOXES, sel))


def inside(box: dict[str, Any], w: int = 1366, h: int = 768) -> bool:
    """inside: the box lies within the viewport."""
    return box["x"] >= -0.5 and box["y"] >= -0.5 and box["r"] <= w + 0.5 and box["b"] <= h + 0.5


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """overlap: the two boxes share some area."""
    return min(a["r"], b["r"]) - max(a["x"], b["x"]) > 0.5 and min(a["b"], b["b"]) - max(a["y"], b["y"]) > 0.5


async def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"livelayout-{name}.png"))


@pytest.fixture
async def scripted(live_server: LiveServer) -> AsyncIterator[Callable[[User, int], Awaitable[LiveClient]]]:
    """scripted: join a meeting as a user through /ws without media (a LiveClient on its own cookies)."""
    made: list[tuple[aiohttp.ClientSession, LiveClient]] = []

    async def join(user: User, meeting_id: int) -> LiveClient:
        async with live_server.app[DB]() as s:
            login = await create_login(s, _Req(live_server.app), user=user, hours=1)  # type: ignore[arg-type]
            await s.commit()
        session = aiohttp.ClientSession(cookies={COOKIE: login.id})
        lc = LiveClient(session, live_server("/ws").replace("http", "ws", 1), auto_answer=False)
        made.append((session, lc))
        await lc.connect()
        await lc.join(meeting_id)
        return lc

    yield join
    for session, lc in made:
        await lc.close()
        await session.close()


async def classrooms(make_user: Factory, make_classroom: Factory, n: int) -> list[User]:
    """classrooms: n classroom accounts, each of its own classroom."""
    made = []
    for i in range(n):
        cid = await make_classroom(code=f"CT-{i + 1:02d}", name=f"Phòng học THCS số {i + 1}")
        made.append(await make_user(Role.CLASSROOM, classroom_id=cid, display_name=f"Lớp THCS Nậm Nhùn {i + 1}"))
    return made


async def test_studio_fits_1366x768(browser: Browser, live_server: LiveServer, make_user: Factory,
                                    make_classroom: Factory, make_meeting: Factory, scripted: Any) -> None:
    app, base = live_server.app, live_server.url
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Phạm Thu Hà")
    rooms = await classrooms(make_user, make_classroom, 5)
    meeting = await make_meeting(presenters=[trainer], classrooms=[u.classroom_id for u in rooms], title=TITLE)
    studio = await (await logged_in_context(browser, app, base, trainer)).new_page()
    await studio.goto(f"/live/{meeting.id}")
    await studio.click("[data-action=join]")
    await studio.wait_for_selector("[data-stage]:not([hidden])")
    clients = [await scripted(u, meeting.id) for u in rooms]
    await studio.wait_for_function(FIVE)

    # A classroom that chose audio-only is marked on its tile, and unmarked when it takes video back.
    await clients[1].request("audio-only", enabled=True)
    marked = f"[data-grid] [data-participant='{clients[1].participant_id}'] [data-audio-only]:not([hidden])"
    await studio.wait_for_selector(marked)

    # Locked and recorded (the recording's chip and notice as the recorder's `recording` event shows them).
    await studio.click("[data-action=lock]")
    await studio.wait_for_selector("[data-lockmark]:not([hidden])")
    await studio.evaluate("""() => { window.live.recording = true; window.TaphuanLive.renderRecording(); }""")
    await studio.wait_for_selector("[data-rec-notice]:not([hidden])")
    await studio.wait_for_function(FIVE)  # the lock re-renders every slot: classrooms without a camera stay
    await studio.wait_for_timeout(300)
    await shot(studio, "studio-recording")

    title = (await boxes(studio, ".live-title"))[0]
    assert not title["cut"], f"the meeting title is cut: {title}"
    head = [b for sel in (".live-title", "[data-conn]", "[data-people-chip]", "[data-lockmark]", "[data-recmark]",
                          "[data-quality]", ".lv-head-tools .lv-btn") for b in await boxes(studio, sel)]
    for i, a in enumerate(head):
        assert inside(a), f"outside the page: {a}"
        for b in head[i + 1:]:
            assert not overlap(a, b), f"{a} overlaps {b}"
    tiles = await boxes(studio, "[data-grid] [data-tile]")
    assert len(tiles) == 5 and all(inside(t) for t in tiles), f"the grid does not fit the page: {tiles}"
    assert await studio.evaluate(BLACK_TILES) == 0, "a classroom shows a black tile"
    scroll = await studio.evaluate(SCROLLED)
    assert max(scroll) <= 1, f"the page or the grid scrolls: {scroll}"
    for tab in await boxes(studio, ".lv-tab span"):
        assert tab["h"] < 22 and not tab["cut"] and inside(tab), f"a tab label wraps or is cut: {tab}"

    await studio.click("[data-action=rec-notice-ok]")
    await shot(studio, "studio")
    await clients[1].request("audio-only", enabled=False)
    await studio.wait_for_selector(marked, state="detached")

    # After leaving, the room's controls are off.
    await studio.click("[data-action=leave]")
    await studio.click("[data-leave-only]")  # a presenter chooses: only I leave, or end for everyone
    await studio.wait_for_selector("[data-ended]:not([hidden])")
    assert await studio.is_disabled("[data-action=lock]")
    await asyncio.sleep(0)


async def test_classroom_with_the_floor(browser: Browser, live_server: LiveServer, make_user: Factory,
                                        make_classroom: Factory, make_meeting: Factory, scripted: Any) -> None:
    app, base = live_server.app, live_server.url
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Trần Minh")
    (room,) = await classrooms(make_user, make_classroom, 1)
    meeting = await make_meeting(presenters=[trainer], classrooms=[room.classroom_id], title=TITLE)
    presenter = await scripted(trainer, meeting.id)
    # a PC whose clock is set to another zone: times are still drawn in the server's (Asia/Ho_Chi_Minh)
    context = await new_context(browser, base, user=room, app=app, timezone_id="America/New_York")
    await context.add_init_script(SMALL_VIDEO)
    page = await context.new_page()

    # The network check cannot reach the server: it says it could not measure, and ticks nothing.
    async def refuse(route: Route) -> None:
        await route.abort()

    await page.route("**/netcheck/**", refuse)
    await page.goto(f"/live/{meeting.id}")
    await page.wait_for_function("() => window.TaphuanLive.check.net")
    verdict = await page.text_content("[data-net-verdict]") or ""
    assert "Không đo được" in verdict and "Yếu" not in verdict, verdict
    assert await page.get_attribute("[data-net]", "data-level") == "0"
    assert not await page.is_checked("[data-join-audio-only]")
    await page.unroute("**/netcheck/**")

    # Joined with audio only (ticked by hand): the page says so, the presenter is told, one click brings video back.
    await page.check("[data-join-audio-only]")
    await page.click("[data-action=join]")
    await page.wait_for_selector("[data-audio-only-banner]:not([hidden])")
    await presenter.wait(lambda m: m.get("type") == "participant-audio-only" and m["enabled"] is True)
    assert await page.get_attribute(".lv-bar [data-action=audio-only]", "aria-pressed") == "true"
    await shot(page, "classroom-audio-only")
    await page.click("[data-audio-only-banner] [data-action=video-back]")
    await page.wait_for_selector("[data-audio-only-banner]", state="hidden")
    await presenter.wait(lambda m: m.get("type") == "participant-audio-only" and m["enabled"] is False)
    assert await page.evaluate("window.TaphuanLive.audioOnly") is False

    # The floor, a chat message's toast and a closed poll's results.
    pid = str(await page.evaluate("window.live.participantId"))
    await presenter.request("give-floor", participant_id=pid)
    await page.wait_for_selector("[data-floor-note]:not([hidden])")
    await page.check("[data-ptt-toggle]")
    await page.wait_for_selector("[data-action=ptt]:not([hidden])")
    poll = await presenter.request("poll-create", question="Âm thanh có rõ không?", choices=["Rõ", "Chưa rõ"])
    await page.wait_for_selector("[data-poll-float]:not([hidden])")
    await page.click("[data-action=poll-answer][data-choice='0']")
    await presenter.request("poll-close", poll_id=poll["poll_id"])
    await page.wait_for_selector("[data-poll-results]")
    await page.evaluate("() => window.TaphuanLive.toast('Lớp THCS Nậm Nhùn 1 giơ tay', 'info')")
    await page.wait_for_timeout(300)
    await shot(page, "classroom-floor")

    ctl = await boxes(page, ".lv-class-stage .lv-bar .lv-ctl")
    assert len({round(c["y"]) for c in ctl}) == 1, f"the control bar wraps: {ctl}"
    assert all(inside(c) for c in ctl), ctl
    send = (await boxes(page, "[data-action=chat-send]"))[0]
    assert inside(send) and not send["cut"], f"'Gửi' is cut: {send}"
    for toast in await boxes(page, ".lv-toast"):
        assert not overlap(toast, send), f"a toast covers the send button: {toast}"
    results = (await boxes(page, "[data-poll-results]"))[0]
    theatre = (await boxes(page, "[data-theatre]"))[0]
    assert not overlap(results, theatre), f"poll results cover the stage: {results}"

    # A chat message's time is the server's clock time.
    sent = await presenter.request("chat", text="Các lớp nghe rõ không?")
    message = await presenter.wait(lambda m: m.get("type") == "chat" and m["message"]["id"] == sent["message_id"])
    at = dt.datetime.fromisoformat(message["message"]["at"]).astimezone(app[CONFIG].tz)
    shown = await page.text_content(f"[data-message-id='{sent['message_id']}'] time")
    assert shown == at.strftime("%H:%M"), (shown, at)
    assert (await page.request.get("/favicon.ico")).status == 200

    # Another PC of the classroom takes its place: this one ends, with no weak-network offer left on it.
    await page.evaluate("""() => { for (let i = 0; i < 3; i++) window.TaphuanLive.quality.feed(
        {loss: 0.2, rtt: 0.3, avail: null, videoKbps: 30, pausedByNetwork: true}); }""")
    await page.wait_for_selector("[data-weak-banner]:not([hidden])")
    await scripted(room, meeting.id)
    await page.wait_for_selector("[data-ended]:not([hidden])")
    assert await page.is_hidden("[data-weak-banner]")


async def test_join_links_for_all_invited_classrooms(browser: Browser, live_server: LiveServer, make_user: Factory,
                                                     make_classroom: Factory, make_meeting: Factory) -> None:
    app, base = live_server.app, live_server.url
    operator: User = await make_user(Role.OPERATOR, display_name="Điều hành viên")
    rooms = await classrooms(make_user, make_classroom, 3)
    meeting = await make_meeting(classrooms=[u.classroom_id for u in rooms], title=TITLE)
    page = await (await new_context(browser, base, user=operator, app=app)).new_page()

    # One click: a link for each invited classroom; the codes stay on one line.
    await page.goto(f"/meetings/{meeting.id}/links")
    await page.click(f"form[action='/meetings/{meeting.id}/links/invited'] button")
    await page.wait_for_selector(".notice-ok")
    codes = await boxes(page, ".links-table tbody td:first-child .strong")
    assert sorted(c["text"] for c in codes) == ["CT-01", "CT-02", "CT-03"], codes
    assert all(c["h"] < 30 for c in codes), f"a classroom code wraps: {codes}"
    await shot(page, "join-links")
    primary = await page.eval_on_selector(".btn-primary", "(b) => getComputedStyle(b).backgroundColor")  # blue

    # A CSV with the links (spreadsheet programs need the byte order mark) and a printable list.
    reply = await page.request.get(f"/meetings/{meeting.id}/links.csv")
    text = (await reply.body()).decode("utf-8")
    lines = text.lstrip("\ufeff").strip().splitlines()
    assert text.startswith("\ufeff") and len(lines) == 4 and all("/j/" in line for line in lines[1:]), lines
    await page.goto(f"/meetings/{meeting.id}/links/print")
    assert len(await boxes(page, ".links-print tbody tr")) == 3

    # Buttons have one colour on every page (the classrooms page's were green).
    await page.goto("/classrooms")
    colour = "(b) => getComputedStyle(b).backgroundColor"
    assert await page.eval_on_selector(".up-btn:not(.secondary)", colour) == primary
    cells = await boxes(page, ".up-table td:first-child a")
    await shot(page, "classrooms")
    assert cells and all(c["h"] < 30 for c in cells), f"a classroom code wraps: {cells}"
