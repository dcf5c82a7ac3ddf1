"""Tests of server.pages.live: the live room page per role (studio or classroom view), refusals, its config."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from server.db.models import MeetingStatus, Role, User
from tests.conftest import LoggedIn

Login = Callable[..., Awaitable[LoggedIn]]
Factory = Callable[..., Awaitable[Any]]
HTML = {"Accept": "text/html"}


def live_config(html: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="live-config">(.*?)</script>', html, re.S)
    assert m, "live-config missing"
    return dict(json.loads(m.group(1)))


def live_text(html: str) -> dict[str, str]:
    m = re.search(r'<script type="application/json" id="live-text">(.*?)</script>', html, re.S)
    assert m, "live-text missing"
    return dict(json.loads(m.group(1)))


async def test_presenter_gets_the_studio(login_as: Login, make_user: Factory, make_classroom: Factory,
                                         make_meeting: Factory) -> None:
    trainer: User = await make_user(Role.TRAINER)
    cid = await make_classroom(name="Phòng Mường Tè")
    await make_user(Role.CLASSROOM, classroom_id=cid, display_name="Lớp THCS Mường Tè")
    meeting = await make_meeting(presenters=[trainer], classrooms=[cid])
    who = await login_as(user=trainer)
    resp = await who.get(f"/live/{meeting.id}", headers=HTML)
    assert resp.status == 200
    html = await resp.text()
    cfg = live_config(html)
    assert cfg["studio"] is True and cfg["role"] == "trainer" and cfg["gridSlots"] == 9
    # The grid shows the unit of each invited classroom (by account and classroom name).
    assert cfg["units"]["Lớp THCS Mường Tè"] == cfg["units"]["Phòng Mường Tè"] != ""
    for marker in ('data-action="screen"', 'data-hands', 'data-lobby-list', 'data-poll-form', 'data-action="lock"',
                   'data-action="mute-all"', 'data-tile="grid-8"', 'data-action="record" disabled'):
        assert marker in html, marker
    assert 'data-action="hand"' not in html
    assert cfg["recordingEnabled"] is True and cfg["canPublish"] is True and cfg["observer"] is False
    for marker in ('data-action="marker"', "data-marker-dialog", "data-rec-error", "data-recmark", "data-rec-notice"):
        assert marker in html, marker
    assert "Ghi hình" in html and "Đang ghi" in html and "Thêm mốc" in html  # Vietnamese first
    assert "sắp có" not in html
    text = live_text(html)
    assert text["reconnecting"] == "Đang kết nối lại…"
    assert text["net_good"] == "Tốt" and text["net_fair"] == "Trung bình" and text["net_weak"] == "Yếu"


async def test_classroom_gets_the_classroom_view(login_as: Login, make_user: Factory, make_classroom: Factory,
                                                 make_meeting: Factory) -> None:
    trainer = await make_user(Role.TRAINER)
    cid = await make_classroom()
    room = await make_user(Role.CLASSROOM, classroom_id=cid)
    meeting = await make_meeting(presenters=[trainer], classrooms=[cid])
    who = await login_as(user=room)
    html = await (await who.get(f"/live/{meeting.id}", headers=HTML)).text()
    cfg = live_config(html)
    assert cfg["studio"] is False and cfg["gridSlots"] == 0 and cfg["units"] == {}
    assert cfg["canPublish"] is True and cfg["chatChars"] == 1000
    for marker in ('data-action="hand"', 'data-action="audio-only"', 'data-ptt-toggle', 'data-poll-float',
                   'data-chat-form', 'data-check-video', 'data-net-verdict', 'data-action="test-speaker"'):
        assert marker in html, marker
    for studio_only in ('data-action="screen"', 'data-hands', 'data-action="lock"', 'data-poll-form',
                        'data-action="mute-all"', 'data-action="record"', 'data-action="marker"', "data-rec-error"):
        assert studio_only not in html, studio_only
    # Everyone is told when the room is recorded.
    assert "data-recmark" in html and "Buổi tập huấn này đang được ghi hình." in html


async def test_operator_views_as_a_classroom(login_as: Login, make_user: Factory, make_classroom: Factory,
                                             make_meeting: Factory) -> None:
    """The console's "view as a classroom" link: the classroom layout, nothing published."""
    trainer = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer], classrooms=[await make_classroom()])
    op = await login_as(Role.OPERATOR)
    html = await (await op.get(f"/live/{meeting.id}?view=classroom", headers=HTML)).text()
    cfg = live_config(html)
    assert cfg["studio"] is False and cfg["observer"] is True and cfg["canPublish"] is False
    assert cfg["role"] == "operator" and cfg["gridSlots"] == 0
    assert "lv-is-class" in html and "data-theatre" in html and "data-observer" in html
    assert "Bạn đang xem như một lớp học." in html
    for absent in ('data-action="screen"', 'data-action="record"', 'data-tile="grid-0"', 'data-action="hand"',
                   'data-action="mic"', 'data-action="cam"', 'data-tile="self"'):
        assert absent not in html, absent
    # Without the query the operator gets the studio; others cannot turn theirs into an observer.
    cfg = live_config(await (await op.get(f"/live/{meeting.id}", headers=HTML)).text())
    assert cfg["studio"] is True and cfg["observer"] is False
    who = await login_as(user=trainer)
    cfg = live_config(await (await who.get(f"/live/{meeting.id}?view=classroom", headers=HTML)).text())
    assert cfg["studio"] is True and cfg["observer"] is False and cfg["canPublish"] is True


async def test_english_catalog(login_as: Login, make_user: Factory, make_meeting: Factory) -> None:
    trainer = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer])
    who = await login_as(user=trainer)
    who.client.session.cookie_jar.update_cookies({"lang": "en"})
    html = await (await who.get(f"/live/{meeting.id}", headers=HTML)).text()
    assert ">Record<" in html and "Recording now" in html and "Add marker" in html
    assert live_text(html)["reconnecting"] == "Reconnecting…"


async def test_refusals(login_as: Login, make_user: Factory, make_classroom: Factory, make_meeting: Factory,
                        client: Any) -> None:
    trainer = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer])
    # Anonymous: to the login page (HTML) or 401 (JSON).
    resp = await client.get(f"/live/{meeting.id}", headers=HTML, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].startswith("/login")
    # A trainer who does not present it, a classroom not invited, a learner: 403, never 500.
    for who in (await login_as(Role.TRAINER), await login_as(Role.CLASSROOM, classroom_id=await make_classroom()),
                await login_as(Role.LEARNER)):
        resp = await who.get(f"/live/{meeting.id}")
        assert resp.status == 403, who.user.role
        assert (await resp.json())["error"]["code"] == "forbidden"
    op = await login_as(Role.OPERATOR)
    assert (await op.get("/live/999999")).status == 404
    assert (await op.get("/live/abc")).status == 404
    draft = await make_meeting(presenters=[trainer], status=MeetingStatus.DRAFT)
    cid = await make_classroom()
    room = await login_as(Role.CLASSROOM, classroom_id=cid)
    assert (await room.get(f"/live/{draft.id}")).status == 403
