"""Tests of server.live.recording_live over /ws: who may start, stop and mark a recording, what everyone in the room
is told, and the marker title's rules. (Recording itself, and refusals for disk space: test_recordings.py.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from recorder.timeline import load
from server.config import CONFIG, Config
from server.db.engine import DB
from server.db.models import Recording, Role
from server.live.recording_live import MARKER_CHARS
from server.live.recordings import RECORDERS
from tests.live_client import LiveClient
from tests.server.livetest import classroom_login, connect, guest_login

Factory = Callable[..., Awaitable[Any]]
RECORDING: list[tuple[str, dict[str, Any]]] = [("record-start", {}), ("record-stop", {}),
                                               ("record-marker", {"title": "Phần 2"})]


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(recorder__min_free_bytes=0)


async def _in_room(who: Any, meeting_id: int, clients: list[LiveClient]) -> LiveClient:
    lc = await connect(who, clients)
    lc.auto_answer = False  # no media here: the down offers stay unanswered
    await lc.join(meeting_id)
    return lc


def _code(reply: dict[str, Any]) -> str | None:
    return reply["error"]["code"] if reply["type"] == "error" else None


async def test_moderators_record_and_everyone_is_told(app: Any, login_as: Factory, make_user: Factory,
                                                      make_classroom: Factory, make_meeting: Factory,
                                                      clients: list[LiveClient]) -> None:
    trainer = await login_as(Role.TRAINER)
    room_login, room_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer.user], classrooms=[room_id])
    t = await _in_room(trainer, meeting.id, clients)
    room = await _in_room(room_login, meeting.id, clients)

    started = await t.request("record-start")
    assert started["type"] == "ok" and isinstance(started["recording_id"], int)
    rid = started["recording_id"]
    for who in (t, room):
        note = await who.wait(lambda m: m.get("type") == "recording" and m.get("state") == "recording")
        assert note["recording_id"] == rid
    assert _code(await t.request("record-start")) == "state"  # once at a time
    late = await connect(await login_as(Role.OPERATOR), clients)
    late.auto_answer = False
    joined = await late.join(meeting.id)  # a late joiner sees the recording as a participant
    assert [p["role"] for p in joined["room"]["participants"]].count("recorder") == 1

    assert (await t.request("record-marker", title="  Phần 2: thảo luận  "))["type"] == "ok"
    assert (await t.request("record-marker", title="x" * MARKER_CHARS))["type"] == "ok"
    for bad in ("", "   ", "x" * (MARKER_CHARS + 1)):
        reply = await t.request("record-marker", title=bad, check=False)
        assert _code(reply) == "bad-message" and f"1–{MARKER_CHARS}" in reply["error"]["message"], bad
    assert _code(await t.request("record-marker", title=7, check=False)) == "bad-message"
    assert _code(await t.request("record-marker", check=False)) == "bad-message"

    stopped = await t.request("record-stop")
    assert stopped == {"type": "ok", "recording_id": rid, "id": stopped["id"]}
    async with app[DB]() as s:
        row = await s.get(Recording, rid)
    assert row is not None
    marks = [e.title for e in load(app[CONFIG].data_path / "recordings" / row.directory) if e.kind == "marker"]
    assert marks == ["Phần 2: thảo luận", "x" * MARKER_CHARS]  # in the recording's timeline, trimmed
    for who in (t, room):
        note = await who.wait(lambda m: m.get("type") == "recording" and m.get("state") == "stopped")
        assert note["recording_id"] == rid
    assert _code(await t.request("record-stop")) == "state"  # nothing to stop
    reply = await t.request("record-marker", title="Sau khi dừng")
    assert _code(reply) == "state" and "not being recorded" in reply["error"]["message"]


async def test_who_may_record(app: Any, client: Any, login_as: Factory, make_user: Factory, make_classroom: Factory,
                              make_meeting: Factory, clients: list[LiveClient]) -> None:
    trainer, leader, operator = [await login_as(role) for role in (Role.TRAINER, Role.LEADER, Role.OPERATOR)]
    room_login, room_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer.user, leader.user], classrooms=[room_id])

    lurker = await connect(operator, clients)  # not in a room yet
    assert _code(await lurker.request("record-start")) == "not-joined"
    moderators = [await _in_room(who, meeting.id, clients) for who in (trainer, leader, operator)]

    guest_login_ = await guest_login(client, app, meeting.id)
    try:
        guest = await connect(guest_login_, clients)
        guest.auto_answer = False
        waiting = await guest.request("join", version=1, meeting_id=meeting.id, name="Khách")
        assert (await moderators[0].request("admit", lobby_id=waiting["lobby_id"]))["type"] == "ok"
        await guest.wait(lambda m: m.get("type") == "joined")
        for lc in (await _in_room(room_login, meeting.id, clients), guest):
            for request, fields in RECORDING:
                reply = await lc.request(request, **fields)
                assert _code(reply) == "forbidden" and "Your role may not" in reply["error"]["message"], request
        for lc in moderators:  # past the role check: nothing is being recorded
            for request, fields in RECORDING[1:]:
                assert _code(await lc.request(request, **fields)) == "state", request
        assert meeting.id not in app[RECORDERS].active
    finally:
        await guest_login_.client.close()
