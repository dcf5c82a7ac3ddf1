"""Real Chromium: a presenter and a classroom in a meeting; the operator console shows both with live figures."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from server.db.models import Role, User
from tests.e2e.browser import ARTIFACTS, WAIT_MS, logged_in_context
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]

# Every participant row has media flowing and its sparkline drew points.
ALL_FLOWING = """(n) => {
  const rows = Array.from(document.querySelectorAll(n.sel));
  if (rows.length !== n.count) return false;
  return rows.every((row) => Number(row.dataset.bitrate) > 0 &&
    Number(row.querySelector("svg.cc-spark").dataset.points || 0) >= 2);
}"""

# The open charts of one participant each drew points.
CHARTS_DRAWN = """(pid) => {
  const box = document.querySelector(`[data-charts='${pid}']`);
  const canvases = box ? Array.from(box.querySelectorAll("canvas")) : [];
  return !box.hidden && canvases.length === 4 && canvases.every((c) => Number(c.dataset.points || 0) >= 2);
}"""

# Some pixels of the canvas are not transparent: the chart was drawn.
INKED = """(canvas) => {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""


async def enter_live(page: Page, meeting_id: int) -> None:
    """enter_live: open the live room, join, and wait until the up connection is connected."""
    await page.goto(f"/live/{meeting_id}")
    await page.click("[data-action=join]")
    await page.wait_for_function("() => window.live && window.live.up && "
                                 "window.live.up.connectionState === 'connected'", timeout=WAIT_MS)


async def test_console_shows_bitrate_and_charts_for_each_participant(
        browser: Browser, live_server: LiveServer, make_user: Factory, make_classroom: Factory,
        make_meeting: Factory) -> None:
    app, base = live_server.app, live_server.url
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Nguyễn Thị Lan")
    classroom_id = await make_classroom(name="Phòng học THCS Mường Tè")
    room: User = await make_user(Role.CLASSROOM, classroom_id=classroom_id, display_name="Lớp THCS Mường Tè")
    operator: User = await make_user(Role.OPERATOR, display_name="Điều hành viên")
    meeting = await make_meeting(presenters=[trainer], classrooms=[classroom_id],
                                 title="Bồi dưỡng giáo viên Toán THCS — buổi 3")

    studio = await (await logged_in_context(browser, app, base, trainer)).new_page()
    await enter_live(studio, meeting.id)
    classroom = await (await logged_in_context(browser, app, base, room)).new_page()
    await enter_live(classroom, meeting.id)
    presenter_id = str(await studio.evaluate("window.live.participantId"))
    classroom_pid = str(await classroom.evaluate("window.live.participantId"))

    console = await (await logged_in_context(browser, app, base, operator)).new_page()
    await console.goto("/console")
    card = console.locator(f".cc-room[data-room='{meeting.id}']")
    await card.wait_for(timeout=WAIT_MS)
    await console.wait_for_function(ALL_FLOWING, arg={"sel": f".cc-room[data-room='{meeting.id}'] .cc-row",
                                                      "count": 2}, timeout=WAIT_MS)
    for pid in (presenter_id, classroom_pid):
        row = card.locator(f".cc-row[data-participant='{pid}']")
        assert float(await row.get_attribute("data-bitrate") or 0) > 0, pid
        assert await row.get_attribute("data-state") == "connected"
        assert await row.locator("canvas").count() == 0  # the charts wait for a click
    # A click on a row opens its four charts, drawn.
    await card.locator(f".cc-row[data-participant='{presenter_id}']").click()
    await console.wait_for_function(CHARTS_DRAWN, arg=presenter_id, timeout=WAIT_MS)
    for i in range(4):
        assert await card.locator(f"[data-charts='{presenter_id}'] canvas").nth(i).evaluate(INKED) > 0
    assert float(await card.locator(f".cc-row[data-participant='{presenter_id}']")
                 .get_attribute("data-publish") or 0) > 0
    assert float(await card.locator(f".cc-row[data-participant='{classroom_pid}']")
                 .get_attribute("data-receive") or 0) > 0
    assert "Lớp THCS Mường Tè" in await card.inner_text()
    assert await card.locator("[data-action=enter]").get_attribute("href") == f"/live/{meeting.id}"
    assert await card.locator("[data-action=view-classroom]").get_attribute("href") == \
        f"/live/{meeting.id}?view=classroom"
    assert await console.locator("[data-count=rooms]").inner_text() == "1"
    assert await console.locator("[data-count=people]").inner_text() == "2"
    await console.wait_for_timeout(4000)  # a few more points on the sparklines for the screenshot
    await console.screenshot(path=str(ARTIFACTS / "console.png"), full_page=True)

    # The room page: the same table; a row's charts with scales and its send/receive details.
    await card.locator("[data-action=details]").click()
    await console.wait_for_url(f"**/console/{meeting.id}")
    await console.wait_for_function(ALL_FLOWING, arg={"sel": ".cc-row", "count": 2}, timeout=WAIT_MS)
    await console.locator(f".cc-row[data-participant='{classroom_pid}']").click()
    await console.wait_for_function(CHARTS_DRAWN, arg=classroom_pid, timeout=WAIT_MS)
    person = console.locator(f"[data-charts='{classroom_pid}']")
    assert await person.locator("canvas.cd-canvas").first.evaluate(INKED) > 0
    assert "Nhận về" in await person.inner_text()
    await console.wait_for_timeout(4000)
    await console.screenshot(path=str(ARTIFACTS / "console-room.png"), full_page=True)

    # The classroom leaves: it disappears from the console.
    await classroom.context.close()
    await console.wait_for_function("(pid) => !document.querySelector(`.cc-row[data-participant='${pid}']`)",
                                    arg=classroom_pid, timeout=WAIT_MS)


def _person(pid: str, name: str, role: str, *, up: int = 0, down: int = 300_000, lost: float = 0.0,
            rtt: float = 0.02, state: str = "connected", **extra: Any) -> dict[str, Any]:
    producers = [{"source": "camera", "kind": "video", "bitrate": up, "packets": 1000, "packets_lost": 0,
                  "loss": 0.0, "muted": False, "consumers": 1}] if up else []
    return {"id": pid, "name": name, "role": role, "state": state, "hand_raised": False, "presenter": False,
            "floor": False, "audio_only": False, "muted": [], "classroom": None, "unit": "Sơn La",
            "publish_bitrate": up, "producers": producers,
            "receive": {"slots": 2, "bitrate": down, "fraction_lost": lost, "jitter": 0.004, "rtt": rtt,
                        "remb": 1_500_000, "packets_lost": 0, "nacks": 0, "keyframe_requests": 0}, **extra}


async def test_console_colours_degraded_classrooms(browser: Browser, live_server: LiveServer,
                                                   make_user: Factory, make_meeting: Factory) -> None:
    """The figures come from a stubbed API answer: amber for loss > 5 % or RTT > 400 ms, red for loss > 15 %
    or no media for 10 s; the room card takes the worst level."""
    from tests.e2e.conftest import new_context

    operator: User = await make_user(Role.OPERATOR)
    meeting = await make_meeting(title="Tập huấn cán bộ quản lý")
    room = {"meeting_id": meeting.id, "title": meeting.title, "kind": "lecture", "starts_at": None, "ends_at": None,
            "video_codec": "VP8", "participant_count": 6, "presenter_id": "p-1", "presenter_name": "Trần Văn Minh",
            "floor_id": None, "floor_name": None, "locked": True, "lobby_waiting": 2, "at": "2025-01-01T00:00:00Z",
            "recording": True,
            "participants": [
                _person("p-1", "Trần Văn Minh", "trainer", up=900_000, down=0, presenter=True),
                _person("p-2", "Lớp học Bắc Yên", "classroom", up=300_000, lost=0.08),
                _person("p-3", "Lớp học Mộc Châu", "classroom", up=280_000, rtt=0.52, hand_raised=True),
                _person("p-4", "Lớp học Quỳnh Nhai", "classroom", lost=0.22),
                _person("p-5", "Lớp học Sốp Cộp", "classroom", down=0),
                _person("p-6", "Lớp học Mường La", "classroom", state="reconnecting", down=0),
                _person("p-rec", "Ghi hình", "recorder", down=900_000),  # an older answer listing the recorder
            ]}
    ctx = await new_context(browser, live_server.url, user=operator, app=live_server.app)
    page = await ctx.new_page()
    await page.route("**/api/v1/live/rooms", lambda route: route.fulfill(json=[room]))
    await page.goto("/console")
    card = page.locator(f".cc-room[data-room='{meeting.id}']")
    await card.wait_for(timeout=WAIT_MS)

    async def level(pid: str) -> str | None:
        return await card.locator(f".cc-row[data-participant='{pid}']").get_attribute("data-level")

    await page.wait_for_function("() => document.querySelector(\".cc-row[data-participant='p-5']\")"
                                 ".dataset.level === 'bad'", timeout=WAIT_MS)  # no media for 10 s
    assert await level("p-1") == "ok"
    assert await level("p-2") == "warn"  # 8 % loss
    assert await level("p-3") == "warn"  # RTT 520 ms
    assert await level("p-4") == "bad"  # 22 % loss
    assert await level("p-6") == "bad"  # reconnecting for more than 10 s
    assert await card.get_attribute("data-level") == "bad"
    assert await page.locator("[data-count=warn]").inner_text() == "2"
    assert await page.locator("[data-count=bad]").inner_text() == "3"
    text = await card.inner_text()
    for words in ("Đã khoá", "Đang chờ vào", "Đang kết nối lại…", "Không có tín hiệu 10 giây", "Giơ tay", "Đang ghi"):
        assert words in text, words
    # The recorder is only the "Đang ghi" badge, never a participant row.
    assert await card.locator("[data-recording]").count() == 1
    assert await card.locator(".cc-row[data-participant='p-rec']").count() == 0
    assert await page.locator("[data-count=people]").inner_text() == "6"
    colour = await card.locator(".cc-row[data-participant='p-4'] td").first.evaluate(
        "(cell) => getComputedStyle(cell).backgroundColor")
    assert colour != "rgba(0, 0, 0, 0)"
    await page.screenshot(path=str(ARTIFACTS / "console-degraded.png"), full_page=True)
    await ctx.close()


# Levels of the rows from the top, as ranks (bad 2, warn 1, ok 0), and each row's height.
ROWS = """() => Array.from(document.querySelectorAll(".cc-row")).map((r) => ({
  id: r.dataset.participant, rank: {bad: 2, warn: 1, ok: 0}[r.dataset.level], rtt: Number(r.dataset.rtt || -1),
  h: r.getBoundingClientRect().height}))"""


# 86 rows, the first one's sparkline three polls long.
SPARKED = """() => document.querySelectorAll(".cc-row").length === 86 &&
  Number(document.querySelector(".cc-row svg.cc-spark").dataset.points || 0) >= 3"""
SORTED = """(way) => document.querySelector("th[data-col=rtt]").getAttribute("aria-sort") === way"""


async def test_console_table_scales_to_86_classrooms(browser: Browser, live_server: LiveServer,
                                                     make_user: Factory, make_meeting: Factory) -> None:
    """86 classrooms (a stubbed API answer): one compact row each, problems first, sortable by a header click, a
    row's charts open under it on click; nothing wider than the 1366 px screen."""
    from tests.e2e.conftest import new_context

    operator: User = await make_user(Role.OPERATOR)
    meeting = await make_meeting(title="Tập huấn 86 phòng học")
    units = ("Sơn La", "Điện Biên", "Lai Châu", "Hà Giang", "Cao Bằng", "Lào Cai")
    people = [_person("p-0", "Giảng viên Trần Văn Minh", "trainer", up=900_000, down=0, presenter=True)]
    for i in range(1, 86):
        extra: dict[str, Any] = {"unit": units[i % len(units)]}
        if i % 17 == 0:
            extra["lost"] = 0.25   # red
        elif i % 11 == 0:
            extra["rtt"] = 0.45 + i / 1000  # amber
        elif i % 13 == 0:
            extra["state"] = "reconnecting"
        if i % 7 == 0:
            extra["audio_only"] = True
        people.append(_person(f"p-{i}", f"Lớp học số {i:02d}", "classroom", up=200_000 + i * 1000, **extra))
    room = {"meeting_id": meeting.id, "title": meeting.title, "kind": "lecture", "starts_at": None, "ends_at": None,
            "video_codec": "VP8", "participant_count": len(people), "presenter_id": "p-0",
            "presenter_name": "Trần Văn Minh", "floor_id": None, "floor_name": None, "locked": False,
            "lobby_waiting": 0, "at": "2025-01-01T00:00:00Z", "recording": False, "participants": people}
    ctx = await new_context(browser, live_server.url, user=operator, app=live_server.app)
    page = await ctx.new_page()
    await page.route("**/api/v1/live/rooms", lambda route: route.fulfill(json=[room]))
    await page.goto("/console")
    await page.wait_for_function(SPARKED, timeout=WAIT_MS)
    rows = await page.evaluate(ROWS)
    assert len(rows) == 86
    assert max(r["h"] for r in rows) <= 48, max(r["h"] for r in rows)  # compact: a 5-card page was 2,076 px
    ranks = [r["rank"] for r in rows]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] == 2 and ranks[-1] == 0  # problems first
    assert {r["id"] for r in rows[:5]} == {"p-17", "p-34", "p-51", "p-68", "p-85"}
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 1366
    header = await page.locator(".cc-grid thead").bounding_box()
    assert header and header["x"] >= 0 and header["x"] + header["width"] <= 1366
    await page.screenshot(path=str(ARTIFACTS / "console-86.png"))

    # A header click sorts by RTT, largest first; a second click, smallest first.
    await page.click(".cc-grid [data-sort=rtt]")
    await page.wait_for_function(SORTED, arg="descending")
    rtts = [r["rtt"] for r in await page.evaluate(ROWS)]
    assert rtts == sorted(rtts, reverse=True) and rtts[0] > 400
    await page.click(".cc-grid [data-sort=rtt]")
    await page.wait_for_function(SORTED, arg="ascending")
    rtts = [r["rtt"] for r in await page.evaluate(ROWS)]
    assert rtts == sorted(rtts)

    # A click on a row opens its charts right under it; another click closes them.
    row = page.locator(".cc-row[data-participant='p-22']")
    await row.click()
    await page.wait_for_function(CHARTS_DRAWN, arg="p-22", timeout=WAIT_MS)
    under = await page.locator("[data-charts='p-22']").bounding_box()
    box = await row.bounding_box()
    assert under and box and abs(under["y"] - (box["y"] + box["height"])) <= 2
    assert under["x"] + under["width"] <= 1366
    # Scrolled down among the rows, the column headers stay in sight under the site's top bar.
    bar = await page.locator(".topbar").bounding_box()
    head = await page.locator(".cc-grid th").first.bounding_box()
    assert bar and head and head["y"] >= bar["y"] + bar["height"] - 1 and head["y"] <= bar["y"] + bar["height"] + 4
    await page.screenshot(path=str(ARTIFACTS / "console-86-charts.png"), full_page=False)
    await row.click()
    assert await page.locator("[data-charts='p-22']").is_hidden()
    await ctx.close()


async def test_the_operator_menu_fits_at_1366(browser: Browser, live_server: LiveServer, make_user: Factory) -> None:
    """Ten entries (with the archive) stay on one line at 1366 px, none scrolled out of sight; the name in the
    top bar opens the password page."""
    from tests.e2e.conftest import new_context

    operator: User = await make_user(Role.OPERATOR, display_name="Quản trị viên Nguyễn Thị Thu Hằng")
    ctx = await new_context(browser, live_server.url, user=operator, app=live_server.app)
    page = await ctx.new_page()
    await page.goto("/console")
    nav = page.locator("#mainnav")
    labels = [t.strip() for t in await nav.locator("a").all_inner_texts()]
    assert "Lưu trữ" in labels and len(labels) >= 10, labels
    assert await nav.evaluate("(n) => n.scrollWidth <= n.clientWidth + 1"), "the menu overflows"
    box = await nav.bounding_box()
    last = await nav.locator("a").last.bounding_box()
    assert box and last and last["x"] + last["width"] <= box["x"] + box["width"] + 1
    assert (await nav.bounding_box() or {}).get("height", 99) < 64  # one line
    await page.screenshot(path=str(ARTIFACTS / "nav-operator-1366.png"), clip={"x": 0, "y": 0, "width": 1366,
                                                                               "height": 140})
    assert await page.is_visible(".whoami")
    await page.click(".whoami")
    await page.wait_for_url("**/me/password")
    await ctx.close()


async def test_a_trainer_sees_the_name_and_the_archive_at_1366(browser: Browser, live_server: LiveServer,
                                                               make_user: Factory) -> None:
    from tests.e2e.conftest import new_context

    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Phạm Thu Hà")
    ctx = await new_context(browser, live_server.url, user=trainer, app=live_server.app)
    page = await ctx.new_page()
    await page.goto("/archive")
    nav = page.locator("#mainnav")
    assert await nav.locator("a[aria-current=page]").inner_text() == "Lưu trữ"
    assert await nav.evaluate("(n) => n.scrollWidth <= n.clientWidth + 1")
    assert await page.is_visible(".brand-name") and await page.is_visible(".whoami")
    await page.screenshot(path=str(ARTIFACTS / "nav-trainer-1366.png"), clip={"x": 0, "y": 0, "width": 1366,
                                                                              "height": 140})
    await page.click(".whoami")
    await page.wait_for_url("**/me/password")
    await ctx.close()
