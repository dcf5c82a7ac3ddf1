"""server.formats: numbers and dates for people, with Babel, in the request's language and the configured timezone.

Every page, report and notification formats through these functions (jinja2 filters `number`, `percent`,
`filesize`, `date`, `time`, `datetime`, `daterange`, set up by `setup_filters`) instead of by hand: "1,5" and
"13,1%" in Vietnamese, "1.5" and "13.1%" in English; dates day first ("05/12/2026") and times on 24 hours
("14:05") in config `timezone`, whatever the server's own clock zone. The browser does the same with
web/static/format.js (Intl, the page's `lang` and `<html data-timezone>`). Machine-readable outputs (CSV/XLSX
cells, ISO `datetime` attributes, the API) keep plain numbers and ISO dates: see docs/glossary.md, "Numbers and
dates".
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import dates, numbers

BABEL_LOCALES = {"vi": "vi", "en": "en_GB"}
"""BABEL_LOCALES: the Babel locale of each page language (British English: day-first dates like Vietnamese)."""

DATE_PATTERN = "dd/MM/yyyy"
TIME_PATTERN = "HH:mm"
MISSING = "—"


def babel_locale(lang: str) -> str:
    """babel_locale: the Babel locale for page language `lang` (Vietnamese when unknown)."""
    return BABEL_LOCALES.get(lang, "vi")


def number(value: float | int | None, lang: str, digits: int = 1) -> str:
    """number: `value` with at most `digits` decimals and the language's separators ("1.234,5" in vi); "—" if None."""
    if value is None:
        return MISSING
    pattern = "#,##0" + ("." + "#" * digits if digits > 0 else "")
    return numbers.format_decimal(value, format=pattern, locale=babel_locale(lang))


def percent(value: float | None, lang: str, digits: int = 1) -> str:
    """percent: the fraction `value` (0.131) as a percentage ("13,1%" in vi, "13.1%" in en); "—" if None."""
    if value is None:
        return MISSING
    pattern = "#,##0" + ("." + "#" * digits if digits > 0 else "") + "%"
    return numbers.format_percent(value, format=pattern, locale=babel_locale(lang))


def filesize(size: int, lang: str) -> str:
    """filesize: a byte count as B, KB, MB or GB (1024 each) with one decimal ("1,5 MB" in vi)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{number(value, lang, 0 if unit == 'B' else 1)} {unit}"
        value /= 1024
    return f"{size} B"


def _local(value: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(tz)


def date(value: dt.date | dt.datetime | str | None, lang: str, tz: ZoneInfo) -> str:
    """date: the day of `value` ("05/12/2026"); a datetime (naive ones are UTC) is first moved into `tz`; an ISO
    day ("2026-12-05", a form's value) is read first (other text is shown as it is)."""
    if not value:
        return ""
    if isinstance(value, str):
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            return value
    else:
        day = _local(value, tz).date() if isinstance(value, dt.datetime) else value
    return dates.format_date(day, DATE_PATTERN, locale=babel_locale(lang))


def time(value: dt.datetime | None, lang: str, tz: ZoneInfo) -> str:
    """time: the time of day of `value` in `tz` ("14:05")."""
    if value is None:
        return ""
    return dates.format_time(_local(value, tz), TIME_PATTERN, locale=babel_locale(lang))


def datetime(value: dt.datetime | None, lang: str, tz: ZoneInfo) -> str:
    """datetime: `value` in `tz` as day and time ("05/12/2026 14:05")."""
    if value is None:
        return ""
    return f"{date(value, lang, tz)} {time(value, lang, tz)}"


def daterange(start: dt.date | dt.datetime | str | None, end: dt.date | dt.datetime | str | None, lang: str,
              tz: ZoneInfo) -> str:
    """daterange: "05/11/2026 – 05/12/2026" (one day when both are the same day)."""
    first, last = date(start, lang, tz), date(end, lang, tz)
    if not first or not last or first == last:
        return first or last
    return f"{first} – {last}"


def today(tz: ZoneInfo) -> dt.date:
    """today: the current day in `tz`, not in the server's clock zone (at 03:47 on 05/12 in Vietnam, UTC still says
    04/12)."""
    return dt.datetime.now(tz).date()


def setup_filters(env: jinja2.Environment, tz: ZoneInfo) -> None:
    """setup_filters: the jinja2 filters number, percent, filesize, date, time, datetime and daterange, in the
    template's `lang` and `tz` (Vietnamese and `tz` in a macro imported without context)."""

    def lang_tz(ctx: Any) -> tuple[str, ZoneInfo]:
        return str(ctx.get("lang") or "vi"), ctx.get("tz") or tz

    @jinja2.pass_context
    def number_filter(ctx: Any, value: float | int | None, digits: int = 1) -> str:
        return number(value, lang_tz(ctx)[0], digits)

    @jinja2.pass_context
    def percent_filter(ctx: Any, value: float | None, digits: int = 1) -> str:
        return percent(value, lang_tz(ctx)[0], digits)

    @jinja2.pass_context
    def date_filter(ctx: Any, value: dt.date | dt.datetime | str | None) -> str:
        return date(value, *lang_tz(ctx))

    @jinja2.pass_context
    def time_filter(ctx: Any, value: dt.datetime | None) -> str:
        return time(value, *lang_tz(ctx))

    @jinja2.pass_context
    def datetime_filter(ctx: Any, value: dt.datetime | None) -> str:
        return datetime(value, *lang_tz(ctx))

    @jinja2.pass_context
    def daterange_filter(ctx: Any, start: dt.date | dt.datetime | str | None,
                         end: dt.date | dt.datetime | str | None) -> str:
        return daterange(start, end, *lang_tz(ctx))

    @jinja2.pass_context
    def filesize_filter(ctx: Any, size: int) -> str:
        return filesize(size, lang_tz(ctx)[0])

    env.filters.update(filesize=filesize_filter, number=number_filter, percent=percent_filter, date=date_filter,
                       time=time_filter, datetime=datetime_filter, daterange=daterange_filter)
