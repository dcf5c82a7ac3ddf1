"""Tests of server.api.live: /api/v1/live/rooms (operators) with real aiortc participants on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from server.db.models import Role, User
from tests.live_client import LiveClient
from tests.server.livetest import Factory, classroom_login, connect

JSON = {"Accept": "application/json"}


async def test_only_operators_see_live_rooms(client: Any, login_as: Factory, make_meeting: Factory) -> None:
    meeting = await make_meeting()
    for path in ("/api/v1/live/rooms", f"/api/v1/live/rooms/{meeting.id}"):
        r = await client.get(path, headers=JSON)
        assert r.status == 401, path
        assert (await r.json())["error"]["code"]
        for role in (Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER):
            who = await login_as(role)
            r = await who.get(path, headers=JSON)
            assert r.status == 403, (path, role)
            assert "error" in await r.json()
    op = await login_as(Role.OPERATOR)
    r = await op.get("/api/v1/live/rooms", headers=JSON)
    assert r.status == 200
    assert await r.json() == []


async def test_a_room_that_is_not_live_is_404(login_as: Factory, make_meeting: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    for path in (f"/api/v1/live/rooms/{meeting.id}", "/api/v1/live/rooms/987654", "/api/v1/live/rooms/abc"):
        r = await op.get(path, headers=JSON)
        assert r.status == 404, path
        assert (await r.json())["error"]["code"] in ("not-live", "not-found")


async def test_openapi_documents_the_live_endpoints(login_as: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    doc = await (await op.get("/api/v1/openapi.json")).json()
    assert doc["paths"]["/api/v1/live/rooms"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "type"] == "array"
    one = doc["paths"]["/api/v1/live/rooms/{meeting_id}"]["get"]
    assert "404" in one["responses"] and "403" in one["responses"]
    assert "LiveParticipantOut" in doc["components"]["schemas"]


async def _poll_room(op: Any, meeting_id: int, ok: Any, within: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await op.get(f"/api/v1/live/rooms/{meeting_id}", headers=JSON)
        assert r.status == 200
        last = await r.json()
        if ok(last):
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"room never matched: {last}")


async def test_live_room_shows_participants_with_bitrates(login_as: Factory, make_user: Factory,
                                                          make_meeting: Factory, make_classroom: Factory,
                                                          clients: list[LiveClient]) -> None:
    trainer_user: User = await make_user(Role.TRAINER, display_name="Giảng viên Hoa")
    trainer = await login_as(user=trainer_user)
    room, classroom_id = await classroom_login(login_as, make_user, make_classroom, name="Lớp THCS Mường Tè")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[classroom_id], title="Bài giảng trực tiếp")
    op = await login_as(Role.OPERATOR)

    t = await connect(trainer, clients)
    await t.join(meeting.id)
    assert (await t.publish())["type"] == "answer"
    c = await connect(room, clients)
    await c.join(meeting.id)
    await c.wait_frames("presenter-video", 5)
    await c.request("raise-hand", raised=True)

    def flowing(body: dict[str, Any]) -> bool:
        people = {p["id"]: p for p in body["participants"]}
        return (len(people) == 2 and people[t.participant_id]["publish_bitrate"] > 0
                and people[c.participant_id]["receive"]["bitrate"] > 0
                and people[c.participant_id]["receive"]["rtt"] is not None)

    body = await _poll_room(op, meeting.id, flowing)
    assert body["meeting_id"] == meeting.id
    assert body["title"] == "Bài giảng trực tiếp"
    assert body["participant_count"] == 2
    assert body["presenter_id"] == t.participant_id and body["presenter_name"] == "Giảng viên Hoa"
    assert body["floor_id"] is None and body["locked"] is False
    people = {p["id"]: p for p in body["participants"]}
    presenter, classroom = people[t.participant_id], people[c.participant_id]
    assert body["participants"][0]["id"] == t.participant_id  # the presenter comes first
    assert presenter["role"] == "trainer" and presenter["presenter"] is True
    assert presenter["state"] == "connected"
    video = next(p for p in presenter["producers"] if p["source"] == "camera")
    assert video["kind"] == "video" and video["bitrate"] > 0 and video["packets"] > 0
    assert video["consumers"] >= 1 and 0 <= video["loss"] <= 1
    assert {p["source"] for p in presenter["producers"]} == {"camera", "mic"}
    assert classroom["role"] == "classroom" and classroom["name"] == "Lớp THCS Mường Tè"
    assert classroom["hand_raised"] is True
    assert classroom["classroom"] == "Lớp THCS Mường Tè" and classroom["unit"]
    assert classroom["producers"] == [] and classroom["publish_bitrate"] == 0
    recv = classroom["receive"]
    assert recv["slots"] >= 2  # presenter video and audio
    assert recv["fraction_lost"] is not None and 0 <= recv["fraction_lost"] <= 1
    assert recv["jitter"] is not None and recv["jitter"] >= 0
    assert recv["rtt"] is not None and recv["rtt"] >= 0

    # The classroom publishes too: both participants then send, and the presenter receives the classroom.
    await c.publish()

    def both_send(b: dict[str, Any]) -> bool:
        ps = {p["id"]: p for p in b["participants"]}
        return (ps[c.participant_id]["publish_bitrate"] > 0 and ps[t.participant_id]["receive"]["bitrate"] > 0)

    await _poll_room(op, meeting.id, both_send)
    listing = await (await op.get("/api/v1/live/rooms", headers=JSON)).json()
    assert [r["meeting_id"] for r in listing] == [meeting.id]
    for p in listing[0]["participants"]:
        assert p["publish_bitrate"] + p["receive"]["bitrate"] > 0, p

    # Lock and floor show up at once.
    await t.request("lock", locked=True)
    await t.request("give-floor", participant_id=c.participant_id)
    body = await _poll_room(op, meeting.id, lambda b: b["locked"] and b["floor_id"] == c.participant_id)
    assert body["floor_name"] == "Lớp THCS Mường Tè"
    assert next(p for p in body["participants"] if p["id"] == c.participant_id)["floor"] is True


@pytest.mark.parametrize("role", [Role.TRAINER, Role.CLASSROOM])
async def test_other_roles_refused_while_a_room_is_live(role: Role, login_as: Factory, make_meeting: Factory,
                                                        clients: list[LiveClient]) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    watcher = await connect(op, clients)
    await watcher.join(meeting.id)
    assert len(await (await op.get("/api/v1/live/rooms", headers=JSON)).json()) == 1
    other = await login_as(role)
    r = await other.get(f"/api/v1/live/rooms/{meeting.id}", headers=JSON)
    assert r.status == 403


async def test_a_recorded_room_says_so_without_listing_the_recorder(login_as: Factory, make_user: Factory,
                                                                     make_meeting: Factory, make_classroom: Factory,
                                                                     clients: list[LiveClient]) -> None:
    trainer_user: User = await make_user(Role.TRAINER, display_name="Giảng viên Hoa")
    trainer = await login_as(user=trainer_user)
    room, classroom_id = await classroom_login(login_as, make_user, make_classroom, name="Lớp THCS Sìn Hồ")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[classroom_id])
    op = await login_as(Role.OPERATOR)
    t = await connect(trainer, clients)
    await t.join(meeting.id)
    c = await connect(room, clients)
    await c.join(meeting.id)
    body = await _poll_room(op, meeting.id, lambda b: len(b["participants"]) == 2)
    assert body["recording"] is False

    assert (await t.request("record-start"))["type"] == "ok"
    await t.wait(lambda m: m.get("type") == "participant-joined" and m.get("role") == "recorder")
    body = await _poll_room(op, meeting.id, lambda b: b["recording"])
    assert body["participant_count"] == 2
    assert {p["role"] for p in body["participants"]} == {"trainer", "classroom"}
    listing = await (await op.get("/api/v1/live/rooms", headers=JSON)).json()
    assert listing[0]["recording"] is True and len(listing[0]["participants"]) == 2

    assert (await t.request("record-stop"))["type"] == "ok"
    body = await _poll_room(op, meeting.id, lambda b: not b["recording"])
    assert body["participant_count"] == 2


def test_a_simulcast_source_is_one_producer_with_its_layers_summed() -> None:
    from server.api.live import producer_out
    from sfu.stats import ProducerStats

    def layer(rid: str, i: int, bitrate: float, packets: int, lost: int, consumers: int) -> ProducerStats:
        return ProducerStats("p", "camera", "video", packets, packets * 1000, bitrate, lost, 0, 0, 1, consumers,
                             rid=rid, layer=i, arriving=True)

    out = producer_out([layer("q", 0, 100_000.4, 300, 0, 9), layer("h", 1, 0, 0, 0, 0),
                        layer("f", 2, 700_000.2, 900, 10, 2)], muted=False)
    assert (out.source, out.bitrate, out.packets, out.packets_lost, out.consumers) == ("camera", 800001, 1200, 10, 11)
    assert out.loss == round(10 / 1210, 4)
