"""server.api.selfstudy: /api/v1 quizzes, attempts, watch progress and progress figures.

Trainers of a program (and operators) write quizzes and see everyone's progress; readers of the
program take its published quizzes and see their own score and progress. Correct answers are only
sent to those who manage the program (and in an attempt's result).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth import Identity, require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import MaterialKind, Quiz, QuizQuestion
from server.errors import ApiError
from server.learning import archive
from server.learning import materials as materials_svc
from server.learning import selfstudy as svc
from server.openapi import endpoint, int_param, json_response, parse_body
from server.people import enrolment
from server.people.accounts import find_user


class QuizSummaryOut(BaseModel):
    """QuizSummaryOut: a quiz in a program's list, with the caller's best score (null: not taken)."""

    id: int
    program_id: int
    meeting_id: int | None
    title: str
    description: str
    pass_percent: int
    published: bool
    questions: int
    best_percent: int | None
    passed: bool


class QuizQuestionOut(BaseModel):
    """QuizQuestionOut: a quiz question; `multiple` says several choices are correct; `correct` only for trainers."""

    position: int
    text: str
    choices: list[str]
    multiple: bool
    correct: list[int] | None = None


class QuizOut(BaseModel):
    """QuizOut: a quiz with its questions."""

    id: int
    program_id: int
    meeting_id: int | None
    title: str
    description: str
    pass_percent: int
    published: bool
    questions: list[QuizQuestionOut]


class AttemptOut(BaseModel):
    """AttemptOut: a graded attempt: questions right, percent, passed, and per question right or wrong."""

    id: int
    quiz_id: int
    correct: int
    total: int
    score_percent: int
    passed: bool
    pass_percent: int
    at: dt.datetime
    per_question: list[bool]
    correct_choices: list[list[int]]


class WatchIn(BaseModel):
    """WatchIn: the player's report: the item, where it is, the video's length, seconds played since the last."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    item: Annotated[str, StringConstraints(pattern=r"^(material|recording):\d{1,12}$")]
    position: float = Field(ge=0, le=86400 * 2)
    duration: float = Field(ge=0, le=86400 * 2)
    played: float = Field(0, ge=0, le=3600)


class ItemProgressOut(BaseModel):
    """ItemProgressOut: one item's progress for the caller."""

    item: str
    position: float
    duration: float
    watched: float
    completed: bool


class LearnerProgressOut(BaseModel):
    """LearnerProgressOut: one learner's figures in a program."""

    user_id: int
    username: str
    display_name: str
    videos_watched: int
    videos_total: int
    materials_opened: int
    materials_total: int
    quizzes_passed: int
    quizzes_total: int
    average_score: int | None
    percent: int
    last_at: dt.datetime | None
    packages_completed: int = 0
    packages_passed: int = 0
    packages_total: int = 0
    package_score: int | None = None
    package_seconds: float = 0.0


def progress_out(request: web.Request, p: svc.Progress) -> LearnerProgressOut:
    """progress_out: Progress as LearnerProgressOut."""
    tz = request.app[CONFIG].tz
    return LearnerProgressOut(user_id=p.user_id, username=p.username, display_name=p.display_name,
                       videos_watched=p.videos_watched, videos_total=p.videos_total,
                       materials_opened=p.materials_opened, materials_total=p.materials_total,
                       quizzes_passed=p.quizzes_passed, quizzes_total=p.quizzes_total,
                       average_score=p.average_score, percent=p.percent,
                       packages_completed=p.packages_completed, packages_passed=p.packages_passed,
                       packages_total=p.packages_total, package_score=p.package_score,
                       package_seconds=round(p.package_seconds, 2),
                       last_at=p.last_at.astimezone(tz) if p.last_at else None)


def quiz_out(quiz: Quiz, questions: list[QuizQuestion], with_answers: bool) -> QuizOut:
    """quiz_out: a quiz with its questions (correct choices only `with_answers`)."""
    return QuizOut(id=quiz.id, program_id=quiz.program_id, meeting_id=quiz.meeting_id, title=quiz.title,
                   description=quiz.description, pass_percent=quiz.pass_percent, published=quiz.published,
                   questions=[QuizQuestionOut(position=q.position, text=q.text, choices=list(q.choices),
                                          multiple=len(q.correct) > 1,
                                          correct=list(q.correct) if with_answers else None) for q in questions])


@endpoint("GET", "/api/v1/programs/{id}/quizzes", name="api-program-quizzes",
          summary="Quizzes of a program (published ones for learners) with the caller's best score",
          response=QuizSummaryOut, response_list=True, tag="study")
async def list_quizzes(request: web.Request) -> web.Response:
    """list_quizzes: the program's quizzes."""
    ident = require(request)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        access = await enrolment.require_access(s, ident, pid)
        rows = await svc.list_quizzes(s, pid, published_only=not access.manage)
        out = []
        for quiz, n in rows:
            attempts = await svc.attempts_of(s, quiz.id, ident.user_id) if ident.user_id else []
            out.append(QuizSummaryOut(
                id=quiz.id, program_id=quiz.program_id, meeting_id=quiz.meeting_id, title=quiz.title,
                description=quiz.description, pass_percent=quiz.pass_percent, published=quiz.published, questions=n,
                best_percent=max((a.score_percent for a in attempts), default=None),
                passed=any(a.passed for a in attempts)))
    return json_response(out)


@endpoint("POST", "/api/v1/programs/{id}/quizzes", name="api-quiz-create",
          summary="Write a quiz (trainers of the program, operators)", body=svc.QuizIn, response=QuizOut, status=201,
          tag="study")
async def create_quiz(request: web.Request) -> web.Response:
    """create_quiz: add a quiz with its questions."""
    ident = require(request)
    pid = int_param(request, "id")
    data = await parse_body(request, svc.QuizIn)
    async with request.app[DB]() as s:
        await enrolment.require_access(s, ident, pid, manage=True)
    async with request.app[DB]() as s:
        quiz = await svc.create_quiz(s, request, pid, data, ident.user_id)
        await s.commit()
        quiz, questions = await svc.get_quiz(s, quiz.id)
    return json_response(quiz_out(quiz, questions, True), status=201)


async def _quiz(request: web.Request, manage: bool = False) -> tuple[Quiz, list[QuizQuestion], enrolment.Access]:
    ident = require(request)
    qid = int_param(request, "id")
    async with request.app[DB]() as s:
        quiz, questions = await svc.get_quiz(s, qid)
        access = await enrolment.require_access(s, ident, quiz.program_id, manage=manage)
    if not quiz.published and not access.manage:
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
    return quiz, questions, access


@endpoint("GET", "/api/v1/quizzes/{id}", name="api-quiz", summary="A quiz with its questions", response=QuizOut,
          tag="study")
async def get_quiz(request: web.Request) -> web.Response:
    """get_quiz: a quiz (correct choices only for those who manage the program)."""
    quiz, questions, access = await _quiz(request)
    return json_response(quiz_out(quiz, questions, access.manage))


@endpoint("PUT", "/api/v1/quizzes/{id}", name="api-quiz-update", summary="Replace a quiz and its questions",
          body=svc.QuizIn, response=QuizOut, tag="study")
async def update_quiz(request: web.Request) -> web.Response:
    """update_quiz: replace the quiz's fields and questions."""
    data = await parse_body(request, svc.QuizIn)
    quiz, _, _ = await _quiz(request, manage=True)
    async with request.app[DB]() as s:
        quiz, _ = await svc.get_quiz(s, quiz.id)
        await svc.update_quiz(s, request, quiz, data)
        await s.commit()
        quiz, questions = await svc.get_quiz(s, quiz.id)
    return json_response(quiz_out(quiz, questions, True))


@endpoint("DELETE", "/api/v1/quizzes/{id}", name="api-quiz-delete", summary="Delete a quiz and its attempts",
          status=204, tag="study")
async def delete_quiz(request: web.Request) -> web.Response:
    """delete_quiz: remove a quiz."""
    quiz, _, _ = await _quiz(request, manage=True)
    async with request.app[DB]() as s:
        quiz, _ = await svc.get_quiz(s, quiz.id)
        await svc.delete_quiz(s, request, quiz)
        await s.commit()
    return web.Response(status=204)


def attempt_out(request: web.Request, attempt_id: int, quiz: Quiz, questions: list[QuizQuestion],
                result: svc.Score, at: dt.datetime) -> AttemptOut:
    """attempt_out: a graded attempt as AttemptOut."""
    return AttemptOut(id=attempt_id, quiz_id=quiz.id, correct=result.correct, total=result.total,
                      score_percent=result.percent, passed=result.passed, pass_percent=quiz.pass_percent,
                      at=at.astimezone(request.app[CONFIG].tz), per_question=result.per_question,
                      correct_choices=[list(q.correct) for q in questions])


@endpoint("POST", "/api/v1/quizzes/{id}/attempts", name="api-quiz-attempt",
          summary="Submit answers to a quiz; returns the score", body=svc.AttemptIn, response=AttemptOut, status=201,
          tag="study",
          errors=(409,))
async def submit_attempt(request: web.Request) -> web.Response:
    """submit_attempt: grade and keep the caller's answers."""
    ident = require(request)
    data = await parse_body(request, svc.AttemptIn)
    quiz, questions, _ = await _quiz(request)
    if ident.user_id is None:
        raise ApiError(403, "forbidden", "Cần tài khoản để làm bài. / An account is needed to take a quiz.")
    async with request.app[DB]() as s:
        attempt, result = await svc.submit(s, quiz, questions, ident.user_id, data)
        await s.commit()
    return json_response(attempt_out(request, attempt.id, quiz, questions, result, attempt.at), status=201)


async def _recording_program(s: AsyncSession, ident: Identity, recording_id: int) -> int:
    """_recording_program: the program of a recording the caller may watch as a study item (404 / 403 / 422)."""
    row = await archive.viewable(s, ident, recording_id)
    if row.program_id is None:
        raise ApiError(422, "invalid", "item: bản ghi không thuộc chương trình nào / the recording belongs to no "
                       "program", field="item")
    return row.program_id


@endpoint("POST", "/api/v1/study/watch", name="api-study-watch",
          summary="Report video watching (every ~15 s: position, duration, seconds played since the last report)",
          body=WatchIn, response=ItemProgressOut, tag="study", errors=(404,))
async def watch(request: web.Request) -> web.Response:
    """watch: record a learner's watch progress on a video material or a published recording of a program
    (others who may watch it: accepted, not recorded)."""
    ident = require(request)
    data = await parse_body(request, WatchIn)
    kind, raw_id = data.item.split(":", 1)
    async with request.app[DB]() as s:
        if kind == "recording":
            program_id = await _recording_program(s, ident, int(raw_id))
        else:
            material = await materials_svc.get(s, int(raw_id))
            if material.kind != MaterialKind.VIDEO:
                await enrolment.require_access(s, ident, material.program_id)
                raise ApiError(422, "invalid", "item: không phải video / not a video", field="item")
            program_id = material.program_id
        access = await enrolment.require_access(s, ident, program_id)
        if not access.learner or ident.user_id is None:
            return json_response(ItemProgressOut(item=data.item, position=data.position, duration=data.duration,
                                                 watched=0.0, completed=False))
        row = await svc.record_watch(s, ident.user_id, program_id, data.item, data.position,
                                     data.duration, data.played)
        await s.commit()
        out = ItemProgressOut(item=row.item, position=row.position, duration=row.duration, watched=row.watched,
                              completed=row.completed)
    return json_response(out)


@endpoint("GET", "/api/v1/programs/{id}/progress", name="api-program-progress",
          summary="Every enrolled learner's progress (trainers of the program, operators)", response=LearnerProgressOut,
          response_list=True, tag="study")
async def program_progress(request: web.Request) -> web.Response:
    """program_progress: the progress table of a program."""
    ident = require(request)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        await enrolment.require_access(s, ident, pid, manage=True)
        users = await svc.enrolled_users(s, pid)
        rows = await svc.program_progress(s, pid, users)
    return json_response([progress_out(request, p) for p in rows])


@endpoint("GET", "/api/v1/programs/{id}/progress/me", name="api-program-progress-me",
          summary="The caller's own progress in a program", response=LearnerProgressOut, tag="study")
async def my_progress(request: web.Request) -> web.Response:
    """my_progress: the caller's figures."""
    ident = require(request)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        await enrolment.require_access(s, ident, pid)
        user = await find_user(s, ident.user_id)
        if user is None:
            raise ApiError(403, "forbidden", "Cần tài khoản. / An account is needed.")
        rows = await svc.program_progress(s, pid, [user])
    return json_response(progress_out(request, rows[0]))
