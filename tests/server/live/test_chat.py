"""Tests of server.live.chat over /ws: public and private messages, length limit, deletion, history."""

from __future__ import annotations

from typing import Any

from server.db.models import Role, User
from tests.live_client import LiveClient
from tests.server.livetest import Factory, classroom_login, connect


async def test_chat_reaches_everyone_and_late_joiners_get_history(
        login_as: Factory, make_user: Factory, make_classroom: Factory, make_meeting: Factory,
        clients: list[LiveClient], config: Any) -> None:
    trainer_user: User = await make_user(Role.TRAINER, display_name="Cô Hoa")
    a_login, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp A")
    b_login, b_id = await classroom_login(login_as, make_user, make_classroom, "Lớp B")
    late_login, late_id = await classroom_login(login_as, make_user, make_classroom, "Lớp C")
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[a_id, b_id, late_id])
    t = await connect(await login_as(user=trainer_user), clients)
    await t.join(meeting.id)
    a = await connect(a_login, clients)
    await a.join(meeting.id)
    b = await connect(b_login, clients)
    await b.join(meeting.id)

    reply = await a.request("chat", text="Xin chào cả lớp!")
    assert reply["type"] == "ok"
    for who in (t, a, b):
        got = await who.wait(lambda m: m.get("type") == "chat" and m["message"]["text"] == "Xin chào cả lớp!")
        assert got["message"]["from_name"] == "Lớp A" and got["message"]["private"] is False

    # Private to the presenter: only the presenter and the sender see it.
    start_b = len(b.messages)
    assert (await a.request("chat", text="Câu hỏi riêng", to=t.participant_id))["type"] == "ok"
    await t.wait(lambda m: m.get("type") == "chat" and m["message"]["text"] == "Câu hỏi riêng")
    # A classroom may not write privately to another classroom.
    denied = await a.request("chat", text="psst", to=b.participant_id)
    assert denied["error"]["code"] == "forbidden"
    # Length limit.
    too_long = await a.request("chat", text="x" * (config.limits.chat_message_chars + 1))
    assert too_long["error"]["code"] == "too-long"
    assert (await a.request("chat", text="   "))["error"]["code"] == "bad-message"

    # A presenter deletes a message for everyone; a classroom may not.
    wrong = await a.request("chat", text="Tin nhắn sai")
    assert (await b.request("chat-delete", message_id=wrong["message_id"]))["error"]["code"] == "forbidden"
    assert (await t.request("chat-delete", message_id=wrong["message_id"]))["type"] == "ok"
    for bad in (2**63, 0):
        assert (await t.request("chat-delete", message_id=bad, check=False))["error"]["code"] == "bad-message"
    await b.wait(lambda m: m.get("type") == "chat-deleted" and m["message_id"] == wrong["message_id"])
    assert not any(m.get("type") == "chat" and m["message"]["text"] == "Câu hỏi riêng" for m in b.messages[start_b:])

    # A late joiner gets the public history, without the private or the deleted message.
    late = await connect(late_login, clients)
    await late.join(meeting.id)
    history = await late.wait(lambda m: m.get("type") == "chat-history")
    texts = [m["text"] for m in history["messages"]]
    assert texts == ["Xin chào cả lớp!"]
    # The presenter, joining again, sees the private question in its history.
    t2 = await connect(await login_as(user=trainer_user), clients)
    await t2.join(meeting.id)
    history = await t2.wait(lambda m: m.get("type") == "chat-history")
    assert "Câu hỏi riêng" in [m["text"] for m in history["messages"]]
