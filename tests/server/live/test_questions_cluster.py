"""Tests of server.live.questions across nodes: two nodes (create_app twice) sharing one real redis-server, one real
PostgreSQL and one data directory (the fixtures of tests/server/live/test_cluster.py). A viewer's question posted
to the node that does not hold the meeting's room reaches the presenter's socket on the node that does, and the
presenter's answer reaches the viewer through that other node."""

from __future__ import annotations

from typing import Any

import pytest

from server.db.models import RecordingAudience, Role, User
from server.live.cluster import draining_key, room_key
from tests.conftest import LoggedIn, SharedClient
from tests.live_client import LiveClient
from tests.server.live.test_cluster import (  # noqa: F401  (fixtures: two nodes on one Redis)
    Client,
    browsers,
    client,
    config,
    node_b,
    node_config,
    on_node,
    ports,
    redis,
)
from tests.server.live.test_watch import broadcast
from tests.server.livetest import Factory, connect
from tests.server.test_bus import redis_url  # noqa: F401  (fixture: a real redis-server)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


async def test_a_question_posted_to_another_node_reaches_the_presenter_on_the_owner(
        client: Client, node_b: Client, login_as: Factory, make_user: Factory, make_meeting: Factory,  # noqa: F811
        clients: list[LiveClient], browsers: list[SharedClient], redis: Any) -> None:  # noqa: F811
    trainer_user: User = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    meeting = await make_meeting(presenters=[trainer_user])
    await broadcast(client.app, meeting, ended=False, audience=RecordingAudience.ALL)
    await redis.set(draining_key("b"), "1")  # the room goes to node a
    t = await connect(trainer, clients)
    await t.join(meeting.id)
    await redis.delete(draining_key("b"))
    assert await redis.get(room_key(meeting.id)) == b"a"

    learner = await login_as(Role.LEARNER, display_name="Cô Lò Thị Mai")
    viewer = LoggedIn(await on_node(learner, node_b, browsers), learner.user, learner.csrf)  # its page on node b
    base = f"/api/v1/broadcasts/{meeting.id}/questions"
    asked = await viewer.post(base, json={"viewer": "viewer-mai-01", "text": "Xin cô nhắc lại đề bài?"})
    assert asked.status == 201, await asked.text()
    q = await asked.json()
    seen = await t.wait(lambda m: m.get("type") == "broadcast-question" and m["question"]["id"] == q["id"])
    assert seen["question"]["name"] == "Cô Lò Thị Mai" and seen["question"]["state"] == "pending"

    assert (await t.request("question-answer", question_id=q["id"], text="Bài 3 trang 12."))["type"] == "ok"
    mine = await (await viewer.get(f"{base}?viewer=viewer-mai-01")).json()
    assert [(m["state"], m["answer"]) for m in mine] == [("answered", "Bài 3 trang 12.")]
