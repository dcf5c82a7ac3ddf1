"""Tests of server.live.cascade: one meeting across two nodes (create_app twice on one real redis-server, one real
PostgreSQL and one data directory, as tests/server/live/test_cluster.py). The presenter's room is on node a (the
origin); node b (`cluster.edge_above: 0`) serves the classrooms that reach it as an edge: it relays the origin's
program over one link per node, sends a classroom's camera up only while a presenter shows it on the visible grid
page, and a classroom given the floor there is heard and seen on node a. Real aiortc peers (iceServers=[])."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import Config
from server.db.models import Role, User
from server.live.cascade import CASCADE, edge_room_id
from server.live.cluster import draining_key, heartbeat_key, room_key
from server.live.service import LIVE
from sfu.consumer import Consumer
from sfu.room import Room
from tests.conftest import SharedClient
from tests.live_client import LiveClient, page_origin
from tests.server.live.test_cluster import (  # noqa: F401  (fixtures: two nodes on one Redis and one database)
    browsers,
    client,
    config,
    node_config,
    on_node,
    ports,
    redis,
)
from tests.server.livetest import Factory, classroom_login, connect, guest_login
from tests.server.test_bus import redis_url  # noqa: F401  (fixture: a real redis-server)

pytestmark = pytest.mark.redis
Client = TestClient[Any, Any]


@pytest.fixture
async def edge_b(aiohttp_client: Any, client: Client, node_config: Callable[..., Config],  # noqa: F811
                 ports: dict[str, int]) -> Client:  # noqa: F811
    """edge_b: node b, serving the classrooms that reach it as an edge of any meeting (`cluster.edge_above: 0`)."""
    return await aiohttp_client(create_app(node_config("b", **{"cluster.edge_above": 0})),
                                server_kwargs={"port": ports["b"]})


async def until(check: Callable[[], bool], what: str, within: float = 30.0) -> None:
    """until: wait for `check()` to hold (generous bound: the host is loaded)."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


def relay_of(room: Room) -> Any:
    """relay_of: the room's only relay participant (one end of the cascade link)."""
    relays = [p for p in room.participants.values() if p.capabilities.relay]
    assert len(relays) == 1, [p.id for p in relays]
    return relays[0]


def link_peers(*rooms: Room) -> int:
    """link_peers: the RTCPeerConnections of the relay participants of `rooms` (the links' ends)."""
    return sum((p.up is not None) + (p.down is not None)
               for room in rooms for p in room.participants.values() if p.capabilities.relay)


async def meeting_across(client: Client, edge_b: Client, login_as: Factory, make_user: Factory,  # noqa: F811
                         make_meeting: Factory, make_classroom: Factory, clients: list[LiveClient],
                         browsers: list[SharedClient], redis: Any, classrooms: int  # noqa: F811
                         ) -> tuple[Any, LiveClient, list[LiveClient], Room, Room]:
    """meeting_across: the presenter publishing on node a (the origin), `classrooms` classrooms joined through
    node b (the edge), each publishing its camera and microphone."""
    trainer_user: User = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    rooms = [await classroom_login(login_as, make_user, make_classroom, name=f"Lớp {i + 1}")
             for i in range(classrooms)]
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[c for _, c in rooms])
    await redis.set(draining_key("b"), "1")  # the room goes to node a
    t = await connect(trainer, clients)
    await t.join(meeting.id)
    await redis.delete(draining_key("b"))
    assert (await t.publish())["type"] == "answer"
    joined = []
    for who, _ in rooms:
        on_b = await on_node(who, edge_b, browsers)
        url = str(on_b.make_url("/ws"))
        c = LiveClient(on_b.session, url, origin=page_origin(url))
        clients.append(c)
        await c.connect()
        reply = await c.join(meeting.id)  # served on node b: no `moved`
        assert reply["room"]["presenter_id"] == t.participant_id, reply
        assert (await c.publish())["type"] == "answer"
        joined.append(c)
    origin = client.app[LIVE].sfu.rooms[str(meeting.id)]
    edge = edge_b.app[LIVE].sfu.rooms[edge_room_id(meeting.id)]
    return meeting, t, joined, origin, edge


async def test_the_edge_relays_the_origins_program_over_one_link_whatever_its_classrooms(
        client: Client, edge_b: Client, login_as: Factory, make_user: Factory,  # noqa: F811
        make_meeting: Factory, make_classroom: Factory, clients: list[LiveClient],
        browsers: list[SharedClient], redis: Any) -> None:  # noqa: F811
    meeting, t, (c1, c2), origin, edge = await meeting_across(
        client, edge_b, login_as, make_user, make_meeting, make_classroom, clients, browsers, redis, 2)
    for c in (c1, c2):
        await c.wait_frames("presenter-video", 5, within=60)  # the presenter's camera, through node b
        await c.wait_frames("presenter-audio", 5, within=60)

    assert client.app[CASCADE].link_count() == 1 and edge_b.app[CASCADE].link_count() == 1
    # one relay at each end, one RTCPeerConnection each: the two ends of one SRTP/UDP connection, both ways
    assert link_peers(origin, edge) == 2
    assert origin.participants["link-b"].up is None and relay_of(edge).down is None
    assert [p.id for p in origin.participants.values() if p.capabilities.relay] == ["link-b"]
    assert c1.participant_id in origin.participants and c2.participant_id in origin.participants  # ghosts

    # The RTP is the origin's forwarded packets: the edge receives the origin's slot stream (its SSRC, not the
    # presenter's), with no sequence gap, and rewrites it once more for each classroom.
    down = origin.participants["link-b"].consumers["presenter-video"]
    assert isinstance(down, Consumer) and down.ctx is not None
    presenter_camera = origin.participants[t.participant_id].producers["camera"]
    stream = relay_of(edge).producers["presenter-video"]
    assert stream.participant_id == t.participant_id and stream.source == "camera"  # bound to the ghost
    await until(lambda: stream.packets > 100, "packets over the link")
    assert stream.ssrc == down.ctx.ssrc != presenter_camera.ssrc
    lost = stream.stats().packets_lost  # continuous sequence numbers (a loopback drop or two on a loaded host)
    assert lost <= stream.packets // 100, stream.stats()
    assert down.packets_sent > 0 and stream.packets <= down.packets_sent + 5
    for c in (c1, c2):
        slot = edge.participants[c.participant_id].consumers["presenter-video"]
        assert isinstance(slot, Consumer) and slot.ctx is not None
        assert slot.ctx.ssrc not in (stream.ssrc, presenter_camera.ssrc)
        assert slot.source is stream and slot.packets_sent > 0
        assert c.down is not None
        receiver = next(tr.receiver for tr in c.down.getTransceivers() if tr.mid == c.slots["presenter-video"])
        inbound = [s for s in (await receiver.getStats()).values() if s.type == "inbound-rtp"]
        assert inbound and inbound[0].ssrc == slot.ctx.ssrc, inbound
        assert inbound[0].packetsLost <= inbound[0].packetsReceived // 100, inbound
    assert client.app[LIVE].sfu.rooms.keys() == {str(meeting.id)}  # the origin opened no other room

    # the presenter's grid page shows both classrooms: their cameras go up (the next test turns pages)
    await until(lambda: {pid for pid, _ in relay_of(edge).chosen.values()} == {c1.participant_id, c2.participant_id},
                "the grid's cameras chosen for the up link")

    # the presenter takes the floor and gives it back: its camera comes in two slots of the link, then one, and
    # the edge's classrooms keep it in both cases
    assert (await t.request("give-floor", participant_id=t.participant_id))["type"] == "ok"
    await c1.wait_frames("floor-video", 3, within=60)
    assert (await t.request("give-floor", participant_id=None))["type"] == "ok"
    ghost = edge.participants[t.participant_id]
    await until(lambda: relay_of(edge).bound.get("floor-video") is None, "the floor slot unbound")
    assert ghost.producers["camera"] is stream
    await c1.wait_frames("presenter-video", 5, within=60)

    # the presenter locks the room: node b sends new classrooms to the owner, whose lobby lets them in
    assert (await t.request("lock", locked=True))["type"] == "ok"
    await until(lambda: (meeting.id, "a") in edge_b.app[CASCADE].locked, "node b told of the lock")
    late = LiveClient(c1.session, c1.url, origin=c1.origin or page_origin(c1.url))
    clients.append(late)
    await late.connect()
    moved = await late.request("join", version=1, meeting_id=meeting.id)
    assert moved["type"] == "error" and moved["error"]["code"] == "moved", moved
    assert (await t.request("lock", locked=False))["type"] == "ok"
    await until(lambda: not edge_b.app[CASCADE].locked, "node b told of the unlock")

    # a guest reaching node b is sent to the owner (it waits in the lobby, which the origin's moderators keep)
    guest = await guest_login(edge_b, edge_b.app, meeting.id)
    g = await connect(guest, clients)
    moved = await g.request("join", version=1, meeting_id=meeting.id, name="Khách")
    assert moved["type"] == "error" and moved["error"]["code"] == "moved", moved

    # `cluster.edge_above` above the origin's participants: node b sends a classroom to the owner again
    edge_b.app[CASCADE].edge_above = 1000
    via_b = LiveClient(c1.session, c1.url, origin=c1.origin or page_origin(c1.url))
    clients.append(via_b)
    await via_b.connect()
    moved = await via_b.request("join", version=1, meeting_id=meeting.id)
    assert moved["type"] == "error" and moved["error"]["code"] == "moved", moved

    # the edge's last classroom leaves: the link closes at both ends (the origin's room keeps its presenter)
    for c in (c1, c2):
        assert (await c.request("leave"))["type"] == "ok"
    await until(lambda: edge.closed and not any(p.capabilities.relay or p.via for p in origin.participants.values()),
                "the link closed")
    assert client.app[CASCADE].link_count() == 0 and list(origin.participants) == [t.participant_id]


@pytest.mark.parametrize("config", [{"sfu.grid_slots": 1}], indirect=True)  # node a: one tile a page
async def test_an_edge_classroom_goes_up_only_on_the_visible_grid_page_and_with_the_floor(
        client: Client, edge_b: Client, login_as: Factory, make_user: Factory,  # noqa: F811
        make_meeting: Factory, make_classroom: Factory, clients: list[LiveClient],
        browsers: list[SharedClient], redis: Any) -> None:  # noqa: F811
    meeting, t, (c1, c2), origin, edge = await meeting_across(
        client, edge_b, login_as, make_user, make_meeting, make_classroom, clients, browsers, redis, 2)
    await c1.wait_frames("presenter-video", 3, within=60)
    up = relay_of(edge)

    def going_up() -> set[str]:
        return {pid for pid, _ in up.chosen.values()}

    # page 0 of the presenter's grid shows classroom 1: its camera goes up (and only its), and is seen on node a
    await until(lambda: going_up() == {c1.participant_id}, "classroom 1 (page 0) chosen for the up link")
    await t.wait_frames("grid-0", 5, within=60)
    assert origin.participants[c1.participant_id].producers["camera"].packets > 0
    # page 1 shows classroom 2: classroom 2 goes up instead, classroom 1 stops
    assert (await t.request("grid-page", page=1))["page"] == 1
    await until(lambda: going_up() == {c2.participant_id}, "classroom 2 (page 1) chosen instead")
    await until(lambda: origin.participants[c2.participant_id].producers.get("camera") is not None,
                "classroom 2's camera bound on node a")
    camera2 = origin.participants[c2.participant_id].producers["camera"]
    await until(lambda: camera2.packets > 20 and origin.participants[t.participant_id]
                .slot_view["grid-0"][0] == c2.participant_id, "classroom 2 on the presenter's tile")
    await t.wait_frames("grid-0", 5, within=60)
    assert "camera" not in origin.participants[c1.participant_id].producers  # classroom 1's no longer comes

    # a presenter on node a mutes classroom 2's microphone: the classroom on node b is told (and unmuted)
    assert (await t.request("mute", participant_id=c2.participant_id, source="mic", muted=True))["type"] == "ok"
    await c2.wait(lambda m: m.get("type") == "mute-request" and m.get("source") == "mic" and m["muted"], within=30)
    await until(lambda: "mic" in edge.participants[c2.participant_id].muted, "muted on node b")
    assert (await t.request("mute", participant_id=c2.participant_id, source="mic", muted=False))["type"] == "ok"
    await c2.wait(lambda m: m.get("type") == "mute-request" and m.get("source") == "mic" and not m["muted"],
                  within=30)

    # the floor: a hand raised on node b is seen on node a, granted there: the classroom is heard and seen on node
    # a (its camera and microphone go up while it holds the floor)
    assert (await c1.request("raise-hand", raised=True))["type"] == "ok"
    await t.wait(lambda m: m.get("type") == "hand" and m.get("participant_id") == c1.participant_id
                 and m.get("raised") is True, within=30)
    assert (await t.request("give-floor", participant_id=c1.participant_id))["type"] == "ok"
    await c1.wait(lambda m: m.get("type") == "floor" and m.get("participant_id") == c1.participant_id, within=30)
    await until(lambda: {(c1.participant_id, "mic"), (c1.participant_id, "camera")} <= set(up.chosen.values()),
                "the floor holder's camera and microphone chosen for the up link")
    await t.wait_frames("floor-video", 5, within=60)
    await until(lambda: len(t.slot_frames("floor-audio")) > 10, "the edge classroom heard on node a", within=60)
    # and on the edge: classroom 2 gets classroom 1 in its floor slots (the edge's own stream, not through a)
    await c2.wait_frames("floor-video", 5, within=60)


async def test_chat_and_polls_reach_the_meeting_on_both_nodes(
        client: Client, edge_b: Client, login_as: Factory, make_user: Factory, make_meeting: Factory,  # noqa: F811
        make_classroom: Factory, clients: list[LiveClient], browsers: list[SharedClient],  # noqa: F811
        redis: Any) -> None:  # noqa: F811
    """An edge's classroom is in the meeting's chat and polls like one on the origin (server.live.meetingbus):
    public and private messages, a deletion, a poll, its live results (moderators) and its final results."""
    _, t, [c], _, _ = await meeting_across(client, edge_b, login_as, make_user, make_meeting, make_classroom,
                                           clients, browsers, redis, classrooms=1)
    sent = await c.request("chat", text="Chào cô, lớp Mường Tè đã vào.")
    assert sent["type"] == "ok"
    got = await t.wait(lambda m: m.get("type") == "chat" and m["message"]["id"] == sent["message_id"])
    assert got["message"]["from"] == c.participant_id
    assert (await t.request("chat", text="Chào các thầy cô."))["type"] == "ok"
    await c.wait(lambda m: m.get("type") == "chat" and m["message"]["text"] == "Chào các thầy cô.")
    private = await c.request("chat", text="Em xin hỏi riêng.", to=t.participant_id)
    assert private["type"] == "ok"
    got = await t.wait(lambda m: m.get("type") == "chat" and m["message"]["id"] == private["message_id"])
    assert got["message"]["private"] is True
    assert (await t.request("chat-delete", message_id=sent["message_id"]))["type"] == "ok"
    await c.wait(lambda m: m.get("type") == "chat-deleted" and m["message_id"] == sent["message_id"])

    poll = await t.request("poll-create", question="Đã nghe rõ chưa?", choices=["Rõ", "Chưa rõ"])
    assert poll["type"] == "ok"
    await c.wait(lambda m: m.get("type") == "poll" and m["poll"]["id"] == poll["poll_id"])
    assert (await c.request("poll-answer", poll_id=poll["poll_id"], choice=0))["type"] == "ok"
    live = await t.wait(lambda m: m.get("type") == "poll-results" and m["poll_id"] == poll["poll_id"]
                        and m["answered"] == 1)
    assert live["counts"] == [1, 0] and not live["closed"]
    assert (await t.request("poll-close", poll_id=poll["poll_id"]))["type"] == "ok"
    final = await c.wait(lambda m: m.get("type") == "poll-results" and m["poll_id"] == poll["poll_id"]
                         and m["closed"])
    assert final["counts"] == [1, 0]


async def test_an_edge_whose_origin_is_gone_sends_its_classrooms_to_join_again(
        client: Client, edge_b: Client, login_as: Factory, make_user: Factory, make_meeting: Factory,  # noqa: F811
        make_classroom: Factory, clients: list[LiveClient], browsers: list[SharedClient],  # noqa: F811
        redis: Any) -> None:  # noqa: F811
    """The meeting's room is no longer node a's (a died and node c took it over: its lease and heartbeat are
    written here as they would be): node b's edge closes its classroom's socket with `origin-lost` (the page joins
    again) and drops its link and room, instead of keeping a room without program."""
    meeting, _, [c], _, _ = await meeting_across(client, edge_b, login_as, make_user, make_meeting, make_classroom,
                                                 clients, browsers, redis, classrooms=1)
    cascade = edge_b.app[CASCADE]
    assert cascade.link_count() == 1
    beat = {"url": "http://127.0.0.1:9", "rooms": 1, "participants": 0, "cpu": 0.0, "draining": False}
    await redis.set(heartbeat_key("c"), json.dumps(beat), px=60_000)
    await redis.set(room_key(meeting.id), "c", px=60_000)
    closed = await c.wait(lambda m: m.get("type") == "closed", within=30)
    assert closed["reason"] == "origin-lost"
    await until(lambda: cascade.link_count() == 0 and edge_room_id(meeting.id) not in edge_b.app[LIVE].sfu.rooms,
                "the edge's link and room dropped")


async def test_a_failed_link_is_made_again_by_its_classrooms_joining_again(
        client: Client, edge_b: Client, login_as: Factory, make_user: Factory, make_meeting: Factory,  # noqa: F811
        make_classroom: Factory, clients: list[LiveClient], browsers: list[SharedClient],  # noqa: F811
        redis: Any) -> None:  # noqa: F811
    """The link's connection fails (its origin end closed under it): the origin drops its end and tells the edge,
    whose classroom gets `closed` `origin-lost`; joining again through node b opens a new link and the
    presenter's video arrives again."""
    meeting, _, [c], origin, _ = await meeting_across(client, edge_b, login_as, make_user, make_meeting,
                                                      make_classroom, clients, browsers, redis, classrooms=1)
    await c.wait_frames("presenter-video", 3, within=30)
    relay = relay_of(origin)
    peer = relay.down or relay.up  # the link's one RTCPeerConnection at this end
    assert peer is not None
    await peer.pc.close()  # not through the room: the link fails under it
    closed = await c.wait(lambda m: m.get("type") == "closed", within=30)
    assert closed["reason"] == "origin-lost"
    await until(lambda: edge_b.app[CASCADE].link_count() == 0 and client.app[CASCADE].link_count() == 0,
                "both ends of the failed link dropped")
    again = LiveClient(c.session, c.url, origin=page_origin(c.url))
    clients.append(again)
    await again.connect()
    await again.join(meeting.id)  # through node b again: a new link
    await again.wait_frames("presenter-video", 3, within=30)
    assert edge_b.app[CASCADE].link_count() == 1
