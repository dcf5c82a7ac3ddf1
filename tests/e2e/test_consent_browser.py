"""ICE consent (sfu.hooks.ice.Consent) against real Chromium: Chromium answers our checks, we answer its."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aioice.ice import CONSENT_FAILURES
from playwright.async_api import async_playwright

import server.live.service as live_module
from server.db.models import Role, User
from server.live.service import LIVE
from tests.e2e.browser import launch, logged_in_context
from tests.e2e.test_live_browser import enter

pytestmark = pytest.mark.browser

Factory = Callable[..., Awaitable[Any]]


async def test_consent_checks_with_chromium(app: web.Application, aiohttp_server: Any, make_user: Factory,
                                            make_classroom: Factory, make_meeting: Factory,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = live_module.sfu_config
    monkeypatch.setattr(live_module, "sfu_config",
                        lambda config: dataclasses.replace(real(config), consent_interval=0.5))
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("/")).rstrip("/")
    trainer: User = await make_user(Role.TRAINER, display_name="Giảng viên Lan")
    cid = await make_classroom(name="Lớp 1")
    classroom: User = await make_user(Role.CLASSROOM, classroom_id=cid, display_name="Lớp học 1")
    meeting = await make_meeting(presenters=[trainer], classrooms=[cid])

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            for user in (trainer, classroom):
                page = await (await logged_in_context(browser, app, base, user)).new_page()
                await enter(page, meeting.id)
            sfu = app[LIVE].sfu
            assert sfu.config.consent_interval == 0.5

            def consents() -> list[Any]:
                return [c for room in sfu.rooms.values() for p in room.participants.values()
                        for peer in (p.up, p.down) if peer is not None for c in peer.pc.consents]

            deadline = time.monotonic() + 60
            while not (len(consents()) == 4 and all(c.confirmed >= 4 for c in consents())
                       and all(c.answered >= 1 for c in consents())):
                assert time.monotonic() < deadline, [(c.checks, c.confirmed, c.answered) for c in consents()]
                await asyncio.sleep(0.5)
            # a loaded machine may leave a check or two unanswered for a while (Chromium or our loop late)
            assert all(c.failures < CONSENT_FAILURES and not c.expired for c in consents())
        finally:
            await browser.close()
