"""Tests of server.live.ending over /ws and the API: a presenter or an operator ends a meeting for everyone (room and
lobby told and closed, recording finalized, the meeting stored as ended, nobody enters again), who may, extensions
by the scheduling rules, the warning at the scheduled end and the end by itself after the overrun."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server.bus import BUS
from server.config import Config
from server.db.engine import DB
from server.db.models import AttendanceEvent, AuditEntry, Meeting, Recording, RecordingState, Role
from server.live.ending import CHANNEL, ENDING
from server.live.recordings import RECORDERS
from server.live.service import LIVE
from tests.live_client import LiveClient
from tests.server.livetest import classroom_login, connect, guest_login

Factory = Callable[..., Awaitable[Any]]
API = "/api/v1/meetings"
HTML = {"Accept": "text/html"}


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(recorder__min_free_bytes=0, meetings__check_seconds=0.1, meetings__overrun_minutes=1)


async def _in_room(who: Any, meeting_id: int, clients: list[LiveClient]) -> LiveClient:
    lc = await connect(who, clients)
    lc.auto_answer = False  # no media here: the down offers stay unanswered
    await lc.join(meeting_id)
    return lc


def _of(kind: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m.get("type") == kind


async def _meeting(app: web.Application, meeting_id: int) -> Meeting:
    async with app[DB]() as s:
        m = await s.get(Meeting, meeting_id)
    assert m is not None
    return m


async def _recording_state(app: web.Application, recording_id: int) -> RecordingState | None:
    async with app[DB]() as s:
        rec = await s.get(Recording, recording_id)
        return rec.state if rec is not None else None


async def _eventually(condition: Callable[[], bool], within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "not within the bound"
        await asyncio.sleep(0.05)


async def _move_end(app: web.Application, meeting_id: int, ends_at: dt.datetime) -> None:
    async with app[DB]() as s:
        m = await s.get(Meeting, meeting_id)
        assert m is not None
        m.ends_at = ends_at
        await s.commit()


async def test_presenter_ends_the_meeting_for_everyone(app: web.Application, client: Any, login_as: Factory,
                                                       make_user: Factory, make_classroom: Factory,
                                                       make_meeting: Factory, clients: list[LiveClient]) -> None:
    trainer = await login_as(Role.TRAINER)
    room_login, room_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer.user], classrooms=[room_id])
    t = await _in_room(trainer, meeting.id, clients)
    room = await _in_room(room_login, meeting.id, clients)
    rid = (await t.request("record-start"))["recording_id"]
    guest_ = await guest_login(client, app, meeting.id)
    try:
        guest = await connect(guest_, clients)
        assert (await guest.request("join", version=1, meeting_id=meeting.id, name="Khách"))["type"] == "lobby"

        reply = await t.request("end-meeting")
        assert reply["type"] == "ok" and reply["ended_at"].endswith("+07:00")
        for who in (t, room, guest):  # the room and the lobby: told, with the recording's future link, then closed
            ended = await who.wait(_of("meeting-ended"))
            assert ended["reason"] == "ended" and ended["by"] == trainer.user.display_name
            assert ended["recording_id"] == rid and ended["archive_url"] == f"/archive/{rid}"
            closed = await who.wait(_of("closed"))
            assert closed["reason"] == "meeting-ended" and "đã kết thúc" in closed["message"]
        assert guest.ws is not None
        await asyncio.wait_for(guest.ws.receive(), 10)  # the socket closes
    finally:
        await guest_.client.close()

    stored = await _meeting(app, meeting.id)
    assert stored.ended_at is not None and stored.ended_by == trainer.user.id
    await _eventually(lambda: meeting.id not in app[RECORDERS].active)  # stopped, queued for finalizing at once
    await _eventually(lambda: str(meeting.id) not in app[LIVE].sfu.rooms)  # the room closed
    done = (RecordingState.PROCESSING, RecordingState.READY, RecordingState.FAILED)
    deadline = asyncio.get_running_loop().time() + 15  # the stop's last write follows the recorder's flush to disk
    while (state := await _recording_state(app, rid)) not in done:
        assert asyncio.get_running_loop().time() < deadline, f"the recording is still {state}"
        await asyncio.sleep(0.1)
    async with app[DB]() as s:
        reasons = [e.details.get("reason") for e in (await s.scalars(
            select(AuditEntry).where(AuditEntry.action.in_(["meeting.end", "recording.stop"])))).all()]
        leaves = [e.data.get("reason") for e in (await s.scalars(select(AttendanceEvent).where(
            AttendanceEvent.meeting_id == meeting.id, AttendanceEvent.kind == "leave"))).all()]
    assert sorted(reasons) == ["ended", "meeting-ended"]
    assert set(leaves) == {"meeting-ended"}

    again = await connect(room_login, clients)  # nobody enters an ended meeting
    reply = await again.request("join", version=1, meeting_id=meeting.id)
    assert reply["type"] == "error" and reply["error"]["code"] == "meeting-ended"
    page = await room_login.client.get(f"/live/{meeting.id}")  # the live page is the closing page
    html = await page.text()
    assert page.status == 200 and "Buổi tập huấn đã kết thúc" in html and f'href="/archive/{rid}"' in html
    assert "live.js" not in html  # no device check, no room
    r = await trainer.client.get(f"{API}/{meeting.id}")
    assert (await r.json())["ended_at"] is not None


async def test_who_may_end_and_extend(app: web.Application, client: Any, login_as: Factory, make_user: Factory,
                                      make_classroom: Factory, make_meeting: Factory,
                                      clients: list[LiveClient]) -> None:
    trainer, stranger, operator = [await login_as(r) for r in (Role.TRAINER, Role.TRAINER, Role.OPERATOR)]
    room_login, room_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer.user], classrooms=[room_id])
    room = await _in_room(room_login, meeting.id, clients)
    for kind, fields in (("end-meeting", {}), ("extend-meeting", {"minutes": 15})):
        reply = await room.request(kind, **fields)
        assert reply["type"] == "error" and reply["error"]["code"] == "forbidden", kind
    lurker = await connect(trainer, clients)
    assert (await lurker.request("end-meeting"))["error"]["code"] == "not-joined"
    for path, body in (("end", None), ("extend", {"minutes": 15})):
        r = await room_login.post(f"{API}/{meeting.id}/{path}", json=body)
        assert r.status == 403, path
        r = await stranger.post(f"{API}/{meeting.id}/{path}", json=body)  # a trainer who does not present it
        assert r.status == 404, path
    r = await trainer.post(f"{API}/{meeting.id}/extend", json={"minutes": 0})
    assert r.status == 422
    r = await trainer.post(f"{API}/{meeting.id}/extend", json={"minutes": 15, "extra": 1})
    assert r.status == 422
    assert (await _meeting(app, meeting.id)).ended_at is None
    report = f"/api/v1/reports/meetings/{meeting.id}"
    assert (await (await operator.get(report)).json())["live"] is True  # within its scheduled time, room open
    assert "Đang diễn ra" in await (await operator.get(f"/meetings/{meeting.id}", headers=HTML)).text()

    r = await operator.post(f"{API}/{meeting.id}/end")  # an operator, from the console: the room is told
    assert r.status == 200
    body = await r.json()
    assert body["ended_at"] is not None
    ended = await room.wait(_of("meeting-ended"))
    assert ended["by"] == operator.user.display_name and ended["recording_id"] is None and ended["archive_url"] is None
    assert (await (await operator.get(report)).json())["live"] is False  # reports stop saying it is live
    page = await (await operator.get(f"/meetings/{meeting.id}", headers=HTML)).text()
    assert "Đang diễn ra" not in page and "Đã kết thúc" in page and f'href="/live/{meeting.id}"' not in page
    r = await trainer.post(f"{API}/{meeting.id}/end")  # again: nothing changes
    assert r.status == 200 and (await r.json())["ended_at"] == body["ended_at"]
    r = await trainer.post(f"{API}/{meeting.id}/extend", json={"minutes": 15})
    assert r.status == 409 and (await r.json())["error"]["code"] == "ended"

    tomorrow = await make_meeting(presenters=[trainer.user])  # a presenter preparing tomorrow's room
    async with app[DB]() as s:
        m = await s.get(Meeting, tomorrow.id)
        assert m is not None
        m.starts_at, m.ends_at = m.starts_at + dt.timedelta(days=1), m.ends_at + dt.timedelta(days=1)
        await s.commit()
    prep = await _in_room(trainer, tomorrow.id, clients)
    reply = await prep.request("end-meeting")
    assert reply["type"] == "error" and reply["error"]["code"] == "not-started"
    r = await operator.post(f"{API}/{tomorrow.id}/end")
    assert r.status == 409 and (await r.json())["error"]["code"] == "not-started"
    assert (await _meeting(app, tomorrow.id)).ended_at is None


async def test_extension_refused_when_it_overlaps(app: web.Application, client: Any, login_as: Factory,
                                                  make_user: Factory, make_classroom: Factory,
                                                  make_meeting: Factory, clients: list[LiveClient]) -> None:
    trainer, leader = await login_as(Role.TRAINER), await login_as(Role.LEADER)
    meeting = await make_meeting(presenters=[trainer.user, leader.user])
    nxt = await make_meeting(presenters=[leader.user], title="Họp vùng tiếp theo")  # the leader's next booking
    now = dt.datetime.now(dt.UTC)
    await _move_end(app, meeting.id, now + dt.timedelta(minutes=5))
    async with app[DB]() as s:
        other = await s.get(Meeting, nxt.id)
        assert other is not None
        other.starts_at, other.ends_at = now + dt.timedelta(minutes=25), now + dt.timedelta(hours=2)
        await s.commit()
    t = await _in_room(trainer, meeting.id, clients)
    ld = await _in_room(leader, meeting.id, clients)

    reply = await t.request("extend-meeting", minutes=30)
    assert reply["type"] == "error" and reply["error"]["code"] == "overlap"
    assert "Họp vùng tiếp theo" in reply["error"]["message"] and "trùng lãnh đạo" in reply["error"]["message"]
    r = await trainer.post(f"{API}/{meeting.id}/extend", json={"minutes": 30})
    assert r.status == 409 and (await r.json())["error"]["conflicts"][0]["meeting_id"] == nxt.id
    assert (await t.request("extend-meeting", minutes=5000, check=False))["error"]["code"] == "bad-message"

    reply = await t.request("extend-meeting", minutes=15)
    assert reply["type"] == "ok"
    told = await ld.wait(_of("meeting-extended"))
    assert told["minutes"] == 15 and told["ends_at"] == reply["ends_at"] and told["by"] == trainer.user.display_name
    stored = await _meeting(app, meeting.id)
    assert abs((stored.ends_at - (now + dt.timedelta(minutes=20))).total_seconds()) < 2
    r = await leader.post(f"{API}/{meeting.id}/extend", json={"minutes": 2})
    assert r.status == 200
    await t.wait(lambda m: m.get("type") == "meeting-extended" and m.get("minutes") == 2)


async def test_warned_at_the_end_and_ended_after_the_overrun(app: web.Application, client: Any, login_as: Factory,
                                                             make_user: Factory, make_classroom: Factory,
                                                             make_meeting: Factory,
                                                             clients: list[LiveClient]) -> None:
    trainer = await login_as(Role.TRAINER)
    room_login, room_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer.user], classrooms=[room_id])
    t = await _in_room(trainer, meeting.id, clients)
    room = await _in_room(room_login, meeting.id, clients)
    now = dt.datetime.now(dt.UTC)
    await _move_end(app, meeting.id, now - dt.timedelta(seconds=20))  # the scheduled end has passed

    warning = await t.wait(_of("meeting-ending"))
    assert warning["overrun_minutes"] == 1 and warning["auto_end_at"] > warning["ends_at"]
    late = await connect(await login_as(Role.OPERATOR), clients)  # a moderator joining later is warned too
    late.auto_answer = False
    await late.join(meeting.id)
    await late.wait(_of("meeting-ending"))
    await asyncio.sleep(0.5)  # several checks: warned once per scheduled end, classrooms never
    assert [m["type"] for m in t.messages].count("meeting-ending") == 1
    assert not any(m["type"] == "meeting-ending" for m in room.messages)

    extended = await t.request("extend-meeting", minutes=15)  # from now: no warning until the new end
    assert extended["type"] == "ok"
    await _move_end(app, meeting.id, now - dt.timedelta(minutes=2))  # past the end and the 1-minute overrun
    for who in (t, room, late):
        ended = await who.wait(_of("meeting-ended"))
        assert ended["reason"] == "overrun" and ended["by"] is None
    stored = await _meeting(app, meeting.id)
    assert stored.ended_at is not None and stored.ended_by is None


async def test_another_process_ends_or_extends(app: web.Application, client: Any, login_as: Factory,
                                               make_user: Factory, make_classroom: Factory, make_meeting: Factory,
                                               clients: list[LiveClient]) -> None:
    """With a Redis bus the meeting's room may be served by another process: it acts on the `meetings` channel."""
    trainer = await login_as(Role.TRAINER)
    room_login, room_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer.user], classrooms=[room_id])
    t = await _in_room(trainer, meeting.id, clients)
    room = await _in_room(room_login, meeting.id, clients)
    own = {"meeting_id": meeting.id, "origin": app[ENDING].origin}
    extended = {"type": "meeting-extended", "minutes": 15, "ends_at": "2030-03-11T11:45:00+07:00",
                "auto_end_at": "2030-03-11T12:15:00+07:00", "by": "Lê Văn C"}
    await app[BUS].publish(CHANNEL, {**extended, **own})  # its own message: already told, not twice
    await app[BUS].publish(CHANNEL, {**extended, **own, "origin": "other", "minutes": 30})
    told = await t.wait(_of("meeting-extended"))
    assert told["minutes"] == 30 and "origin" not in told
    now = dt.datetime.now(dt.UTC).isoformat()
    await app[BUS].publish(CHANNEL, {"type": "meeting-ended", "meeting_id": meeting.id, "origin": "other",
                                     "ended_at": now, "reason": "ended", "by": "Lê Văn C"})
    for who in (t, room):
        ended = await who.wait(_of("meeting-ended"))
        assert ended["by"] == "Lê Văn C"
        assert (await who.wait(_of("closed")))["reason"] == "meeting-ended"
    await _eventually(lambda: str(meeting.id) not in app[LIVE].sfu.rooms)
    # a bus message this process missed: the watch finds the meeting ended in storage and closes its room here
    other = await make_meeting(presenters=[trainer.user])
    t2 = await _in_room(trainer, other.id, clients)
    async with app[DB]() as s:  # an end just stored is being closed by whoever ended it: the watch leaves it
        m = await s.get(Meeting, other.id)
        assert m is not None
        m.ended_at, m.ended_by = dt.datetime.now(dt.UTC), trainer.user.id
        await s.commit()
    await app[ENDING].check()
    assert str(other.id) in app[LIVE].sfu.rooms and not app[LIVE].sfu.rooms[str(other.id)].closed
    async with app[DB]() as s:  # (a check between the end's commit and its close told a classroom "thank you" only)
        m = await s.get(Meeting, other.id)
        assert m is not None
        m.ended_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
        await s.commit()
    ended = await t2.wait(_of("meeting-ended"))
    assert ended["by"] == (trainer.user.display_name or trainer.user.username) and ended["reason"] == "ended"
    assert (await t2.wait(_of("closed")))["reason"] == "meeting-ended"
