"""server.pages.live: /live/{meeting_id}: the live room page (studio for presenters, classroom view)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server import keys
from server.auth import require
from server.errors import ApiError
from server.signalling import SignalError, load_meeting_for


@aiohttp_jinja2.template("live.html")
async def live_page(request: web.Request) -> dict[str, Any]:
    """live_page: the live room of a meeting, for whoever may join it."""
    ident = require(request)
    try:
        meeting_id = int(request.match_info["meeting_id"])
    except ValueError:
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.") from None
    try:
        meeting = await load_meeting_for(request.app, ident, meeting_id)
    except SignalError as exc:
        raise ApiError(404 if exc.code == "not-found" else 403, exc.code, exc.message) from None
    cfg = request.app[keys.CONFIG]
    studio = ident.role.value in ("operator", "trainer", "leader")
    return {
        "meeting": meeting,
        "studio": studio,
        "grid_slots": cfg.sfu.grid_slots if studio else 0,
        "live_config": {
            "meetingId": meeting.id,
            "role": ident.role.value,
            "studio": studio,
            "gridSlots": cfg.sfu.grid_slots if studio else 0,
            "videoCodec": meeting.video_codec,
            "chatChars": cfg.limits.chat_message_chars,
        },
    }


def setup(app: web.Application) -> None:
    """setup: add the live room route."""
    app.router.add_get("/live/{meeting_id}", live_page, name="live")
