"""server.learning.selfstudy: self-study and self-assessment: lecture videos, quizzes, scores and progress.

- Study items are keyed strings: "material:<id>" for uploaded materials and "recording:<id>" for the
  program's published recordings (`program_videos`, played in the archive's player at /archive/<id>,
  served with HTTP Range), with no schema change: `StudyProgress` keeps any item.
- `record_open` counts a learner opening a material; `record_watch` takes the player's report (every
  ~15 s: position, duration and seconds actually played since the last report, capped) and marks a
  video watched once 90 % of it has been played.
- Quizzes: trainers write short multiple-choice quizzes (2–6 choices per question, one or several
  correct, a pass mark in percent). `score` grades all-or-nothing per question; `submit` keeps every
  attempt; a learner's result per quiz is the best attempt.
- `program_progress` gives each learner's figures (videos watched, materials opened, SCORM packages
  completed and passed with their score and time, quizzes passed, best scores, overall percent) for the
  learner's own page and for the trainers' table.
Writes of trainers (quizzes) are audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from sqlalchemy import Select, case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.auth import Identity
from server.db.models import (
    Material,
    MaterialKind,
    Quiz,
    QuizAttempt,
    QuizQuestion,
    Recording,
    RecordingState,
    StudyProgress,
    User,
    program_learners,
    utcnow,
)
from server.errors import ApiError
from server.inputs import Id
from server.schedule.meetings import check_program_meeting

WATCHED_SHARE = 0.9
MAX_PLAYED_PER_REPORT = 30.0
Choice = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


# --- study items ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StudyItem:
    """StudyItem: something a learner studies: a video (watched) or another material (opened)."""

    key: str
    title: str
    kind: str
    url: str
    meeting_id: int | None = None
    created_at: dt.datetime | None = None


def material_item(m: Material) -> StudyItem:
    """material_item: a Material as a StudyItem."""
    return StudyItem(key=f"material:{m.id}", title=m.title, kind=m.kind.value, url=f"/materials/{m.id}",
                     meeting_id=m.meeting_id, created_at=m.created_at)


def recording_item(r: Recording) -> StudyItem:
    """recording_item: a published recording as a StudyItem (played in the archive's player)."""
    return StudyItem(key=f"recording:{r.id}", title=r.title, kind="video", url=f"/archive/{r.id}",
                     meeting_id=r.meeting_id, created_at=r.started_at)


def published_recordings(program_id: int) -> Select[Any]:
    """published_recordings: the query of a program's recordings that learners may watch (ready and published)."""
    return select(Recording).where(Recording.program_id == program_id, Recording.published.is_(True),
                                   Recording.state == RecordingState.READY)


async def program_videos(s: AsyncSession, program_id: int) -> list[StudyItem]:
    """program_videos: the lecture videos of a program, oldest first: uploaded videos and published recordings.

    Recordings are StudyItems keyed "recording:<id>" with their player URL; progress and figures count them
    like uploaded videos.
    """
    q = (select(Material).where(Material.program_id == program_id, Material.kind == MaterialKind.VIDEO)
         .order_by(Material.created_at, Material.id))
    items = [material_item(m) for m in (await s.scalars(q)).all()]
    recordings: Sequence[Recording] = (await s.scalars(published_recordings(program_id))).all()
    items += [recording_item(r) for r in recordings]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(items, key=lambda i: i.created_at or epoch)


async def program_documents(s: AsyncSession, program_id: int) -> list[StudyItem]:
    """program_documents: the other materials of a program (documents, slides, packages, images)."""
    q = (select(Material).where(Material.program_id == program_id, Material.kind != MaterialKind.VIDEO)
         .order_by(Material.created_at, Material.id))
    return [material_item(m) for m in (await s.scalars(q)).all()]


async def _progress_row(s: AsyncSession, user_id: int, program_id: int, item: str) -> StudyProgress:
    row = await s.scalar(select(StudyProgress).where(StudyProgress.user_id == user_id, StudyProgress.item == item))
    if row is None:
        now = utcnow()
        row = StudyProgress(user_id=user_id, program_id=program_id, item=item, first_at=now, last_at=now, opens=0,
                            position=0.0, duration=0.0, watched=0.0, completed=False)
        s.add(row)
    return row


async def position(s: AsyncSession, user_id: int, item: str) -> float:
    """position: where the learner stopped in a video item (seconds; 0 when never played)."""
    row = await s.scalar(select(StudyProgress).where(StudyProgress.user_id == user_id, StudyProgress.item == item))
    return row.position if row else 0.0


async def record_open(s: AsyncSession, user_id: int, program_id: int, item: str) -> StudyProgress:
    """record_open: a learner opened a study item (counted; a non-video is then done)."""
    row = await _progress_row(s, user_id, program_id, item)
    row.opens = (row.opens or 0) + 1
    row.last_at = utcnow()
    return row


async def record_watch(s: AsyncSession, user_id: int, program_id: int, item: str, position: float,
                       duration: float, played: float) -> StudyProgress:
    """record_watch: the player's report: where it is, how long the video is and what was played since."""
    row = await _progress_row(s, user_id, program_id, item)
    row.position = max(0.0, position)
    if duration > 0:
        row.duration = duration
    row.watched = (row.watched or 0.0) + min(max(played, 0.0), MAX_PLAYED_PER_REPORT)
    if row.duration > 0:
        row.watched = min(row.watched, row.duration)
        if row.watched >= WATCHED_SHARE * row.duration:
            row.completed = True
    row.last_at = utcnow()
    return row


# --- quizzes --------------------------------------------------------------------------------------

class QuizQuestionIn(BaseModel):
    """QuizQuestionIn: one multiple-choice question: 2–6 choices, the indexes (from 0) of the correct ones."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    choices: list[Choice] = Field(min_length=2, max_length=6)
    correct: list[int] = Field(min_length=1, max_length=6)

    @model_validator(mode="after")
    def _check(self) -> QuizQuestionIn:
        if any(i < 0 or i >= len(self.choices) for i in self.correct):
            raise ValueError("correct: each index must name one of the choices")
        self.correct = sorted(set(self.correct))
        return self


class QuizIn(BaseModel):
    """QuizIn: a quiz with its questions (1–50) and its pass mark in percent."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000)] = ""
    meeting_id: Id | None = None
    pass_percent: int = Field(70, ge=0, le=100)
    published: bool = False
    questions: list[QuizQuestionIn] = Field(min_length=1, max_length=50)


class AttemptIn(BaseModel):
    """AttemptIn: the chosen choice indexes for each question, in question order."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    answers: list[list[int]] = Field(max_length=50)

    @field_validator("answers")
    @classmethod
    def _sets(cls, value: list[list[int]]) -> list[list[int]]:
        return [sorted(set(a)) for a in value]


@dataclass(frozen=True)
class Score:
    """Score: how an attempt did: questions right out of total, percent, passed, right or wrong per question."""

    correct: int
    total: int
    percent: int
    passed: bool
    per_question: list[bool]


def score(questions: Sequence[QuizQuestion], answers: Sequence[Sequence[int]], pass_percent: int) -> Score:
    """score: grade answers all-or-nothing per question (the exact set of correct choices); passed is unrounded."""
    per_question = []
    for i, q in enumerate(questions):
        given = sorted(set(answers[i])) if i < len(answers) else []
        per_question.append(given == sorted(set(q.correct)))
    total = len(questions)
    right = sum(per_question)
    percent = round(100 * right / total) if total else 0
    return Score(correct=right, total=total, percent=percent, passed=total > 0 and 100 * right >= pass_percent * total,
                 per_question=per_question)


async def get_quiz(s: AsyncSession, quiz_id: int) -> tuple[Quiz, list[QuizQuestion]]:
    """get_quiz: a quiz and its questions in order, or 404."""
    quiz = await s.get(Quiz, quiz_id)
    if quiz is None:
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
    qs = (await s.scalars(select(QuizQuestion).where(QuizQuestion.quiz_id == quiz_id)
                          .order_by(QuizQuestion.position))).all()
    return quiz, list(qs)


async def list_quizzes(s: AsyncSession, program_id: int, published_only: bool) -> list[tuple[Quiz, int]]:
    """list_quizzes: a program's quizzes with their number of questions, oldest first."""
    counts = (select(QuizQuestion.quiz_id, func.count(QuizQuestion.id).label("n"))
              .group_by(QuizQuestion.quiz_id).subquery())
    q = (select(Quiz, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.quiz_id == Quiz.id)
         .where(Quiz.program_id == program_id).order_by(Quiz.created_at, Quiz.id))
    if published_only:
        q = q.where(Quiz.published.is_(True))
    return [(quiz, int(n)) for quiz, n in (await s.execute(q)).all()]


def _questions(quiz_id: int, data: QuizIn) -> list[QuizQuestion]:
    return [QuizQuestion(quiz_id=quiz_id, position=i, text=q.text, choices=list(q.choices), correct=list(q.correct))
            for i, q in enumerate(data.questions)]


async def create_quiz(s: AsyncSession, request: web.Request | None, program_id: int, data: QuizIn,
                      actor_id: int | None) -> Quiz:
    """create_quiz: add a quiz with its questions (audited; 422 for a meeting of another program)."""
    await check_program_meeting(s, program_id, data.meeting_id)
    quiz = Quiz(program_id=program_id, meeting_id=data.meeting_id, title=data.title, description=data.description,
                pass_percent=data.pass_percent, published=data.published, created_at=utcnow(), created_by=actor_id)
    s.add(quiz)
    await s.flush()
    s.add_all(_questions(quiz.id, data))
    audit.record(s, request, "quiz.create", f"quiz:{quiz.id}", program_id=program_id, title=quiz.title,
                 questions=len(data.questions))
    return quiz


async def update_quiz(s: AsyncSession, request: web.Request | None, quiz: Quiz, data: QuizIn) -> Quiz:
    """update_quiz: replace a quiz's fields and questions (earlier attempts keep their scores; audited; 422 for a
    meeting of another program)."""
    await check_program_meeting(s, quiz.program_id, data.meeting_id)
    quiz.title, quiz.description, quiz.meeting_id = data.title, data.description, data.meeting_id
    quiz.pass_percent, quiz.published = data.pass_percent, data.published
    await s.execute(delete(QuizQuestion).where(QuizQuestion.quiz_id == quiz.id))
    s.add_all(_questions(quiz.id, data))
    audit.record(s, request, "quiz.update", f"quiz:{quiz.id}", title=quiz.title, questions=len(data.questions))
    return quiz


async def delete_quiz(s: AsyncSession, request: web.Request | None, quiz: Quiz) -> None:
    """delete_quiz: remove a quiz with its questions and attempts (audited)."""
    audit.record(s, request, "quiz.delete", f"quiz:{quiz.id}", title=quiz.title)
    await s.delete(quiz)


async def submit(s: AsyncSession, quiz: Quiz, questions: Sequence[QuizQuestion], user_id: int,
                 data: AttemptIn) -> tuple[QuizAttempt, Score]:
    """submit: grade and keep one attempt (422 when an answer names a choice that does not exist)."""
    if not questions:
        raise ApiError(409, "quiz-empty", "Bài kiểm tra chưa có câu hỏi. / The quiz has no questions.")
    if len(data.answers) > len(questions):
        raise ApiError(422, "invalid", "answers: nhiều câu trả lời hơn số câu hỏi / more answers than questions",
                       field="answers")
    for i, given in enumerate(data.answers):
        if any(c < 0 or c >= len(questions[i].choices) for c in given):
            raise ApiError(422, "invalid", f"answers.{i}: lựa chọn không tồn tại / no such choice",
                           field=f"answers.{i}")
    result = score(questions, data.answers, quiz.pass_percent)
    attempt = QuizAttempt(quiz_id=quiz.id, user_id=user_id,
                          answers=[list(a) for a in data.answers] + [[]] * (len(questions) - len(data.answers)),
                          correct_count=result.correct, total=result.total, score_percent=result.percent,
                          passed=result.passed, at=utcnow())
    s.add(attempt)
    await s.flush()
    return attempt, result


async def attempts_of(s: AsyncSession, quiz_id: int, user_id: int) -> list[QuizAttempt]:
    """attempts_of: one learner's attempts at a quiz, newest first."""
    q = (select(QuizAttempt).where(QuizAttempt.quiz_id == quiz_id, QuizAttempt.user_id == user_id)
         .order_by(QuizAttempt.at.desc(), QuizAttempt.id.desc()))
    return list((await s.scalars(q)).all())


async def get_attempt(s: AsyncSession, quiz: Quiz, attempt_id: int, ident: Identity, manage: bool) -> QuizAttempt:
    """get_attempt: an attempt at `quiz` that is the caller's own, or anyone's for those who `manage` (else 404)."""
    attempt = await s.get(QuizAttempt, attempt_id)
    if attempt is None or attempt.quiz_id != quiz.id or (attempt.user_id != ident.user_id and not manage):
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
    return attempt


# --- progress -------------------------------------------------------------------------------------

@dataclass
class Progress:
    """Progress: one learner's figures in one program."""

    user_id: int
    username: str = ""
    display_name: str = ""
    videos_total: int = 0
    videos_watched: int = 0
    video_share: dict[str, float] = field(default_factory=dict)
    materials_total: int = 0
    materials_opened: int = 0
    opened: set[str] = field(default_factory=set)
    quizzes_total: int = 0
    quizzes_passed: int = 0
    best: dict[int, int] = field(default_factory=dict)
    passed: set[int] = field(default_factory=set)
    last_at: dt.datetime | None = None
    packages_total: int = 0
    packages_completed: int = 0
    packages_passed: int = 0
    package_seconds: float = 0.0
    package_scores: dict[int, int] = field(default_factory=dict)

    @property
    def done(self) -> int:
        """Progress.done: items completed (videos watched, materials opened, SCORM packages completed, quizzes
        passed)."""
        return self.videos_watched + self.materials_opened + self.packages_completed + self.quizzes_passed

    @property
    def total(self) -> int:
        """Progress.total: items to complete."""
        return self.videos_total + self.materials_total + self.packages_total + self.quizzes_total

    @property
    def package_score(self) -> int | None:
        """Progress.package_score: the mean score of the SCORM packages that gave one, in percent (None: none)."""
        return round(sum(self.package_scores.values()) / len(self.package_scores)) if self.package_scores else None

    @property
    def percent(self) -> int:
        """Progress.percent: done out of total, in percent (0 when there is nothing yet)."""
        return round(100 * self.done / self.total) if self.total else 0

    @property
    def average_score(self) -> int | None:
        """Progress.average_score: the mean of the best scores of the quizzes taken (None: none taken)."""
        return round(sum(self.best.values()) / len(self.best)) if self.best else None


def pct(part: int, whole: int) -> int:
    """pct: part of whole in percent (0 when whole is 0)."""
    return round(100 * part / whole) if whole else 0


async def program_progress(s: AsyncSession, program_id: int, users: Sequence[User]) -> list[Progress]:
    """program_progress: the figures of each of `users` in a program (published quizzes only).

    A material that is a SCORM package counts as done when the learner completed it (every SCO), not when it
    was opened (server.learning.scormrt.package_results)."""
    from server.learning import scormrt

    videos = await program_videos(s, program_id)
    scorm_ids = await scormrt.playable_materials(s, program_id)
    documents = [d for d in await program_documents(s, program_id) if int(d.key.split(":")[1]) not in scorm_ids]
    quizzes = [q for q, n in await list_quizzes(s, program_id, published_only=True) if n]
    ids = [u.id for u in users]
    out = {u.id: Progress(user_id=u.id, username=u.username, display_name=u.display_name,
                          videos_total=len(videos), materials_total=len(documents), quizzes_total=len(quizzes),
                          packages_total=len(scorm_ids))
           for u in users}
    if not ids:
        return []
    video_keys = {v.key for v in videos}
    doc_keys = {d.key for d in documents}
    rows = (await s.scalars(select(StudyProgress).where(StudyProgress.program_id == program_id,
                                                        StudyProgress.user_id.in_(ids)))).all()
    for row in rows:
        p = out[row.user_id]
        if p.last_at is None or row.last_at > p.last_at:
            p.last_at = row.last_at
        if row.item in video_keys:
            p.video_share[row.item] = min(1.0, row.watched / row.duration) if row.duration else 0.0
            p.videos_watched += int(row.completed)
        elif row.item in doc_keys and row.opens > 0:
            p.opened.add(row.item)
    quiz_ids = [q.id for q in quizzes]
    if quiz_ids:
        best = (select(QuizAttempt.user_id, QuizAttempt.quiz_id, func.max(QuizAttempt.score_percent),
                       func.max(case((QuizAttempt.passed, 1), else_=0)),  # PostgreSQL has no max(boolean)
                       func.max(QuizAttempt.at))
                .where(QuizAttempt.quiz_id.in_(quiz_ids), QuizAttempt.user_id.in_(ids))
                .group_by(QuizAttempt.user_id, QuizAttempt.quiz_id))
        for uid, qid, top, passed, at in (await s.execute(best)).all():
            p = out[uid]
            p.best[qid] = int(top)
            if passed:
                p.passed.add(qid)
            if at is not None:
                at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
                if p.last_at is None or at > p.last_at:
                    p.last_at = at
    for (uid, mid), result in (await scormrt.package_results(s, program_id, ids) if scorm_ids else {}).items():
        p = out[uid]
        p.packages_completed += int(result.completed)
        p.packages_passed += int(bool(result.passed))
        p.package_seconds += result.seconds
        if result.score is not None:
            p.package_scores[mid] = result.score
        if result.last_at is not None and (p.last_at is None or result.last_at > p.last_at):
            p.last_at = result.last_at
    for p in out.values():
        p.materials_opened = len(p.opened)
        p.quizzes_passed = len(p.passed)
    return [out[i] for i in ids]


async def enrolled_users(s: AsyncSession, program_id: int) -> list[User]:
    """enrolled_users: the learners of a program, by name (the rows of the progress table)."""
    q = (select(User).join(program_learners, program_learners.c.user_id == User.id)
         .where(program_learners.c.program_id == program_id).order_by(User.display_name, User.id))
    return list((await s.scalars(q)).all())
