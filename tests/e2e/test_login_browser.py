"""Real Chromium: an operator logs in through the login form and lands on the home page in Vietnamese."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from playwright.async_api import Browser, BrowserContext

from server.db.models import Role, User
from tests.e2e.browser import ARTIFACTS
from tests.e2e.conftest import LiveServer, new_context

pytestmark = pytest.mark.browser


async def test_operator_logs_in_through_the_form(context: BrowserContext, live_server: LiveServer,
                                                 make_user: Callable[..., Awaitable[User]]) -> None:
    await make_user(Role.OPERATOR, username="quantri", password="mat-khau-rat-dai", display_name="Quản trị viên")
    page = await context.new_page()
    await page.goto("/accounts")
    assert "/login" in page.url  # not logged in: sent to the login page, which remembers where to go
    await page.wait_for_selector("h1:has-text('Đăng nhập')")
    await page.screenshot(path=str(ARTIFACTS / "login.png"))

    await page.fill("#username", "quantri")
    await page.fill("#password", "sai-mat-khau")
    await page.click("button[type=submit]")
    await page.wait_for_selector(".notice-error")
    assert "Sai tên đăng nhập hoặc mật khẩu" in await page.inner_text(".notice-error")

    await page.fill("#password", "mat-khau-rat-dai")
    await page.click("[data-toggle-password=password]")
    assert await page.get_attribute("#password", "type") == "text"
    await page.click("button[type=submit]")
    await page.wait_for_url(live_server("/accounts"))
    assert "quantri" in await page.content()

    await page.goto("/")
    await page.wait_for_selector("button:has-text('Đăng xuất')")
    await page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)

    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["taphuan_login"]["httpOnly"] and cookies["taphuan_login"]["sameSite"] == "Lax"

    await page.click("button:has-text('Đăng xuất')")
    await page.wait_for_url(live_server("/login"))
    await page.goto("/")
    assert "/login" in page.url


async def test_pages_at_phone_width(browser: Browser, live_server: LiveServer,
                                    make_user: Callable[..., Awaitable[User]]) -> None:
    op = await make_user(Role.OPERATOR, username="op.phone", display_name="Quản trị")
    ctx = await new_context(browser, live_server.url, user=op, app=live_server.app, viewport=(390, 844))
    try:
        page = await ctx.new_page()
        await page.goto("/accounts")
        await page.wait_for_selector("h1:has-text('Tài khoản')")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, width  # no horizontal scrolling on a phone
        await page.screenshot(path=str(ARTIFACTS / "accounts-phone.png"), full_page=True)
        await page.goto("/audit")
        await page.wait_for_selector("h1:has-text('Nhật ký hoạt động')")
    finally:
        await ctx.close()
