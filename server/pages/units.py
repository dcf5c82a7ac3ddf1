"""server.pages.units: pages (to be written)."""

from aiohttp import web


def setup(app: web.Application) -> None:
    """setup: add routes."""
