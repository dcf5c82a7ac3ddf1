"""server.pages.watch: /watch/{meeting}: the live broadcast's player page, for the meeting's audience.

Who may open it is `server.live.watch.check_viewer` (a login in the audience, or anyone with the public link
`?k=<token>`; 404 unknown meeting, 403 outside the audience, the login page for someone not logged in without a
link). The page is a shell filled by web/static/watch.js from /api/v1/broadcasts/{meeting}: "live" with the title
and presenters, the player (hls.js from web/static/vendor, or the browser's own HLS on Safari) with a rendition
choice (automatic by bandwidth unless the viewer picks one), a state before the broadcast starts and after it ends
(with the link to its archive entry), the question box and the heartbeat that counts the viewer in attendance.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from server import csp
from server.auth import identity, require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Meeting
from server.errors import ApiError
from server.live.viewers import HEARTBEAT_SECONDS
from server.live.watch import check_viewer
from server.openapi import int_param


@aiohttp_jinja2.template("watch.html")
async def watch_page(request: web.Request) -> dict[str, Any]:
    """watch_page: the player page of a meeting's broadcast."""
    meeting_id = int_param(request, "meeting")
    token = request.query.get("k", "")
    if identity(request) is None and not token:
        require(request)  # the login page, then back here
    try:
        viewer = await check_viewer(request, meeting_id, token)
    except ApiError as exc:
        if exc.status == 401:
            require(request)
        raise
    async with request.app[DB]() as s:
        meeting = await s.scalar(select(Meeting).where(Meeting.id == meeting_id)
                                 .options(selectinload(Meeting.presenters)))
    assert meeting is not None  # check_viewer answered 404 otherwise
    cfg = request.app[CONFIG].watch
    return {"meeting": meeting, "presenters": [p.display_name or p.username for p in meeting.presenters],
            "anonymous": viewer.ident is None,
            "watch_config": {"meetingId": meeting.id, "k": token if viewer.public else "",
                             "anonymous": viewer.ident is None, "questionChars": cfg.question_chars,
                             "heartbeatSeconds": HEARTBEAT_SECONDS}}


def setup(app: web.Application) -> None:
    """setup: the watch page's route (its player needs `blob:` media: hls.js feeds the video a MediaSource)."""
    app.router.add_get("/watch/{meeting}", watch_page, name="watch")
    csp.allow(app, "watch", media_src=("blob:",))
    csp.allow(app, "archive-player", media_src=("blob:",))  # the archive player's HLS renditions (issue 19)
