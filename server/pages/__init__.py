"""server.pages: jinja2 pages, one module per area; `setup(app)` adds their routes."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """setup: add the routes of every page module."""
    from server.pages import accounts, console, home, live, meetings, units

    for module in (home, accounts, units, meetings, live, console):
        module.setup(app)
