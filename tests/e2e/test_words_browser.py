"""Real Chromium at 1366×768 on a PC whose clock and region are not the server's: numbers and times the browser
draws (web/static/format.js) follow the page's language and the server's timezone; the audit log reads as words.
Screenshot: tests/artifacts/words-audit.png."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser

from server import audit
from server.db.engine import DB
from server.db.models import Role
from tests.e2e.browser import ARTIFACTS
from tests.e2e.conftest import LiveServer, new_context

pytestmark = pytest.mark.browser

FORMATTED = """() => {
  const f = window.taphuanFormat;
  return [document.documentElement.dataset.timezone, f.formatNumber(1.5), f.formatNumber(12345.678, 0),
          f.formatTime("2026-12-04T20:47:00Z"), f.formatDateTime("2026-12-04T20:47:00Z"), f.formatNumber(null)];
}"""


async def test_browser_numbers_and_times_follow_the_page_and_the_server(
        browser: Browser, live_server: LiveServer, make_user: Callable[..., Awaitable[Any]]) -> None:
    op = await make_user(Role.OPERATOR, display_name="Quản trị viên Sở")
    async with live_server.app[DB]() as s:
        audit.record(s, None, "joinlink.open", "meeting:3", link_id=9, classroom_id=4)
        audit.record(s, None, "live.mute", "meeting:3", participant="p2", source="mic", muted=True)
        await s.commit()
    # a classroom PC left on New York time with an American English region
    ctx = await new_context(browser, live_server.url, user=op, app=live_server.app, locale="en-US",
                            timezone_id="America/New_York")
    try:
        page = await ctx.new_page()
        await page.goto("/audit")
        assert await page.evaluate(FORMATTED) == ["Asia/Ho_Chi_Minh", "1,5", "12.346", "03:47", "05/12/2026 03:47",
                                                  "—"]
        rows = page.locator(".audit-table tbody tr")
        assert await rows.count() == 2
        text = await page.locator(".audit-table tbody").inner_text()
        assert "Vào phòng bằng liên kết tham gia" in text and "Nguồn: Micro" in text
        assert "joinlink.open" not in text and "live.mute" not in text and "{" not in text
        box = await page.locator(".audit-table").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1366
        await page.screenshot(path=str(ARTIFACTS / "words-audit.png"), full_page=True)
        await page.goto("/lang/en?next=/audit")
        assert await page.evaluate(FORMATTED) == ["Asia/Ho_Chi_Minh", "1.5", "12,346", "03:47", "05/12/2026 03:47",
                                                  "—"]
        assert "Entered by a join link" in await page.locator(".audit-table tbody").inner_text()
    finally:
        await ctx.close()
