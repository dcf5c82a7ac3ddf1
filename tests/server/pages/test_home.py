"""Tests of server.pages.home: the home page per role (tiles, meetings, the classroom's join button); the language
switch."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from server.db.engine import DB
from server.db.models import Meeting, Role, utcnow
from tests.server.pages_helpers import HTML, meeting_by_title, page, world

__all__ = ["world"]  # a fixture, used by name


async def test_home_needs_a_login(client: Any) -> None:
    r = await client.get("/", headers=HTML, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/login")


async def test_home_operator(world: dict[str, Any], login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    html = await page(op, "/")
    for path in ("/accounts", "/units", "/classrooms", "/programs", "/meetings", "/audit"):
        assert f'class="tile" href="{path}"' in html
    for title in ("Buổi đang diễn ra", "Buổi tuần sau", "Buổi nháp", "Buổi của người khác"):
        assert title in html
    assert "Nháp" in html and "Đang diễn ra" in html and "Tạo buổi tập huấn" in html
    assert 'action="/logout"' in html and 'name="csrf_token"' in html


async def test_home_presenter(world: dict[str, Any], login_as: Callable[..., Awaitable[Any]]) -> None:
    trainer = await login_as(user=world["trainer"])
    html = await page(trainer, "/")
    assert "Buổi đang diễn ra" in html and "Buổi tuần sau" in html
    assert "Buổi nháp" in html and "Nháp" in html and "Buổi của người khác" not in html  # its own draft, marked
    assert 'class="tile"' not in html and 'href="/accounts"' not in html
    assert "Vào phòng trực tuyến" in html  # the live meeting


async def test_home_classroom_join_button(app: web.Application, world: dict[str, Any],
                                          login_as: Callable[..., Awaitable[Any]]) -> None:
    room = await login_as(user=world["room_user"])
    live = await meeting_by_title(app, "Buổi đang diễn ra")
    later = await meeting_by_title(app, "Buổi tuần sau")
    html = await page(room, "/")
    assert "Buổi tuần sau" in html and "Buổi nháp" not in html and "Buổi của người khác" not in html
    assert f'btn-xl" href="/live/{live.id}">Vào lớp' in html
    assert f'href="/live/{later.id}"' not in html

    # 20 minutes before the start: the join button shows; 40 minutes before: not yet.
    async with app[DB]() as s:
        m = await s.get(Meeting, live.id)
        assert m is not None
        m.starts_at = utcnow() + dt.timedelta(minutes=40)
        m.ends_at = m.starts_at + dt.timedelta(hours=1)
        await s.commit()
    html = await page(room, "/")
    assert f'href="/live/{live.id}"' not in html and "Vào lớp" not in html
    async with app[DB]() as s:
        m = await s.get(Meeting, live.id)
        assert m is not None
        m.starts_at = utcnow() + dt.timedelta(minutes=20)
        await s.commit()
    html = await page(room, "/")
    assert f'href="/live/{live.id}">Vào lớp' in html and "Sắp bắt đầu" in html


async def test_home_learner_and_empty_states(world: dict[str, Any],
                                             login_as: Callable[..., Awaitable[Any]]) -> None:
    learner = await login_as(Role.LEARNER)
    html = await page(learner, "/")
    assert "Bản ghi của các buổi tập huấn" in html and "Buổi tuần sau" not in html
    leader = await login_as(Role.LEADER)
    html = await page(leader, "/")
    assert "Chưa có buổi tập huấn sắp tới" in html


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "evil"])
async def test_language_switch_stays_on_this_site(client: Any, target: str) -> None:
    r = await client.get("/lang/en", params={"next": target}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/"


async def test_unknown_language_is_404(client: Any) -> None:
    r = await client.get("/lang/fr", allow_redirects=False)
    assert r.status == 404


async def test_home_lists_overdue_documents_for_operators(app: web.Application, world: dict[str, Any],
                                                          login_as: Callable[..., Awaitable[Any]]) -> None:
    """A published regional meeting in 10 days owes its plan and joint report since 5 days ago: the operator's
    home page lists both with their due day; a presenter's does not."""
    from server.db.models import MeetingKind, MeetingStatus

    now = utcnow()
    async with app[DB]() as s:
        s.add(Meeting(program_id=world["program"].id, title="Hội nghị vùng Tây Bắc", kind=MeetingKind.REGIONAL,
                      status=MeetingStatus.PUBLISHED, starts_at=now + dt.timedelta(days=10),
                      ends_at=now + dt.timedelta(days=10, hours=2), presenters=[world["trainer"]], classrooms=[],
                      provinces=[world["unit"]]))
        await s.commit()
    m = await meeting_by_title(app, "Hội nghị vùng Tây Bắc")
    html = await page(await login_as(Role.OPERATOR), "/")
    assert "Tài liệu quá hạn" in html and html.count("data-overdue-doc=") == 2
    assert f'data-overdue-doc="{m.id}-plan"' in html and "Báo cáo liên tịch" in html and "Trễ " in html
    assert "Tài liệu quá hạn" not in await page(await login_as(user=world["trainer"]), "/")
