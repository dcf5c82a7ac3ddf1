"""server.schedule.importer: import a term's meetings from CSV, all or nothing, as drafts.

Columns (header row; UTF-8 with or without BOM; comma, semicolon or tab separated; read by
`server.people.importer.read_csv`, so row numbers count the header as row 1 as a spreadsheet does):

``program,title,kind,date,start,end,presenters,classrooms,provinces,description,video_codec,record``

- `program`: the exact title of an existing program (case-insensitive) or its number `#12`;
- `kind`: lecture / regional (also "bài giảng", "hội nghị vùng"; empty = lecture);
- `date`: ``YYYY-MM-DD`` or ``DD/MM/YYYY``; `start`, `end`: ``HH:MM`` in the configured timezone;
- `presenters`: usernames; `classrooms`: classroom codes; `provinces`: province codes (regional only;
  the version of the code valid on the meeting's date) — lists separated by spaces, commas, ";" or "|";
- `description`, `video_codec` (VP8/H264) and `record` (1/0, có/không) are optional.

Every row is checked first (the same checks as the meeting form, `server.schedule.meetings.check_meeting`); any
problem, each reported with its row, means nothing is written. Imported meetings are drafts: publishing
applies the 10-day and overlap rules. The caller of `import_schedule` commits; `run_import` (the page's and
the API's upload) is one transaction of its own.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import audit
from server.db.models import Classroom, MeetingKind, Program, Unit, UnitLevel, User
from server.errors import ApiError
from server.people.importer import FALSE_WORDS, TRUE_WORDS, ImportFailed, RowError, parse_date, read_csv
from server.people.units import valid_on
from server.schedule import meetings as svc

COLUMNS = ("program", "title", "kind", "date", "start", "end", "presenters", "classrooms", "provinces",
           "description", "video_codec", "record")
REQUIRED = ("program", "title", "date", "start", "end")
KIND_WORDS = {
    "": MeetingKind.LECTURE, "lecture": MeetingKind.LECTURE, "bài giảng": MeetingKind.LECTURE,
    "bai giang": MeetingKind.LECTURE, "regional": MeetingKind.REGIONAL, "hội nghị vùng": MeetingKind.REGIONAL,
    "hoi nghi vung": MeetingKind.REGIONAL, "vùng": MeetingKind.REGIONAL, "vung": MeetingKind.REGIONAL,
}
SPLIT = re.compile(r"[\s,;|]+")
TIME = re.compile(r"^(\d{1,2})[:hH](\d{2})$")
MAX_ROWS = 2000
SAMPLE = ("program,title,kind,date,start,end,presenters,classrooms,provinces,description\n"
          "Bồi dưỡng giáo viên 2030,Buổi 1: Giới thiệu,lecture,2030-03-10,08:00,10:00,gv.an,PH-01 PH-02,,\n"
          "Bồi dưỡng giáo viên 2030,Hội nghị vùng Tây Bắc,regional,12/03/2030,14:00,16:30,ld.binh gv.an,"
          "PH-01,10 11,Kế hoạch vùng\n")


@dataclass
class ScheduleImportResult:
    """ScheduleImportResult: how many rows were read and the ids of the draft meetings created."""

    rows: int
    meeting_ids: list[int]


def split_list(text: str) -> list[str]:
    """split_list: the items of a list cell ("a b", "a,b", "a; b", "a|b")."""
    return [x for x in SPLIT.split(text.strip()) if x]


def parse_time(text: str) -> dt.time:
    """parse_time: ``HH:MM`` (or ``8h30``); ValueError otherwise."""
    m = TIME.match(text.strip())
    if not m:
        raise ValueError(text)
    return dt.time(int(m.group(1)), int(m.group(2)))


def _api_row_error(row: int, exc: ApiError) -> RowError:
    text = exc.message
    field = str(exc.extra.get("field", ""))
    if field and text.startswith(f"{field}: "):
        text = text[len(field) + 2:]
    if " / " in text:
        vi, en = text.split(" / ", 1)
    else:
        vi = en = text
    return RowError(row, vi, en)


class _Lookups:
    """_Lookups: programs, accounts, classrooms and provinces by the names a CSV uses (loaded once)."""

    def __init__(self) -> None:
        self.programs: dict[str, int] = {}
        self.program_ids: set[int] = set()
        self.users: dict[str, int] = {}
        self.rooms: dict[str, int] = {}

    async def load(self, s: AsyncSession) -> None:
        for p in (await s.scalars(select(Program))).all():
            self.programs.setdefault(p.title.strip().casefold(), p.id)
            self.program_ids.add(p.id)
        for uid, name in (await s.execute(select(User.id, User.username))).all():
            self.users[name.casefold()] = uid
        for cid, code in (await s.execute(select(Classroom.id, Classroom.code))).all():
            self.rooms[code.casefold()] = cid

    def program(self, text: str) -> int | None:
        text = text.strip()
        if text.startswith("#") and text[1:].isascii() and text[1:].isdigit():
            pid = int(text[1:])
            return pid if pid in self.program_ids else None
        return self.programs.get(text.casefold())


async def _province(s: AsyncSession, code: str, day: dt.date) -> int | None:
    q = (select(Unit.id).where(func.lower(Unit.code) == code.lower(), Unit.level == UnitLevel.PROVINCE,
                               valid_on(day)).order_by(Unit.valid_from.desc()).limit(1))
    return await s.scalar(q)


async def _row(s: AsyncSession, number: int, raw: dict[str, str], look: _Lookups, tz: ZoneInfo,
               errors: list[RowError]) -> svc.MeetingIn | None:
    def bad(vi: str, en: str) -> None:
        errors.append(RowError(number, vi, en))

    count = len(errors)
    program_id = look.program(raw.get("program", ""))
    if program_id is None:
        bad(f"không có chương trình '{raw.get('program', '')}'", f"no program '{raw.get('program', '')}'")
    kind = KIND_WORDS.get(raw.get("kind", "").strip().lower())
    if kind is None:
        bad(f"loại '{raw['kind']}' không hợp lệ (lecture hoặc regional)",
            f"kind '{raw['kind']}' is not lecture or regional")
    day = start = end = None
    try:
        day = parse_date(raw.get("date", ""))
    except (ValueError, TypeError):
        bad(f"ngày '{raw.get('date', '')}' không hợp lệ (YYYY-MM-DD hoặc DD/MM/YYYY)",
            f"date '{raw.get('date', '')}' is not YYYY-MM-DD or DD/MM/YYYY")
    for name in ("start", "end"):
        try:
            value = parse_time(raw.get(name, ""))
        except ValueError:
            bad(f"giờ {name} '{raw.get(name, '')}' không hợp lệ (HH:MM)",
                f"{name} time '{raw.get(name, '')}' is not HH:MM")
            continue
        if name == "start":
            start = value
        else:
            end = value
    presenter_ids = []
    for name in split_list(raw.get("presenters", "")):
        uid = look.users.get(name.casefold())
        if uid is None:
            bad(f"không có tài khoản '{name}'", f"no account '{name}'")
        else:
            presenter_ids.append(uid)
    classroom_ids = []
    for code in split_list(raw.get("classrooms", "")):
        cid = look.rooms.get(code.casefold())
        if cid is None:
            bad(f"không có phòng học '{code}'", f"no classroom '{code}'")
        else:
            classroom_ids.append(cid)
    province_ids = []
    for code in split_list(raw.get("provinces", "")):
        pid = await _province(s, code, day) if day else None
        if pid is None:
            bad(f"không có tỉnh mã '{code}'" + (f" vào ngày {day:%d/%m/%Y}" if day else ""),
                f"no province with code '{code}'" + (f" on {day:%d/%m/%Y}" if day else ""))
        else:
            province_ids.append(pid)
    record_text = raw.get("record", "").strip().lower()
    if record_text and record_text not in TRUE_WORDS | FALSE_WORDS:
        bad(f"record '{record_text}' phải là 1 hoặc 0", f"record '{record_text}' must be 1 or 0")
    if len(errors) > count or day is None or start is None or end is None or program_id is None or kind is None:
        return None
    codec = raw.get("video_codec", "").strip().upper() or "VP8"
    try:
        data = svc.validate(svc.MeetingIn, {
            "program_id": program_id, "title": raw.get("title", ""), "description": raw.get("description", ""),
            "kind": kind, "starts_at": dt.datetime.combine(day, start, tzinfo=tz),
            "ends_at": dt.datetime.combine(day, end, tzinfo=tz), "presenter_ids": presenter_ids,
            "classroom_ids": classroom_ids, "province_ids": province_ids, "video_codec": codec,
            "record": record_text not in FALSE_WORDS})
        await svc.check_meeting(s, data)
    except ApiError as exc:
        errors.append(_api_row_error(number, exc))
        return None
    return data


async def import_schedule(s: AsyncSession, request: web.Request | None, data: bytes | str, tz: ZoneInfo,
                          actor_id: int | None = None) -> ScheduleImportResult:
    """import_schedule: check every row, then create one draft meeting per row (ImportFailed: nothing written)."""
    table = read_csv(data, COLUMNS, REQUIRED)
    if table.fatal:
        raise ImportFailed(table.errors)
    errors = list(table.errors)
    if not table.rows and not errors:
        errors.append(RowError(2, "tệp không có dòng nào", "the file has no rows"))
    if len(table.rows) > MAX_ROWS:
        errors.append(RowError(MAX_ROWS + 2, f"tối đa {MAX_ROWS} dòng một lần", f"at most {MAX_ROWS} rows at once"))
    look = _Lookups()
    await look.load(s)
    checked: list[svc.MeetingIn] = []
    for number, raw in table.rows[:MAX_ROWS]:
        row = await _row(s, number, raw, look, tz, errors)
        if row is not None:
            checked.append(row)
    if errors:
        raise ImportFailed(errors)
    ids = []
    for item in checked:
        meeting = await svc.create_meeting(s, request, item, actor_id=actor_id)
        ids.append(meeting.id)
    audit.record(s, request, "meeting.import", "meetings", actor_id=actor_id, rows=len(checked), created=len(ids))
    return ScheduleImportResult(rows=len(table.rows), meeting_ids=ids)


async def run_import(db: async_sessionmaker[AsyncSession], request: web.Request | None, data: bytes, tz: ZoneInfo,
                     actor_id: int | None = None) -> ScheduleImportResult:
    """run_import: `import_schedule` in one transaction (ImportFailed: nothing written)."""
    async with db() as s:
        try:
            result = await import_schedule(s, request, data, tz, actor_id=actor_id)
        except ImportFailed:
            await s.rollback()
            raise
        await s.commit()
    return result
