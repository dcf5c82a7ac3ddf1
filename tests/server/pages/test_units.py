"""Tests of server.pages.units: the units, classrooms and import pages, per role."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from server.config import Config
from server.db.models import Role
from tests.server.api.test_units import UNITS_CSV, audit_entries, unit_id_of
from tests.zones import OTHER_DAY


@pytest.mark.parametrize("config", [{"timezone": OTHER_DAY}], indirect=True)
async def test_today_is_the_configured_timezones_day(login_as: Any, config: Config) -> None:
    op = await login_as(Role.OPERATOR)
    html = await (await op.get("/units", headers={"Accept": "text/html"})).text()
    today = dt.datetime.now(ZoneInfo(config.timezone)).date()
    assert today != dt.datetime.now(dt.UTC).date()  # else this test could not fail
    assert f'href="?at={today.isoformat()}" aria-current="true"' in html


async def test_pages_render(login_as: Any, app: Any) -> None:
    op = await login_as(Role.OPERATOR)
    await op.post("/api/v1/import/units", data=UNITS_CSV, headers={"Content-Type": "text/csv"})
    html = {"Accept": "text/html"}
    assert (await op.get("/units", headers=html)).status == 200
    resp = await op.get("/units?at=30/06/2025", headers=html)
    assert resp.status == 200
    text = await resp.text()
    assert "Hòa Bình" in text and "Huyện Một" in text
    after = await (await op.get("/units?at=2025-07-01", headers=html)).text()
    assert "Tuyên Quang" in after and "Hòa Bình" not in after and "Huyện Một" not in after
    assert "Yên Bái" in await (await op.get("/units?at=all", headers=html)).text()
    page = await op.get("/import", headers=html)
    assert page.status == 200 and "import.js" in await page.text()
    sample = await op.get("/import/sample/units.csv")
    assert sample.status == 200 and "code,name,level" in (await sample.read()).decode("utf-8-sig")
    assert (await op.get("/classrooms/new", headers=html)).status == 200


async def test_classroom_form_create_edit(login_as: Any, app: Any) -> None:
    op = await login_as(Role.OPERATOR)
    pid = await unit_id_of(app, "20")
    html = {"Accept": "text/html"}
    resp = await op.client.post("/classrooms/new", data={"csrf_token": op.csrf, "code": "LS-01",
                                                         "name": "Phòng Lạng Sơn", "unit_id": str(pid),
                                                         "host": "TT GDTX", "equipment": "", "active": "on"},
                                headers=html, allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    view = await op.get(location, headers=html)
    assert view.status == 200 and "Phòng Lạng Sơn" in await view.text()
    bad = await op.client.post(location.split("?")[0], data={"csrf_token": op.csrf, "code": "LS 01", "name": "",
                                                             "unit_id": str(pid)}, headers=html)
    assert bad.status == 422
    page = await bad.text()
    assert "Mã tối đa 40 ký tự, không có dấu cách." in page and "Tên tối đa 200 ký tự." in page
    assert "Hãy chọn một đơn vị." not in page
    taken = await op.client.post("/classrooms/new", data={"csrf_token": op.csrf, "code": "LS-01", "name": "Khác",
                                                          "unit_id": "x"}, headers=html)
    page = await taken.text()
    assert taken.status == 422 and "Đã có lớp học khác dùng mã này." in page and "Hãy chọn một đơn vị." in page
    listing = await (await op.get("/classrooms?q=LS-01", headers=html)).text()
    assert "Phòng Lạng Sơn" in listing and "Lạng Sơn" in listing
    assert len(await audit_entries(app, "classroom.create")) == 1


async def test_import_page_without_javascript(login_as: Any, app: Any) -> None:
    op = await login_as(Role.OPERATOR)
    form = aiohttp.FormData()
    form.add_field("file", (UNITS_CSV + "H2,Hai,district,99,,\n").encode(), filename="u.csv", content_type="text/csv")
    resp = await op.client.post(f"/import/units?csrf_token={op.csrf}", data=form, headers={"Accept": "text/html"})
    assert resp.status == 422
    assert "dòng 3:" in await resp.text()
    form = aiohttp.FormData()
    form.add_field("file", UNITS_CSV.encode(), filename="u.csv", content_type="text/csv")
    resp = await op.client.post(f"/import/units?csrf_token={op.csrf}", data=form, headers={"Accept": "text/html"})
    assert resp.status == 200


@pytest.mark.parametrize("role", [Role.CLASSROOM, Role.LEARNER])
async def test_pages_refused_to_non_staff(login_as: Any, role: Role) -> None:
    user = await login_as(role)
    for path in ("/units", "/classrooms", "/import"):
        assert (await user.get(path, headers={"Accept": "text/html"})).status == 403, path


async def test_import_page_refused_to_trainer(login_as: Any) -> None:
    trainer = await login_as(Role.TRAINER)
    assert (await trainer.get("/import", headers={"Accept": "text/html"})).status == 403
    assert (await trainer.get("/classrooms", headers={"Accept": "text/html"})).status == 200
