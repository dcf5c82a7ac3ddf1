"""server.live.viewers: viewers of a meeting's broadcast, counted from the player's heartbeats, for attendance.

The watch page's player posts a heartbeat every `HEARTBEAT_SECONDS` while it plays (`POST
/api/v1/broadcasts/{meeting}/heartbeat`, answered `Cache-Control: no-store`, never by a cache). Each viewer is one
`BroadcastView` row per meeting (`server.live.watch.viewer_key`: an account, a login, or an anonymous player of
the public link); a heartbeat adds the time since the viewer's last one, at most `MAX_STEP_SECONDS` (a viewer who
closed the laptop for an hour did not watch that hour), and one sooner than `MIN_STEP_SECONDS` after the last is
not written (a player that sends too often costs no write and adds nothing).

`summary` gives the meeting's viewers per unit (the viewer's unit, or its classroom's) with the minutes watched,
and the anonymous public-link viewers as one line: the meeting's attendance page and its exports show it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import BroadcastView, Classroom, User, utcnow
from server.live.watch import Viewer

HEARTBEAT_SECONDS = 30  # the player's period (web/static/watch.js)
MAX_STEP_SECONDS = 45.0  # the most one heartbeat adds (a period and a half: one late heartbeat still counts)
MIN_STEP_SECONDS = 10.0  # a heartbeat sooner than this after the last changes nothing


async def heartbeat(db: async_sessionmaker[AsyncSession], meeting_id: int, viewer: Viewer,
                    now: dt.datetime | None = None) -> float:
    """heartbeat: count one heartbeat of `viewer` watching the meeting; returns its seconds watched so far."""
    now = now or utcnow()
    async with db() as s:
        row = await s.scalar(select(BroadcastView).where(BroadcastView.meeting_id == meeting_id,
                                                         BroadcastView.viewer == viewer.key))
        if row is None:
            unit_id = None
            if viewer.ident is not None and viewer.ident.user_id is not None:
                unit_id = await s.scalar(select(User.unit_id).where(User.id == viewer.ident.user_id))
            elif viewer.ident is not None and viewer.ident.classroom_id is not None:
                unit_id = await s.scalar(select(Classroom.unit_id).where(Classroom.id == viewer.ident.classroom_id))
            row = BroadcastView(meeting_id=meeting_id, viewer=viewer.key,
                                user_id=viewer.ident.user_id if viewer.ident else None, unit_id=unit_id,
                                role=viewer.ident.role.value if viewer.ident else "", name=viewer.name[:200],
                                public=viewer.public, first_at=now, last_at=now, seconds=0.0)
            s.add(row)
            try:
                await s.commit()
            except IntegrityError:  # the same viewer's other tab got there first: it counts
                await s.rollback()
            return 0.0
        step = (now - row.last_at).total_seconds()
        if step < MIN_STEP_SECONDS:
            return row.seconds
        row.seconds += min(step, MAX_STEP_SECONDS)
        row.last_at = now
        seconds = row.seconds
        await s.commit()
        return seconds


@dataclass
class ViewerGroup:
    """ViewerGroup: the viewers of a unit (or the anonymous public-link viewers: `anonymous`) and their minutes."""

    unit_id: int | None
    name: str
    viewers: int
    minutes: float
    anonymous: bool = False


async def load(s: AsyncSession, meeting_ids: Sequence[int]) -> dict[int, list[BroadcastView]]:
    """load: the viewer rows of some meetings, by meeting."""
    out: dict[int, list[BroadcastView]] = defaultdict(list)
    ids = list(meeting_ids)
    for i in range(0, len(ids), 500):
        q = select(BroadcastView).where(BroadcastView.meeting_id.in_(ids[i:i + 500])).order_by(BroadcastView.id)
        for row in (await s.scalars(q)).all():
            out[row.meeting_id].append(row)
    return out


def summary(rows: Sequence[BroadcastView], unit_name: dict[int | None, str]) -> list[ViewerGroup]:
    """summary: viewers and minutes watched per unit (by name; "" when the viewer has no unit), the anonymous
    public-link viewers last."""
    groups: dict[int | None, ViewerGroup] = {}
    anonymous = ViewerGroup(None, "", 0, 0.0, anonymous=True)
    for row in rows:
        if row.public and row.user_id is None:
            anonymous.viewers += 1
            anonymous.minutes += row.seconds / 60
            continue
        group = groups.setdefault(row.unit_id, ViewerGroup(row.unit_id, unit_name.get(row.unit_id, ""), 0, 0.0))
        group.viewers += 1
        group.minutes += row.seconds / 60
    out = sorted(groups.values(), key=lambda g: (g.name == "", g.name))
    if anonymous.viewers:
        out.append(anonymous)
    return out
