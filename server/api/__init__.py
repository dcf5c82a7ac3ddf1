"""server.api: JSON handlers under /api/v1, one module per resource, and /api/v1/openapi.json."""

from __future__ import annotations

from aiohttp import web

from server import csp
from server.openapi import API, ApiRegistry, endpoint


@endpoint("GET", "/api/v1/openapi.json", name="api-openapi", summary="This OpenAPI document", public=True,
          tag="meta")
async def openapi_document(request: web.Request) -> web.Response:
    """openapi_document: the OpenAPI 3 document built from the declared endpoints."""
    return web.json_response(request.app[API].document())


def setup(app: web.Application) -> None:
    """setup: register every API module's endpoints."""
    import sys

    from server.api import accounts, live, meetings, programs, units

    registry = ApiRegistry()
    app[API] = registry
    registry.add_module(app, sys.modules[__name__])
    for module in (accounts, units, programs, meetings, live):
        registry.add_module(app, module)
    from server.api import enrolment, forum, materials, selfstudy  # learning (issue 6)
    for module in (enrolment, materials, forum, selfstudy):
        registry.add_module(app, module)
    csp.allow(app, "api-material-file", frame_ancestors=("'self'",))  # /materials/{id} shows a PDF in a frame
    from server.api import recordings  # the archive (issue 7)
    registry.add_module(app, recordings)
    from server.api import calendar  # calendar, iCalendar feed, notifications (issue 6)
    registry.add_module(app, calendar)
    from server.api import reports  # attendance, headcount, reports (issue 8)
    registry.add_module(app, reports)
    from server.api import tokens  # bearer tokens for clients that are not browsers (issue 17)
    registry.add_module(app, tokens)
    from server.api import scorm  # SCORM packages played from the content origin (issue 21)
    from server.learning.content import content_ctx
    registry.add_module(app, scorm)
    scorm.setup(app)
    app.cleanup_ctx.append(content_ctx)
    from server.api import broadcasts  # the live broadcast's watch page: state, heartbeats, questions (issue 19)
    registry.add_module(app, broadcasts)
