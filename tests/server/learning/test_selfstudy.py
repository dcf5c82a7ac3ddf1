"""Tests of server.learning.selfstudy: quiz scoring, attempts, watch positions, published recordings as study videos."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from server.auth import Identity
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import QuizQuestion, Role
from server.errors import ApiError
from server.learning import selfstudy
from server.learning.selfstudy import score
from tests.server.learning_helpers import MP4, QUIZ, World, make_quiz, make_world, upload_form

HTML = {"Accept": "text/html"}


def q(correct: list[int], n: int = 4) -> QuizQuestion:
    return QuizQuestion(quiz_id=1, position=0, text="?", choices=[str(i) for i in range(n)], correct=correct)


def test_score_single_and_multiple_correct() -> None:
    questions = [q([1]), q([0, 2]), q([3])]
    s = score(questions, [[1], [0, 2], [3]], 60)
    assert (s.correct, s.total, s.percent, s.passed, s.per_question) == (3, 3, 100, True, [True, True, True])
    s = score(questions, [[1], [0], [3]], 60)  # a multiple-correct question needs every correct choice
    assert (s.correct, s.percent, s.passed, s.per_question) == (2, 67, True, [True, False, True])
    s = score(questions, [[1], [0, 2, 3], []], 60)  # an extra wrong choice makes it wrong
    assert (s.correct, s.percent, s.passed) == (1, 33, False)
    s = score(questions, [[2, 0], [2, 0]], 50)  # order does not matter; missing answers are wrong
    assert s.per_question == [False, True, False]
    assert score(questions, [[1], [0, 2], []], 67).passed is False  # 67 % rounds; 66.7 < 67 is not reached
    assert score(questions, [[1], [0, 2], []], 66).passed is True


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom)


async def test_published_recordings_are_study_videos(app: web.Application, world: World) -> None:
    """Published, ready recordings of the program join its lecture videos (items "recording:<id>"): listed on
    the program's page, played in the archive's player (with Range), watch progress counted like a video."""
    import datetime as dt

    from recorder.archive import finalize
    from server.db.models import Recording, RecordingState
    from server.learning.selfstudy import program_videos
    from tests.recorder.media import recorded_directory

    pid = world.program_id
    root = app[CONFIG].data_path / "recordings"
    recorded_directory(root / "rec-study", 2.0)
    result = finalize(root / "rec-study")
    early = dt.datetime(2024, 3, 1, 8, tzinfo=dt.UTC)
    ids: dict[str, int] = {}
    async with app[DB]() as s:
        for name, published, state in (("ready", True, RecordingState.READY), ("hidden", False, RecordingState.READY),
                                       ("busy", True, RecordingState.PROCESSING)):
            row = Recording(meeting_id=world.meeting_id, program_id=pid, title=f"Buổi 1 ({name})",
                            directory="rec-study", state=state, published=published, file=result.file,
                            mime=result.mime, duration=result.duration, size=result.size, started_at=early)
            s.add(row)
            await s.flush()
            ids[name] = row.id
        await s.commit()
    video = await (await world.trainer.post(f"/api/v1/programs/{pid}/materials",
                                            data=upload_form(MP4, "bai1.mp4", title="Video bài 1"))).json()
    async with app[DB]() as s:
        items = await program_videos(s, pid)
    # Oldest first: the recording was made before the video was uploaded.
    assert [i.key for i in items] == [f"recording:{ids['ready']}", f"material:{video['id']}"]
    rec = items[0]
    assert rec.url == f"/archive/{ids['ready']}" and rec.kind == "video" and rec.title == "Buổi 1 (ready)"

    html = await (await world.learner.get(f"/study/{pid}", headers=HTML)).text()
    assert f'href="/archive/{ids["ready"]}"' in html and "Bản ghi buổi tập huấn" in html
    assert f'/archive/{ids["hidden"]}"' not in html and f'/archive/{ids["busy"]}"' not in html
    me = await (await world.learner.get(f"/api/v1/programs/{pid}/progress/me")).json()
    assert (me["videos_watched"], me["videos_total"]) == (0, 2)

    item = f"recording:{ids['ready']}"
    for position in (15, 30, 45):
        r = await world.learner.post("/api/v1/study/watch", json={"item": item, "position": position,
                                                                   "duration": 50, "played": 15})
        assert r.status == 200, await r.text()
    assert (await r.json())["completed"] is True
    me = await (await world.learner.get(f"/api/v1/programs/{pid}/progress/me")).json()
    assert (me["videos_watched"], me["videos_total"]) == (1, 2)
    for bad, status in ((f"recording:{ids['hidden']}", 403), ("recording:987654", 404), ("meeting:1", 422)):
        r = await world.learner.post("/api/v1/study/watch", json={"item": bad, "position": 1, "duration": 5})
        assert r.status == status, bad
        assert "error" in await r.json()
    r = await world.outsider.post("/api/v1/study/watch", json={"item": item, "position": 1, "duration": 5})
    assert r.status == 403

    # The player resumes where the learner stopped and reports progress; the file is served with Range.
    html = await (await world.learner.get(f"/archive/{ids['ready']}", headers=HTML)).text()
    assert f'data-item="{item}"' in html and 'data-position="45.0"' in html and "study.js" in html
    assert f'href="/study/{pid}"' in html
    r = await world.learner.get(f"/api/v1/recordings/{ids['ready']}/media", headers={"Range": "bytes=0-99"})
    assert r.status == 206 and len(await r.read()) == 100
    # The program's trainer watches it too (not as a learner: nothing reported).
    r = await world.trainer.get(f"/archive/{ids['ready']}", headers=HTML)
    assert r.status == 200 and "data-study-video" not in await r.text()
    assert (await world.outsider.get(f"/archive/{ids['ready']}", headers=HTML)).status == 403


async def test_position_is_where_the_learner_stopped(app: web.Application, world: World) -> None:
    uid = world.learner.user.id
    async with app[DB]() as s:
        assert await selfstudy.position(s, uid, "material:1") == 0.0
        await selfstudy.record_watch(s, uid, world.program_id, "material:1", 42.0, 300.0, 10.0)
        await s.commit()
        assert await selfstudy.position(s, uid, "material:1") == 42.0
        assert await selfstudy.position(s, uid, "material:2") == 0.0


async def test_get_attempt_is_the_takers_or_the_trainers(app: web.Application, world: World) -> None:
    qid = await make_quiz(world.trainer, world.program_id)
    r = await world.learner.post(f"/api/v1/quizzes/{qid}/attempts", json={"answers": [[1], [0], [1]]})
    aid = (await r.json())["id"]
    learner = Identity(login_id="x", role=Role.LEARNER, csrf_token="", user_id=world.learner.user.id)
    outsider = Identity(login_id="y", role=Role.LEARNER, csrf_token="", user_id=world.outsider.user.id)
    async with app[DB]() as s:
        quiz, _questions = await selfstudy.get_quiz(s, qid)
        assert (await selfstudy.get_attempt(s, quiz, aid, learner, manage=False)).id == aid
        assert (await selfstudy.get_attempt(s, quiz, aid, outsider, manage=True)).id == aid
        for who, attempt_id in ((outsider, aid), (learner, 999_999)):
            with pytest.raises(ApiError) as info:
                await selfstudy.get_attempt(s, quiz, attempt_id, who, manage=False)
            assert info.value.status == 404


async def test_quiz_meeting_must_be_of_its_program(app: web.Application, world: World) -> None:
    async with app[DB]() as s:
        with pytest.raises(ApiError) as info:
            await selfstudy.create_quiz(s, None, world.program_id, selfstudy.QuizIn.model_validate(
                {**QUIZ, "meeting_id": 999_999}), None)
        assert info.value.extra["field"] == "meeting_id"
        quiz = await selfstudy.create_quiz(s, None, world.program_id, selfstudy.QuizIn.model_validate(
            {**QUIZ, "meeting_id": world.meeting_id}), None)
        assert quiz.meeting_id == world.meeting_id
