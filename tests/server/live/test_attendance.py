"""Tests of server.live.attendance: events of a scripted meeting with a drop and a resume, samples, restart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from server.app import create_app
from server.config import Config
from server.db.engine import DB
from server.db.models import AttendanceEvent, Role, User
from server.live.attendance import close_open_intervals, sample_once
from server.live.service import LIVE
from tests.live_client import LiveClient
from tests.server.livetest import Factory, classroom_login, connect


async def events(app: Any, meeting_id: int) -> list[AttendanceEvent]:
    async with app[DB]() as s:
        return list((await s.scalars(select(AttendanceEvent).where(AttendanceEvent.meeting_id == meeting_id)
                                     .order_by(AttendanceEvent.id))).all())


@pytest.mark.both_databases
async def test_scripted_meeting_with_drop_and_resume(login_as: Factory, make_user: Factory,
                                                     make_classroom: Factory, make_meeting: Factory,
                                                     clients: list[LiveClient], app: Any) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    a_login, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp A")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[a_id])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    a = await connect(a_login, clients)
    await a.join(meeting.id)
    await a.publish()
    await a.request("raise-hand", raised=True)
    await t.request("give-floor", participant_id=a.participant_id)
    await a.request("chat", text="Em xin hỏi")
    poll = await t.request("poll-create", question="Rõ chưa?", choices=["Rõ", "Chưa"])
    await a.request("poll-answer", poll_id=poll["poll_id"], choice=0)
    room = app[LIVE].sfu.rooms[str(meeting.id)]
    for _ in range(100):  # wait until the classroom's camera is flowing
        mine_now = [p for p in room.stats().participants if p.participant_id == a.participant_id]
        if mine_now and any(pr.bitrate > 0 for pr in mine_now[0].producers):
            break
        await asyncio.sleep(0.1)
    assert await sample_once(app) >= 1
    # Network cut, then the same participant comes back.
    await a.ws.close(code=4000)  # type: ignore[union-attr]
    await t.wait(lambda m: m.get("type") == "participant-state" and m["state"] == "reconnecting")
    a2 = await connect(a_login, clients)
    await a2.request("join", version=1, meeting_id=meeting.id,
                     resume={"participant_id": a.participant_id, "token": a.resume_token})
    await t.request("give-floor", participant_id=None)
    await a2.request("leave")
    await asyncio.sleep(0.2)

    mine = [e for e in await events(app, meeting.id) if e.participant == a.participant_id]
    kinds = [e.kind for e in mine]
    assert kinds[0] == "join"
    for expected in ("hand-up", "floor-start", "chat", "poll-answer", "quality", "drop", "resume", "floor-end",
                     "leave"):
        assert expected in kinds, (expected, kinds)
    assert kinds.index("drop") < kinds.index("resume") < kinds.index("leave")
    assert all(e.classroom_id == a_id and e.role == "classroom" and e.name == "Lớp A"
               for e in mine if e.kind != "floor-end" or e.classroom_id)
    quality = next(e for e in mine if e.kind == "quality")
    assert quality.data["up_bitrate"] > 0


async def test_restart_closes_open_intervals(login_as: Factory, make_meeting: Factory,
                                             clients: list[LiveClient], app: Any, aiohttp_client: Any,
                                             config: Config, make_config: Callable[..., Config]) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    lc = await connect(op, clients)
    await lc.join(meeting.id)
    before = await events(app, meeting.id)
    assert [e.kind for e in before] == ["join"]
    # A crash leaves the interval open; the next start closes it at the last known moment, with a marker.
    async with app[DB]() as s:
        s.add(AttendanceEvent(meeting_id=meeting.id, at=before[0].at, kind="quality",
                              participant=lc.participant_id, role="operator", data={}))
        await s.commit()
    assert await close_open_intervals(app) == 1
    after = await events(app, meeting.id)
    closing = after[-1]
    assert closing.kind == "closed-at-restart" and closing.participant == lc.participant_id
    assert closing.data == {"marker": "server restarted"}
    assert await close_open_intervals(app) == 0  # idempotent
    # A fresh app on the same data directory runs the same closing at start-up.
    second = create_app(config)
    await aiohttp_client(second)
    assert len(await events(second, meeting.id)) == len(after)
