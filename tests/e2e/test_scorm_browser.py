"""Real Chromium plays SCORM packages the tests build: the package's own script finds the runtime through
window.parent and sets values, the server holds them; a reload (and another PC) resumes; a link cut for 30 s
during a commit loses nothing; a 2004 package's lessons in turn; a package script cannot read the site's cookie,
reach its API or its page; the unit sees each learner's results. Screenshots: scorm-play-12, scorm-play-2004-menu,
scorm-results."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, FrameLocator, Page, expect
from sqlalchemy import insert, select

from server.auth import COOKIE
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Material, MaterialKind, Program, Role, ScormAttempt, User, program_learners, utcnow
from server.learning import scormrt
from tests.e2e.browser import ARTIFACTS, CSP_VIOLATIONS, WAIT_MS
from tests.e2e.conftest import LiveServer, new_context
from tests.server.scorm_helpers import scorm12, scorm2004

pytestmark = pytest.mark.browser


async def seed(live_server: LiveServer, make_user: Callable[..., Awaitable[User]], data: bytes,
               tmp_path: Path, title: str) -> tuple[User, int]:
    """seed: a learner enrolled in a program with the package `data` as a material (stored as an upload would)."""
    app = live_server.app
    learner = await make_user(Role.LEARNER, username="hv.binh", display_name="Lê Thị Bình")
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / "goi.zip"
    path.write_bytes(data)
    async with app[DB]() as s:
        program = Program(title="Tập huấn GDPT 2018 — Toán 6")
        s.add(program)
        await s.flush()
        await s.execute(insert(program_learners).values(program_id=program.id, user_id=learner.id))
        await scormrt.register(s, app[CONFIG], sha, path)
        material = Material(program_id=program.id, title=title, kind=MaterialKind.PACKAGE, filename="goi.zip",
                            mime="application/zip", size=len(data), sha256=sha, description="", created_at=utcnow())
        s.add(material)
        await s.commit()
        return learner, material.id


async def attempt(live_server: LiveServer, material_id: int, sco: str) -> ScormAttempt | None:
    async with live_server.app[DB]() as s:
        return (await s.scalars(select(ScormAttempt).where(ScormAttempt.material_id == material_id,
                                                           ScormAttempt.sco == sco)
                                .order_by(ScormAttempt.number.desc()))).first()


async def until(live_server: LiveServer, material_id: int, sco: str, check: Callable[[ScormAttempt], bool],
                within: float = WAIT_MS / 1000) -> ScormAttempt:
    """until: the attempt once `check` holds (polled; fails after `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        row = await attempt(live_server, material_id, sco)
        if row is not None and check(row):
            return row
        assert time.monotonic() < deadline, f"attempt {sco}: {row and (row.lesson_status, row.location)}"
        await asyncio.sleep(0.25)


async def learner_context(browser: Browser, live_server: LiveServer, learner: User) -> BrowserContext:
    """learner_context: a context logged in as `learner` with the login cookie as the server sets it (HttpOnly)."""
    ctx = await new_context(browser, live_server.url, user=learner, app=live_server.app)
    value = next(c["value"] for c in await ctx.cookies() if c["name"] == COOKIE)
    await ctx.add_cookies([{"name": COOKIE, "value": value, "url": live_server.url, "httpOnly": True,
                            "sameSite": "Lax"}])
    return ctx


def sco_frame(page: Page) -> FrameLocator:
    return page.frame_locator("[data-scorm-frame]").frame_locator("#sco")


async def sco_state(page: Page, element: str = "#state") -> dict[str, Any]:
    locator = sco_frame(page).locator(element)
    await expect(locator).to_contain_text("{", timeout=WAIT_MS)
    return dict(json.loads(await locator.text_content() or "{}"))


async def test_a_scorm_12_lecture_saves_resumes_and_survives_a_cut_link(
        browser: Browser, live_server: LiveServer, tmp_path: Path,
        make_user: Callable[..., Awaitable[User]]) -> None:
    learner, mid = await seed(live_server, make_user, scorm12(mastery=80, score=85), tmp_path,
                              "Bài giảng điện tử: Số tự nhiên")
    ctx = await learner_context(browser, live_server, learner)
    try:
        page = await ctx.new_page()
        await page.goto(f"/materials/{mid}")
        await page.click(f"a[href='/materials/{mid}/play']")
        state = await sco_state(page)
        assert state == {"found": True, "entry": "ab-initio", "location": "", "suspend": "", "student": "hv.binh",
                         "total": "00:00:00", "mastery": "80", "status": "incomplete"}
        await sco_frame(page).locator("#next").click()
        row = await until(live_server, mid, "ITEM-1", lambda a: a.location == "trang-2")
        assert (row.lesson_status, row.suspend_data, row.exit) == ("incomplete", "da-xem=2;ghi-chu=Số tự nhiên",
                                                                   "suspend")
        await expect(page.locator("[data-scorm-status]")).to_have_text("Kết quả học của bạn đã được lưu.")
        await page.screenshot(path=str(ARTIFACTS / "scorm-play-12.png"))

        await page.reload()  # resume where the learner stopped
        state = await sco_state(page)
        assert (state["entry"], state["location"], state["suspend"]) == ("resume", "trang-2",
                                                                         "da-xem=2;ghi-chu=Số tự nhiên")

        await ctx.set_offline(True)  # the school's link drops while the lesson ends and commits
        await sco_frame(page).locator("#finish").click()
        await expect(sco_frame(page).locator("#done")).to_have_text("finished")
        await expect(page.locator("[data-scorm]")).to_have_attribute("data-state", "offline", timeout=WAIT_MS)
        queued = await page.evaluate(f"() => Object.keys(JSON.parse(localStorage.getItem("
                                     f"'taphuan-scorm-queue-{learner.id}')))")
        assert queued == [str(row.id)]
        await asyncio.sleep(30)
        assert (await attempt(live_server, mid, "ITEM-1")).lesson_status == "incomplete"  # type: ignore[union-attr]
        await ctx.set_offline(False)
        row = await until(live_server, mid, "ITEM-1", lambda a: a.lesson_status == "passed")
        assert (row.score_raw, row.score_min, row.score_max, row.success, row.completion) == \
            (85.0, 0.0, 100.0, "passed", "completed")
        assert row.total_seconds == pytest.approx(150.0) and row.location == "trang-2"
        await expect(page.locator("[data-scorm]")).to_have_attribute("data-state", "finished")
    finally:
        await ctx.close()

    other = await learner_context(browser, live_server, learner)  # another PC
    try:
        page = await other.new_page()
        await page.goto(f"/materials/{mid}/play")
        state = await sco_state(page)
        assert (state["status"], state["location"], state["total"]) == ("passed", "trang-2", "00:02:30")
    finally:
        await other.close()


async def test_a_scorm_2004_package_plays_lesson_by_lesson_and_its_scripts_cannot_reach_the_site(
        browser: Browser, live_server: LiveServer, tmp_path: Path,
        make_user: Callable[..., Awaitable[User]]) -> None:
    learner, mid = await seed(live_server, make_user, scorm2004(scos=2, passing=0.7, scaled=0.9, probe=True),
                              tmp_path, "Bài giảng điện tử: Ngữ văn 6")
    ctx = await learner_context(browser, live_server, learner)
    try:
        page = await ctx.new_page()
        await page.goto(f"/materials/{mid}/play")
        for n in (1, 2):
            state = await sco_state(page)
            assert (state["found"], state["entry"], state["learner"], state["passing"]) == \
                (True, "ab-initio", "hv.binh", "0.7")
            if n == 1:
                await page.screenshot(path=str(ARTIFACTS / "scorm-play-2004-menu.png"), full_page=True)
            await sco_frame(page).locator("#finish").click()
            row = await until(live_server, mid, f"ITEM-{n}", lambda a: a.completion == "completed")
            assert (row.success, row.score_scaled, row.score_raw, row.location, row.suspend_data) == \
                ("passed", 0.9, 9.0, "cuoi-bai", f"phan={n}")
            assert row.total_seconds == pytest.approx(90.0) and row.version == "2004"
            await expect(page.locator("[data-scorm-status]")).to_have_text(
                "Bài học đã kết thúc, kết quả đã được lưu. Hãy học tiếp bài tiếp theo.")
            await page.click("a:has-text('Bài tiếp theo')")

        # the last lesson's script tries the site's cookie, API and page
        await expect(sco_frame(page).locator("#probe")).to_contain_text('"finished":true')
        probe = json.loads(await sco_frame(page).locator("#probe").text_content() or "{}")
        session = next(c["value"] for c in await ctx.cookies() if c["name"] == COOKIE)
        assert session not in probe["cookie"] and session not in json.dumps(probe)
        assert (probe["topCookie"], probe["topTitle"], probe["siteApi"]) == ("blocked", "blocked", "blocked")
        assert probe["site"] == live_server.url and probe["ownApi"] == 404
        await page.wait_for_timeout(300)  # the console's last messages
        blocked = [v for v in CSP_VIOLATIONS if "probe.html" in v and f"{live_server.url}/api/v1/me" in v]
        assert blocked, CSP_VIOLATIONS  # refused by the content origin's policy, as the test expects
        CSP_VIOLATIONS[:] = [v for v in CSP_VIOLATIONS if v not in blocked]
    finally:
        await ctx.close()

    operator = await make_user(Role.OPERATOR, username="qt.hoa", display_name="Quản trị Hoà")
    octx = await new_context(browser, live_server.url, user=operator, app=live_server.app)
    try:  # the unit sees each learner's results of the package
        page = await octx.new_page()
        await page.goto(f"/materials/{mid}")
        rows = page.locator("[data-scorm-results] tbody tr")
        await expect(rows).to_have_count(3)
        assert "Phần 2" in (await rows.nth(1).text_content() or "")
        await page.screenshot(path=str(ARTIFACTS / "scorm-results.png"), full_page=True)
    finally:
        await octx.close()
