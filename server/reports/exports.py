"""server.reports.exports: reports as tables with Vietnamese headers, written as CSV (UTF-8 with BOM) or XLSX
(openpyxl).

A report becomes one or more `Table`s (`meeting_tables`, `meetings_tables`, `group_table`, `progress_table`,
`monthly_tables`); `to_csv` writes them one after the other (a title line, the header, the rows, a blank
line), `to_xlsx` one worksheet each (bold frozen header, column widths, numbers as numbers). The BOM makes
spreadsheet programs read the Vietnamese text of a CSV as UTF-8. Times are in the configured timezone, written
for people ("05/12/2026", "14:05"); numbers stay numbers, with a dot in CSV, so spreadsheets can compute with
them (docs/glossary.md, "Numbers and dates").

Every export goes through these two writers, and they never let a text cell become a formula (OWASP's CSV
injection guidance): a guest's chosen name, a headcount's names or a title such as `=HYPERLINK(...)` is text
someone typed, not something a spreadsheet should run. Text that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return (after any leading spaces or line breaks) is written to CSV with a single quote in front
(`inert`); in XLSX every text cell is a string cell (never a formula), and such text carries Excel's quote
prefix so it stays text when edited. Numbers are numbers, negative ones included: only text is escaped.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from server.reports.build import MeetingFacts, Monthly, ProgressGroup, Totals
from server.reports.presence import MeetingAttendance, Span

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Cell = str | int | float | None
FORMULA_START = frozenset("=+-@\t\r")


@dataclass
class Table:
    """Table: a titled table: `name` (a worksheet name, ≤ 31 characters), Vietnamese headers and rows."""

    name: str
    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _pct(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 1)


def _kbit(value: float | None) -> float | None:
    return None if value is None else round(value / 1000, 1)


def spans_text(spans: Sequence[Span], tz: ZoneInfo) -> str:
    """spans_text: "08:01–08:40 (rớt mạng); 08:42–10:00" in local time."""
    marks = {"drop": " (rớt mạng)", "closed-at-restart": " (máy chủ khởi động lại)", "now": " (đang kết nối)"}
    return "; ".join(f"{s.start.astimezone(tz):%H:%M}–{s.end.astimezone(tz):%H:%M}{marks.get(s.how, '')}"
                     for s in spans)


CLASSROOM_HEADERS = ["Mã lớp", "Lớp học (điểm cầu)", "Tỉnh/Thành phố", "Huyện/Xã", "Được mời", "Có tham dự",
                     "Các khoảng thời gian", "Số phút có mặt", "Tỷ lệ thời lượng (%)", "Số lần rớt mạng", "Giơ tay",
                     "Phát biểu (phút)", "Tin nhắn", "Trả lời bình chọn", "Mất gói trung vị (%)",
                     "Tốc độ gửi trung vị (kbit/s)", "Tốc độ nhận trung vị (kbit/s)", "Sĩ số giáo viên",
                     "Danh sách giáo viên"]
PERSON_HEADERS = ["Họ tên", "Vai trò", "Các khoảng thời gian", "Số phút có mặt", "Tỷ lệ thời lượng (%)",
                  "Giơ tay", "Phát biểu (phút)", "Tin nhắn", "Trả lời bình chọn", "Mất gói trung vị (%)"]
ROLE_VI = {"operator": "Quản trị", "trainer": "Giảng viên", "leader": "Lãnh đạo", "classroom": "Lớp học",
           "learner": "Học viên", "guest": "Khách"}


def meeting_tables(facts: MeetingFacts, tz: ZoneInfo) -> list[Table]:
    """meeting_tables: a meeting's classrooms and its other participants."""
    m = facts.meeting
    when = f"{m.starts_at.astimezone(tz):%d/%m/%Y %H:%M}–{m.ends_at.astimezone(tz):%H:%M}"
    rooms = Table("Lớp học", f"Điểm danh: {m.title} ({when})", CLASSROOM_HEADERS)
    for row in facts.rows:
        a = row.attendee
        rooms.rows.append([
            row.classroom.code, row.classroom.name, row.place.province_name, row.place.area_name,
            "Có" if row.invited else "Không", "Có" if row.attended else "Không",
            spans_text(a.spans, tz) if a else "", _r(a.minutes if a else 0.0), _pct(a.share if a else 0.0),
            a.drops if a else 0, a.hands if a else 0, _r(a.floor_seconds / 60 if a else 0.0), a.chat if a else 0,
            a.poll_answers if a else 0, _pct(a.quality.loss) if a else None,
            _kbit(a.quality.up_bitrate) if a else None, _kbit(a.quality.down_bitrate) if a else None,
            row.headcount.count if row.headcount else None, "; ".join(row.headcount.names) if row.headcount else ""])
    people = Table("Người tham dự khác", f"Giảng viên, quản trị, khách: {m.title}", PERSON_HEADERS)
    for a in facts.others:
        people.rows.append([a.name, ROLE_VI.get(a.role, a.role), spans_text(a.spans, tz), _r(a.minutes),
                            _pct(a.share), a.hands, _r(a.floor_seconds / 60), a.chat, a.poll_answers,
                            _pct(a.quality.loss)])
    viewers = Table("Người xem", f"Người xem buổi phát trực tiếp: {m.title}", VIEWER_HEADERS)
    for g in facts.viewers:
        viewers.rows.append(["Người xem ẩn danh (liên kết công khai)" if g.anonymous else g.name or "Không có đơn vị",
                             g.viewers, _r(g.minutes)])
    return [rooms, people, viewers]


VIEWER_HEADERS = ["Đơn vị", "Số người xem", "Số phút đã xem"]
MEETINGS_HEADERS = ["Ngày", "Bắt đầu", "Kết thúc", "Buổi tập huấn", "Chương trình", "Thời lượng (giờ)",
                    "Lớp được mời", "Lớp tham dự", "Giáo viên (sĩ số)", "Tổng số phút của các lớp",
                    "Tỷ lệ thời lượng TB (%)", "Giơ tay", "Phát biểu (phút)", "Tin nhắn", "Trả lời bình chọn",
                    "Mất gói trung vị (%)", "Tốc độ gửi trung vị (kbit/s)"]


def meetings_table(facts: Sequence[MeetingFacts], tz: ZoneInfo, title: str = "Các buổi tập huấn") -> Table:
    """meetings_table: one row per meeting with its classroom totals."""
    t = Table("Buổi tập huấn", title, MEETINGS_HEADERS)
    for f in facts:
        s = Totals()
        s.add_meeting(f)
        start, end = f.meeting.starts_at.astimezone(tz), f.meeting.ends_at.astimezone(tz)
        t.rows.append([f"{start:%d/%m/%Y}", f"{start:%H:%M}", f"{end:%H:%M}", f.meeting.title,
                       f.meeting.program.title, _r(f.hours, 2), s.invited, s.attended, s.teachers, _r(s.minutes),
                       _pct(s.average_share), s.hands, _r(s.floor_minutes), s.chat, s.poll_answers,
                       _pct(s.median_loss), _kbit(s.median_bitrate)])
    return t


GROUP_HEADERS = ["Đơn vị", "Số buổi", "Lượt lớp tham dự", "Số lớp tham dự", "Giáo viên (sĩ số)", "Số phút",
                 "Số giờ", "Tỷ lệ thời lượng TB (%)", "Mất gói trung vị (%)", "Tốc độ gửi trung vị (kbit/s)"]


def group_table(groups: dict[str, Totals], name: str, title: str, unit_header: str = "Đơn vị") -> Table:
    """group_table: one row per group (province, district or commune, program, day)."""
    t = Table(name, title, [unit_header] + GROUP_HEADERS[1:])
    for label, g in groups.items():
        t.rows.append([label, g.meetings, g.attended, g.classrooms_reached, g.teachers, _r(g.minutes),
                       _r(g.minutes / 60, 2), _pct(g.average_share), _pct(g.median_loss), _kbit(g.median_bitrate)])
    return t


PROGRESS_HEADERS = ["Chương trình", "Tỉnh/Thành phố", "Huyện/Xã", "Số học viên", "Tiến độ trung bình (%)",
                    "Học viên hoàn thành", "Video đã xem", "Tổng video", "Tài liệu đã mở", "Tổng tài liệu",
                    "Bài kiểm tra đạt", "Tổng bài kiểm tra", "Điểm kiểm tra TB (%)",
                    "Bài giảng điện tử hoàn thành", "Bài giảng điện tử đạt", "Tổng bài giảng điện tử",
                    "Điểm bài giảng điện tử TB (%)", "Thời gian học bài giảng điện tử (giờ)"]


def progress_table(groups: Sequence[ProgressGroup], title: str = "Tiến độ tự học của học viên") -> Table:
    """progress_table: learner progress per program and district or commune."""
    t = Table("Tiến độ tự học", title, PROGRESS_HEADERS)
    for g in groups:
        t.rows.append([g.program_title, g.province, g.area, g.learners, _r(g.average_percent), g.completed,
                       g.videos_watched, g.videos_total, g.materials_opened, g.materials_total, g.quizzes_passed,
                       g.quizzes_total, _r(g.average_score), g.packages_completed, g.packages_passed,
                       g.packages_total, _r(g.package_score), _r(g.package_seconds / 3600, 2)])
    return t


def timeline_table(att: MeetingAttendance, tz: ZoneInfo) -> Table:
    """timeline_table: classrooms connected over the meeting."""
    t = Table("Theo thời gian", "Số lớp đang kết nối theo thời gian", ["Thời điểm", "Số lớp đang kết nối"])
    t.rows = [[f"{at.astimezone(tz):%H:%M:%S}", n] for at, n in att.timeline(60)]
    return t


def monthly_tables(report: Monthly, tz: ZoneInfo) -> list[Table]:
    """monthly_tables: the monthly summary, then its breakdowns per province, district/commune, program, day."""
    t = report.totals
    scope = f" — {report.unit.name}" if report.unit else ""
    summary = Table("Tổng hợp", f"Báo cáo tháng {report.month[5:]}/{report.month[:4]}{scope}", ["Chỉ tiêu", "Giá trị"])
    summary.rows = [
        ["Số buổi tập huấn đã tổ chức", t.meetings], ["Số giờ tập huấn", _r(t.hours, 2)],
        ["Lượt lớp tham dự", t.attended], ["Số lớp (điểm cầu) được tiếp cận", t.classrooms_reached],
        ["Số giáo viên được tiếp cận (sĩ số)", t.teachers], ["Tổng số giờ tham dự của các lớp", _r(t.minutes / 60, 2)],
        ["Tỷ lệ thời lượng trung bình (%)", _pct(t.average_share)], ["Mất gói trung vị (%)", _pct(t.median_loss)],
        ["Bản ghi đã công bố", report.recordings_published],
        ["Câu hỏi diễn đàn đã trả lời", report.forum_answered], ["Câu hỏi diễn đàn mới", report.forum_asked],
        ["Học viên tự học trong tháng", report.active_learners], ["Mục tự học đã hoàn thành", report.items_completed],
        ["Bài kiểm tra đạt", report.quizzes_passed]]
    days = {f"{d:%d/%m/%Y}": g for d, g in report.per_day.items()}
    return [summary, group_table(report.per_province, "Theo tỉnh", "Theo tỉnh/thành phố", "Tỉnh/Thành phố"),
            group_table(report.per_area, "Theo huyện-xã", "Theo huyện/xã", "Huyện/Xã"),
            group_table(report.per_program, "Theo chương trình", "Theo chương trình", "Chương trình"),
            group_table(days, "Theo ngày", "Theo ngày", "Ngày"),
            meetings_table(report.facts, tz), progress_table(report.progress)]


# --- writers -----------------------------------------------------------------------------------------

def formula_like(text: str) -> bool:
    """formula_like: whether a spreadsheet could take this text for a formula (see the module doc)."""
    first = text.lstrip(" \n")[:1]
    return bool(first) and first in FORMULA_START


def inert(value: Cell) -> Cell:
    """inert: a CSV cell as written: formula-like text behind a single quote; numbers and other text as they are."""
    if isinstance(value, str) and formula_like(value):
        return "'" + value
    return value


def to_csv(tables: Sequence[Table]) -> bytes:
    """to_csv: the tables one after the other, UTF-8 with a BOM (a title line, headers, rows, a blank line)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for i, table in enumerate(tables):
        if len(tables) > 1:
            if i:
                w.writerow([])
            w.writerow([inert(table.title)])
        w.writerow([inert(h) for h in table.headers])
        for row in table.rows:
            w.writerow(["" if v is None else inert(v) for v in row])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _sheet_name(name: str, used: set[str]) -> str:
    clean = "".join("-" if ch in "[]:*?/\\" else ch for ch in name)[:31] or "Sheet"
    base, n = clean, 2
    while clean in used:
        suffix = f" {n}"
        clean, n = base[:31 - len(suffix)] + suffix, n + 1
    used.add(clean)
    return clean


def _append(ws: Worksheet, values: Sequence[Cell]) -> None:
    """_append: a row of cells; text as string cells (never formulas), formula-like text with a quote prefix."""
    ws.append(list(values))
    for cell in ws[ws.max_row]:
        if isinstance(cell.value, str):
            cell.data_type = "s"
            if formula_like(cell.value):
                cell.quotePrefix = True


def to_xlsx(tables: Sequence[Table]) -> bytes:
    """to_xlsx: one worksheet per table: a title row, a bold frozen header row, then the rows."""
    wb = Workbook()
    if wb.active is not None:
        wb.remove(wb.active)
    used: set[str] = set()
    bold = Font(bold=True)
    head_fill = PatternFill("solid", fgColor="E3EEFB")
    for table in tables:
        ws = wb.create_sheet(_sheet_name(table.name, used))
        _append(ws, [table.title])
        ws["A1"].font = Font(bold=True, size=13)
        _append(ws, table.headers)
        for cell in ws[2]:
            cell.font = bold
            cell.fill = head_fill
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for row in table.rows:
            _append(ws, row)
        ws.freeze_panes = "A3"
        for i, header in enumerate(table.headers, start=1):
            longest = max([len(str(header))] + [len(str(r[i - 1])) for r in table.rows[:500] if i - 1 < len(r)])
            ws.column_dimensions[get_column_letter(i)].width = min(60, max(8, longest + 2))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def filename(stem: str, fmt: str, day: dt.date | None = None) -> str:
    """filename: an ASCII download name like "bao-cao-thang-2025-09.xlsx"."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in stem).strip("-")
    return f"{safe or 'bao-cao'}{'-' + day.isoformat() if day else ''}.{fmt}"


def render(tables: Sequence[Table], fmt: str) -> tuple[bytes, str]:
    """render: the file bytes and content type of `fmt` ("csv" or "xlsx")."""
    if fmt == "xlsx":
        return to_xlsx(tables), XLSX_TYPE
    return to_csv(tables), CSV_TYPE

