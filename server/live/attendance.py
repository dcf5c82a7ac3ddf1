"""server.live.attendance: attendance events of live rooms, stored so that reports can be recomputed.

Signalling calls `record()` when a participant joins, resumes, drops, leaves, raises a hand, gets or loses the
floor, chats or answers a poll. A sampler task stores a connection-quality sample per connected participant
every `SAMPLE_SECONDS`. At start-up, intervals left open by a crash or a kill are closed with a
`closed-at-restart` event at the participant's last known moment (its last event or quality sample).

Owner: the `attendance_ctx` cleanup context owns the sampler task; rows are written in short sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy import select

from server.db.engine import DB
from server.db.models import AttendanceEvent, utcnow
from server.live.connection import Connection
from server.live.service import LIVE

log = logging.getLogger("taphuan.attendance")

SAMPLE_SECONDS = 30.0
OPENING = frozenset({"join", "resume"})
CLOSING = frozenset({"leave", "drop", "closed-at-restart"})
SAMPLER_INTERVAL = web.AppKey("attendance_sample_seconds", float)


def event_for(conn: Connection, kind: str, participant: str | None = None, **data: Any) -> AttendanceEvent:
    """event_for: an AttendanceEvent of `kind` for the connection's participant (not yet added)."""
    ident = conn.ident
    return AttendanceEvent(meeting_id=conn.meeting_id, at=utcnow(), kind=kind,
                           participant=participant or conn.participant_id or "", user_id=ident.user_id,
                           classroom_id=ident.classroom_id, role=ident.role.value, name=conn.name or "", data=data)


async def record(conn: Connection, kind: str, **data: Any) -> None:
    """record: store one event of the connection's participant (errors are logged, never raised)."""
    if conn.meeting_id is None or not conn.participant_id:
        return
    try:
        async with conn.app[DB]() as s:
            s.add(event_for(conn, kind, **data))
            await s.commit()
    except Exception:
        log.exception("attendance event %s not stored", kind)


async def record_floor_change(conn: Connection, before: str | None, after: str | None) -> None:
    """record_floor_change: floor-end for the previous holder and floor-start for the new one."""
    if before == after or conn.meeting_id is None:
        return
    live = conn.app[LIVE]
    rows = []
    for pid, kind in ((before, "floor-end"), (after, "floor-start")):
        if pid is None:
            continue
        holder = live.by_participant(conn.meeting_id, pid)
        if holder is not None:
            rows.append(event_for(holder, kind, by=conn.participant_id))
        else:
            rows.append(AttendanceEvent(meeting_id=conn.meeting_id, at=utcnow(), kind=kind, participant=pid,
                                        role="", name="", data={"by": conn.participant_id}))
    async with conn.app[DB]() as s:
        s.add_all(rows)
        await s.commit()


def quality_of(stats: Any) -> dict[str, Any]:
    """quality_of: one participant's sample from its RoomStats entry: upload, download, worst loss, RTT."""
    up = sum(p.bitrate for p in stats.producers)
    down = sum(c.send_bitrate for c in stats.consumers)
    losses = [c.fraction_lost for c in stats.consumers if c.packets_sent]
    rtts = [c.rtt for c in stats.consumers if c.rtt is not None]
    up_lost = sum(p.packets_lost for p in stats.producers)
    up_packets = sum(p.packets for p in stats.producers)
    return {"up_bitrate": round(up), "down_bitrate": round(down),
            "loss": round(max(losses), 4) if losses else 0.0,
            "up_loss": round(up_lost / (up_lost + up_packets), 4) if up_packets else 0.0,
            "rtt": round(max(rtts), 4) if rtts else None}


async def sample_once(app: web.Application) -> int:
    """sample_once: store a quality sample for every connected participant; returns how many."""
    live = app[LIVE]
    rows = []
    for room in list(live.sfu.rooms.values()):
        try:
            meeting_id = int(room.id)
        except ValueError:
            continue
        for entry in room.stats().participants:
            conn = live.by_participant(meeting_id, entry.participant_id)
            if conn is None or entry.state != "connected":
                continue
            rows.append(event_for(conn, "quality", **quality_of(entry)))
    if rows:
        async with app[DB]() as s:
            s.add_all(rows)
            await s.commit()
    return len(rows)


async def _sampler(app: web.Application, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sample_once(app)
        except Exception:
            log.exception("quality sampling failed")


async def close_open_intervals(app: web.Application, since_days: int = 3) -> int:
    """close_open_intervals: after a restart, end every interval still open, at its last known moment."""
    since = utcnow() - dt.timedelta(days=since_days)
    async with app[DB]() as s:
        rows = (await s.scalars(select(AttendanceEvent).where(AttendanceEvent.at >= since)
                                .order_by(AttendanceEvent.id))).all()
        last: dict[tuple[int, str], AttendanceEvent] = {}
        open_: dict[tuple[int, str], AttendanceEvent] = {}
        for ev in rows:
            key = (ev.meeting_id, ev.participant)
            last[key] = ev
            if ev.kind in OPENING:
                open_[key] = ev
            elif ev.kind in CLOSING:
                open_.pop(key, None)
        for key, opened in open_.items():
            at = last[key].at
            s.add(AttendanceEvent(meeting_id=opened.meeting_id, at=at, kind="closed-at-restart",
                                  participant=opened.participant, user_id=opened.user_id,
                                  classroom_id=opened.classroom_id, role=opened.role, name=opened.name,
                                  data={"marker": "server restarted"}))
        await s.commit()
    if open_:
        log.info("closed %d attendance intervals left open by the last run", len(open_))
    return len(open_)


async def attendance_ctx(app: web.Application) -> AsyncIterator[None]:
    """attendance_ctx: close intervals left open, then sample connection quality until shutdown."""
    await close_open_intervals(app)
    task = asyncio.create_task(_sampler(app, app.get(SAMPLER_INTERVAL, SAMPLE_SECONDS)), name="attendance")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
