"""Tests of server.live.entry: who may join, the `joined` reply, resuming, replacing, admitting from the lobby."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from server.config import Config
from server.db.models import MeetingStatus, Role, User
from server.live.entry import ice_servers
from server.live.service import LIVE
from sfu.participant import Capabilities
from tests.live_client import LiveClient
from tests.server.livetest import Factory, classroom_login, connect, guest_login


async def test_join_errors(login_as: Factory, make_meeting: Factory, clients: list[LiveClient]) -> None:
    meeting = await make_meeting()
    lc = await connect(await login_as(Role.OPERATOR), clients)
    assert (await lc.request("join", version=99, meeting_id=meeting.id))["error"]["code"] == "version"
    assert (await lc.request("join", version=1, meeting_id=987654))["error"]["code"] == "not-found"
    assert (await lc.request("join", version=1, meeting_id="12", check=False))["error"]["code"] == "bad-message"
    # Ids the database cannot hold are refused at the boundary (they were `internal` errors), and the connection
    # stays usable.
    for bad in (2**63, 0, -1):
        reply = await lc.request("join", version=1, meeting_id=bad, check=False)
        assert reply["error"]["code"] == "bad-message" and "meeting_id" in reply["error"]["message"], bad
    assert (await lc.request("join", version=2**63, meeting_id=meeting.id, check=False))["error"]["code"] \
        == "bad-message"
    await lc.join(meeting.id)
    assert (await lc.request("join", version=1, meeting_id=meeting.id))["error"]["code"] == "already-joined"


async def test_who_may_join(login_as: Factory, make_user: Factory, make_meeting: Factory,
                            make_classroom: Factory, clients: list[LiveClient]) -> None:
    trainer: User = await make_user(Role.TRAINER)
    other_trainer = await login_as(Role.TRAINER)
    learner = await login_as(Role.LEARNER)
    invited, invited_id = await classroom_login(login_as, make_user, make_classroom)
    stranger, _ = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer], classrooms=[invited_id])
    draft = await make_meeting(presenters=[trainer], classrooms=[invited_id], status=MeetingStatus.DRAFT)
    for who in (other_trainer, learner, stranger):
        lc = await connect(who, clients)
        assert (await lc.request("join", version=1, meeting_id=meeting.id))["error"]["code"] == "forbidden"
    lc = await connect(invited, clients)
    not_yet = await lc.request("join", version=1, meeting_id=draft.id)
    assert not_yet["error"]["code"] == "forbidden" and "not published" in not_yet["error"]["message"]
    await lc.join(meeting.id)
    assert (await lc.request("give-floor", participant_id=None))["error"]["code"] == "forbidden"
    assert (await lc.request("stats"))["error"]["code"] == "forbidden"
    assert (await lc.request("lock", locked=True))["error"]["code"] == "forbidden"
    # The meeting's presenter may enter its room before it is published (to prepare).
    t = await connect(await login_as(user=trainer), clients)
    assert (await t.join(draft.id))["role"] == "trainer"


async def test_first_trainer_presents_and_a_later_one_does_not(login_as: Factory, make_user: Factory,
                                                               make_meeting: Factory,
                                                               clients: list[LiveClient]) -> None:
    first_user: User = await make_user(Role.TRAINER)
    second_user: User = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[first_user, second_user])
    op = await connect(await login_as(Role.OPERATOR), clients)
    assert (await op.join(meeting.id))["room"]["presenter_id"] is None  # operators never present by joining
    first = await connect(await login_as(user=first_user), clients)
    assert (await first.join(meeting.id))["room"]["presenter_id"] == first.participant_id
    second = await connect(await login_as(user=second_user), clients)
    assert (await second.join(meeting.id))["room"]["presenter_id"] == first.participant_id
    await first.request("leave")
    # The next trainer or leader in the room (in the order they joined) takes over.
    await op.wait(lambda m: m.get("type") == "presenter" and m["participant_id"] == second.participant_id)


async def test_second_pc_replaces_first(login_as: Factory, make_user: Factory, make_meeting: Factory,
                                        make_classroom: Factory, clients: list[LiveClient],
                                        aiohttp_client: Any) -> None:
    first, classroom_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(classrooms=[classroom_id])
    op = await login_as(Role.OPERATOR)
    watcher = await connect(op, clients)
    await watcher.join(meeting.id)
    pc1 = await connect(first, clients)
    await pc1.join(meeting.id)
    second = await login_as(user=first.user)  # same classroom account, another browser
    pc2 = await connect(second, clients)
    await pc2.join(meeting.id)
    closed = await pc1.wait(lambda m: m.get("type") == "closed")
    assert closed["reason"] == "replaced"
    left = await watcher.wait(lambda m: m.get("type") == "participant-left"
                              and m["participant_id"] == pc1.participant_id)
    assert left["participant_id"] != pc2.participant_id


async def test_lost_connection_resumes_as_same_participant(login_as: Factory, make_meeting: Factory,
                                                           clients: list[LiveClient],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from server.live import chat

    op = await login_as(Role.OPERATOR)
    trainer_user = await login_as(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer_user.user])
    watcher = await connect(op, clients)
    await watcher.join(meeting.id)
    t = await connect(trainer_user, clients)
    await t.join(meeting.id)
    # Simulate a network cut: close with an abnormal code (no clean close from the browser).
    await t.ws.close(code=4000)  # type: ignore[union-attr]
    await watcher.wait(lambda m: m.get("type") == "participant-state" and m["state"] == "reconnecting")
    original = chat.history_for

    async def slow_history(conn: Any) -> list[dict[str, Any]]:
        await asyncio.sleep(0.5)  # the room's events for the resumed participant are queued by now
        return await original(conn)

    monkeypatch.setattr(chat, "history_for", slow_history)
    t2 = await connect(trainer_user, clients)
    reply = await t2.request("join", version=1, meeting_id=meeting.id,
                             resume={"participant_id": t.participant_id, "token": t.resume_token})
    assert reply["type"] == "joined" and reply["participant_id"] == t.participant_id
    await watcher.wait(lambda m: m.get("type") == "participant-state" and m["state"] == "connected")
    await t2.wait(lambda m: m.get("type") == "offer")
    types = [m["type"] for m in t2.messages]
    assert types[:2] == ["joined", "chat-history"], types  # the new down offer follows the reply
    bad = await connect(trainer_user, clients)
    reply = await bad.request("join", version=1, meeting_id=meeting.id,
                              resume={"participant_id": t.participant_id, "token": "wrong"})
    assert reply["error"]["code"] == "token"
    # A participant gone for good (resume window over, removed) cannot be resumed either: join afresh.
    reply = await bad.request("join", version=1, meeting_id=meeting.id,
                              resume={"participant_id": "p-gone", "token": t.resume_token})
    assert reply["error"]["code"] == "token"


async def test_a_resume_into_a_room_that_is_gone_is_refused_without_making_the_room(
        app: Any, login_as: Factory, make_meeting: Factory, clients: list[LiveClient]) -> None:
    """A page resumes a participant whose room closed (or was another node's): `token`, and no empty room is made
    for the refusal (it would close after its grace while the join that follows made it again)."""
    trainer_user = await login_as(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer_user.user])
    t = await connect(trainer_user, clients)
    sfu = app[LIVE].sfu
    reply = await t.request("join", version=1, meeting_id=meeting.id,
                            resume={"participant_id": "p-elsewhere", "token": "from-another-node"})
    assert reply["error"]["code"] == "token"
    assert str(meeting.id) not in sfu.rooms
    joined = await t.join(meeting.id)  # as the page does next
    assert joined["type"] == "joined" and not sfu.rooms[str(meeting.id)].closed
    again = await connect(trainer_user, clients)  # the room is open now: a wrong resume is refused by the room
    reply = await again.request("join", version=1, meeting_id=meeting.id,
                                resume={"participant_id": "p-elsewhere", "token": "from-another-node"})
    assert reply["error"]["code"] == "token" and not sfu.rooms[str(meeting.id)].closed


async def test_admitted_connection_gets_joined_before_the_room(login_as: Factory, make_user: Factory,
                                                               make_meeting: Factory, clients: list[LiveClient],
                                                               client: object, app: object,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from server.live import chat

    trainer_user: User = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer_user])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    guest = await connect(await guest_login(client, app, meeting.id), clients)
    waiting = await guest.request("join", version=1, meeting_id=meeting.id, name="Khách mời")
    assert waiting["type"] == "lobby"
    entry = (await t.wait(lambda m: m.get("type") == "lobby-waiting" and m["waiting"]))["waiting"][0]
    original = chat.history_for

    async def slow_history(conn: Any) -> list[dict[str, Any]]:
        await asyncio.sleep(0.5)
        return await original(conn)

    monkeypatch.setattr(chat, "history_for", slow_history)
    start = len(guest.messages)
    assert (await t.request("admit", lobby_id=entry["lobby_id"]))["type"] == "ok"
    await guest.wait(lambda m: m.get("type") == "offer", start=start)
    types = [m["type"] for m in guest.messages[start:]]
    assert types[:2] == ["joined", "chat-history"], types
    assert guest.messages[start]["id"] == waiting["id"]


def test_turn_credentials(make_config: Callable[..., Config]) -> None:
    import base64
    import hashlib
    import hmac

    cfg = make_config(**{"sfu.stun_urls": ["stun:stun.example.vn:3478"],
                         "sfu.turn.urls": ["turn:turn.example.vn:3478"], "sfu.turn.secret": "s3cret",
                         "sfu.turn.ttl_seconds": 600})
    servers = ice_servers(cfg, "p-1", now=1_000_000)
    assert servers[0] == {"urls": ["stun:stun.example.vn:3478"]}
    turn = servers[1]
    assert turn["username"] == "1000600:p-1"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1000600:p-1", hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected


async def test_full_message_over_websocket(login_as: Factory, make_meeting: Factory,
                                           clients: list[LiveClient]) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    first = await connect(op, clients)
    await first.join(meeting.id)
    live = op.client.app[LIVE]
    live.sfu.config.__dict__["max_participants_per_room"] = 1  # frozen dataclass: set for this test only
    second = await connect(await login_as(Role.OPERATOR), clients)
    reply = await second.request("join", version=1, meeting_id=meeting.id)
    assert reply["error"]["code"] == "full"
    assert "đủ người" in reply["error"]["message"]
    assert (await first.request("ping"))["type"] == "pong"
    assert (await second.request("ping"))["type"] == "pong"  # a failed entry keeps nothing back


async def test_joined_reply_lists_who_joined_while_it_was_built(
        login_as: Factory, make_meeting: Factory, clients: list[LiveClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Someone joining while the `joined` reply is being built (the recorder, started by the first join, does)
    is in that reply: the browser rebuilds its participant list from it."""
    from server.live import chat

    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    original = chat.history_for

    async def history_while_someone_joins(conn: Any) -> list[dict[str, Any]]:
        async def on_event(event: Any) -> None:
            pass

        await conn.room.join("p-late", "recorder", "Ghi hình", Capabilities(), on_event)
        return await original(conn)

    monkeypatch.setattr(chat, "history_for", history_while_someone_joins)
    lc = await connect(op, clients)
    reply = await lc.join(meeting.id)
    assert [p["participant_id"] for p in reply["room"]["participants"]] == ["p-late"]


async def test_a_resume_takes_the_participant_from_a_socket_the_server_still_believed_open(
        login_as: Factory, make_meeting: Factory, clients: list[LiveClient]) -> None:
    op = await login_as(Role.OPERATOR)
    trainer_user = await login_as(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer_user.user])
    watcher = await connect(op, clients)
    await watcher.join(meeting.id)
    t = await connect(trainer_user, clients)
    await t.join(meeting.id)
    # The browser lost its socket during a cut and resumes on a new one before the server noticed the loss.
    t2 = await connect(trainer_user, clients)
    reply = await t2.request("join", version=1, meeting_id=meeting.id,
                             resume={"participant_id": t.participant_id, "token": t.resume_token})
    assert reply["type"] == "joined" and reply["participant_id"] == t.participant_id
    seen = len(watcher.messages)
    await t.ws.close(code=4000)  # type: ignore[union-attr]  # the old socket's end is noticed at last
    await asyncio.sleep(0.5)
    assert not [m for m in watcher.messages[seen:] if m.get("type") in ("participant-state", "participant-left")]
    assert (await t2.request("raise-hand", raised=True))["type"] == "ok"  # the resumed participant is intact
