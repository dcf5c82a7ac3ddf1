"""Tests of server.live.connection: dispatch, limits, unreadable messages, `ping`, events and the order of output."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

import pytest
from sqlalchemy import select

from server.config import Config
from server.db.engine import DB
from server.db.models import AuditEntry, Role, User
from server.live.connection import event_message
from server.live.service import LIVE
from server.metrics import METRICS
from sfu.events import (
    Event,
    FloorChanged,
    GridChanged,
    HandChanged,
    MuteRequested,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantState,
    PeerFailed,
    PresenterChanged,
    RelayWants,
    ServerOffer,
    SlotChanged,
)
from tests.live_client import LiveClient
from tests.protocol_schema import problem
from tests.server.livetest import Factory, classroom_login, connect, guest_login
from tests.sfu.test_events import DELIVERED, instance


async def test_unreadable_and_unknown_messages_get_errors_and_the_connection_survives(
        login_as: Factory, clients: list[LiveClient]) -> None:
    lc = await connect(await login_as(Role.OPERATOR), clients)
    assert (await lc.request("give-floor", participant_id=None))["error"]["code"] == "not-joined"
    assert (await lc.request("dance", check=False))["error"]["code"] == "unknown-type"
    for raw, code in (('{"nope": 1}', "unknown-type"), ("{not json", "bad-message"), ("[1, 2]", "bad-message"),
                      ('{"type": "ping", "id": {"x": 1}}', "bad-message")):
        start = len(lc.messages)
        await lc.ws.send_str(raw)  # type: ignore[union-attr]
        reply = await lc.wait(lambda m: m.get("type") == "error", start=start)
        assert reply["error"]["code"] == code, raw
        assert reply["id"] is None
    start = len(lc.messages)
    await lc.ws.send_bytes(b'{"type": "ping"}')  # type: ignore[union-attr]
    assert (await lc.wait(lambda m: m.get("type") == "error", start=start))["error"]["code"] == "bad-message"
    assert (await lc.request("ping"))["type"] == "pong"  # still serving


async def test_too_large_message_is_dropped(login_as: Factory, clients: list[LiveClient], config: Config) -> None:
    lc = await connect(await login_as(Role.OPERATOR), clients)
    big = "x" * (config.limits.ws_message_bytes + 10)
    await lc.send({"type": "ping", "id": 1, "pad": big}, check=False)
    too_large = await lc.wait(lambda m: m.get("error", {}).get("code") == "too-large")
    assert too_large["type"] == "error" and too_large["id"] is None
    assert not any(m.get("type") == "pong" and m.get("id") == 1 for m in lc.messages)
    assert (await lc.request("ping"))["type"] == "pong"


async def test_rate_limit(login_as: Factory, clients: list[LiveClient], config: Config) -> None:
    op = await login_as(Role.OPERATOR)
    lc = await connect(op, clients)
    for _ in range(config.limits.ws_burst + 20):
        await lc.send({"type": "ping"})
    await lc.wait(lambda m: m.get("error", {}).get("code") == "rate-limited")
    await asyncio.sleep(1.5)  # tokens come back
    assert (await lc.request("ping"))["type"] == "pong"


async def _answered_after(lc: LiveClient, start: int) -> list[dict[str, Any]]:
    """_answered_after: what the server answered from `start` on, once it has read everything sent before."""
    await asyncio.sleep(0.5)  # a few tokens come back: the ping below is handled after all that was sent
    pong = await lc.request("ping")
    assert pong["type"] == "pong", pong
    return lc.messages[start:lc.messages.index(pong)]


async def test_over_the_rate_only_the_first_message_is_answered(login_as: Factory, clients: list[LiveClient],
                                                                 config: Config) -> None:
    op = await login_as(Role.OPERATOR)
    lc = await connect(op, clients)
    assert lc.ws is not None
    (conn,) = op.client.app[LIVE].connections
    sent = config.limits.ws_burst + 100  # under limits.ws_flood_messages: dropped, not closed
    for _ in range(sent):
        await lc.ws.send_str('{"type": "nope"}')
    replies = await _answered_after(lc, 0)
    codes = [m["error"]["code"] for m in replies]
    assert set(codes) == {"unknown-type", "rate-limited"}, codes
    answered = codes.count("unknown-type")
    # the burst is answered; then one warning, and one more only after a message was handled again (tokens
    # came back while it read): never one reply per message
    assert config.limits.ws_burst <= answered <= config.limits.ws_burst + 10, codes
    assert 1 <= codes.count("rate-limited") <= answered - config.limits.ws_burst + 1, codes
    assert conn.refused["rate-limited"] == sent - answered
    metrics = op.client.app[METRICS].registry
    assert metrics.get_sample_value("taphuan_ws_messages_refused_total", {"reason": "rate-limited"}) == sent - answered


async def test_binary_messages_are_refused_counted_and_rate_limited(login_as: Factory, clients: list[LiveClient],
                                                                   config: Config) -> None:
    op = await login_as(Role.OPERATOR)
    lc = await connect(op, clients)
    assert lc.ws is not None
    (conn,) = op.client.app[LIVE].connections
    sent = config.limits.ws_burst + 100
    for _ in range(sent):
        await lc.ws.send_bytes(b'{"type": "ping"}')
    replies = await _answered_after(lc, 0)
    refused = [m for m in replies if m["error"]["code"] == "bad-message"]
    assert len(refused) <= config.limits.ws_burst + 10, len(replies)  # binary frames take tokens like text
    assert len(replies) - len(refused) <= len(refused) - config.limits.ws_burst + 1  # rate-limited warnings
    assert conn.refused["binary"] == len(refused)
    assert conn.refused["rate-limited"] == sent - len(refused)
    metrics = op.client.app[METRICS].registry
    assert metrics.get_sample_value("taphuan_ws_messages_refused_total", {"reason": "binary"}) == len(refused)


async def test_a_connection_that_keeps_flooding_is_closed_with_1008_and_its_login_cools_down(
        login_as: Factory, clients: list[LiveClient], config: Config) -> None:
    op = await login_as(Role.OPERATOR)
    lc = await connect(op, clients)
    assert lc.ws is not None and lc._reader is not None
    for i in range(config.limits.ws_burst + config.limits.ws_flood_messages + 400):
        if lc.ws.closed:
            break
        with contextlib.suppress(ConnectionError):
            await (lc.ws.send_bytes(b"x") if i % 2 else lc.ws.send_str('{"type": "nope"}'))
    closed = await lc.wait(lambda m: m.get("type") == "closed")
    assert closed["reason"] == "flooding" and "quá nhiều" in closed["message"]
    await asyncio.wait_for(lc._reader, 10)
    assert lc.ws.close_code == 1008
    answered = [m for m in lc.messages if m.get("type") == "error"]
    assert len(answered) <= config.limits.ws_burst + 20, len(answered)

    again = await connect(op, clients)  # the same login, at once: refused while it cools down
    closed = await again.wait(lambda m: m.get("type") == "closed")
    assert closed["reason"] == "flooding" and "thử lại sau" in closed["message"]
    assert again._reader is not None and again.ws is not None
    await asyncio.wait_for(again._reader, 10)
    assert again.ws.close_code == 1008
    other = await connect(await login_as(Role.OPERATOR), clients)  # others are not concerned
    assert (await other.request("ping"))["type"] == "pong"
    metrics = op.client.app[METRICS].registry
    assert metrics.get_sample_value("taphuan_ws_policy_closes_total", {"reason": "flooding"}) == 1
    assert metrics.get_sample_value("taphuan_ws_policy_closes_total", {"reason": "cooldown"}) == 1


async def test_ping_without_id_gets_a_pong_without_id(login_as: Factory, clients: list[LiveClient]) -> None:
    lc = await connect(await login_as(Role.OPERATOR), clients)
    await lc.send({"type": "ping"})
    pong = await lc.wait(lambda m: m.get("type") == "pong")
    assert "id" not in pong
    rid = "abc"
    start = len(lc.messages)
    await lc.send({"type": "ping", "id": rid})
    assert (await lc.wait(lambda m: m.get("type") == "pong", start=start)).get("id") == rid


async def test_closed_tells_why_in_words(login_as: Factory, clients: list[LiveClient]) -> None:
    op = await login_as(Role.OPERATOR)
    lc = await connect(op, clients)
    assert (await lc.request("ping"))["type"] == "pong"
    (conn,) = op.client.app[LIVE].connections
    await conn.close("link-revoked")
    closed = await lc.wait(lambda m: m.get("type") == "closed")
    assert closed["reason"] == "link-revoked" and "thu hồi" in closed["message"]


async def test_routes_refuse_roles_they_do_not_list(login_as: Factory, make_user: Factory, make_meeting: Factory,
                                                   make_classroom: Factory, clients: list[LiveClient]) -> None:
    room, room_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(classrooms=[room_id])
    lc = await connect(room, clients)
    await lc.join(meeting.id)
    for request, fields in (("give-floor", {"participant_id": None}), ("stats", {}), ("lock", {"locked": True}),
                            ("mute-all", {})):
        assert (await lc.request(request, **fields))["error"]["code"] == "forbidden", request
    assert (await lc.request("raise-hand", raised=True))["type"] == "ok"


async def test_joined_comes_before_the_state_of_the_room(login_as: Factory, make_user: Factory,
                                                         make_meeting: Factory, make_classroom: Factory,
                                                         clients: list[LiveClient],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The SFU queues the newcomer's view of the room (participant-joined, presenter, floor, offer, slot) as it
    joins, before the `joined` reply is built: the connection keeps them until the reply is written."""
    from server.live import chat

    trainer_user: User = await make_user(Role.TRAINER)
    room, room_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[room_id])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    await t.publish()
    original = chat.history_for

    async def slow_history(conn: Any) -> list[dict[str, Any]]:
        await asyncio.sleep(0.5)  # the room's events for the newcomer are long queued by now
        return await original(conn)

    monkeypatch.setattr(chat, "history_for", slow_history)
    a = await connect(room, clients)
    joined = await a.join(meeting.id)
    await a.wait(lambda m: m.get("type") == "slot" and m["slot"] == "presenter-video" and m["state"] == "live")
    types = [m["type"] for m in a.messages]
    assert types[:2] == ["joined", "chat-history"], types
    assert joined["room"]["presenter_id"] == t.participant_id
    for later in ("participant-joined", "presenter", "floor", "offer", "slot"):
        assert later in types[2:], (later, types)
    await a.wait_frames("presenter-video", 5)  # the offer that waited was answered: media flows


EVENTS: list[Event] = [
    ServerOffer(sdp="v=0\r\n", down=True, slots={"presenter-video": "0", "grid-3": "8"}),
    ParticipantJoined("p-1", "classroom", "Lớp 6A"),
    ParticipantLeft("p-1", "timeout"),
    ParticipantState("p-1", "reconnecting"),
    PresenterChanged("p-2", None),
    FloorChanged(None, "p-2"),
    SlotChanged("floor-video", "p-1", "camera", "muted"),
    GridChanged(0, 2, ("p-1", "p-3")),
    HandChanged("p-1", True),
    MuteRequested("mic", "p-2", True),
    PeerFailed(down=False, state="failed"),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_sfu_event_has_a_documented_wire_form(event: Event) -> None:
    message = event_message(event)
    assert problem("server", message) is None, problem("server", message)


def test_wire_form_of_events() -> None:
    assert event_message(PeerFailed(down=True, state="closed")) == {"type": "peer-failed", "pc": "down",
                                                                     "state": "closed"}
    assert event_message(GridChanged(1, 2, ("p-9",)))["participants"] == ["p-9"]
    assert "down" not in event_message(ServerOffer(sdp="v=0", down=True, slots={}))
    assert "receive" not in event_message(ServerOffer(sdp="v=0", down=True, slots={}, receive={"grid-0": "9"}))


def test_every_event_a_participant_receives_is_sent_with_its_fields() -> None:
    browsers = [cls for cls in DELIVERED if cls is not RelayWants]  # a cascade relay's only (server.live.cascade)
    assert {type(e) for e in EVENTS} == set(browsers)  # the list above covers them all
    # `down` shapes the message (see above); `receive` is a cascade relay's (its link's way up), never a browser's
    reshaped = {ServerOffer: {"down", "receive"}, PeerFailed: {"down"}}
    for cls in browsers:
        event = instance(cls)
        message = event_message(event)
        for f in dataclasses.fields(event):
            if f.name not in reshaped.get(cls, ()):
                value = getattr(event, f.name)
                assert message[f.name] == (list(value) if isinstance(value, tuple) else value), (cls, f.name)


async def test_a_lone_surrogate_is_refused_and_poisons_neither_the_lobby_nor_the_socket(
        login_as: Factory, make_user: Factory, make_meeting: Factory, clients: list[LiveClient],
        client: object, app: object) -> None:
    """A string holding a lone UTF-16 surrogate (valid JSON, but no text: it cannot be written as UTF-8) gets
    `bad-request`; later guests and moderators are served as if it had never been sent."""
    trainer_user: User = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer_user])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    evil = await connect(await guest_login(client, app, meeting.id), clients)
    reply = await evil.request("join", check=False, version=1, meeting_id=meeting.id, name="evil \ud800")
    assert reply["type"] == "error" and reply["error"]["code"] == "bad-request", reply
    for raw in ('{"type": "ping", "id": "x\\udfff"}', '{"type": "ping", "\\ud800": 1}',
                '{"type": "join", "version": 1, "meeting_id": 1, "resume": {"token": ["\\udc00"]}}'):
        start = len(evil.messages)
        await evil.ws.send_str(raw)  # type: ignore[union-attr]
        error = await evil.wait(lambda m: m.get("type") == "error", start=start)
        assert error["error"]["code"] == "bad-request" and error["id"] is None, (raw, error)
    assert (await evil.request("ping"))["type"] == "pong"  # the socket still serves (no HTTP 500 written into it)
    pair = await evil.request("join", check=False, version=1, meeting_id=meeting.id, name="Khách \ud83d\ude00")
    assert pair["type"] == "lobby"  # a valid surrogate pair is a character like any other

    later = await connect(await guest_login(client, app, meeting.id), clients)
    assert (await later.request("join", version=1, meeting_id=meeting.id, name="Khách sau"))["type"] == "lobby"
    await t.wait(lambda m: m.get("type") == "lobby-waiting"
                 and {e["name"] for e in m["waiting"]} == {"Khách 😀", "Khách sau"})
    op = await connect(await login_as(Role.OPERATOR), clients)
    await op.join(meeting.id)
    waiting = await op.wait(lambda m: m.get("type") == "lobby-waiting")
    lobby_id = next(e["lobby_id"] for e in waiting["waiting"] if e["name"] == "Khách sau")
    assert (await op.request("admit", lobby_id=lobby_id))["type"] == "ok"
    assert (await later.wait(lambda m: m.get("type") == "joined"))["name"] == "Khách sau"
    chat = await op.request("chat", check=False, text="xin chào \udbff")
    assert chat["error"]["code"] == "bad-request"
    assert (await op.request("chat", text="Xin chào cả lớp"))["type"] == "ok"
    await later.wait(lambda m: m.get("type") == "chat" and m["message"]["text"] == "Xin chào cả lớp")


async def test_a_fault_outside_a_request_closes_the_socket_with_1011_not_an_http_500(
        login_as: Factory, clients: list[LiveClient], monkeypatch: pytest.MonkeyPatch) -> None:
    from server.live.connection import Connection

    async def broken(self: Connection, text: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(Connection, "handle_text", broken)
    lc = await connect(await login_as(Role.OPERATOR), clients)
    await lc.send({"type": "ping", "id": 1})
    assert lc._reader is not None
    await asyncio.wait_for(lc._reader, 10)  # the server closed the socket
    assert lc.ws is not None and lc.ws.close_code == 1011


async def test_a_lone_surrogate_from_elsewhere_is_sent_escaped(login_as: Factory, clients: list[LiveClient]) -> None:
    op = await login_as(Role.OPERATOR)
    lc = await connect(op, clients)
    assert (await lc.request("ping"))["type"] == "pong"
    (conn,) = op.client.app[LIVE].connections
    await conn.send({"type": "closed", "reason": "logout", "message": "x\ud800"})  # UTF-8 cannot carry it
    closed = await lc.wait(lambda m: m.get("type") == "closed")
    assert closed["message"] == "x\ud800"
    assert (await lc.request("ping"))["type"] == "pong"


async def test_a_connection_reads_a_bounded_run_of_buffered_messages_before_others_get_the_loop(
        login_as: Factory, clients: list[LiveClient], config: Config) -> None:
    """aiohttp hands over buffered messages without waiting: the read loop itself lets the event loop turn every
    `TURN_BUDGET` messages, so what is dropped over the rate does not hold the loop either."""
    from server.live.connection import TURN_BUDGET

    op = await login_as(Role.OPERATOR)
    lc = await connect(op, clients)
    assert lc.ws is not None
    (conn,) = op.client.app[LIVE].connections
    for _ in range(config.limits.ws_burst):  # the burst spent: what follows is dropped unparsed
        await lc.ws.send_str('{"type": "nope"}')
    await lc.wait(lambda m: len([x for x in lc.messages if x.get("type") == "error"]) >= config.limits.ws_burst)
    runs: list[int] = []
    over = config.limits.ws_flood_messages - 20  # not closed for flooding

    async def tick() -> None:  # one step per turn of the event loop
        seen = conn.refused["rate-limited"]
        while True:
            await asyncio.sleep(0)
            now = conn.refused["rate-limited"]
            runs.append(now - seen)
            seen = now

    ticker = asyncio.create_task(tick())
    for _ in range(over):
        await lc.ws.send_str('{"type": "nope"}')
    await _answered_after(lc, 0)  # the server read them all
    ticker.cancel()
    assert sum(runs) >= over - 30, sum(runs)  # all but the few that tokens come back for
    assert max(runs) <= TURN_BUDGET, max(runs)


async def test_a_moderation_entry_names_the_participant_it_acted_on(
        app: Any, login_as: Factory, make_user: Factory, make_classroom: Factory, make_meeting: Factory,
        clients: list[LiveClient]) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    a_login, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp Ba Đình")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[a_id])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    a = await connect(a_login, clients)
    a_pid = (await a.request("join", version=1, meeting_id=meeting.id))["participant_id"]
    assert (await t.request("mute", participant_id=a_pid, source="mic", muted=True))["type"] == "ok"
    async with app[DB]() as s:
        entry = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "live.mute"))).one()
    assert entry.details == {"participant": a_pid, "source": "mic", "muted": True, "name": "Lớp Ba Đình"}
