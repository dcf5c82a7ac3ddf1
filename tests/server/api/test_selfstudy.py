"""Tests of server.api.selfstudy: writing quizzes, scored attempts, watch reports and the progress figures."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server.db.engine import DB
from server.db.models import AuditEntry, Role
from tests.server.learning_helpers import MP4, PDF, QUIZ, World, make_quiz, make_world, upload_form

HTML = {"Accept": "text/html"}


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom)


async def test_quiz_writing_is_for_trainers(app: web.Application, world: World, login_as: Any) -> None:
    for who in (world.learner, world.outsider, await login_as(Role.TRAINER), await login_as(Role.CLASSROOM)):
        r = await who.post(f"/api/v1/programs/{world.program_id}/quizzes", json=QUIZ)
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    qid = await make_quiz(world.trainer, world.program_id)
    for bad in ({"questions": []}, {"pass_percent": 120},
                {"questions": [{"text": "x", "choices": ["a"], "correct": [0]}]},
                {"questions": [{"text": "x", "choices": ["a", "b", "c", "d", "e", "f", "g"], "correct": [0]}]},
                {"questions": [{"text": "x", "choices": ["a", "b"], "correct": [2]}]},
                {"questions": [{"text": "x", "choices": ["a", "b"], "correct": []}]},
                {"meeting_id": 9999}):
        r = await world.trainer.post(f"/api/v1/programs/{world.program_id}/quizzes", json={**QUIZ, **bad})
        assert r.status == 422, bad
    r = await world.learner.put(f"/api/v1/quizzes/{qid}", json=QUIZ)
    assert r.status == 403
    r = await world.trainer.put(f"/api/v1/quizzes/{qid}", json={**QUIZ, "title": "Đã sửa"})
    assert r.status == 200 and (await r.json())["title"] == "Đã sửa"
    # learners do not see the correct choices, trainers do
    learner_view = await (await world.learner.get(f"/api/v1/quizzes/{qid}")).json()
    assert all(x["correct"] is None for x in learner_view["questions"])
    assert [x["multiple"] for x in learner_view["questions"]] == [False, True, False]
    trainer_view = await (await world.trainer.get(f"/api/v1/quizzes/{qid}")).json()
    assert trainer_view["questions"][1]["correct"] == [0, 2]
    assert (await world.outsider.get(f"/api/v1/quizzes/{qid}")).status == 403
    async with app[DB]() as s:
        actions = set((await s.scalars(select(AuditEntry.action))).all())
    assert {"quiz.create", "quiz.update"} <= actions


async def test_attempts_are_scored(world: World) -> None:
    qid = await make_quiz(world.trainer, world.program_id)
    r = await world.learner.post(f"/api/v1/quizzes/{qid}/attempts", json={"answers": [[1], [0], [1]]})
    assert r.status == 201
    a = await r.json()
    assert (a["correct"], a["total"], a["score_percent"], a["passed"]) == (1, 3, 33, False)
    assert a["per_question"] == [True, False, False] and a["correct_choices"][1] == [0, 2]
    r = await world.learner.post(f"/api/v1/quizzes/{qid}/attempts", json={"answers": [[1], [2, 0], [0]]})
    a = await r.json()
    assert (a["score_percent"], a["passed"]) == (100, True)
    r = await world.learner.post(f"/api/v1/quizzes/{qid}/attempts", json={"answers": [[7], [], []]})
    assert r.status == 422
    r = await world.outsider.post(f"/api/v1/quizzes/{qid}/attempts", json={"answers": [[1], [0, 2], [0]]})
    assert r.status == 403
    summary = await (await world.learner.get(f"/api/v1/programs/{world.program_id}/quizzes")).json()
    assert summary[0]["best_percent"] == 100 and summary[0]["passed"] is True
    # a draft quiz is hidden from learners
    draft = await make_quiz(world.trainer, world.program_id, published=False, title="Nháp")
    assert (await world.learner.get(f"/api/v1/quizzes/{draft}")).status == 404
    assert [x["id"] for x in await (await world.learner.get(
        f"/api/v1/programs/{world.program_id}/quizzes")).json()] == [qid]


@pytest.mark.both_databases
async def test_progress_figures(world: World) -> None:
    pid = world.program_id
    video = await (await world.trainer.post(f"/api/v1/programs/{pid}/materials",
                                            data=upload_form(MP4, "bai1.mp4", title="Video bài 1"))).json()
    video2 = await (await world.trainer.post(f"/api/v1/programs/{pid}/materials",
                                             data=upload_form(MP4 + b"2", "bai2.mp4"))).json()
    doc = await (await world.trainer.post(f"/api/v1/programs/{pid}/materials", data=upload_form(PDF))).json()
    qid = await make_quiz(world.trainer, pid)
    await make_quiz(world.trainer, pid, title="Bài 2")

    me = await (await world.learner.get(f"/api/v1/programs/{pid}/progress/me")).json()
    assert (me["videos_watched"], me["videos_total"], me["materials_opened"], me["materials_total"],
            me["quizzes_passed"], me["quizzes_total"], me["percent"]) == (0, 2, 0, 1, 0, 2, 0)

    item = f"material:{video['id']}"
    for position in (15, 30, 45):  # three reports of 15 s played of a 50 s video: 90 % → watched
        r = await world.learner.post("/api/v1/study/watch", json={"item": item, "position": position,
                                                                   "duration": 50, "played": 15})
        assert r.status == 200
    body = await r.json()
    assert body["completed"] is True and body["watched"] == 45
    # seeking to the end without playing does not count
    r = await world.learner.post("/api/v1/study/watch", json={"item": f"material:{video2['id']}", "position": 49,
                                                               "duration": 50, "played": 0})
    assert (await r.json())["completed"] is False
    r = await world.learner.post("/api/v1/study/watch", json={"item": f"material:{doc['id']}", "position": 1,
                                                               "duration": 5, "played": 1})
    assert r.status == 422
    r = await world.outsider.post("/api/v1/study/watch", json={"item": item, "position": 1, "duration": 5})
    assert r.status == 403
    assert (await world.learner.get(f"/api/v1/materials/{doc['id']}/file")).status == 200
    await world.learner.post(f"/api/v1/quizzes/{qid}/attempts", json={"answers": [[1], [0, 2], [1]]})

    me = await (await world.learner.get(f"/api/v1/programs/{pid}/progress/me")).json()
    assert (me["videos_watched"], me["materials_opened"], me["quizzes_passed"]) == (1, 1, 1)
    assert me["average_score"] == 67 and me["percent"] == 60  # 3 done of 5
    table = await (await world.trainer.get(f"/api/v1/programs/{pid}/progress")).json()
    assert [(p["username"], p["percent"]) for p in table] == [(world.learner.user.username, 60)]
    for who in (world.learner, world.outsider):
        assert (await who.get(f"/api/v1/programs/{pid}/progress")).status == 403
    assert (await world.operator.get(f"/api/v1/programs/{pid}/progress")).status == 200

    html = await (await world.learner.get(f"/study/{pid}", headers=HTML)).text()
    assert "Tiến độ của tôi" in html and 'aria-valuenow="50"' in html and "60%" in html
    html = await (await world.trainer.get(f"/study/{pid}/progress", headers=HTML)).text()
    assert "Nguyễn Văn An" in html and "60%" in html
    r = await world.trainer.get(f"/study/{pid}/progress?format=csv")
    assert r.status == 200 and "text/csv" in r.headers["Content-Type"]
    # videos, materials, e-learning packages (none here: completed, passed, total, score, minutes), quizzes
    assert f"{world.learner.user.username},Nguyễn Văn An,1,2,1,1,0,0,0,,0.0,1,2,67,60" in await r.text()
    assert (await world.learner.get(f"/study/{pid}/progress", headers=HTML)).status == 403
