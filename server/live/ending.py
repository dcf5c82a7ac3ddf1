"""server.live.ending: ending a meeting for everyone, extending it, and the watch on meetings past their end.

- `end-meeting` (a presenter or an operator in the room; `POST /api/v1/meetings/{id}/end` from anywhere) stores the
  end (server.schedule.ending), then closes the meeting here (`close_meeting`): everyone in the room and in its
  lobby gets `meeting-ended` (when, why, the link its recording will have in the archive) and `closed`
  (`meeting-ended`); the recording stops and is queued for finalizing at once; the room closes. Other processes
  (a Redis bus) learn it on the `meetings` channel and close their part. A meeting ends once: `join` is then
  refused (`meeting-ended`) and the live page shows the closing page.
- `extend-meeting` (and `POST /api/v1/meetings/{id}/extend`) moves the scheduled end later by the scheduling rules
  (server.schedule.ending.extend: 409 `overlap` becomes the error `overlap`); the moderators in the room get
  `meeting-extended`.
- `Ending` (one per app, under `ENDING`) runs the watch: every `meetings.check_seconds` it reads the meetings whose
  room is open in this process; at the scheduled end their moderators get `meeting-ending` (once per scheduled end,
  and on joining later), and at the scheduled end plus `meetings.overrun_minutes` the meeting ends by itself
  (reason `overrun`); a room still open here of a meeting ended elsewhere is closed. State is changed only on the
  event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from aiohttp import web
from sqlalchemy import select

from server.auth import Identity
from server.bus import BUS
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Meeting, Recording, User, utcnow
from server.errors import ApiError
from server.live.connection import Connection, Route
from server.live.recordings import RECORDERS, RecordingRefused
from server.live.service import LIVE
from server.live.wire import MODERATORS, SignalError, field
from server.schedule import ending as schedule_ending

log = logging.getLogger("taphuan.live.ending")
CHANNEL = "meetings"
WS_CODES = {"invalid": "bad-message", "ended": "meeting-ended"}
MISSED_AFTER = dt.timedelta(seconds=10)  # an end stored this long ago whose room is still open here was missed


@dataclass(frozen=True)
class Ended:
    """Ended: a meeting that ended: when, why, who ended it (a display name; None: the server at the overrun)."""

    meeting_id: int
    ended_at: dt.datetime
    reason: str
    by: str | None


@dataclass
class Ending:
    """Ending: the watch on meetings past their end (see the module doc)."""

    app: web.Application
    origin: str = dc_field(default_factory=lambda: secrets.token_hex(8))  # this process, on the bus
    warned: dict[int, dt.datetime] = dc_field(default_factory=dict)  # meeting -> the scheduled end it was warned of
    tasks: list[asyncio.Task[Any]] = dc_field(default_factory=list)

    async def check(self, now: dt.datetime | None = None) -> None:
        """Ending.check: warn the moderators of meetings past their scheduled end, end those past the overrun."""
        now = now or utcnow()
        overrun = self.app[CONFIG].meetings.overrun_minutes
        open_ids = {int(rid) for rid, room in list(self.app[LIVE].sfu.rooms.items())
                    if rid.isdigit() and not room.closed}
        for gone in set(self.warned) - open_ids:
            del self.warned[gone]
        async with self.app[DB]() as s:
            meetings = await schedule_ending.among(s, open_ids)
        for m in meetings:
            try:
                await self._check_one(m, now, overrun)
            except Exception:  # one meeting's failure (logged) does not keep the others from ending
                log.exception("meeting %s: checking its end failed", m.id)

    async def _check_one(self, m: Meeting, now: dt.datetime, overrun: float) -> None:
        if m.ended_at is not None:  # ended elsewhere and this process missed the bus message: close it here too
            if now - m.ended_at < MISSED_AFTER:
                return  # being closed by whoever ended it (here, or the bus message on its way): who and why
                # come with it (a check between the end's commit and its close told a classroom "thank you" only)
            await close_meeting(self.app, Ended(m.id, m.ended_at, *await _why_ended(self.app, m)))
        elif schedule_ending.overrunning(m, now, overrun):
            log.info("meeting %s: ended at its overrun (scheduled end %s)", m.id, m.ends_at.isoformat())
            await end_meeting(self.app, m.id, None, "overrun")
        elif schedule_ending.overdue(m, now) and self.warned.get(m.id) != m.ends_at:
            self.warned[m.id] = m.ends_at
            for conn in self.app[LIVE].in_meeting(m.id):
                if conn.ident.role in MODERATORS:
                    await conn.send(ending_message(self.app, m))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.app[CONFIG].meetings.check_seconds)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("checking meetings past their end failed")

    async def _listen(self) -> None:
        sub = await self.app[BUS].subscribe(CHANNEL)
        try:
            async for message in sub:
                if message.get("origin") == self.origin or not isinstance(message.get("meeting_id"), int):
                    continue
                try:
                    if message.get("type") == "meeting-ended":
                        ended = Ended(message["meeting_id"], dt.datetime.fromisoformat(message["ended_at"]),
                                      str(message.get("reason", "ended")), message.get("by"))
                        await close_meeting(self.app, ended)
                    elif message.get("type") == "meeting-extended":
                        await tell_extended(self.app, message["meeting_id"], message)
                except Exception:  # one bad message or failed close does not stop the listener
                    log.exception("meeting %s: acting on %s from the bus failed", message.get("meeting_id"),
                                  message.get("type"))
        finally:
            await sub.close()


def _local(app: web.Application, value: dt.datetime) -> str:
    return value.astimezone(app[CONFIG].tz).isoformat()


def ending_message(app: web.Application, meeting: Meeting) -> dict[str, Any]:
    """ending_message: `meeting-ending`, the moderators' warning that the scheduled end has passed."""
    overrun = app[CONFIG].meetings.overrun_minutes
    return {"type": "meeting-ending", "meeting_id": meeting.id, "ends_at": _local(app, meeting.ends_at),
            "auto_end_at": _local(app, schedule_ending.auto_end_at(meeting, overrun)), "overrun_minutes": overrun}


def warning_for(app: web.Application, meeting: Meeting, role: str) -> list[dict[str, Any]]:
    """warning_for: for a moderator entering a meeting past its scheduled end, the `meeting-ending` warning."""
    if role not in {r.value for r in MODERATORS} or not schedule_ending.overdue(meeting, utcnow()):
        return []
    return [ending_message(app, meeting)]


async def _why_ended(app: web.Application, m: Meeting) -> tuple[str, str | None]:
    """_why_ended: the reason and the name of who ended `m` as stored (`ended_by`; none: the server, at its
    overrun)."""
    if m.ended_by is None:
        return "overrun", None
    async with app[DB]() as s:
        user = await s.get(User, m.ended_by)
    return "ended", (user.display_name or user.username) if user is not None else None


async def store_end(app: web.Application, meeting_id: int, by: Identity | None, reason: str) -> Ended:
    """store_end: mark the meeting ended now (the first end stays); ApiError 404, or 409 `not-started` before its room
    opens to invitees."""
    async with app[DB]() as s:
        meeting = await s.get(Meeting, meeting_id)
        if meeting is None:
            raise ApiError(404, "not-found", "Không có buổi tập huấn này. / No such meeting.")
        schedule_ending.check_endable(meeting, utcnow())
        schedule_ending.mark_ended(s, meeting, utcnow(), by.user_id if by else None,
                                   "overrun" if reason == "overrun" else "ended")
        ended_at = meeting.ended_at
        await s.commit()
    assert ended_at is not None
    name = (by.display_name or by.username) if by else None
    return Ended(meeting_id, ended_at, reason, name)


async def end_meeting(app: web.Application, meeting_id: int, by: Identity | None, reason: str) -> Ended:
    """end_meeting: store the end, close the meeting in this process and tell the other processes."""
    ended = await store_end(app, meeting_id, by, reason)
    await close_meeting(app, ended)
    await publish_end(app, ended)
    return ended


async def publish_end(app: web.Application, ended: Ended) -> None:
    """publish_end: tell the other processes (the `meetings` bus channel) to close their part of the meeting."""
    await app[BUS].publish(CHANNEL, {"type": "meeting-ended", "origin": app[ENDING].origin,
                                     "meeting_id": ended.meeting_id, "ended_at": ended.ended_at.isoformat(),
                                     "reason": ended.reason, "by": ended.by})


async def recording_of(app: web.Application, meeting_id: int) -> int | None:
    """recording_of: the meeting's latest recording (its archive page is /archive/{id}), if it was recorded."""
    async with app[DB]() as s:
        return await s.scalar(select(Recording.id).where(Recording.meeting_id == meeting_id)
                              .order_by(Recording.started_at.desc(), Recording.id.desc()).limit(1))


async def close_meeting(app: web.Application, ended: Ended) -> None:
    """close_meeting: everyone of the meeting here (room and lobby) gets `meeting-ended` then `closed`; the
    recording stops (finalized at once) and the room closes. Nothing happens where nothing is open."""
    live = app[LIVE]
    mid = ended.meeting_id
    recorders = app.get(RECORDERS)
    active = recorders.active.get(mid) if recorders is not None else None
    room = live.sfu.rooms.get(str(mid))
    people = [c for c in live.connections
              if (c.meeting_id == mid and c.participant_id) or (c.pending_join and c.pending_join[0].id == mid)]
    if active is None and room is None and not people:
        if recorders is not None:
            await recorders.finish_meeting(mid)  # a recording waiting to be continued is not any more
        return
    recording_id = active.recording_id if active is not None else await recording_of(app, mid)
    message = {"type": "meeting-ended", "meeting_id": mid, "ended_at": _local(app, ended.ended_at),
               "reason": ended.reason, "by": ended.by, "recording_id": recording_id,
               "archive_url": f"/archive/{recording_id}" if recording_id is not None else None}
    for conn in people:
        await conn.send(message)
        await conn.close("meeting-ended")
    if recorders is not None:
        with contextlib.suppress(RecordingRefused):
            await recorders.finish_meeting(mid)
    if room is not None:
        await room.close()
    live.lobby.pop(mid, None)
    live.removed.pop(mid, None)
    live.entered.pop(mid, None)
    if ENDING in app:
        app[ENDING].warned.pop(mid, None)


async def extend_meeting(app: web.Application, meeting_id: int, minutes: int, by: Identity) -> Meeting:
    """extend_meeting: extend the meeting (server.schedule.ending.extend: ApiError when refused), then tell the
    moderators in its room, here and in the other processes."""
    async with app[DB]() as s:
        meeting = await schedule_ending.extend(s, meeting_id, minutes, utcnow(), by.user_id, app[CONFIG].tz)
        await s.commit()
    overrun = app[CONFIG].meetings.overrun_minutes
    message = {"type": "meeting-extended", "meeting_id": meeting.id, "minutes": minutes,
               "ends_at": _local(app, meeting.ends_at),
               "auto_end_at": _local(app, schedule_ending.auto_end_at(meeting, overrun)),
               "by": by.display_name or by.username}
    await tell_extended(app, meeting.id, message)
    await app[BUS].publish(CHANNEL, {**message, "origin": app[ENDING].origin})
    return meeting


async def tell_extended(app: web.Application, meeting_id: int, message: dict[str, Any]) -> None:
    """tell_extended: the moderators of the meeting's room here get `meeting-extended`; the warning may come again
    at the new end."""
    if ENDING in app:
        app[ENDING].warned.pop(meeting_id, None)
    out = {k: v for k, v in message.items() if k != "origin"}
    for conn in app[LIVE].in_meeting(meeting_id):
        if conn.ident.role in MODERATORS:
            await conn.send(out)


# --------------------------------------------------------------------------------------------- /ws


async def on_end_meeting(conn: Connection, msg: dict[str, Any]) -> dict[str, Any] | None:
    """on_end_meeting: a moderator ends the meeting for everyone; the reply comes before `meeting-ended`."""
    conn.require_room()
    try:
        ended = await store_end(conn.app, conn.meeting_id or 0, conn.ident, "ended")
    except ApiError as exc:
        raise SignalError(exc.code, exc.message) from exc
    if msg.get("id") is not None:
        await conn.send({"type": "ok", "id": msg["id"], "ended_at": _local(conn.app, ended.ended_at)})

    async def close_everywhere() -> None:
        await close_meeting(conn.app, ended)
        await publish_end(conn.app, ended)

    # Closing this very socket may cancel the request's task (aiohttp): the closing runs in a task of its own.
    await asyncio.shield(asyncio.ensure_future(close_everywhere()))
    return None


async def on_extend_meeting(conn: Connection, msg: dict[str, Any]) -> dict[str, Any]:
    """on_extend_meeting: a moderator moves the scheduled end later (`minutes`, by the scheduling rules)."""
    conn.require_room()
    minutes = field(msg, "minutes", int)
    try:
        meeting = await extend_meeting(conn.app, conn.meeting_id or 0, minutes, conn.ident)
    except ApiError as exc:  # the API's codes as the protocol's: invalid → bad-message, ended → meeting-ended
        raise SignalError(WS_CODES.get(exc.code, exc.code), exc.message) from exc
    overrun = conn.config.meetings.overrun_minutes
    return {"type": "ok", "ends_at": _local(conn.app, meeting.ends_at),
            "auto_end_at": _local(conn.app, schedule_ending.auto_end_at(meeting, overrun))}


ROUTES: dict[str, Route] = {
    "end-meeting": Route(on_end_meeting, roles=MODERATORS),
    "extend-meeting": Route(on_extend_meeting, roles=MODERATORS),
}


async def ending_ctx(app: web.Application) -> AsyncIterator[None]:
    """ending_ctx: the cleanup context of `Ending`: the watch and the bus listener."""
    ending = Ending(app)
    app[ENDING] = ending
    ending.tasks = [asyncio.create_task(ending._watch(), name="meetings-ending"),
                    asyncio.create_task(ending._listen(), name="meetings-ending-bus")]
    yield
    for task in ending.tasks:
        task.cancel()
    await asyncio.gather(*ending.tasks, return_exceptions=True)


ENDING: web.AppKey[Ending] = web.AppKey("ending")
