"""Tests of server.i18n and the catalogs: Vietnamese by default, English after /lang/en, complete .po files."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from babel.messages.pofile import read_po

from server.db.models import Role
from server.i18n import LOCALE_DIR, Translations, localized

HTML = {"Accept": "text/html"}
CATALOGS = sorted(p.name for p in (LOCALE_DIR / "vi" / "LC_MESSAGES").glob("*.po"))
TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"


async def test_home_is_vietnamese_by_default_and_english_after_switch(
        login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    r = await op.client.get("/", headers=HTML)
    html = await r.text()
    assert r.status == 200
    assert '<html lang="vi">' in html
    for text in ("Tập huấn trực tuyến", "Xin chào", "Đăng xuất", "Chương trình", "Buổi tập huấn sắp tới"):
        assert text in html, text

    r = await op.client.get("/lang/en?next=/programs", headers=HTML, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/programs"
    r = await op.client.get("/", headers=HTML)
    html = await r.text()
    assert '<html lang="en">' in html
    for text in ("Online teacher training", "Hello", "Log out", "Programs", "Upcoming meetings"):
        assert text in html, text
    assert "Xin chào" not in html and "Đăng xuất" not in html

    await op.client.get("/lang/vi", headers=HTML)
    html = await (await op.client.get("/", headers=HTML)).text()
    assert "Đăng xuất" in html


async def test_error_pages_use_the_language(login_as: Callable[..., Awaitable[Any]]) -> None:
    trainer = await login_as(Role.TRAINER)
    html = await (await trainer.client.get("/programs", headers=HTML)).text()
    assert "Không được phép" in html and "Vai trò của bạn không được phép" in html
    await trainer.client.get("/lang/en", headers=HTML)
    html = await (await trainer.client.get("/programs", headers=HTML)).text()
    assert "Not allowed" in html and "Your role may not do this." in html and "Vai trò" not in html


def test_every_area_has_its_catalog() -> None:
    for area in ("base.po", "meetings.po", "accounts.po", "units.po", "live.po", "console.po", "learning.po",
                 "archive.po"):
        assert area in CATALOGS, area


@pytest.mark.parametrize("name", CATALOGS)
def test_catalog_is_complete(name: str) -> None:
    with (LOCALE_DIR / "vi" / "LC_MESSAGES" / name).open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    ids = [m for m in catalog if m.id]
    assert ids
    for m in ids:
        assert m.string, f"{name}: no translation for {m.id!r}"
        assert sorted(re.findall(r"%\(\w+\)[sd]", str(m.id))) == sorted(re.findall(r"%\(\w+\)[sd]", str(m.string)))


def _catalog_ids() -> dict[str, set[str]]:
    """_catalog_ids: every message id of the Vietnamese catalogs, with the translations each one has."""
    ids: dict[str, set[str]] = {}
    for name in CATALOGS:
        with (LOCALE_DIR / "vi" / "LC_MESSAGES" / name).open("rb") as fh:
            for m in read_po(fh, locale="vi"):
                if m.id:
                    ids.setdefault(str(m.id), set()).add(str(m.string))
    return ids


def test_every_string_of_the_templates_is_translated() -> None:
    ids = _catalog_ids()
    vi = Translations().get("vi")
    missing = []
    for path in sorted(TEMPLATES.glob("*.html")):
        for match in re.finditer(r"""_\(\s*(["'])(.+?)(?<!\\)\1\s*\)""", path.read_text()):
            msgid = match.group(2).replace('\\"', '"').replace("\\'", "'")
            if msgid not in ids or not vi.gettext(msgid):
                missing.append((path.name, msgid))
    assert not missing, missing


def test_catalogs_agree_on_shared_messages() -> None:
    """The catalogs are merged at start: a message id translated differently in two of them would show one of
    the two everywhere (use a distinct message id for a distinct meaning)."""
    conflicts = {msgid: strings for msgid, strings in _catalog_ids().items() if len(strings) > 1}
    assert not conflicts, conflicts


def test_a_meeting_is_a_buoi_tap_huan_in_the_finished_catalogs() -> None:
    """A Meeting is "buổi tập huấn" (as meetings.po says); "cuộc họp" / "phòng họp" are not used for it."""
    for name in ("live.po", "accounts.po", "archive.po", "console.po"):
        with (LOCALE_DIR / "vi" / "LC_MESSAGES" / name).open("rb") as fh:
            for m in read_po(fh, locale="vi"):
                text = str(m.string).lower()
                assert "cuộc họp" not in text and "phòng họp" not in text, (name, m.id, m.string)


async def test_localized_picks_the_requests_half(app: Any) -> None:
    def request(lang: str) -> Any:
        return make_mocked_request("GET", "/", headers={"Cookie": f"lang={lang}"}, app=app)

    assert localized(request("vi"), "Không tìm thấy. / Not found.") == "Không tìm thấy."
    assert localized(request("en"), "Không tìm thấy. / Not found.") == "Not found."
    assert localized(request("en"), "a: b / c / d") == "c / d"
    assert localized(request("en"), "Chỉ một ngôn ngữ") == "Chỉ một ngôn ngữ"
