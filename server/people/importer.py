"""server.people.importer: CSV import of units and classrooms, the reference provinces and `taphuan import`.

CSV import (UTF-8, with or without BOM; comma, semicolon or tab separated; a header row; row numbers count
the header as row 1, as a spreadsheet does):

- units: ``code,name,level,parent_code,valid_from,valid_to`` — `level` is province/district/commune
  (or tỉnh/huyện/xã); `parent_code` is required except for provinces and names the parent valid at the
  unit's `valid_from`; dates are ``YYYY-MM-DD`` or ``DD/MM/YYYY``. A row with the same code and
  valid_from as an existing unit updates it.
- classrooms: ``code,name,unit_code,host,equipment,account_username,active`` — `unit_code` names an
  existing unit (the version valid today, else the latest); `account_username` (optional) links an
  existing account of role classroom; `active` (optional) is 1/0, yes/no or có/không. The same code
  updates the existing classroom.

Every row is checked before anything is written; any problem (all are reported, each with its row
number) means nothing is written. The caller commits, except with `run_import` (one upload, one transaction).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server import formats
from server.audit import record
from server.config import CONFIG, Config
from server.db.models import Classroom, Role, Unit, UnitLevel, User
from server.people.units import LEVEL_RANK, chunks, is_valid_on, overlaps, span_text

DATA_DIR = Path(__file__).resolve().parent.parent / "data"  # server/data
REFERENCE_FILES = ("provinces_2016.csv", "provinces_2025.csv")
LEVEL_WORDS = {
    "province": UnitLevel.PROVINCE, "tinh": UnitLevel.PROVINCE, "tỉnh": UnitLevel.PROVINCE,
    "district": UnitLevel.DISTRICT, "huyen": UnitLevel.DISTRICT, "huyện": UnitLevel.DISTRICT,
    "commune": UnitLevel.COMMUNE, "xa": UnitLevel.COMMUNE, "xã": UnitLevel.COMMUNE,
}
UNIT_COLUMNS = ("code", "name", "level", "parent_code", "valid_from", "valid_to")
UNIT_REQUIRED = ("code", "name", "level")
CLASSROOM_COLUMNS = ("code", "name", "unit_code", "host", "equipment", "account_username", "active")
CLASSROOM_REQUIRED = ("code", "name", "unit_code")
TRUE_WORDS = {"1", "yes", "y", "true", "có", "co", "x"}
FALSE_WORDS = {"0", "no", "n", "false", "không", "khong"}
PROGRESS_EVERY = 1000

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------------------
# CSV reading


@dataclass(frozen=True)
class RowError:
    """RowError: one problem of an imported file, with its row (the header is row 1)."""

    row: int
    vi: str
    en: str

    @property
    def message(self) -> str:
        """RowError.message: Vietnamese, then English."""
        return f"{self.vi} / {self.en}"

    def text(self, lang: str) -> str:
        """RowError.text: "dòng 7: ..." or "row 7: ..." in one language."""
        return f"dòng {self.row}: {self.vi}" if lang == "vi" else f"row {self.row}: {self.en}"

    def line(self) -> str:
        """RowError.line: both languages on one line (command line output)."""
        return f"dòng {self.row}: {self.vi} / row {self.row}: {self.en}"


class ImportFailed(Exception):
    """ImportFailed: the file has problems; nothing was written."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} error(s)")
        self.errors = sorted(errors, key=lambda e: e.row)


@dataclass
class ImportResult:
    """ImportResult: what an import wrote."""

    kind: str
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@dataclass
class _Csv:
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    fatal: bool = False


def _decode(data: bytes | str) -> tuple[str, RowError | None]:
    if isinstance(data, str):
        return data.removeprefix("\ufeff"), None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "", RowError(1, "tệp được lưu dạng UTF-16; hãy lưu lại dạng CSV UTF-8",
                            "the file is UTF-16; save it as CSV UTF-8")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        row = data.count(b"\n", 0, exc.start) + 1
        return "", RowError(row, "tệp không phải UTF-8 (hãy lưu dạng CSV UTF-8)",
                            "the file is not UTF-8 (save it as CSV UTF-8)")


def _header_name(raw: str) -> str:
    return raw.strip().strip("\ufeff").lower().replace(" ", "_").replace("-", "_")


def read_csv(data: bytes | str, columns: Sequence[str], required: Sequence[str]) -> _Csv:
    """read_csv: decode and split a CSV file into numbered rows (dicts by column), with header errors."""
    out = _Csv()
    text, problem = _decode(data)
    if problem is not None:
        out.errors.append(problem)
        out.fatal = True
        return out
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count) if first.strip() else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
        if header is None:
            out.errors.append(RowError(1, "tệp trống (cần dòng tiêu đề)", "the file is empty (a header row is needed)"))
            out.fatal = True
            return out
        header_row = reader.line_num
        names = [_header_name(h) for h in header]
        seen: set[str] = set()
        for name in names:
            if not name:
                continue
            if name not in columns:
                out.errors.append(RowError(header_row, f"cột lạ '{name}' (các cột: {', '.join(columns)})",
                                           f"unknown column '{name}' (columns: {', '.join(columns)})"))
            elif name in seen:
                out.errors.append(RowError(header_row, f"cột '{name}' bị lặp", f"column '{name}' appears twice"))
            seen.add(name)
        for name in required:
            if name not in seen:
                out.errors.append(RowError(header_row, f"thiếu cột '{name}'", f"missing column '{name}'"))
        if out.errors:
            out.fatal = True
            return out
        record = header_row
        for values in reader:
            record += 1
            if not any(v.strip() for v in values):
                continue
            extra = [v for v in values[len(names):] if v.strip()]
            if extra:
                out.errors.append(RowError(record, f"có {len(values)} giá trị, nhiều hơn số cột ({len(names)})",
                                           f"{len(values)} values, more than the {len(names)} columns"))
                continue
            row = {name: (values[i].strip() if i < len(values) else "") for i, name in enumerate(names) if name}
            out.rows.append((record, row))
    except csv.Error as exc:
        out.errors.append(RowError(reader.line_num, f"không đọc được CSV ({exc})", f"unreadable CSV ({exc})"))
        out.fatal = True
    return out


def parse_date(text: str) -> dt.date:
    """parse_date: ``YYYY-MM-DD`` or ``DD/MM/YYYY`` (ValueError otherwise)."""
    text = text.strip()
    if "/" in text:
        day, month, year = text.split("/")
        return dt.date(int(year), int(month), int(day))
    return dt.date.fromisoformat(text)


def _bad_code(code: str, limit: int) -> bool:
    return len(code) > limit or any(ch.isspace() for ch in code)


# ---------------------------------------------------------------------------------------------------------
# Units import


@dataclass
class _UnitRow:
    row: int
    code: str
    name: str
    level: UnitLevel
    parent_code: str
    valid_from: dt.date | None
    valid_to: dt.date | None
    parent: _UnitRow | Unit | None = None
    unit: Unit | None = None


@dataclass
class _Version:
    """_Version: one unit version known to an import (from the file, or in the database)."""

    code: str
    level: UnitLevel
    valid_from: dt.date | None
    valid_to: dt.date | None
    source: _UnitRow | Unit


def _pick(versions: list[_Version], valid_from: dt.date | None, valid_to: dt.date | None) -> _Version | None:
    """_pick: the version valid at `valid_from` (else overlapping `valid_from..valid_to`, latest first)."""
    if valid_from is not None:
        for v in versions:
            if is_valid_on(v, valid_from):
                return v
    overlapping = [v for v in versions if overlaps(v.valid_from, v.valid_to, valid_from, valid_to)]
    if not overlapping:
        return None
    return max(overlapping, key=lambda v: v.valid_from or dt.date.min)


def _check_code(number: int, code: str, longest: int, errors: list[RowError]) -> bool:
    """_check_code: False (with a row error) when a code is empty or not valid."""
    if not code:
        errors.append(RowError(number, "thiếu mã (code)", "code is empty"))
        return False
    if _bad_code(code, longest):
        errors.append(RowError(number, f"mã '{code}' không hợp lệ (tối đa {longest} ký tự, không có dấu cách)",
                               f"code '{code}' is not valid (at most {longest} characters, no spaces)"))
        return False
    return True


def _parse_unit_row(number: int, raw: dict[str, str], errors: list[RowError]) -> _UnitRow | None:
    code, name = raw.get("code", ""), raw.get("name", "")
    ok = _check_code(number, code, 16, errors)
    if not name:
        errors.append(RowError(number, "thiếu tên (name)", "name is empty"))
        ok = False
    elif len(name) > 200:
        errors.append(RowError(number, "tên dài quá 200 ký tự", "name is longer than 200 characters"))
        ok = False
    level_text = raw.get("level", "").strip().lower()
    level = LEVEL_WORDS.get(level_text)
    if level is None:
        errors.append(RowError(number, f"cấp '{level_text}' không hợp lệ (province, district hoặc commune)",
                               f"level '{level_text}' is not valid (province, district or commune)"))
        ok = False
    dates: dict[str, dt.date | None] = {}
    for key in ("valid_from", "valid_to"):
        text = raw.get(key, "")
        dates[key] = None
        if text:
            try:
                dates[key] = parse_date(text)
            except ValueError:
                errors.append(RowError(number, f"ngày '{text}' ở cột {key} không hợp lệ (YYYY-MM-DD)",
                                       f"date '{text}' in {key} is not valid (YYYY-MM-DD)"))
                ok = False
    start, end = dates["valid_from"], dates["valid_to"]
    if start is not None and end is not None and end < start:
        errors.append(RowError(number, "valid_to trước valid_from", "valid_to is before valid_from"))
        ok = False
    parent_code = raw.get("parent_code", "")
    if level == UnitLevel.PROVINCE and parent_code:
        errors.append(RowError(number, "tỉnh không có đơn vị cấp trên (để trống parent_code)",
                               "a province has no parent (leave parent_code empty)"))
        ok = False
    if level in (UnitLevel.DISTRICT, UnitLevel.COMMUNE) and not parent_code:
        errors.append(RowError(number, "thiếu mã đơn vị cấp trên (parent_code)", "parent_code is empty"))
        ok = False
    if not ok or level is None:
        return None
    return _UnitRow(number, code, name, level, parent_code, start, end)


async def import_units(s: AsyncSession, data: bytes | str, *, progress: Progress | None = None,
                       today: dt.date | None = None) -> ImportResult:
    """import_units: validate every row, then create or update units in `s` (flushed, not committed; `today` is
    not needed: units carry their own dates)."""
    table = read_csv(data, UNIT_COLUMNS, UNIT_REQUIRED)
    if table.fatal:
        raise ImportFailed(table.errors)
    errors = list(table.errors)
    parsed: list[_UnitRow] = []
    for number, raw in table.rows:
        item = _parse_unit_row(number, raw, errors)
        if item is not None:
            parsed.append(item)

    existing = list((await s.scalars(select(Unit))).all())
    by_key: dict[tuple[str, dt.date | None], Unit] = {(u.code, u.valid_from): u for u in existing}
    first_row: dict[tuple[str, dt.date | None], int] = {}
    file_keys: set[tuple[str, dt.date | None]] = set()
    for item in parsed:
        key = (item.code, item.valid_from)
        if key in first_row:
            errors.append(RowError(item.row, f"mã '{item.code}' (từ {item.valid_from or '…'}) trùng với dòng "
                                             f"{first_row[key]}",
                                   f"code '{item.code}' (from {item.valid_from or '…'}) repeats row {first_row[key]}"))
            continue
        first_row[key] = item.row
        file_keys.add(key)
        item.unit = by_key.get(key)

    versions: dict[str, list[_Version]] = defaultdict(list)
    for unit in existing:
        if (unit.code, unit.valid_from) not in file_keys:
            versions[unit.code].append(_Version(unit.code, unit.level, unit.valid_from, unit.valid_to, unit))
    for item in parsed:
        if first_row.get((item.code, item.valid_from)) == item.row:
            versions[item.code].append(_Version(item.code, item.level, item.valid_from, item.valid_to, item))

    for code, known in versions.items():
        ordered = sorted(known, key=lambda v: v.valid_from or dt.date.min)
        for a, b in zip(ordered, ordered[1:], strict=False):
            if overlaps(a.valid_from, a.valid_to, b.valid_from, b.valid_to):
                rows = [v.source.row for v in (a, b) if isinstance(v.source, _UnitRow)]
                if not rows:
                    continue
                spans = (span_text(a.valid_from, a.valid_to), span_text(b.valid_from, b.valid_to))
                errors.append(RowError(max(rows), f"mã '{code}': hai phiên bản có hiệu lực chồng nhau "
                                                  f"({spans[0]} và {spans[1]})",
                                       f"code '{code}': two versions overlap ({spans[0]} and {spans[1]})"))

    has_children = {u.parent_id for u in existing if u.parent_id is not None}
    for item in parsed:
        if first_row.get((item.code, item.valid_from)) != item.row:
            continue
        if item.unit is not None and item.unit.level != item.level and item.unit.id in has_children:
            errors.append(RowError(item.row, f"đơn vị '{item.code}' đang có đơn vị cấp dưới, không đổi được cấp",
                                   f"unit '{item.code}' has sub-units; its level cannot change"))
        if not item.parent_code:
            continue
        candidates = versions.get(item.parent_code, [])
        if not candidates:
            errors.append(RowError(item.row, f"không có đơn vị cấp trên mã '{item.parent_code}'",
                                   f"unknown parent code '{item.parent_code}'"))
            continue
        chosen = _pick(candidates, item.valid_from, item.valid_to)
        if chosen is None:
            errors.append(RowError(item.row, f"đơn vị cấp trên '{item.parent_code}' không có hiệu lực trong "
                                             f"{span_text(item.valid_from, item.valid_to)}",
                                   f"parent '{item.parent_code}' is not valid during "
                                   f"{span_text(item.valid_from, item.valid_to)}"))
            continue
        if LEVEL_RANK[chosen.level] >= LEVEL_RANK[item.level] or (
                item.level == UnitLevel.DISTRICT and chosen.level != UnitLevel.PROVINCE):
            errors.append(RowError(item.row, f"đơn vị cấp trên '{item.parent_code}' là cấp {chosen.level.value}, "
                                             f"không chứa được cấp {item.level.value}",
                                   f"parent '{item.parent_code}' is a {chosen.level.value} and cannot contain "
                                   f"a {item.level.value}"))
            continue
        item.parent = chosen.source
    if errors:
        raise ImportFailed(errors)

    result = ImportResult(kind="units", rows=len(parsed))
    done = 0
    for level in (UnitLevel.PROVINCE, UnitLevel.DISTRICT, UnitLevel.COMMUNE):
        for item in parsed:
            if item.level != level:
                continue
            parent_id: int | None = None
            if isinstance(item.parent, _UnitRow):
                assert item.parent.unit is not None
                parent_id = item.parent.unit.id
            elif isinstance(item.parent, Unit):
                parent_id = item.parent.id
            values = {"name": item.name, "level": item.level, "parent_id": parent_id, "valid_to": item.valid_to}
            if item.unit is None:
                item.unit = Unit(code=item.code, valid_from=item.valid_from, **values)
                s.add(item.unit)
                result.created += 1
            elif any(getattr(item.unit, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(item.unit, k, v)
                result.updated += 1
            else:
                result.unchanged += 1
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress(done, len(parsed))
        await s.flush()
    if progress is not None:
        progress(len(parsed), len(parsed))
    return result


# ---------------------------------------------------------------------------------------------------------
# Classrooms import


def current_version(versions: Sequence[Unit], day: dt.date) -> Unit | None:
    """current_version: of several units with one code, the one valid on `day`, else the latest."""
    valid = [u for u in versions if is_valid_on(u, day)]
    pool = valid or list(versions)
    if not pool:
        return None
    return max(pool, key=lambda u: u.valid_from or dt.date.min)


async def import_classrooms(s: AsyncSession, data: bytes | str, *, progress: Progress | None = None,
                            today: dt.date | None = None) -> ImportResult:
    """import_classrooms: validate every row, then create or update classrooms (flushed, not committed); a unit
    code names the unit version valid `today` (the configured timezone's day; the server clock's if None)."""
    today = today or dt.date.today()
    table = read_csv(data, CLASSROOM_COLUMNS, CLASSROOM_REQUIRED)
    if table.fatal:
        raise ImportFailed(table.errors)
    errors = list(table.errors)

    units: dict[str, list[Unit]] = defaultdict(list)
    for known in (await s.scalars(select(Unit))).all():
        units[known.code].append(known)
    existing = {c.code: c for c in (await s.scalars(select(Classroom))).all()}
    usernames = sorted({raw["account_username"] for _, raw in table.rows if raw.get("account_username")})
    accounts: dict[str, User] = {}
    for chunk in chunks(usernames, 500):
        for user in (await s.scalars(select(User).where(User.username.in_(chunk)))).all():
            accounts[user.username] = user
    classroom_code_by_id = {c.id: c.code for c in existing.values()}

    @dataclass
    class Item:
        row: int
        code: str
        name: str
        unit: Unit
        host: str
        equipment: str
        active: bool | None
        account: User | None

    items: list[Item] = []
    first_row: dict[str, int] = {}
    account_row: dict[str, int] = {}
    for number, raw in table.rows:
        code, name = raw.get("code", ""), raw.get("name", "")
        ok = _check_code(number, code, 40, errors)
        if ok and code in first_row:
            errors.append(RowError(number, f"mã '{code}' trùng với dòng {first_row[code]}",
                                   f"code '{code}' repeats row {first_row[code]}"))
            ok = False
        elif ok:
            first_row[code] = number
        if not name:
            errors.append(RowError(number, "thiếu tên (name)", "name is empty"))
            ok = False
        elif len(name) > 200:
            errors.append(RowError(number, "tên dài quá 200 ký tự", "name is longer than 200 characters"))
            ok = False
        unit_code = raw.get("unit_code", "")
        unit = current_version(units.get(unit_code, []), today)
        if not unit_code:
            errors.append(RowError(number, "thiếu mã đơn vị (unit_code)", "unit_code is empty"))
            ok = False
        elif unit is None:
            errors.append(RowError(number, f"không có đơn vị mã '{unit_code}'", f"unknown unit code '{unit_code}'"))
            ok = False
        host = raw.get("host", "")
        if len(host) > 200:
            errors.append(RowError(number, "nơi đặt (host) dài quá 200 ký tự", "host is longer than 200 characters"))
            ok = False
        if len(raw.get("equipment", "")) > 5000:
            errors.append(RowError(number, "ghi chú thiết bị dài quá 5000 ký tự",
                                   "equipment is longer than 5000 characters"))
            ok = False
        active: bool | None = None
        active_text = raw.get("active", "").lower()
        if active_text in TRUE_WORDS:
            active = True
        elif active_text in FALSE_WORDS:
            active = False
        elif active_text:
            errors.append(RowError(number, f"active '{active_text}' không hợp lệ (1/0, có/không)",
                                   f"active '{active_text}' is not valid (1/0, yes/no)"))
            ok = False
        account: User | None = None
        username = raw.get("account_username", "")
        if username:
            account = accounts.get(username)
            if account is None:
                errors.append(RowError(number, f"không có tài khoản '{username}'", f"unknown account '{username}'"))
                ok = False
            elif account.role != Role.CLASSROOM:
                errors.append(RowError(number, f"tài khoản '{username}' không phải vai trò lớp học",
                                       f"account '{username}' does not have the classroom role"))
                ok = False
            elif username in account_row:
                errors.append(RowError(number, f"tài khoản '{username}' đã dùng ở dòng {account_row[username]}",
                                       f"account '{username}' is already used on row {account_row[username]}"))
                ok = False
            else:
                account_row[username] = number
                linked = classroom_code_by_id.get(account.classroom_id) if account.classroom_id else None
                if linked is not None and linked != code:
                    errors.append(RowError(number, f"tài khoản '{username}' đang thuộc lớp học '{linked}'",
                                           f"account '{username}' already belongs to classroom '{linked}'"))
                    ok = False
        if ok and unit is not None:
            items.append(Item(number, code, name, unit, host, raw.get("equipment", ""), active, account))
    if errors:
        raise ImportFailed(errors)

    result = ImportResult(kind="classrooms", rows=len(items))
    pending: list[tuple[Classroom, User]] = []
    for done, item in enumerate(items, start=1):
        room = existing.get(item.code)
        values: dict[str, object] = {"name": item.name, "unit_id": item.unit.id, "host": item.host,
                                     "equipment": item.equipment}
        if item.active is not None:
            values["active"] = item.active
        if room is None:
            room = Classroom(code=item.code, active=True if item.active is None else item.active,
                             **{k: v for k, v in values.items() if k != "active"})
            s.add(room)
            result.created += 1
        elif any(getattr(room, k) != v for k, v in values.items()) or (
                item.account is not None and item.account.classroom_id != room.id):
            for k, v in values.items():
                setattr(room, k, v)
            result.updated += 1
        else:
            result.unchanged += 1
        if item.account is not None:
            pending.append((room, item.account))
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done, len(items))
    await s.flush()
    for room, account in pending:
        account.classroom_id = room.id
    await s.flush()
    if progress is not None:
        progress(len(items), len(items))
    return result


IMPORTERS = {"units": import_units, "classrooms": import_classrooms}


async def run_import(db: async_sessionmaker[AsyncSession], request: web.Request | None, kind: str, data: bytes,
                     filename: str) -> ImportResult:
    """run_import: import `data` as `kind` ("units" or "classrooms") in one transaction and audit it (the pages
    and the API; ImportFailed: nothing written)."""
    async with db() as s:
        try:
            day = formats.today(request.app[CONFIG].tz) if request is not None else None
            result = await IMPORTERS[kind](s, data, today=day)
        except ImportFailed:
            await s.rollback()
            raise
        record(s, request, f"{kind}.import", target=filename[:120], rows=result.rows, created=result.created,
               updated=result.updated)
        await s.commit()
    return result


# ---------------------------------------------------------------------------------------------------------
# Reference data and the command line


async def seed_reference_units(s: AsyncSession) -> None:
    """seed_reference_units: add the shipped provinces (2016 list and their 2025 successors) when no units exist."""
    count = await s.scalar(select(func.count()).select_from(Unit))
    if count:
        return
    for name in REFERENCE_FILES:
        await import_units(s, (DATA_DIR / name).read_bytes())


async def run_import_command(config: Config, args: argparse.Namespace) -> int:
    """run_import_command: `taphuan import units|classrooms FILE.csv`; 0 on success, 1 with row errors."""
    from server.db.engine import make_engine, make_sessionmaker, migrate

    path = Path(args.file)
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        print(f"taphuan import: không đọc được / cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    importer = IMPORTERS[args.what]
    if not config.database.url:
        config.data_path.mkdir(parents=True, exist_ok=True)
    engine = make_engine(config.database_url, echo=config.database.echo)

    def show(done: int, total: int) -> None:
        print(f"  {done}/{total} dòng / rows", flush=True)

    try:
        await migrate(engine)
        async with make_sessionmaker(engine)() as s:
            print(f"Nhập / importing {args.what} từ / from {path}", flush=True)
            try:
                result = await importer(s, data, progress=show, today=formats.today(config.tz))
            except ImportFailed as exc:
                await s.rollback()
                for err in exc.errors:
                    print(err.line(), file=sys.stderr)
                print(f"{len(exc.errors)} lỗi, không ghi gì. / {len(exc.errors)} error(s), nothing was written.",
                      file=sys.stderr)
                return 1
            record(s, None, f"{args.what}.import", target=path.name[:120], source="cli", rows=result.rows,
                   created=result.created, updated=result.updated)
            await s.commit()
    finally:
        await engine.dispose()
    print(f"Xong / done: {result.rows} dòng / rows, {result.created} mới / created, "
          f"{result.updated} cập nhật / updated, {result.unchanged} không đổi / unchanged.", flush=True)
    return 0
