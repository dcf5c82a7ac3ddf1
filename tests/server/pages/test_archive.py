"""Tests of server.pages.archive: the archive and player pages, and their translations."""

from __future__ import annotations

from typing import Any

from server.db.models import Role
from tests.server.api.test_recordings import Factory, setup

__all__ = ["setup"]  # a fixture, used by name


async def test_archive_and_player_pages(login_as: Factory, setup: dict[str, Any]) -> None:
    op = await login_as(Role.OPERATOR)
    page = await op.get("/archive")
    assert page.status == 200
    html = await page.text()
    assert "archive.js" in html and "data-archive" in html
    player = await op.get(f"/archive/{setup['published']}")
    assert player.status == 200 and "Toán lớp 6 – buổi 1" in await player.text()
    assert (await op.get("/archive/99999", headers={"Accept": "application/json"})).status == 404
    anonymous = await op.client.session.get(op.client.make_url("/archive"), allow_redirects=False,
                                            cookies={"taphuan_login": "nope"})
    assert anonymous.status in (303, 401)


def test_archive_templates_are_translated() -> None:
    import re
    from pathlib import Path

    from server.i18n import Translations

    vi = Translations().get("vi")
    templates = Path(__file__).resolve().parents[3] / "web" / "templates"
    pattern = re.compile(r"""_\(\s*(["'])(.+?)\1\s*\)""")
    missing = [(p.name, m.group(2)) for p in templates.glob("archive*.html")
               for m in pattern.finditer(p.read_text()) if vi.gettext(m.group(2)) == m.group(2)]
    assert not missing, missing
