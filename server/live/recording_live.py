"""server.live.recording_live: the live room's recording messages: `record-start`, `record-stop`, `record-marker`.

Operators, trainers and leaders start and stop the meeting's recording and set chapter markers; everyone in
the room gets `recording` `{state: "recording" | "stopped", recording_id, ...}` (moderators also get
`{state: "refused", reason}` when there is not enough disk space). A recording in progress is also visible
to late joiners as a participant of role `recorder`. See docs/protocol.md.
"""

from __future__ import annotations

from typing import Any

from server.live.connection import Connection, Route
from server.live.recordings import RECORDERS, RecordingRefused
from server.live.wire import MODERATORS, SignalError, field

MARKER_CHARS = 200


async def on_record_start(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_record_start: start recording the room (refused when the disk is nearly full)."""
    conn.require_room()
    try:
        recording_id = await conn.app[RECORDERS].start(conn.meeting_id or 0, conn.ident)
    except RecordingRefused as exc:
        raise SignalError(exc.code, exc.message) from exc
    return {"type": "ok", "recording_id": recording_id}


async def on_record_stop(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_record_stop: stop the room's recording; it is then finalized into the archive."""
    conn.require_room()
    try:
        recording_id = await conn.app[RECORDERS].stop(conn.meeting_id or 0, conn.ident)
    except RecordingRefused as exc:
        raise SignalError(exc.code, exc.message) from exc
    return {"type": "ok", "recording_id": recording_id}


async def on_record_marker(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_record_marker: a chapter marker with a title at this moment of the recording."""
    conn.require_room()
    title = field(msg, "title", str).strip()
    if not title or len(title) > MARKER_CHARS:
        raise SignalError("bad-message", f"title: 1–{MARKER_CHARS} ký tự / 1–{MARKER_CHARS} characters")
    try:
        conn.app[RECORDERS].marker(conn.meeting_id or 0, title)
    except RecordingRefused as exc:
        raise SignalError(exc.code, exc.message) from exc
    return {"type": "ok"}


ROUTES: dict[str, Route] = {
    "record-start": Route(on_record_start, roles=MODERATORS),
    "record-stop": Route(on_record_stop, roles=MODERATORS),
    "record-marker": Route(on_record_marker, roles=MODERATORS),
}
