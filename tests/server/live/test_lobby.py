"""Tests of server.live.lobby over /ws: guests and locked rooms wait; admit, refuse, removal, unlock."""

from __future__ import annotations

from server.db.models import Role, User
from tests.live_client import LiveClient
from tests.server.livetest import Factory, classroom_login, connect, guest_login


async def test_guest_waits_until_admitted(login_as: Factory, make_user: Factory, make_meeting: Factory,
                                          clients: list[LiveClient], client: object, app: object) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer_user])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    guest = await connect(await guest_login(client, app, meeting.id), clients)
    reply = await guest.request("join", version=1, meeting_id=meeting.id, name="Bà Nguyễn Thị Mai")
    assert reply["type"] == "lobby"
    waiting = await t.wait(lambda m: m.get("type") == "lobby-waiting" and m["waiting"])
    entry = waiting["waiting"][0]
    assert entry["name"] == "Bà Nguyễn Thị Mai" and entry["role"] == "guest"
    assert (await guest.request("raise-hand", raised=True))["error"]["code"] == "not-joined"
    assert (await t.request("admit", lobby_id=entry["lobby_id"]))["type"] == "ok"
    joined = await guest.wait(lambda m: m.get("type") == "joined")
    assert joined["id"] == reply["id"] and joined["role"] == "guest"
    await t.wait(lambda m: m.get("type") == "lobby-waiting" and m["waiting"] == [])
    await t.wait(lambda m: m.get("type") == "participant-joined" and m["name"] == "Bà Nguyễn Thị Mai")
    # Guests do not publish.
    assert (await guest.request("publish", sdp="v=0"))["error"]["code"] == "forbidden"


async def test_locked_room_refuse_unlock_and_removal(login_as: Factory, make_user: Factory,
                                                    make_classroom: Factory, make_meeting: Factory,
                                                    clients: list[LiveClient]) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    a_login, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp A")
    b_login, b_id = await classroom_login(login_as, make_user, make_classroom, "Lớp B")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[a_id, b_id])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    assert (await t.request("lock", locked=True))["type"] == "ok"

    a = await connect(a_login, clients)
    assert (await a.request("join", version=1, meeting_id=meeting.id))["type"] == "lobby"
    waiting = await t.wait(lambda m: m.get("type") == "lobby-waiting" and m["waiting"])
    assert (await t.request("refuse", lobby_id=waiting["waiting"][0]["lobby_id"]))["type"] == "ok"
    closed = await a.wait(lambda m: m.get("type") == "closed")
    assert closed["reason"] == "refused"

    b = await connect(b_login, clients)
    first = await b.request("join", version=1, meeting_id=meeting.id)
    assert first["type"] == "lobby"
    assert (await t.request("lock", locked=False))["type"] == "ok"  # unlocking lets the waiting in
    await b.wait(lambda m: m.get("type") == "joined" and m["id"] == first["id"])

    # Removal: the removed classroom is told, and waits in the lobby when it comes back.
    b_pid = (await b.wait(lambda m: m.get("type") == "joined"))["participant_id"]
    assert (await b.request("remove", participant_id=t.participant_id))["error"]["code"] == "forbidden"
    assert (await t.request("remove", participant_id=b_pid))["type"] == "ok"
    assert (await b.wait(lambda m: m.get("type") == "closed"))["reason"] == "removed"
    await t.wait(lambda m: m.get("type") == "participant-left" and m["participant_id"] == b_pid)
    again = await connect(b_login, clients)
    assert (await again.request("join", version=1, meeting_id=meeting.id))["type"] == "lobby"


async def test_mute_all_and_audio_only(login_as: Factory, make_user: Factory, make_classroom: Factory,
                                       make_meeting: Factory, clients: list[LiveClient]) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    a_login, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp A")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[a_id])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    await t.publish()
    a = await connect(a_login, clients)
    await a.join(meeting.id)
    await a.publish()
    assert (await a.request("mute-all"))["error"]["code"] == "forbidden"
    reply = await t.request("mute-all", source="mic")
    assert reply["type"] == "ok" and reply["muted"] == 1
    await a.wait(lambda m: m.get("type") == "mute-request" and m["source"] == "mic" and m["muted"])
    await a.wait_frames("presenter-video", 5)
    assert (await a.request("audio-only", enabled=True))["type"] == "ok"
    await a.wait(lambda m: m.get("type") == "slot" and m["slot"] == "presenter-video" and m["state"] == "paused")


async def test_who_was_in_comes_back_into_a_locked_room(login_as: Factory, make_user: Factory,
                                                        make_classroom: Factory, make_meeting: Factory,
                                                        clients: list[LiveClient], client: object,
                                                        app: object) -> None:
    # A classroom whose cut outlasted its resume window joins afresh: the lock keeps newcomers out, not it. A
    # guest admitted once comes back too; a classroom that never came in waits, and so does a removed one.
    trainer_user: User = await make_user(Role.TRAINER)
    a_login, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp A")
    b_login, b_id = await classroom_login(login_as, make_user, make_classroom, "Lớp B")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[a_id, b_id])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    a = await connect(a_login, clients)
    await a.join(meeting.id)
    guest_cookie = await guest_login(client, app, meeting.id)
    g = await connect(guest_cookie, clients)
    waiting_reply = await g.request("join", version=1, meeting_id=meeting.id, name="Khách Lê Văn Bình")
    assert waiting_reply["type"] == "lobby"
    entry = (await t.wait(lambda m: m.get("type") == "lobby-waiting" and m["waiting"]))["waiting"][0]
    assert (await t.request("admit", lobby_id=entry["lobby_id"]))["type"] == "ok"
    await g.wait(lambda m: m.get("type") == "joined")
    assert (await t.request("lock", locked=True))["type"] == "ok"

    for login, who in ((a_login, a), (guest_cookie, g)):
        await who.close()
        again = await connect(login, clients)
        reply = await again.request("join", version=1, meeting_id=meeting.id, name="Khách Lê Văn Bình")
        assert reply["type"] == "joined", reply

    b = await connect(b_login, clients)
    assert (await b.request("join", version=1, meeting_id=meeting.id))["type"] == "lobby"
