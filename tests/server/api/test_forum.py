"""Tests of server.api.forum: topics, questions, replies, answered marks, unanswered lists, access; posted HTML
is inert."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server.db.engine import DB
from server.db.models import AuditEntry, Role
from tests.server.learning_helpers import XSS, World, ask, assert_inert, classroom_login, make_world, new_topic

HTML = {"Accept": "text/html"}


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom, email="an@example.edu.vn")


async def test_xss_posted_in_the_forum_is_inert_in_api_and_page(world: World) -> None:
    tid = await new_topic(world.learner, world.program_id)
    body = "\n\n".join(XSS)
    qid = await ask(world.learner, tid, "<script>alert('title')</script>", body)
    r = await world.trainer.post(f"/api/v1/forum/questions/{qid}/replies", json={"body": body})
    assert r.status == 201
    detail = await (await world.learner.get(f"/api/v1/forum/topics/{tid}")).json()
    q = detail["questions"][0]
    for html in (q["body_html"], q["replies"][0]["body_html"]):
        assert_inert(html)
    page = await (await world.learner.get(f"/forum/topics/{tid}", headers=HTML)).text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#39;title&#39;)" in page
    bodies = re.findall(r'<div class="post-body">(.*?)</div>', page, re.S)
    assert len(bodies) == 2
    for html in bodies:
        assert_inert(html)


async def test_questions_answers_and_unanswered_list(app: web.Application, world: World, login_as: Any) -> None:
    tid = await new_topic(world.learner, world.program_id)
    q1 = await ask(world.learner, tid, "Câu hỏi một")
    room = await classroom_login(login_as, world.classroom_id)
    q2 = await ask(room, tid, "Câu hỏi của lớp")
    # a meeting thread is made on the first question
    r = await world.learner.post(f"/api/v1/meetings/{world.meeting_id}/forum/questions", json={"title": "Về buổi 1"})
    assert r.status == 201
    q3 = (await r.json())["id"]

    r = await world.trainer.get("/api/v1/forum/unanswered")
    assert r.status == 200
    assert [o["id"] for o in await r.json()] == [q1, q2, q3]
    # learners may reply but not mark answered
    r = await world.learner.post(f"/api/v1/forum/questions/{q1}/replies", json={"body": "Em bổ sung", "answered": True})
    assert r.status == 403
    r = await world.learner.post(f"/api/v1/forum/questions/{q1}/answered", json={"answered": True})
    assert r.status == 403
    r = await world.learner.get("/api/v1/forum/unanswered")
    assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    # the trainer answers q1 and marks q2
    r = await world.trainer.post(f"/api/v1/forum/questions/{q1}/replies", json={"body": "Chấm theo **rubric**.",
                                                                              "answered": True})
    assert r.status == 201
    r = await world.trainer.post(f"/api/v1/forum/questions/{q2}/answered", json={"answered": True})
    assert r.status == 200 and (await r.json())["answered_at"] is not None
    assert [o["id"] for o in await (await world.trainer.get("/api/v1/forum/unanswered")).json()] == [q3]
    assert [o["id"] for o in await (await world.operator.get("/api/v1/forum/unanswered")).json()] == [q3]
    other = await login_as(Role.TRAINER)
    assert await (await other.get("/api/v1/forum/unanswered")).json() == []
    # reopened questions are listed again
    r = await world.trainer.post(f"/api/v1/forum/questions/{q2}/answered", json={"answered": False})
    assert (await r.json())["answered_at"] is None
    assert len(await (await world.trainer.get("/api/v1/forum/unanswered")).json()) == 2

    topics = await (await world.learner.get(f"/api/v1/programs/{world.program_id}/forum")).json()
    meeting_row = next(t for t in topics if t["meeting_id"] == world.meeting_id)
    free_row = next(t for t in topics if t["topic_id"] == tid)
    assert meeting_row["questions"] == 1 and meeting_row["open_questions"] == 1
    assert free_row["questions"] == 2 and free_row["open_questions"] == 1
    detail = await (await world.learner.get(f"/api/v1/forum/topics/{tid}")).json()
    answered = next(q for q in detail["questions"] if q["id"] == q1)
    assert answered["answered_by"] == "Cô Lan" and "<strong>rubric</strong>" in answered["replies"][0]["body_html"]
    assert detail["questions"][0]["id"] == q2  # open questions first
    async with app[DB]() as s:
        actions = set((await s.scalars(select(AuditEntry.action))).all())
    assert {"forum.topic", "forum.reply", "forum.answered", "forum.reopened"} <= actions


async def test_forum_access(world: World, login_as: Any, make_classroom: Any, client: Any) -> None:
    tid = await new_topic(world.trainer, world.program_id)
    for who in (world.outsider, await login_as(Role.TRAINER), await classroom_login(login_as, await make_classroom())):
        for method, url, body in (("get", f"/api/v1/programs/{world.program_id}/forum", None),
                                  ("get", f"/api/v1/forum/topics/{tid}", None),
                                  ("post", f"/api/v1/forum/topics/{tid}/questions", {"title": "x"}),
                                  ("post", f"/api/v1/programs/{world.program_id}/forum/topics", {"title": "x"})):
            r = await getattr(who, method)(url, **({"json": body} if body else {}))
            assert r.status == 403, (who.user.role, url)
            assert (await r.json())["error"]["code"] == "forbidden"
    assert (await client.get(f"/api/v1/forum/topics/{tid}")).status == 401
    r = await world.learner.post(f"/api/v1/forum/topics/{tid}/questions", json={"title": ""})
    assert r.status == 422
    assert (await world.learner.get("/api/v1/forum/topics/9999")).status == 404
