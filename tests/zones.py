"""zones: a timezone whose day differs from UTC's, chosen when a test runs (a run can cross midnight UTC)."""

from __future__ import annotations

import datetime as dt

OTHER_DAY = "other-day"
"""OTHER_DAY: a `timezone` override the `config` fixture replaces with `other_day_zone()` when the test runs."""


def other_day_zone() -> str:
    """other_day_zone: a timezone whose day is not UTC's day now (UTC+14 from 10:00 UTC, UTC-12 before 12:00 UTC).
    Chosen at the test's start, not at collection: a suite collected at 23:45 UTC ran these tests after midnight,
    when UTC+14's day had become UTC's."""
    return "Pacific/Kiritimati" if dt.datetime.now(dt.UTC).hour >= 11 else "Etc/GMT+12"
