"""Tests of server.reports.exports and the export endpoints: the files open with csv and openpyxl and hold the
expected rows under Vietnamese headers."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import insert, select

from server.db.engine import DB
from server.db.models import (
    AttendanceEvent,
    Classroom,
    Headcount,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    Unit,
    UnitLevel,
    User,
    meeting_classrooms,
    program_learners,
)
from server.reports.exports import CLASSROOM_HEADERS, Table, formula_like, inert, to_csv, to_xlsx
from tests.server.livetest import Factory

T0 = dt.datetime(2025, 9, 15, 1, 0, tzinfo=dt.UTC)


def test_writers_round_trip() -> None:
    tables = [Table("Tổng hợp", "Báo cáo tháng 09/2025", ["Chỉ tiêu", "Giá trị"],
                    [["Số buổi tập huấn đã tổ chức", 3], ["Số giờ tập huấn", 4.5]]),
              Table("Tổng hợp", "Trùng tên trang tính", ["Đơn vị", "Số phút"], [["Hà Giang", None]])]
    text = to_csv(tables).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0] == ["Báo cáo tháng 09/2025"] and rows[1] == ["Chỉ tiêu", "Giá trị"]
    assert rows[2] == ["Số buổi tập huấn đã tổ chức", "3"] and rows[4] == []
    wb = load_workbook(io.BytesIO(to_xlsx(tables)))
    assert wb.sheetnames == ["Tổng hợp", "Tổng hợp 2"]
    ws = wb["Tổng hợp"]
    assert ws["A2"].value == "Chỉ tiêu" and ws["B3"].value == 3 and ws["B4"].value == 4.5
    assert ws["A2"].font.bold and ws.freeze_panes == "A3"


async def _meeting(app: Any) -> tuple[int, int, int]:
    async with app[DB]() as s:
        unit = await s.scalar(select(Unit).order_by(Unit.id).limit(1))
        assert unit is not None
        a = Classroom(code="XK-A", name="Điểm cầu Xuất khẩu A", unit_id=unit.id)
        b = Classroom(code="XK-B", name="Điểm cầu Xuất khẩu B", unit_id=unit.id)
        program = Program(title="Chương trình xuất tệp")
        s.add_all([a, b, program])
        await s.flush()
        m = Meeting(program_id=program.id, title="Buổi xuất tệp", status=MeetingStatus.PUBLISHED, starts_at=T0,
                    ends_at=T0 + dt.timedelta(hours=2))
        s.add(m)
        await s.flush()
        for c in (a, b):
            await s.execute(insert(meeting_classrooms).values(meeting_id=m.id, classroom_id=c.id))
        for minute, kind, pid in ((0, "join", "pa"), (20, "drop", "pa"), (25, "join", "pa"), (85, "leave", "pa"),
                                  (3, "hand-up", "pa"), (4, "chat", "pa")):
            s.add(AttendanceEvent(meeting_id=m.id, at=T0 + dt.timedelta(minutes=minute), kind=kind, participant=pid,
                                  classroom_id=a.id, role="classroom", name=a.name, data={}))
        s.add(AttendanceEvent(meeting_id=m.id, at=T0 + dt.timedelta(minutes=10), kind="quality", participant="pa",
                              classroom_id=a.id, role="classroom", name=a.name,
                              data={"loss": 0.031, "up_bitrate": 420000, "down_bitrate": 900000}))
        s.add(Headcount(meeting_id=m.id, classroom_id=a.id, count=27, names=["Nguyễn Văn An", "Trần Thị Bình"]))
        await s.commit()
        return m.id, a.id, b.id


async def test_meeting_export_as_csv_and_xlsx(app: Any, login_as: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    meeting_id, _a, _b = await _meeting(app)
    r = await op.get("/api/v1/reports/export.csv", params={"report": "meeting", "id": str(meeting_id)})
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert f'filename="diem-danh-{meeting_id}.csv"' in r.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    header_at = rows.index(CLASSROOM_HEADERS)
    table = [dict(zip(CLASSROOM_HEADERS, row, strict=False)) for row in rows[header_at + 1:header_at + 3]]
    a, b = table
    assert a["Lớp học (điểm cầu)"] == "Điểm cầu Xuất khẩu A" and a["Có tham dự"] == "Có"
    assert a["Số phút có mặt"] == "80.0" and a["Số lần rớt mạng"] == "1" and a["Giơ tay"] == "1"
    assert a["Các khoảng thời gian"] == "08:00–08:20 (rớt mạng); 08:25–09:25"
    assert a["Sĩ số giáo viên"] == "27" and a["Danh sách giáo viên"] == "Nguyễn Văn An; Trần Thị Bình"
    assert a["Mất gói trung vị (%)"] == "3.1" and a["Tốc độ gửi trung vị (kbit/s)"] == "420.0"
    assert b["Có tham dự"] == "Không" and b["Số phút có mặt"] == "0.0"

    r = await op.get("/api/v1/reports/export.xlsx", params={"report": "meeting", "id": str(meeting_id)})
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    wb = load_workbook(io.BytesIO(await r.read()))
    ws = wb["Lớp học"]
    assert [c.value for c in ws[2]] == CLASSROOM_HEADERS
    assert ws["B3"].value == "Điểm cầu Xuất khẩu A" and ws["H3"].value == 80.0 and ws["R3"].value == 27
    assert ws["B4"].value == "Điểm cầu Xuất khẩu B" and ws["F4"].value == "Không"
    assert "Theo thời gian" in wb.sheetnames


async def test_monthly_and_meetings_exports(app: Any, login_as: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    await _meeting(app)
    r = await op.get("/api/v1/reports/export.xlsx", params={"report": "monthly", "month": "2025-09"})
    wb = load_workbook(io.BytesIO(await r.read()))
    assert wb.sheetnames[:2] == ["Tổng hợp", "Theo tỉnh"]
    summary = {row[0].value: row[1].value for row in wb["Tổng hợp"].iter_rows(min_row=3)}
    assert summary["Số buổi tập huấn đã tổ chức"] == 1 and summary["Số giáo viên được tiếp cận (sĩ số)"] == 27
    assert summary["Số lớp (điểm cầu) được tiếp cận"] == 1 and summary["Số giờ tập huấn"] == 2
    meetings = wb["Buổi tập huấn"]
    assert meetings["A2"].value == "Ngày" and meetings["D3"].value == "Buổi xuất tệp" and meetings["G3"].value == 2
    r = await op.get("/api/v1/reports/export.csv", params={"report": "meetings", "from": "2025-09-01",
                                                            "to": "2025-09-30"})
    rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    assert rows[0][:4] == ["Ngày", "Bắt đầu", "Kết thúc", "Buổi tập huấn"]
    assert rows[1][:4] == ["15/09/2025", "08:00", "10:00", "Buổi xuất tệp"] and len(rows) == 2
    r = await op.get("/api/v1/reports/export.csv", params={"report": "progress"})
    assert r.status == 200 and (await r.read()).decode("utf-8-sig").startswith("Chương trình,")


LINK = '=HYPERLINK("http://x","y")'
HOSTILE = [LINK, "+SUM(1;1)", "-2+3", "@cmd", "\tTab", "\rReturn", "  =1+1", "\n=2+2"]


def test_formula_like_text_is_escaped_and_numbers_stay_numbers() -> None:
    assert all(formula_like(text) for text in HOSTILE)
    assert not any(formula_like(text) for text in ("Nguyễn Văn An", "", " ", "a=b", "3", "'=1", "08:00–08:20"))
    assert inert(-5) == -5 and inert(-2.5) == -2.5 and inert(None) is None and inert("An") == "An"
    table = Table("Tên", LINK, ["=Tiêu đề", "Số"], [[name, -5] for name in HOSTILE] + [["-5", -2.5], ["An", 3]])
    rows = list(csv.reader(io.StringIO(to_csv([table, Table("Khác", "Khác", ["a"])]).decode("utf-8-sig"))))
    assert rows[0] == ["'" + LINK] and rows[1] == ["'=Tiêu đề", "Số"]
    assert [r[0] for r in rows[2:2 + len(HOSTILE)]] == ["'" + text for text in HOSTILE]
    assert {r[1] for r in rows[2:2 + len(HOSTILE)]} == {"-5"}  # numbers are written as numbers, unescaped
    assert rows[2 + len(HOSTILE)] == ["'-5", "-2.5"] and rows[3 + len(HOSTILE)] == ["An", "3"]

    ws = load_workbook(io.BytesIO(to_xlsx([table])))["Tên"]
    cells = [c for row in ws.iter_rows() for c in row if c.value is not None]
    assert cells and not [c.coordinate for c in cells if c.data_type == "f"]
    texts = {c.value: c for c in cells if isinstance(c.value, str)}
    for text in [LINK, "=Tiêu đề", "-5", *HOSTILE]:
        cell = texts[text.replace("\r", "\n") if text.startswith("\r") else text]  # XML turns CR into LF
        assert cell.data_type == "s" and cell.quotePrefix, text
    assert texts["An"].data_type == "s" and not texts["An"].quotePrefix
    numbers = [c.value for c in cells if c.data_type == "n"]
    assert numbers.count(-5) == len(HOSTILE) and -2.5 in numbers and 3 in numbers


async def _hostile_world(app: Any) -> dict[str, int]:
    """_hostile_world: names chosen by outsiders (a guest's name, headcount names) and titles that look like
    formulas, in every place an export shows text."""
    async with app[DB]() as s:
        province = Unit(code="ZZ", name="@Tỉnh", level=UnitLevel.PROVINCE)
        s.add(province)
        await s.flush()
        room = Classroom(code="-ZZ1", name="=1+1", unit_id=province.id)
        program = Program(title="+Chương trình")
        s.add_all([room, program])
        await s.flush()
        m = Meeting(program_id=program.id, title="-Buổi", status=MeetingStatus.PUBLISHED, starts_at=T0,
                    ends_at=T0 + dt.timedelta(hours=2))
        s.add(m)
        await s.flush()
        await s.execute(insert(meeting_classrooms).values(meeting_id=m.id, classroom_id=room.id))
        for minute, kind, pid, classroom_id, role, name in (
                (0, "join", "pa", room.id, "classroom", room.name),
                (80, "leave", "pa", room.id, "classroom", room.name),
                (1, "join", "pg", None, "guest", LINK), (30, "leave", "pg", None, "guest", LINK)):
            s.add(AttendanceEvent(meeting_id=m.id, at=T0 + dt.timedelta(minutes=minute), kind=kind, participant=pid,
                                  classroom_id=classroom_id, role=role, name=name, data={}))
        s.add(Headcount(meeting_id=m.id, classroom_id=room.id, count=2, names=[LINK, "Trần Thị Bình"]))
        learner = User(username="hv-zz", display_name=LINK, role=Role.LEARNER, unit_id=province.id)
        s.add(learner)
        await s.flush()
        await s.execute(insert(program_learners).values(program_id=program.id, user_id=learner.id))
        await s.commit()
        return {"meeting": m.id, "program": program.id, "unit": province.id}


async def test_every_export_keeps_hostile_names_inert(app: Any, login_as: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    ids = await _hostile_world(app)
    reports = [{"report": "meeting", "id": ids["meeting"]}, {"report": "meetings", "from": "2025-09-01",
                                                             "to": "2025-09-30"},
               {"report": "program", "id": ids["program"]}, {"report": "unit", "id": ids["unit"]},
               {"report": "monthly", "month": "2025-09"}, {"report": "progress"}]
    for params in reports:
        query = {k: str(v) for k, v in params.items()}
        r = await op.get("/api/v1/reports/export.csv", params=query)
        assert r.status == 200, params
        fields = [f for row in csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))) for f in row]
        assert not [f for f in fields if formula_like(f)], params
        r = await op.get("/api/v1/reports/export.xlsx", params=query)
        assert r.status == 200, params
        wb = load_workbook(io.BytesIO(await r.read()))
        cells = [c for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
        assert not [c.coordinate for c in cells if c.data_type == "f"], params
        assert all(c.quotePrefix for c in cells if isinstance(c.value, str) and formula_like(c.value)), params
        texts = {c.value for c in cells if isinstance(c.value, str)}
        shown = {"'" + f for f in texts if formula_like(f)}
        assert shown <= set(fields), params  # the same text in both files, escaped the CSV way in the CSV
        if params["report"] == "meeting":
            assert {LINK, "=1+1", "@Tỉnh", "-ZZ1", f"{LINK}; Trần Thị Bình"} <= texts
            assert "'" + LINK in fields and f"'{LINK}; Trần Thị Bình" in fields
            rooms = wb["Lớp học"]
            assert rooms["B3"].value == "=1+1" and rooms["H3"].value == 80.0 and rooms["R3"].value == 2
        if params["report"] == "progress":
            assert "'+Chương trình" in fields and "'@Tỉnh" in fields
