"""Tests of server.people.importer: the reference provinces and the CSV importers of units and classrooms."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import Config
from server.db.engine import DB, make_engine, make_sessionmaker, migrate
from server.db.models import AuditEntry, Classroom, Role, Unit, UnitLevel, User
from server.people.importer import ImportFailed, import_classrooms, import_units, run_import, seed_reference_units
from server.people.units import province_of, units_at
from tests.server.people.conftest import UNITS_CSV
from tests.zones import OTHER_DAY

PROVINCES_2016 = {
    "02": "Hà Giang", "04": "Cao Bằng", "10": "Lào Cai", "11": "Điện Biên", "14": "Sơn La", "15": "Yên Bái",
    "17": "Hòa Bình", "19": "Thái Nguyên", "20": "Lạng Sơn", "25": "Phú Thọ", "58": "Ninh Thuận",
    "64": "Gia Lai", "66": "Đắk Lắk", "84": "Trà Vinh", "91": "Kiên Giang", "94": "Sóc Trăng", "95": "Bạc Liêu",
}
BEFORE = dt.date(2025, 6, 30)
AFTER = dt.date(2025, 7, 1)


async def _count(s: AsyncSession, model: type[Any]) -> int:
    return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_seeded_on_first_start(client: Any, app: Any) -> None:
    async with app[DB]() as s:
        before = await units_at(s, BEFORE, level=UnitLevel.PROVINCE)
        after = await units_at(s, AFTER, level=UnitLevel.PROVINCE)
    assert {u.code: u.name for u in before} == PROVINCES_2016
    assert len(before) == 17
    names_after = {u.code: u.name for u in after}
    assert names_after["04"] == "Cao Bằng" and names_after["14"] == "Sơn La"
    assert names_after["15"] == "Lào Cai" and names_after["08"] == "Tuyên Quang" and names_after["92"] == "Cần Thơ"
    assert "02" not in names_after and "95" not in names_after and "17" not in names_after
    assert len(after) == 15


async def test_seed_skips_when_units_exist(s: AsyncSession) -> None:
    total = await _count(s, Unit)
    await seed_reference_units(s)
    assert await _count(s, Unit) == total


async def test_import_units_creates_then_upserts(s: AsyncSession) -> None:
    first = await import_units(s, UNITS_CSV)
    assert (first.created, first.updated, first.unchanged) == (3, 0, 0)
    count = await _count(s, Unit)
    again = await import_units(s, UNITS_CSV.replace("Huyện Mường La", "Huyện Mường La (mới)"))
    assert (again.created, again.updated, again.unchanged) == (0, 1, 2)
    assert await _count(s, Unit) == count
    names = set((await s.scalars(select(Unit.name).where(Unit.code == "116"))).all())
    assert names == {"Huyện Mường La (mới)"}


async def test_import_units_bom_semicolon_and_vietnamese_levels(s: AsyncSession) -> None:
    data = "\ufeffcode;name;level;parent_code\nH1;Huyện Một;huyện;20\nX1;Xã Một;xã;H1\n".encode()
    result = await import_units(s, data)
    assert result.created == 2
    x1 = (await s.scalars(select(Unit).where(Unit.code == "X1"))).one()
    assert x1.level == UnitLevel.COMMUNE and (await province_of(s, x1.id)).code == "20"  # type: ignore[union-attr]


async def test_import_units_reports_every_row_and_writes_nothing(s: AsyncSession) -> None:
    before = await _count(s, Unit)
    data = "\n".join([
        "code,name,level,parent_code,valid_from,valid_to",
        "H1,Huyện Một,district,14,,",          # 2: fine
        "H2,Huyện Hai,district,99,,",          # 3: unknown parent
        "H3,Huyện Ba,town,14,,",               # 4: bad level
        "H4,Huyện Bốn,district,14,2024-02-30,",  # 5: bad date
        "H1,Huyện Một lần nữa,district,14,,",  # 6: duplicate code
        "X1,Xã Một,commune,02,2025-07-01,",    # 7: parent not valid then
        "X2,,commune,H1,,",                    # 8: empty name
        "T1,Tỉnh Mới,province,14,,",           # 9: province with a parent
        "X3,Xã Ba,commune,H1,2025-01-01,2024-01-01",  # 10: end before start
    ])
    with pytest.raises(ImportFailed) as info:
        await import_units(s, data)
    rows = [e.row for e in info.value.errors]
    assert rows == [3, 4, 5, 6, 7, 8, 9, 10]
    texts = {e.row: e.text("vi") for e in info.value.errors}
    assert texts[3].startswith("dòng 3: ") and "'99'" in texts[3]
    assert info.value.errors[0].text("en").startswith("row 3: unknown parent code")
    assert "trùng với dòng 2" in texts[6]
    await s.rollback()
    assert await _count(s, Unit) == before


async def test_import_units_missing_and_unknown_columns(s: AsyncSession) -> None:
    with pytest.raises(ImportFailed) as info:
        await import_units(s, "code,name,parent\n1,A,\n")
    messages = [e.message for e in info.value.errors]
    assert all(e.row == 1 for e in info.value.errors)
    assert any("parent" in m and "unknown column" in m for m in messages)
    assert any("missing column 'level'" in m for m in messages)


async def test_import_units_encoding_errors(s: AsyncSession) -> None:
    with pytest.raises(ImportFailed) as info:
        await import_units(s, "code,name,level\n1,Hà,province\n".encode("latin-1"))
    assert info.value.errors[0].row == 2 and "UTF-8" in info.value.errors[0].message
    with pytest.raises(ImportFailed) as info:
        await import_units(s, "code,name,level\n".encode("utf-16"))
    assert "UTF-16" in info.value.errors[0].message
    with pytest.raises(ImportFailed):
        await import_units(s, b"")


async def test_import_units_overlapping_versions_refused(s: AsyncSession) -> None:
    with pytest.raises(ImportFailed) as info:
        await import_units(s, "code,name,level,valid_from\n02,Hà Giang mới,province,2025-01-01\n")
    assert "overlap" in info.value.errors[0].message


async def test_import_classrooms_and_accounts(s: AsyncSession) -> None:
    await import_units(s, UNITS_CSV)
    s.add_all([User(username="lop-ml", display_name="Lớp Mường La", role=Role.CLASSROOM),
               User(username="gv1", display_name="Giảng viên", role=Role.TRAINER)])
    await s.flush()
    csv_text = ("code,name,unit_code,host,equipment,account_username,active\n"
                "ML-01,Phòng học Mường La,116,Trường THCS Mường Bú,\"PC, webcam\",lop-ml,1\n"
                "ML-02,Phòng học 2,04033,,,,không\n")
    result = await import_classrooms(s, csv_text)
    assert (result.created, result.updated) == (2, 0)
    rooms = {c.code: c for c in (await s.scalars(select(Classroom))).all()}
    assert rooms["ML-01"].equipment == "PC, webcam" and rooms["ML-01"].active
    assert not rooms["ML-02"].active
    user = (await s.scalars(select(User).where(User.username == "lop-ml"))).one()
    assert user.classroom_id == rooms["ML-01"].id
    again = await import_classrooms(s, csv_text.replace("Phòng học 2", "Phòng học số 2"))
    assert (again.created, again.updated, again.unchanged) == (0, 1, 1)
    assert await _count(s, Classroom) == 2
    await s.commit()

    bad = ("code,name,unit_code,account_username,active\n"
           "ML-03,Phòng 3,NOPE,,\n"          # 2: unknown unit
           "ML-04,Phòng 4,116,gv1,\n"        # 3: not a classroom account
           "ML-05,Phòng 5,116,ghost,\n"      # 4: unknown account
           "ML-05,Phòng 5b,116,,\n"          # 5: duplicate code
           "ML-06,Phòng 6,116,lop-ml,\n"     # 6: account belongs to ML-01
           "ML-07,Phòng 7,116,,maybe\n")     # 7: bad active
    with pytest.raises(ImportFailed) as info:
        await import_classrooms(s, bad)
    assert [e.row for e in info.value.errors] == [2, 3, 4, 5, 6, 7]
    await s.rollback()
    assert await _count(s, Classroom) == 2


async def test_import_large_file(s: AsyncSession) -> None:
    lines = ["code,name,level,parent_code,valid_from,valid_to", "H0,Huyện lớn,district,14,,2025-06-30"]
    lines += [f"X{i:05d},Xã số {i},commune,H0,,2025-06-30" for i in range(10_000)]
    seen: list[int] = []
    started = time.monotonic()
    result = await import_units(s, "\n".join(lines), progress=lambda done, total: seen.append(done))
    await s.commit()
    assert result.created == 10_001
    assert seen[-1] == 10_001 and 1000 in seen
    rooms = ["code,name,unit_code"] + [f"C{i:05d},Phòng {i},X{i:05d}" for i in range(10_000)]
    rooms_result = await import_classrooms(s, "\n".join(rooms))
    await s.commit()
    assert rooms_result.created == 10_000
    assert time.monotonic() - started < 60


async def test_run_import_is_one_audited_transaction(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'run.sqlite3'}")
    await migrate(engine)
    db = make_sessionmaker(engine)
    try:
        async with db() as s:
            await seed_reference_units(s)
            await s.commit()
        result = await run_import(db, None, "units", UNITS_CSV.encode(), "don-vi.csv")
        assert (result.kind, result.created) == ("units", 3)
        with pytest.raises(ImportFailed):
            await run_import(db, None, "classrooms", b"code,name,unit_code\nA1,Phong,NOPE\n", "lop.csv")
        async with db() as s:
            assert await s.scalar(select(func.count()).select_from(Unit).where(Unit.code == "116")) == 1
            assert await _count(s, Classroom) == 0
            entries = (await s.scalars(select(AuditEntry).where(AuditEntry.action.like("%.import")))).all()
            assert [(e.action, e.target, e.details["created"]) for e in entries] == [("units.import", "don-vi.csv", 3)]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("config", [{"timezone": OTHER_DAY}], indirect=True)
async def test_a_classroom_gets_the_unit_of_the_configured_timezones_day(
        login_as: Any, app: Any, config: Config) -> None:
    local, utc = dt.datetime.now(ZoneInfo(config.timezone)).date(), dt.datetime.now(dt.UTC).date()
    assert local != utc  # else this test could not fail
    async with app[DB]() as s:  # one code, two versions: the day before and the day after the change
        early = Unit(code="97", name="Tỉnh trước", level=UnitLevel.PROVINCE, valid_to=min(local, utc))
        late = Unit(code="97", name="Tỉnh sau", level=UnitLevel.PROVINCE, valid_from=max(local, utc))
        s.add_all([early, late])
        await s.commit()
    op = await login_as(Role.OPERATOR)
    resp = await op.post("/api/v1/import/classrooms", data="code,name,unit_code\nC97,Phòng 97,97\n".encode(),
                         headers={"Content-Type": "text/csv"})
    assert resp.status == 200, await resp.text()
    async with app[DB]() as s:
        room = (await s.scalars(select(Classroom).where(Classroom.code == "C97"))).one()
    assert room.unit_id == (late.id if local > utc else early.id)
