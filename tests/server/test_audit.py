"""Tests of server.audit: who (the login, or the given actor), from where, what, with the caller's commit."""

from __future__ import annotations

import ast
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server import audit
from server.app import create_app
from server.config import Config
from server.db.engine import DB
from server.db.models import AuditEntry, Role, utcnow
from server.i18n import Translations
from server.people.importer import IMPORTERS
from server.schedule.meetings import _ACTIONS as meeting_actions

Factory = Callable[..., Awaitable[Any]]
ROOT = Path(__file__).resolve().parents[2]


async def _audited(request: web.Request) -> web.Response:
    """A handler that records one action, and commits it only when asked."""
    async with request.app[DB]() as s:
        actor = request.query.get("actor")
        entry = audit.record(s, request, "meeting.update", "meeting:7", actor_id=int(actor) if actor else None,
                             fields=["title"], sequence=2)
        assert entry in s.new  # added, not yet written
        if request.query.get("commit"):
            await s.commit()
    return web.json_response({})


@pytest.fixture
def app(config: Config) -> web.Application:
    """app: the application with the test handler at /test/audited."""
    application = create_app(config)
    application.router.add_get("/test/audited", _audited)
    return application


async def _entries(app: web.Application) -> list[AuditEntry]:
    async with app[DB]() as s:
        return list((await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all())


async def test_the_logged_in_account_and_its_address_are_recorded(app: web.Application, login_as: Factory) -> None:
    trainer = await login_as(Role.TRAINER)
    assert (await trainer.get("/test/audited")).status == 200
    assert await _entries(app) == []  # nothing is written without the caller's commit
    before = utcnow()
    assert (await trainer.get("/test/audited?commit=1")).status == 200
    [entry] = await _entries(app)
    assert (entry.actor_id, entry.action, entry.target, entry.ip) == (trainer.user.id, "meeting.update",
                                                                       "meeting:7", "127.0.0.1")
    assert entry.details == {"fields": ["title"], "sequence": 2}
    assert before - dt.timedelta(seconds=1) <= entry.at <= utcnow()
    await trainer.get("/test/audited?commit=1", headers={"X-Forwarded-For": "203.0.113.9"})
    assert (await _entries(app))[-1].ip == "127.0.0.1"  # a forged header is not believed (no trusted proxy)


async def test_the_actor_without_a_login_or_without_a_request(app: web.Application, client: TestClient[Any, Any],
                                                              login_as: Factory) -> None:
    operator = await login_as(Role.OPERATOR)
    await client.get("/test/audited?commit=1")  # anonymous: nobody
    await client.get(f"/test/audited?commit=1&actor={operator.user.id}")  # given: e.g. a join link's creator
    async with app[DB]() as s:  # the CLI, a background task: no request, no address
        audit.record(s, None, "recording.retention", "recording:3", actor_id=None, deleted=3)
        await s.commit()
    entries = await _entries(app)
    assert [(e.actor_id, e.ip) for e in entries] == [(None, "127.0.0.1"), (operator.user.id, "127.0.0.1"), (None, "")]
    assert entries[-1].details == {"deleted": 3}


def _recorded_actions() -> set[str]:
    """_recorded_actions: every action code the server's code records (f-strings expanded by hand below)."""
    found: set[str] = set()
    for path in (ROOT / "server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            at = 2 if name == "record" and owner in ("", "audit") else 1 if name == "audit_live" else -1
            if at < 0 or len(node.args) <= at:
                continue
            action = node.args[at]
            if isinstance(action, ast.Constant) and isinstance(action.value, str):
                found.add(action.value)
            elif isinstance(action, ast.JoinedStr):
                found.add(ast.unparse(action))
    return found


DYNAMIC = {"f'meeting.{_ACTIONS[status]}'": {f"meeting.{a}" for a in meeting_actions.values()},
           "f'user.{cmd}'": {"user.disable", "user.enable"},  # server.people.accounts.run_user_command
           "f'{kind}.import'": {f"{kind}.import" for kind in IMPORTERS},
           "f'{args.what}.import'": {f"{kind}.import" for kind in IMPORTERS}}


def test_every_recorded_action_has_a_vietnamese_label() -> None:
    recorded = _recorded_actions()
    assert "joinlink.open" in recorded and "live.mute" in recorded  # the scan sees the calls
    codes = set()
    for action in recorded:
        assert not action.startswith("f'") or action in DYNAMIC, f"{action}: list its codes in DYNAMIC"
        codes |= DYNAMIC.get(action, {action})
    vi = Translations().get("vi")
    assert vi.gettext("kept for its %(days)s days") != "kept for its %(days)s days"
    for code in sorted(codes):
        assert code in audit.ACTIONS, f"audit action {code!r} has no label in server.audit.ACTIONS"
        assert vi.gettext(audit.ACTIONS[code]) != audit.ACTIONS[code], f"{audit.ACTIONS[code]!r}: not translated"
    toggles = [label for _key, *labels in audit.TOGGLES.values() for label in labels]
    for labels in (audit.TARGETS, audit.DETAILS, audit.VALUES, dict(enumerate(toggles))):
        for label in labels.values():
            assert vi.gettext(label) != label or label in ("Camera",), f"{label!r}: not translated"


def test_an_entry_reads_as_words() -> None:
    vi = Translations().get("vi").gettext
    entry = AuditEntry(action="live.mute", target="meeting:12", details={"participant": "p3", "source": "mic",
                                                                          "muted": True}, ip="")
    words = audit.readable(entry, vi)
    assert words.label == "Tắt micro, camera hay chia sẻ màn hình của một người tham gia"
    assert (words.target, words.target_url) == ("Buổi tập huấn #12", "/meetings/12")
    assert words.details == [("Người tham gia", "p3"), ("Nguồn", "Micro"), ("Đã tắt", "có")]
    named = AuditEntry(action="live.floor", target="meeting:12", details={"participant": "p3", "name": "Lớp Ba Đình"})
    assert audit.readable(named, vi).details == [("Người tham gia", "Lớp Ba Đình")]  # the name, not the id
    deleted = AuditEntry(action="recording.delete", target="recording:4", details={"reason": "retention (30 days)"})
    assert audit.readable(deleted, vi).details == [("Lý do", "hết thời hạn lưu 30 ngày")]
    failed = audit.readable(AuditEntry(action="login.failed", target="user:nobody", details={}, ip=""), vi)
    assert (failed.label, failed.target, failed.target_url) == ("Đăng nhập không thành công", "Tài khoản nobody", "")


async def test_the_audit_page_shows_words_not_codes_or_json(app: web.Application, login_as: Factory,
                                                            make_meeting: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(title="Bài 3: Dạy học số")
    async with app[DB]() as s:
        audit.record(s, None, "joinlink.open", f"meeting:{meeting.id}", link_id=9, classroom_id=4)
        audit.record(s, None, "live.lock", "meeting:999", locked=False)
        await s.commit()
    html = await (await op.get("/audit", headers={"Accept": "text/html"})).text()
    table = html[html.index("<tbody>"):html.index("</tbody>")]
    text = re.sub(r"<[^>]+>", " ", table)
    assert "Vào phòng bằng liên kết tham gia" in text and "Mở khoá phòng" in text
    assert "Liên kết tham gia: 9" in text and "Đã khoá: không" in text
    assert "Buổi tập huấn “Bài 3: Dạy học số”" in text and "Buổi tập huấn #999" in text  # a deleted one: its id
    assert "joinlink.open" not in text and "live.lock" not in text and "{" not in text and "link_id" not in text
