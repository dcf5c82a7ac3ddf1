"""Tests of server.schedule.importer (also through /api/v1/meetings/import): drafts created, row-numbered errors,
nothing half-imported."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import func, select

from server.config import CONFIG
from server.db.engine import DB
from server.db.models import AuditEntry, Meeting, MeetingStatus
from server.people.importer import ImportFailed
from server.schedule.importer import parse_time, run_import, split_list
from tests.server.schedule import test_rules as test_schedule
from tests.server.schedule.test_rules import API

world = test_schedule.world  # the shared fixture (an operator, people, classrooms, provinces, a program)

HEADER = "program,title,kind,date,start,end,presenters,classrooms,provinces,description\n"


def test_cells() -> None:
    assert split_list(" gv.a, gv.b;ld.c |x  y ") == ["gv.a", "gv.b", "ld.c", "x", "y"]
    assert parse_time("8h30").hour == 8 and parse_time("14:05").minute == 5


async def count(app: web.Application) -> int:
    async with app[DB]() as s:
        return int(await s.scalar(select(func.count(Meeting.id))) or 0)


async def test_import_creates_drafts(app: web.Application, world: dict[str, Any]) -> None:
    csv = (HEADER
           + "Bồi dưỡng 2030,Buổi 1,lecture,2030-03-10,08:00,10:00,gv.a,PH-1 PH-2,,Mở đầu\n"
           + "bồi dưỡng 2030;Vùng Tây Bắc;hội nghị vùng;12/03/2030;14:00;16:30;ld.c gv.b;PH-3;T10 T15;\n".replace(
               ";", ",")
           + f"#{world['program']},Buổi 3,,2030-03-11,8h00,9h30,gv.b,,,\n")
    r = await world["op"].post(f"{API}/meetings/import", data=csv.encode(), headers={"Content-Type": "text/csv"})
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["rows"] == 3 and out["created"] == 3
    r = await world["op"].get(f"{API}/meetings?status=draft")
    got = {m["title"]: m for m in await r.json()}
    assert set(got) == {"Buổi 1", "Vùng Tây Bắc", "Buổi 3"}
    assert got["Buổi 1"]["starts_at"] == "2030-03-10T08:00:00+07:00"
    assert [c["code"] for c in got["Buổi 1"]["classrooms"]] == ["PH-1", "PH-2"]
    assert got["Vùng Tây Bắc"]["kind"] == "regional"
    assert [p["name"] for p in got["Vùng Tây Bắc"]["provinces"]] == ["Lào Cai", "Yên Bái"]
    assert {p["username"] for p in got["Vùng Tây Bắc"]["presenters"]} == {"ld.c", "gv.b"}
    async with app[DB]() as s:
        statuses = set((await s.scalars(select(Meeting.status))).all())
        assert statuses == {MeetingStatus.DRAFT}
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "meeting.import"))
        assert entry is not None and entry.details["created"] == 3


async def test_errors_are_numbered_and_nothing_is_written(app: web.Application, world: dict[str, Any]) -> None:
    csv = (HEADER
           + "Bồi dưỡng 2030,Đúng,lecture,2030-03-10,08:00,10:00,gv.a,PH-1,,\n"
           + "Không có,Sai chương trình,lecture,2030-03-10,08:00,10:00,,,,\n"
           + "Bồi dưỡng 2030,Sai ngày,lecture,31/02/2030,08:00,10:00,,,,\n"
           + "Bồi dưỡng 2030,Ngược giờ,lecture,2030-03-10,10:00,08:00,,,,\n"
           + "Bồi dưỡng 2030,Sai người,lecture,2030-03-10,08:00,10:00,ai.do phong1,PH-9,,\n"
           + "Bồi dưỡng 2030,Tỉnh cho bài giảng,lecture,2030-03-10,08:00,10:00,,,T10,\n"
           + "Bồi dưỡng 2030,Sai loại,seminar,2030-03-10,08:00,10:00,,,,\n"
           + "Bồi dưỡng 2030,Sai tỉnh,regional,2030-03-10,08:00,10:00,ld.c,,T99,\n"
           + "Bồi dưỡng 2030,Sai vai trò,lecture,2030-03-10,08:00,10:00,phong1,,,\n")
    r = await world["op"].post(f"{API}/meetings/import", data=csv.encode(), headers={"Content-Type": "text/csv"})
    assert r.status == 422
    body = await r.json()
    assert body["error"]["code"] == "import-invalid"
    rows = [(e["row"], e["text"]) for e in body["errors"]]
    assert [n for n, _t in rows] == [3, 4, 5, 6, 6, 7, 8, 9, 10]
    text = "\n".join(t for _n, t in rows)
    for needle in ("dòng 3: không có chương trình 'Không có'", "dòng 4: ngày '31/02/2030' không hợp lệ",
                   "dòng 5: giờ kết thúc phải sau giờ bắt đầu", "dòng 6: không có tài khoản 'ai.do'",
                   "dòng 6: không có phòng học 'PH-9'", "dòng 10: phong1 không phải giảng viên",
                   "dòng 7: chỉ hội nghị vùng mới có tỉnh", "dòng 8: loại 'seminar' không hợp lệ",
                   "dòng 9: không có tỉnh mã 'T99'"):
        assert needle in text, (needle, text)
    assert await count(app) == 0  # not even the correct first row

    csv_type = {"Content-Type": "text/csv"}
    r = await world["op"].post(f"{API}/meetings/import", data=b"title,when\nx,y\n", headers=csv_type)
    assert r.status == 422
    messages = [e["message"] for e in (await r.json())["errors"]]
    assert any("unknown column 'when'" in m for m in messages)
    assert any("missing column 'program'" in m for m in messages)
    r = await world["op"].post(f"{API}/meetings/import", data=HEADER.encode(), headers={"Content-Type": "text/csv"})
    assert r.status == 422 and "no rows" in (await r.json())["errors"][0]["message"]
    assert await count(app) == 0


async def test_run_import_is_one_transaction(app: web.Application, world: dict[str, Any]) -> None:
    tz = app[CONFIG].tz
    bad = (HEADER + "Bồi dưỡng 2030,Đúng,lecture,2030-03-10,08:00,10:00,gv.a,PH-1,,\n"
           + "Không có,Sai,,2030-03-10,8:00,9:00,,,,\n")
    with pytest.raises(ImportFailed) as info:
        await run_import(app[DB], None, bad.encode(), tz)
    assert [e.row for e in info.value.errors] == [3] and await count(app) == 0
    good = HEADER + "Bồi dưỡng 2030,Buổi 1,lecture,2030-03-10,08:00,10:00,gv.a,PH-1,,\n"
    result = await run_import(app[DB], None, good.encode(), tz)
    assert result.rows == 1 and len(result.meeting_ids) == 1 and await count(app) == 1
