"""Tests of server.formats: Babel numbers and dates in the reader's language and the configured timezone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import jinja2

from server import formats

HANOI = ZoneInfo("Asia/Ho_Chi_Minh")
LATE_UTC = dt.datetime(2026, 12, 4, 20, 47, tzinfo=dt.UTC)  # 03:47 on 05/12 in Vietnam


def test_numbers_and_percentages_follow_the_language() -> None:
    assert (formats.number(1.5, "vi"), formats.number(1.5, "en")) == ("1,5", "1.5")
    assert (formats.number(12345.678, "vi", 0), formats.number(12345.678, "en", 2)) == ("12.346", "12,345.68")
    assert (formats.percent(0.131, "vi"), formats.percent(0.131, "en"), formats.percent(0.75, "vi")) == \
        ("13,1%", "13.1%", "75%")
    assert formats.number(None, "vi") == formats.percent(None, "en") == "—"
    assert (formats.filesize(1536 * 1024, "vi"), formats.filesize(1536 * 1024, "en")) == ("1,5 MB", "1.5 MB")
    assert (formats.filesize(500, "vi"), formats.filesize(3 << 30, "vi")) == ("500 B", "3 GB")


def test_dates_and_times_are_in_the_configured_timezone() -> None:
    assert formats.datetime(LATE_UTC, "vi", HANOI) == "05/12/2026 03:47"
    assert formats.date(LATE_UTC, "en", HANOI) == "05/12/2026" and formats.time(LATE_UTC, "vi", HANOI) == "03:47"
    assert formats.date(LATE_UTC.replace(tzinfo=None), "vi", HANOI) == "05/12/2026"  # naive values are UTC
    assert formats.date(LATE_UTC, "vi", ZoneInfo("UTC")) == "04/12/2026"
    assert formats.daterange("2026-11-05", dt.date(2026, 12, 5), "vi", HANOI) == "05/11/2026 – 05/12/2026"
    assert formats.daterange("2026-12-05", "2026-12-05", "vi", HANOI) == "05/12/2026"
    assert formats.date("not a day", "vi", HANOI) == "not a day" and formats.date(None, "vi", HANOI) == ""
    assert formats.today(HANOI) == dt.datetime.now(HANOI).date()


def test_the_filters_take_the_templates_language_and_timezone() -> None:
    env = jinja2.Environment(autoescape=True)
    formats.setup_filters(env, HANOI)
    page = env.from_string("{{ v|number }} · {{ p|percent }} · {{ t|datetime }} · {{ a|daterange(b) }}")
    values = {"v": 1.5, "p": 0.131, "t": LATE_UTC, "a": "2026-11-05", "b": "2026-12-05"}
    assert page.render(lang="vi", tz=HANOI, **values) == "1,5 · 13,1% · 05/12/2026 03:47 · 05/11/2026 – 05/12/2026"
    assert page.render(lang="en", tz=ZoneInfo("UTC"), **values).startswith("1.5 · 13.1% · 04/12/2026 20:47")
    assert env.from_string("{{ v|number }}").render(v=2.5) == "2,5"  # no lang in the context: Vietnamese
