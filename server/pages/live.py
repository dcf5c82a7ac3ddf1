"""server.pages.live: /live/{meeting_id}: the live room page: device check, lobby, presenter studio, classroom view.

Presenters (trainer, leader) and operators get the studio; classrooms, learners and guests the classroom
view; once the meeting ended for everyone (server.live.ending), everyone gets its closing page (with the link its
recording has in the archive) instead. An operator opening `?view=classroom` (the console's "view as a
classroom") gets the classroom view as an observer: nothing of theirs is published. The page's JavaScript
(web/static/live*.js, devicecheck.js) talks to the server through protocol.js; the server enforces every role.
The network check endpoints (server.live.netcheck) are added here too.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Role
from server.errors import ApiError
from server.live import ending, netcheck, roster
from server.live.cluster import page_elsewhere
from server.live.entry import load_meeting_for
from server.live.wire import SignalError
from server.openapi import int_param

STUDIO_ROLES = (Role.OPERATOR, Role.TRAINER, Role.LEADER)


@aiohttp_jinja2.template("live.html")
async def live_page(request: web.Request) -> dict[str, Any] | web.Response:
    """live_page: the live room of a meeting, for whoever may join it (its closing page once it ended)."""
    ident = require(request)
    meeting_id = int_param(request, "meeting_id")
    try:
        meeting = await load_meeting_for(request.app, ident, meeting_id)
    except SignalError as exc:
        raise ApiError(404 if exc.code == "not-found" else 403, exc.code, exc.message) from None
    if meeting.ended_at is not None:  # ended for everyone: the closing page instead of the room
        # guests never see the archive: no link for them
        recording_id = None if ident.role == Role.GUEST else await ending.recording_of(request.app, meeting.id)
        return aiohttp_jinja2.render_template("live_closed.html", request, {
            "meeting": meeting, "recording_id": recording_id})
    elsewhere = await page_elsewhere(request, meeting.id)
    if elsewhere is not None:  # several nodes: the room is on another one (server.live.cluster): the page is there
        raise web.HTTPTemporaryRedirect(elsewhere)
    cfg = request.app[CONFIG]
    observer = ident.role == Role.OPERATOR and request.query.get("view") == "classroom"
    studio = ident.role in STUDIO_ROLES and not observer
    guest = ident.role == Role.GUEST
    units: dict[str, str] = {}
    if studio:
        async with request.app[DB]() as s:
            units = await roster.classroom_units(s, meeting.id)
    return {
        "meeting": meeting,
        "studio": studio,
        "guest": guest,
        "observer": observer,
        "recording_enabled": cfg.recorder.enabled,
        "grid_slots": cfg.sfu.grid_slots if studio else 0,
        "chat_chars": cfg.limits.chat_message_chars,
        "live_config": {
            "meetingId": meeting.id,
            "role": ident.role.value,
            "studio": studio,
            "guest": guest,
            "observer": observer,
            "canPublish": not guest and not observer,
            "recordingEnabled": cfg.recorder.enabled,
            "gridSlots": cfg.sfu.grid_slots if studio else 0,
            "videoCodec": meeting.video_codec,
            "chatChars": cfg.limits.chat_message_chars,
            "units": units,
            "uploadMax": netcheck.upload_limit(request.app),
        },
    }


def setup(app: web.Application) -> None:
    """setup: add the live room route and the network check endpoints."""
    app.router.add_get("/live/{meeting_id}", live_page, name="live")
    netcheck.setup(app)
