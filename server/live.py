"""server.live: the live side of the server: the SFU's lifetime and the /ws signalling endpoint.

(Being written: the SFU cleanup context and signalling arrive with the SFU core.)
"""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """setup: add the live routes and the SFU's cleanup context."""
