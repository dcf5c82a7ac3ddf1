"""Tests of server.live.rooms: the open rooms of meetings, read as frozen snapshots and figures."""

from __future__ import annotations

from typing import Any

from server.db.models import Role, User
from server.live.rooms import open_meetings, open_rooms
from server.live.service import LIVE
from tests.live_client import LiveClient
from tests.server.livetest import Factory, classroom_login, connect


async def test_open_rooms_are_the_meetings_rooms_now(login_as: Factory, make_user: Factory, make_meeting: Factory,
                                                    make_classroom: Factory, clients: list[LiveClient],
                                                    app: Any) -> None:
    live = app[LIVE]
    assert open_meetings(live) == [] and open_rooms(live, [1, 2]) == {}
    trainer_user: User = await make_user(Role.TRAINER)
    room_a, id_a = await classroom_login(login_as, make_user, make_classroom, "Lớp A")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[id_a])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    a = await connect(room_a, clients)
    await a.join(meeting.id)
    await live.sfu.room("not-a-meeting")  # a room not named by a meeting id is no meeting's
    assert open_meetings(live) == [meeting.id]

    (room,) = open_rooms(live, [meeting.id, 987654]).values()  # a meeting without a room is left out
    assert room.meeting_id == meeting.id
    assert [(p.id, p.role, p.name) for p in room.state.participants] == [
        (t.participant_id, "trainer", trainer_user.display_name), (a.participant_id, "classroom", "Lớp A")]
    assert room.state.presenter_id == t.participant_id and not room.state.locked
    assert {p.participant_id for p in room.stats.participants} == {t.participant_id, a.participant_id}

    await a.request("raise-hand", raised=True)
    later = open_rooms(live, [meeting.id])[meeting.id]
    assert later.state.participant(a.participant_id).hand_raised  # type: ignore[union-attr]
    assert not room.state.participant(a.participant_id).hand_raised  # type: ignore[union-attr]  # still then

    await live.sfu.rooms[str(meeting.id)].close()
    assert open_meetings(live) == [] and open_rooms(live, [meeting.id]) == {}
