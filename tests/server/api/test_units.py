"""Tests of server.api.units: /api/v1 units, classrooms and their CSV import."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from server.api.uploads import IMPORT_MAX_BYTES
from server.db.engine import DB
from server.db.models import AuditEntry, Classroom, Role, Unit

UNITS_CSV = "code,name,level,parent_code,valid_from,valid_to\nH1,Huyện Một,district,14,,2025-06-30\n"


async def unit_id_of(app: Any, code: str) -> int:
    """unit_id_of: the id of the first unit with this code."""
    async with app[DB]() as s:
        return int((await s.scalars(select(Unit.id).where(Unit.code == code).order_by(Unit.valid_from))).first())


async def audit_entries(app: Any, action: str) -> list[AuditEntry]:
    """audit_entries: the audit entries of one action."""
    async with app[DB]() as s:
        return list((await s.scalars(select(AuditEntry).where(AuditEntry.action == action))).all())


async def test_units_list_by_date_and_level(login_as: Any) -> None:
    trainer = await login_as(Role.TRAINER)
    resp = await trainer.get("/api/v1/units?at=2025-06-30&level=province")
    assert resp.status == 200
    units = await resp.json()
    assert len(units) == 17 and {"code": "17", "name": "Hòa Bình"}.items() <= units[[u["code"] for u in units]
                                                                                   .index("17")].items()
    after = await (await trainer.get("/api/v1/units?at=2025-07-01&level=province")).json()
    assert len(after) == 15
    every = await (await trainer.get("/api/v1/units")).json()
    assert len(every) == 28
    assert (await trainer.get("/api/v1/units?at=yesterday")).status == 422
    assert (await trainer.get("/api/v1/units?level=town")).status == 422
    one = await (await trainer.get(f"/api/v1/units/{units[0]['id']}")).json()
    assert one["code"] == units[0]["code"]
    assert (await trainer.get("/api/v1/units/999999")).status == 404


@pytest.mark.parametrize("role", [Role.CLASSROOM, Role.LEARNER])
async def test_units_and_classrooms_refused_to_non_staff(login_as: Any, role: Role) -> None:
    user = await login_as(role)
    for path in ("/api/v1/units", "/api/v1/classrooms"):
        resp = await user.get(path)
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await user.post("/api/v1/import/units", data=UNITS_CSV, headers={"Content-Type": "text/csv"})
    assert resp.status == 403


async def test_anonymous_refused(client: Any) -> None:
    assert (await client.get("/api/v1/units")).status == 401
    assert (await client.get("/api/v1/classrooms")).status == 401


@pytest.mark.parametrize("role", [Role.TRAINER, Role.LEADER])
async def test_presenters_read_but_do_not_write(login_as: Any, app: Any, role: Role) -> None:
    user = await login_as(role)
    assert (await user.get("/api/v1/classrooms")).status == 200
    pid = await unit_id_of(app, "14")
    assert (await user.post("/api/v1/units", json={"code": "H9", "name": "X", "level": "district",
                                                   "parent_id": pid})).status == 403
    assert (await user.post("/api/v1/classrooms", json={"code": "C1", "name": "X", "unit_id": pid})).status == 403
    assert (await user.post("/api/v1/import/units", data=UNITS_CSV,
                            headers={"Content-Type": "text/csv"})).status == 403
    async with app[DB]() as s:
        assert await s.scalar(select(func.count()).select_from(Classroom)) == 0


async def test_operator_creates_and_updates_units(login_as: Any, app: Any) -> None:
    op = await login_as(Role.OPERATOR)
    pid = await unit_id_of(app, "14")
    resp = await op.post("/api/v1/units", json={"code": "H9", "name": "Huyện Chín", "level": "district",
                                                "parent_id": pid, "valid_to": "2025-06-30"})
    assert resp.status == 201, await resp.text()
    unit = await resp.json()
    dup = await op.post("/api/v1/units", json={"code": "H9", "name": "Lại", "level": "district", "parent_id": pid})
    assert dup.status == 422
    bad = await op.post("/api/v1/units", json={"code": "X9", "name": "Xã", "level": "commune", "parent_id": pid,
                                               "valid_from": "2025-07-01", "valid_to": "2025-01-01"})
    assert bad.status == 422 and "valid_to" in (await bad.json())["error"]["message"]
    resp = await op.patch(f"/api/v1/units/{unit['id']}", json={"name": "Huyện Chín Mới"})
    assert resp.status == 200 and (await resp.json())["name"] == "Huyện Chín Mới"
    assert (await op.patch(f"/api/v1/units/{unit['id']}", json={"level": "province"})).status == 422
    assert len(await audit_entries(app, "unit.create")) == 1 and len(await audit_entries(app, "unit.update")) == 1


async def test_operator_manages_classrooms(login_as: Any, app: Any) -> None:
    op = await login_as(Role.OPERATOR)
    leader = await login_as(Role.LEADER)
    pid = await unit_id_of(app, "14")
    resp = await op.post("/api/v1/classrooms", json={"code": "SL-01", "name": "Phòng Sơn La", "unit_id": pid,
                                                     "host": "Trường THCS", "equipment": "PC, webcam"})
    assert resp.status == 201, await resp.text()
    room = await resp.json()
    assert room["province_name"] == "Sơn La" and room["active"] is True
    assert (await op.post("/api/v1/classrooms", json={"code": "SL-01", "name": "Lại", "unit_id": pid})).status == 409
    assert (await op.post("/api/v1/classrooms", json={"code": "SL-02", "name": "X", "unit_id": 99999})).status == 422
    assert (await op.post("/api/v1/classrooms", json={"code": "có dấu cách", "name": "X",
                                                      "unit_id": pid})).status == 422
    resp = await op.patch(f"/api/v1/classrooms/{room['id']}", json={"name": "Phòng học Sơn La"})
    assert (await resp.json())["name"] == "Phòng học Sơn La"
    listed = await leader.get(f"/api/v1/classrooms?unit={pid}&q=phòng")
    assert listed.headers["X-Total-Count"] == "1" and (await listed.json())[0]["code"] == "SL-01"
    resp = await op.post(f"/api/v1/classrooms/{room['id']}/deactivate")
    assert (await resp.json())["active"] is False
    assert (await (await leader.get("/api/v1/classrooms?active=true")).json()) == []
    assert (await leader.get(f"/api/v1/classrooms/{room['id']}")).status == 200
    assert (await leader.post(f"/api/v1/classrooms/{room['id']}/deactivate")).status == 403
    assert (await leader.patch(f"/api/v1/classrooms/{room['id']}", json={"name": "x"})).status == 403
    for action in ("classroom.create", "classroom.update", "classroom.deactivate"):
        assert len(await audit_entries(app, action)) == 1, action


async def test_import_api_text_csv_and_multipart(login_as: Any, app: Any) -> None:
    op = await login_as(Role.OPERATOR)
    resp = await op.post("/api/v1/import/units", data=("\ufeff" + UNITS_CSV).encode(),
                         headers={"Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    assert await resp.json() == {"kind": "units", "rows": 1, "created": 1, "updated": 0, "unchanged": 0}
    form = aiohttp.FormData()
    form.add_field("file", "code,name,unit_code\nC1,Phòng 1,H1\n".encode(), filename="lop.csv",
                   content_type="text/csv")
    resp = await op.post("/api/v1/import/classrooms", data=form)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["created"] == 1
    again = await op.post("/api/v1/import/units", data=UNITS_CSV.replace("Huyện Một", "Huyện 1"),
                          headers={"Content-Type": "text/csv"})
    assert (await again.json())["updated"] == 1
    entries = await audit_entries(app, "classrooms.import")
    assert len(entries) == 1 and entries[0].target == "lop.csv" and entries[0].details["created"] == 1


async def test_import_api_errors_by_row(login_as: Any, app: Any) -> None:
    op = await login_as(Role.OPERATOR)
    data = UNITS_CSV + "H2,Huyện Hai,district,99,,\nH3,Huyện Ba,town,14,,\n"
    resp = await op.post("/api/v1/import/units", data=data, headers={"Content-Type": "text/csv"})
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "import-invalid"
    assert [e["row"] for e in body["errors"]] == [3, 4]
    assert body["errors"][0]["message"].startswith("không có đơn vị cấp trên")
    assert body["errors"][0]["text"].startswith("dòng 3:")
    async with app[DB]() as s:
        assert await s.scalar(select(func.count()).select_from(Unit).where(Unit.code == "H1")) == 0
    assert await audit_entries(app, "units.import") == []


async def test_import_api_limits(login_as: Any) -> None:
    op = await login_as(Role.OPERATOR)
    big = b"code,name,level\n" + b"x" * (IMPORT_MAX_BYTES + 10)
    resp = await op.post("/api/v1/import/units", data=big, headers={"Content-Type": "text/csv"})
    assert resp.status == 413
    assert "MB" in (await resp.json())["error"]["message"]
    resp = await op.post("/api/v1/import/units", json={"a": 1})
    assert resp.status == 415
    resp = await op.client.post("/api/v1/import/units", data=UNITS_CSV, headers={"Content-Type": "text/csv"})
    assert resp.status == 403  # no CSRF token


async def test_import_api_accepts_files_above_the_json_body_limit(login_as: Any) -> None:
    op = await login_as(Role.OPERATOR)
    data = b"code,name,level\n" + b"\n" * 2_000_000 + "Z1,Tỉnh Thử,province\n".encode()
    resp = await op.post("/api/v1/import/units", data=data, headers={"Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    form = aiohttp.FormData()
    form.add_field("file", data.replace(b"Z1", b"Z2"), filename="big.csv", content_type="text/csv")
    resp = await op.post("/api/v1/import/units", data=form)
    assert resp.status == 200 and (await resp.json())["created"] == 1


async def test_openapi_lists_endpoints(client: Any) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    for path in ("/api/v1/units", "/api/v1/units/{id}", "/api/v1/classrooms", "/api/v1/classrooms/{id}",
                 "/api/v1/classrooms/{id}/deactivate", "/api/v1/import/units", "/api/v1/import/classrooms"):
        assert path in doc["paths"], path
