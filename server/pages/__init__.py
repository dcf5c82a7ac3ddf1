"""server.pages: jinja2 pages, one module per area; `setup(app)` adds their routes."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """setup: add the routes of every page module."""
    from server.pages import accounts, console, home, live, meetings, units

    for module in (home, accounts, units, meetings, live, console):
        module.setup(app)
    from server.pages import learning  # learning (issue 6): materials, forum, self-study, enrolment
    learning.setup(app)
    from server.pages import archive  # the archive of recordings (issue 7)
    archive.setup(app)
    from server.pages import calendar  # calendar, deadlines, schedule import (issue 6)
    calendar.setup(app)
    from server.pages import reports  # attendance, headcount and reports (issue 8)
    reports.setup(app)
    from server.pages import joinlinks  # every invited classroom's join link at once, CSV and print (issue 18)
    joinlinks.setup(app)
    from server.pages import scorm  # SCORM packages played from the content origin (issue 21)
    scorm.setup(app)
    from server.pages import watch  # the live broadcast's watch page (issue 19)
    watch.setup(app)
