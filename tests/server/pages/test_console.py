"""Tests of server.pages.console: /console and /console/{meeting_id} (operators only), and the menu link."""

from __future__ import annotations

import json
import re
from typing import Any

from server.db.models import Role
from server.i18n import Translations
from tests.server.livetest import Factory

HTML = {"Accept": "text/html"}


def _json_block(html: str, element_id: str) -> Any:
    m = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', html, re.S)
    assert m, element_id
    return json.loads(m.group(1))


async def test_console_page_for_operators_in_vietnamese_and_english(login_as: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    r = await op.get("/console", headers=HTML)
    assert r.status == 200
    html = await r.text()
    for text in ("Điều hành trực tiếp", "Phòng trực tiếp", "Suy giảm", "Ý nghĩa các màu", 'href="/console"',
                 "charts.js", "console.js"):
        assert text in html, text
    assert re.search(r'<a href="/console" aria-current="page">Trực tiếp</a>', html)
    config = _json_block(html, "console-config")
    assert config["api"] == "/api/v1/live/rooms" and config["pollMs"] == 2000 and config["historyMs"] == 300000
    text = _json_block(html, "console-text")
    assert text["enter"] == "Vào phòng" and text["viewClassroom"] == "Xem như lớp học"
    assert text["role.classroom"] == "Lớp học" and text["reconnecting"] == "Đang kết nối lại…"

    await op.client.get("/lang/en", headers=HTML)
    html = await (await op.get("/console", headers=HTML)).text()
    assert "Live console" in html and "Điều hành" not in html
    assert _json_block(html, "console-text")["enter"] == "Enter the room"


async def test_console_room_page(login_as: Factory, make_meeting: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(title="Bồi dưỡng giáo viên Toán")
    r = await op.get(f"/console/{meeting.id}", headers=HTML)
    assert r.status == 200
    html = await r.text()
    assert "Bồi dưỡng giáo viên Toán" in html
    assert f'href="/live/{meeting.id}?view=classroom"' in html and f'href="/live/{meeting.id}"' in html
    assert _json_block(html, "console-config")["api"] == f"/api/v1/live/rooms/{meeting.id}"
    for path in ("/console/987654", "/console/abc"):
        assert (await op.get(path, headers=HTML)).status == 404, path


async def test_console_refused_to_other_roles(client: Any, login_as: Factory, make_meeting: Factory) -> None:
    meeting = await make_meeting()
    for path in ("/console", f"/console/{meeting.id}"):
        r = await client.get(path, headers=HTML, allow_redirects=False)
        assert r.status in (302, 303) and r.headers["Location"].startswith("/login"), path
        for role in (Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER):
            who = await login_as(role)
            r = await who.get(path, headers=HTML)
            assert r.status == 403, (path, role)
            assert 'href="/console"' not in await r.text()


def test_every_console_string_is_translated() -> None:
    from pathlib import Path

    vi = Translations().get("vi")
    templates = Path(__file__).resolve().parents[3] / "web" / "templates"
    missing = []
    for name in ("console.html", "console_room.html", "console_legend.html"):
        for msgid in re.findall(r'_\("([^"]+)"\)', (templates / name).read_text()):
            if vi.gettext(msgid) == msgid:
                missing.append((name, msgid))
    assert not missing


async def test_every_script_string_is_translated(login_as: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    vi = _json_block(await (await op.get("/console", headers=HTML)).text(), "console-text")
    await op.client.get("/lang/en", headers=HTML)
    en = _json_block(await (await op.get("/console", headers=HTML)).text(), "console-text")
    assert vi.keys() == en.keys()
    same = {k for k in vi if vi[k] == en[k]}
    assert same <= {"jitter", "source.camera"}, same  # the same word in both languages
