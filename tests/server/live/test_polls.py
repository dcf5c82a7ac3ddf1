"""Tests of server.live.polls over /ws: create, answer (once per account), live results, close for everyone."""

from __future__ import annotations

from server.db.models import Role, User
from tests.live_client import LiveClient
from tests.server.livetest import Factory, classroom_login, connect


async def test_poll_round_trip(login_as: Factory, make_user: Factory, make_classroom: Factory,
                               make_meeting: Factory, clients: list[LiveClient]) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    a_login, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp A")
    b_login, b_id = await classroom_login(login_as, make_user, make_classroom, "Lớp B")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[a_id, b_id])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    a = await connect(a_login, clients)
    await a.join(meeting.id)

    assert (await a.request("poll-create", question="?", choices=["x", "y"]))["error"]["code"] == "forbidden"
    bad = await t.request("poll-create", question="Chọn một", choices=["chỉ một"], check=False)
    assert bad["error"]["code"] == "bad-message"
    created = await t.request("poll-create", question="Thầy cô đã nghe rõ chưa?", choices=["Rõ", "Chưa rõ"])
    poll_id = created["poll_id"]
    shown = await a.wait(lambda m: m.get("type") == "poll")
    assert shown["poll"]["choices"] == ["Rõ", "Chưa rõ"] and shown["poll"]["open"] is True

    assert (await a.request("poll-answer", poll_id=poll_id, choice=5))["error"]["code"] == "bad-message"
    for fields in ({"poll_id": 2**63, "choice": 0}, {"poll_id": -1, "choice": 0},
                   {"poll_id": poll_id, "choice": 2**63}):
        assert (await a.request("poll-answer", check=False, **fields))["error"]["code"] == "bad-message", fields
    assert (await t.request("poll-close", poll_id=2**63, check=False))["error"]["code"] == "bad-message"
    assert (await a.request("poll-answer", poll_id=poll_id, choice=1))["type"] == "ok"
    assert (await a.request("poll-answer", poll_id=poll_id, choice=0))["type"] == "ok"  # changes its answer
    live = await t.wait(lambda m: m.get("type") == "poll-results" and m["answered"] == 1 and m["counts"] == [1, 0])
    assert live["closed"] is False
    assert not any(m.get("type") == "poll-results" for m in a.messages)  # classrooms wait for the close

    # A late joiner sees the open poll and answers it.
    b = await connect(b_login, clients)
    await b.join(meeting.id)
    await b.wait(lambda m: m.get("type") == "poll" and m["poll"]["id"] == poll_id)
    assert (await b.request("poll-answer", poll_id=poll_id, choice=1))["type"] == "ok"

    assert (await t.request("poll-close", poll_id=poll_id))["type"] == "ok"
    for who in (t, a, b):
        final = await who.wait(lambda m: m.get("type") == "poll-results" and m["closed"])
        assert final["counts"] == [1, 1] and final["answered"] == 2
    assert (await a.request("poll-answer", poll_id=poll_id, choice=1))["error"]["code"] == "state"
