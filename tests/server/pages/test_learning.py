"""Tests of server.pages.learning: the forum, materials, quiz and people pages of a program."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import FormData, web
from sqlalchemy import insert

from server.config import Config
from server.db.engine import DB
from server.db.models import Role, program_learners
from tests.server.learning_helpers import World, make_quiz, make_world, upload

HTML = {"Accept": "text/html"}


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    """config: uploads limited to 64 KiB (the materials page names the limit)."""
    return make_config(**{"limits.max_upload_bytes": 64 * 1024})


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom)


async def test_forum_pages(world: World) -> None:
    r = await world.learner.post(f"/study/{world.program_id}/forum", data={"csrf_token": world.learner.csrf,
                                                                           "title": "Hỏi chung"},
                                 headers=HTML, allow_redirects=False)
    assert r.status == 303
    topic_url = r.headers["Location"].split("?")[0]
    r = await world.learner.post(topic_url, data={"csrf_token": world.learner.csrf, "title": "Câu hỏi trên trang",
                                                  "body": "*Nội dung*"}, headers=HTML, allow_redirects=False)
    assert r.status == 303 and "notice=question-asked" in r.headers["Location"]
    qid = int(r.headers["Location"].rsplit("#q", 1)[1])
    html = await (await world.trainer.get(f"/study/{world.program_id}/forum", headers=HTML)).text()
    assert "Câu hỏi trên trang" in html and "Câu hỏi chưa được trả lời" in html
    html = await (await world.trainer.get("/forum/unanswered", headers=HTML)).text()
    assert "Câu hỏi trên trang" in html
    r = await world.trainer.post(f"/forum/questions/{qid}/reply", data={
        "csrf_token": world.trainer.csrf, "body": "Trả lời", "answered": "1"}, headers=HTML, allow_redirects=False)
    assert r.status == 303
    html = await (await world.learner.get(topic_url, headers=HTML)).text()
    assert "<em>Nội dung</em>" in html and "Đã trả lời" in html
    html = await (await world.trainer.get("/forum/unanswered", headers=HTML)).text()
    assert "Câu hỏi trên trang" not in html
    r = await world.learner.post(f"/forum/questions/{qid}/answered", data={"csrf_token": world.learner.csrf,
                                                                          "answered": "0"}, headers=HTML)
    assert r.status == 403
    r = await world.learner.get(f"/forum/meetings/{world.meeting_id}", headers=HTML)
    assert r.status == 200 and "Buổi 1: Số tự nhiên" in await r.text()


async def test_material_pages(world: World) -> None:
    mid = (await (await upload(world.trainer, world.program_id, title="Tài liệu hướng dẫn")).json())["id"]
    r = await world.trainer.get(f"/study/{world.program_id}/materials", headers=HTML)
    html = await r.text()
    assert r.status == 200 and "Tài liệu hướng dẫn" in html and "data-upload" in html and "64 KB" in html
    r = await world.learner.get(f"/study/{world.program_id}/materials", headers=HTML)
    html = await r.text()
    assert r.status == 200 and "Tài liệu hướng dẫn" in html and "data-upload" not in html
    r = await world.learner.get(f"/materials/{mid}", headers=HTML)
    html = await r.text()
    assert r.status == 200 and f'<iframe class="pdf-frame" src="/api/v1/materials/{mid}/file"' in html
    r = await world.outsider.get(f"/materials/{mid}", headers=HTML)
    assert r.status == 403
    r = await world.trainer.post(f"/materials/{mid}/delete", data={"csrf_token": world.trainer.csrf},
                                 headers=HTML, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].endswith("notice=material-deleted")


async def test_quiz_pages(world: World) -> None:
    qid = await make_quiz(world.trainer, world.program_id)
    html = await (await world.learner.get(f"/quizzes/{qid}", headers=HTML)).text()
    assert 'type="radio" name="q0"' in html and 'type="checkbox" name="q1"' in html
    r = await world.learner.post(f"/quizzes/{qid}", data=[("csrf_token", world.learner.csrf), ("q0", "1"),
                                                          ("q1", "0"), ("q1", "2"), ("q2", "1")],
                                 headers=HTML, allow_redirects=False)
    assert r.status == 303
    html = await (await world.learner.get(r.headers["Location"], headers=HTML)).text()
    assert 'data-score>67%' in html and "Đạt" in html
    other = await (await world.outsider.get(r.headers["Location"], headers=HTML)).text()
    assert "Không được phép" in other
    html = await (await world.trainer.get(f"/study/{world.program_id}/quizzes/new", headers=HTML)).text()
    assert "data-quiz-editor" in html
    assert (await world.learner.get(f"/study/{world.program_id}/quizzes/new", headers=HTML)).status == 403


async def test_people_page(world: World, make_user: Any) -> None:
    pid = world.program_id
    a = await make_user(Role.LEARNER, username="hv.csv1", display_name="Trần Thị Csv")
    html = await (await world.operator.get(f"/study/{pid}/people", headers=HTML)).text()
    assert "Giảng viên và học viên" in html and world.learner.user.display_name in html
    r = await world.operator.post(f"/study/{pid}/people", headers=HTML, allow_redirects=False, data=[
        ("csrf_token", world.operator.csrf), ("action", "save"), ("trainer_ids", str(world.trainer.user.id)),
        ("learner_ids", str(world.learner.user.id)), ("learner_ids", str(a.id))])
    assert r.status == 303 and r.headers["Location"].endswith("notice=people-saved")
    learners = await (await world.operator.get(f"/api/v1/programs/{pid}/learners")).json()
    assert {p["id"] for p in learners} == {world.learner.user.id, a.id}
    await make_user(Role.LEARNER, username="hv.csv2")
    form = FormData()
    form.add_field("action", "csv")
    form.add_field("file", b"username\nhv.csv2\n", filename="ds.csv", content_type="text/csv")
    r = await world.operator.client.post(f"/study/{pid}/people?csrf_token={world.operator.csrf}", data=form,
                                         headers=HTML, allow_redirects=False)
    assert r.status == 303, await r.text()
    learners = await (await world.operator.get(f"/api/v1/programs/{pid}/learners")).json()
    assert "hv.csv2" in {p["username"] for p in learners} and len(learners) == 3
    form = FormData()
    form.add_field("action", "csv")
    form.add_field("file", b"hv.khong-co\n", filename="ds.csv", content_type="text/csv")
    r = await world.operator.client.post(f"/study/{pid}/people?csrf_token={world.operator.csrf}", data=form,
                                         headers=HTML)
    assert r.status == 422 and "hv.khong-co" in await r.text()
    assert (await world.trainer.get(f"/study/{pid}/people", headers=HTML)).status == 403


async def test_progress_csv_keeps_names_inert(app: web.Application, world: World, make_user: Any) -> None:
    """A learner's display name that looks like a formula is text in the progress CSV; numbers stay numbers."""
    hostile = await make_user(Role.LEARNER, username="hv.formula", display_name='=HYPERLINK("http://x","y")')
    async with app[DB]() as s:
        await s.execute(insert(program_learners).values(program_id=world.program_id, user_id=hostile.id))
        await s.commit()
    r = await world.trainer.get(f"/study/{world.program_id}/progress?format=csv")
    assert r.status == 200 and "text/csv" in r.headers["Content-Type"]
    rows = list(csv.reader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    assert rows[0][:2] == ["username", "display_name"]
    by_user = {row[0]: row for row in rows[1:]}
    assert by_user["hv.formula"][1] == "'=HYPERLINK(\"http://x\",\"y\")" and by_user["hv.formula"][-1] == "0"
    assert by_user[world.learner.user.username][1] == "Nguyễn Văn An"
