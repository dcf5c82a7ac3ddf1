"""server.pages.console: the operator console: /console (every live room) and /console/{meeting_id} (one room).

The pages are shells: `web/static/console.js` polls /api/v1/live/rooms (or /rooms/{id}) every two seconds,
keeps about five minutes of figures per participant in the page and shows each room as a compact table (one
row per participant, problems first, sortable by its column headers, an SVG sparkline per row); a row's full
charts (`web/static/charts.js`) open on click.
Operators only; moderation itself happens in the live room (/live/{id}), where operators have a presenter's
actions, audit-logged by the signalling server.
"""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from server.auth import require
from server.db.engine import DB
from server.db.models import Role
from server.errors import ApiError
from server.i18n import _
from server.openapi import int_param
from server.schedule.meetings import meeting_by_id

POLL_MS = 2000
HISTORY_MS = 5 * 60 * 1000


def console_text(request: web.Request) -> dict[str, str]:
    """console_text: the strings console.js shows, in the request's language."""
    t = {
        "live": "Live", "locked": "Locked", "connected": "Connected",
        "reconnecting": "Reconnecting…", "presenter": "Presenter", "floor": "Has the floor",
        "hand": "Hand raised", "audioOnly": "Audio only", "muted": "Muted",
        "bitrate": "Bitrate", "loss": "Packet loss", "rtt": "RTT", "jitter": "Jitter",
        "sending": "Sending", "receiving": "Receiving", "remb": "Estimate",
        "enter": "Enter the room", "viewClassroom": "View as a classroom", "details": "Details",
        "nobody": "Nobody has joined yet.", "noPresenter": "No presenter",
        "noFloor": "Nobody", "participants": "Participants", "lobby": "In the lobby",
        "ok": "Good", "warn": "Degraded", "bad": "Poor", "noMedia": "No media for 10 s",
        "updated": "Updated", "stale": "No answer from the server: the figures are not current.",
        "expired": "Your login has expired: log in again.", "notLive": "This meeting is not live at the moment.",
        "role.operator": "Operator", "role.trainer": "Trainer", "role.leader": "Leader",
        "role.classroom": "Classroom", "role.learner": "Learner", "role.guest": "Guest",
        "source.camera": "Camera", "source.mic": "Microphone", "source.screen": "Screen",
        "codec": "Video codec", "slots": "Slots received",
        "recording": "Recording now", "recordingTitle": "This meeting is being recorded.",
        "col.name": "Participant", "col.unit": "Unit", "col.state": "State", "col.audio": "Audio only",
        "col.bitrate": "Bitrate", "col.loss": "Packet loss", "col.rtt": "RTT", "col.spark": "Last minutes",
        "sortBy": "Sort by", "showCharts": "Click to show or hide the charts",
    }
    return {key: _(request, value) for key, value in t.items()}


def _base(request: web.Request) -> dict[str, Any]:
    return {"poll_ms": POLL_MS, "history_ms": HISTORY_MS, "console_text": console_text(request)}


@aiohttp_jinja2.template("console.html")
async def console_page(request: web.Request) -> dict[str, Any]:
    """console_page: every live room of this server as a card with its participants' table."""
    require(request, Role.OPERATOR)
    return {**_base(request),
            "console_config": {"mode": "all", "api": "/api/v1/live/rooms", "pollMs": POLL_MS,
                               "historyMs": HISTORY_MS}}


@aiohttp_jinja2.template("console_room.html")
async def console_room_page(request: web.Request) -> dict[str, Any]:
    """console_room_page: one meeting's live room, its participants' table (404: no such meeting)."""
    require(request, Role.OPERATOR)
    meeting_id = int_param(request, "meeting_id")
    async with request.app[DB]() as s:
        meeting = await meeting_by_id(s, meeting_id)
    if meeting is None:
        raise ApiError(404, "not-found", "Không có buổi tập huấn này. / No such meeting.")
    return {**_base(request), "meeting": meeting,
            "console_config": {"mode": "room", "meetingId": meeting.id,
                               "api": f"/api/v1/live/rooms/{meeting.id}", "pollMs": POLL_MS,
                               "historyMs": HISTORY_MS}}


def setup(app: web.Application) -> None:
    """setup: add the console routes."""
    app.router.add_get("/console", console_page, name="console")
    app.router.add_get("/console/{meeting_id}", console_room_page, name="console-room")
