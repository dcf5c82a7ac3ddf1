"""server.pages.learning: the learning pages of a program: study hub, materials, forum, quizzes, progress, people.

- `/study`: the caller's programs (learners with their progress); trainers also see open questions.
- `/study/{pid}`: a program's hub (videos, materials, quizzes and, for learners, their own progress);
  tabs lead to `/study/{pid}/materials`, `/forum`, `/quizzes`, `/progress` (trainers, operators) and
  `/people` (operators enrol learners and assign trainers).
- `/materials/{id}`: a material's viewer: PDF in the browser, video player reporting watch progress,
  image, or a download card.
- `/forum/topics/{id}`, `/forum/meetings/{id}`, `/forum/unanswered`: questions and answers.
- `/quizzes/{id}` (take), `/quizzes/{id}/attempts/{aid}` (score), quiz editor pages.
Access is `server.people.enrolment.program_access`; writes go through the service modules (audited there).
Also registers the jinja filter `markdown` (`filesize` is server.formats') and the Mailer (`server.mail.setup`).
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from server import mail
from server.auth import Identity, require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import MaterialKind, Meeting, Program, Role, User
from server.errors import ApiError
from server.i18n import _
from server.inputs import read_form
from server.learning import forum, scormrt, selfstudy
from server.learning import materials as materials_svc
from server.openapi import int_param, parse_int
from server.pages.meetings import field_message
from server.people import enrolment
from server.people.accounts import find_user
from server.reports import exports
from server.schedule.meetings import meeting_by_id

NOTICES = {
    "material-uploaded": "The material was uploaded.",
    "material-deleted": "The material was deleted.",
    "topic-created": "The topic was created.",
    "question-asked": "Your question was sent to the trainers.",
    "reply-posted": "Your reply was posted.",
    "marked-answered": "The question is marked answered.",
    "marked-open": "The question is open again.",
    "quiz-saved": "The quiz was saved.",
    "quiz-deleted": "The quiz was deleted.",
    "people-saved": "The trainers and learners were saved.",
    "learners-imported": "The learners of the file were enrolled.",
}
KIND_LABELS = {"document": "Document", "slides": "Slides", "package": "E-learning package", "video": "Video",
               "image": "Image"}


def notice(request: web.Request) -> str:
    """notice: the translated message named by ?notice= (only known codes), or ""."""
    text = NOTICES.get(request.query.get("notice", ""))
    return _(request, text) if text else ""


def _ids(values: list[Any], name: str) -> list[int]:
    """_ids: posted numbers (one that is not a number: 404, as a wrong id in the path would be)."""
    out = [parse_int(v, name) for v in values]
    if any(v is None for v in out):
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.")
    return [v for v in out if v is not None]


async def _program(s: AsyncSession, request: web.Request, pid: int,
                   manage: bool = False) -> tuple[Identity, Program, enrolment.Access]:
    ident = require(request)
    program, access = await enrolment.program_for(s, ident, pid, manage=manage)
    return ident, program, access


def _hub(program: Program, access: enrolment.Access, tab: str, ident: Identity, **extra: Any) -> dict[str, Any]:
    return {"program": program, "access": access, "tab": tab, "is_operator": ident.role == Role.OPERATOR,
            **extra}


async def _me(s: AsyncSession, ident: Identity) -> User | None:
    return await find_user(s, ident.user_id)


# --- study ----------------------------------------------------------------------------------------

@aiohttp_jinja2.template("study.html")
async def study_page(request: web.Request) -> dict[str, Any]:
    """study_page: the caller's programs, with progress (learners) or open questions (trainers)."""
    ident = require(request)
    async with request.app[DB]() as s:
        programs = await enrolment.my_programs(s, ident)
        progress: dict[int, selfstudy.Progress] = {}
        me = await _me(s, ident)
        if ident.role == Role.LEARNER and me is not None:
            for p in programs:
                progress[p.id] = (await selfstudy.program_progress(s, p.id, [me]))[0]
        open_questions = await forum.unanswered(s, ident) if ident.is_staff else []
    return {"programs": programs, "progress": progress, "open_questions": open_questions, "notice": notice(request)}


@aiohttp_jinja2.template("study_program.html")
async def program_hub(request: web.Request) -> dict[str, Any]:
    """program_hub: a program's videos, materials and quizzes, and the learner's own progress."""
    async with request.app[DB]() as s:
        ident, program, access = await _program(s, request, int_param(request, "id"))
        materials = await materials_svc.list_for(s, program.id)
        videos = await selfstudy.program_videos(s, program.id)  # uploaded videos and published recordings
        quizzes = await selfstudy.list_quizzes(s, program.id, published_only=not access.manage)
        me = await _me(s, ident)
        progress = (await selfstudy.program_progress(s, program.id, [me]))[0] if me is not None else None
        trainers = await enrolment.trainers(s, program.id)
        meetings = await forum.program_meetings(s, program.id, ident)
    documents = [m for m in materials if m.kind != MaterialKind.VIDEO]
    return _hub(program, access, "overview", ident, videos=videos, documents=documents, quizzes=quizzes,
                progress=progress, trainers=trainers, meetings=meetings, notice=notice(request))


# --- materials ------------------------------------------------------------------------------------

@aiohttp_jinja2.template("materials.html")
async def materials_page(request: web.Request) -> dict[str, Any]:
    """materials_page: a program's materials; trainers and operators upload with a progress bar."""
    async with request.app[DB]() as s:
        ident, program, access = await _program(s, request, int_param(request, "id"))
        materials = await materials_svc.list_for(s, program.id)
        meetings = await forum.program_meetings(s, program.id, ident)
        packages = await scormrt.packages_by_hash(s, [m.sha256 for m in materials if m.kind == MaterialKind.PACKAGE])
    limit = request.app[CONFIG].limits.max_upload_bytes
    return _hub(program, access, "materials", ident, materials=materials, meetings=meetings, packages=packages,
                meeting_titles={m.id: m.title for m in meetings}, limit=limit,
                limit_text=materials_svc.mb(limit), notice=notice(request))


@aiohttp_jinja2.template("materials_view.html")
async def material_page(request: web.Request) -> dict[str, Any]:
    """material_page: show a material (PDF viewer, video player, image) and count the learner's opening."""
    ident = require(request)
    async with request.app[DB]() as s:
        material = await materials_svc.get(s, int_param(request, "id"))
        ident, program, access = await _program(s, request, material.program_id)
        row = None
        if access.learner and ident.user_id is not None:
            row = await selfstudy.record_open(s, ident.user_id, program.id, f"material:{material.id}")
            await s.commit()
        meeting = await meeting_by_id(s, material.meeting_id)
        package, results = None, []
        if material.kind == MaterialKind.PACKAGE:
            package = await scormrt.ensure(s, request.app[CONFIG], material)
            await s.commit()
            if access.manage and scormrt.playable(package):
                results = await scormrt.material_attempts(s, material.id)
    return _hub(program, access, "materials", ident, m=material, meeting=meeting,
                position=row.position if row else 0.0, inline=materials_svc.is_inline(material.mime),
                notice="", package=package, results=results)


async def material_delete(request: web.Request) -> web.StreamResponse:
    """material_delete: POST /materials/{id}/delete (trainers of the program, operators)."""
    ident = require(request)
    async with request.app[DB]() as s:
        material = await materials_svc.get(s, int_param(request, "id"))
        await enrolment.require_access(s, ident, material.program_id, manage=True)
        pid = material.program_id
        await materials_svc.delete(s, request, material)
        await s.commit()
    raise web.HTTPSeeOther(f"/study/{pid}/materials?notice=material-deleted")


# --- forum ----------------------------------------------------------------------------------------

@aiohttp_jinja2.template("forum.html")
async def forum_page(request: web.Request) -> dict[str, Any]:
    """forum_page: a program's meeting threads and free topics; trainers see its open questions."""
    async with request.app[DB]() as s:
        ident, program, access = await _program(s, request, int_param(request, "id"))
        errors: dict[str, str] = {}
        if request.method == "POST":
            form = await read_form(request)
            try:
                data = forum.TopicIn.model_validate({"title": str(form.get("title", ""))})
                topic = await forum.create_topic(s, request, program.id, data, ident.user_id)
                await s.commit()
                raise web.HTTPSeeOther(f"/forum/topics/{topic.id}?notice=topic-created")
            except ValidationError:
                errors["title"] = _(request, "Enter a title (at most 300 characters).")
        rows = await forum.topics(s, program.id, ident)
        open_questions = await forum.unanswered(s, ident, program.id) if access.manage else []
    return _hub(program, access, "forum", ident, rows=rows, open_questions=open_questions, errors=errors,
                notice=notice(request))


async def _thread(request: web.Request, s: AsyncSession, ident: Identity, topic: Any, meeting: Meeting | None,
                  access: enrolment.Access, program: Program, errors: dict[str, str],
                  values: dict[str, str]) -> web.StreamResponse:
    views = await forum.questions(s, topic.id) if topic is not None else []
    ctx = _hub(program, access, "forum", ident, topic=topic, meeting=meeting, views=views, errors=errors,
               values=values, notice=notice(request))
    return aiohttp_jinja2.render_template("forum_topic.html", request, ctx, status=422 if errors else 200)


async def _ask_form(request: web.Request) -> tuple[forum.QuestionIn | None, dict[str, str], dict[str, str]]:
    form = await read_form(request)
    values = {"title": str(form.get("title", "")), "body": str(form.get("body", ""))}
    try:
        return forum.QuestionIn.model_validate(values), {}, values
    except ValidationError as exc:
        name = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else "title"
        msg = "Enter a title (at most 300 characters)." if name == "title" else "The text is too long."
        return None, {name: _(request, msg)}, values


async def topic_page(request: web.Request) -> web.StreamResponse:
    """topic_page: a topic's questions and answers; POST asks a new question."""
    ident = require(request)
    async with request.app[DB]() as s:
        topic = await forum.get_topic(s, int_param(request, "id"))
        ident, program, access = await _program(s, request, topic.program_id)
        meeting = await meeting_by_id(s, topic.meeting_id)
        errors: dict[str, str] = {}
        values = {"title": "", "body": ""}
        if request.method == "POST":
            data, errors, values = await _ask_form(request)
            if data is not None:
                question = await forum.ask(s, topic, data, ident.user_id)
                await s.commit()
                await forum.notify_new_question(s, request, topic, question)
                raise web.HTTPSeeOther(f"/forum/topics/{topic.id}?notice=question-asked#q{question.id}")
        return await _thread(request, s, ident, topic, meeting, access, program, errors, values)


async def meeting_thread(request: web.Request) -> web.StreamResponse:
    """meeting_thread: a meeting's thread (shown empty until the first question, which makes it)."""
    ident = require(request)
    async with request.app[DB]() as s:
        meeting = await forum.thread_meeting(s, ident, int_param(request, "id"))
        ident, program, access = await _program(s, request, meeting.program_id)
        topic = await forum.meeting_topic(s, meeting, ident.user_id, create=False)
        if topic is not None and request.method == "GET":
            raise web.HTTPSeeOther(f"/forum/topics/{topic.id}")
        errors: dict[str, str] = {}
        values = {"title": "", "body": ""}
        if request.method == "POST":
            data, errors, values = await _ask_form(request)
            if data is not None:
                topic = await forum.meeting_topic(s, meeting, ident.user_id, create=True)
                assert topic is not None
                question = await forum.ask(s, topic, data, ident.user_id)
                await s.commit()
                await forum.notify_new_question(s, request, topic, question)
                raise web.HTTPSeeOther(f"/forum/topics/{topic.id}?notice=question-asked#q{question.id}")
        return await _thread(request, s, ident, topic, meeting, access, program, errors, values)


async def question_reply(request: web.Request) -> web.StreamResponse:
    """question_reply: POST a reply (trainers may tick "mark answered")."""
    ident = require(request)
    form = await read_form(request)
    async with request.app[DB]() as s:
        question, topic = await forum.get_question(s, int_param(request, "id"))
        access = await enrolment.require_access(s, ident, topic.program_id)
        try:
            data = forum.ReplyIn.model_validate({"body": str(form.get("body", "")),
                                                 "answered": access.manage and form.get("answered") is not None})
        except ValidationError:
            raise web.HTTPSeeOther(f"/forum/topics/{topic.id}#q{question.id}") from None
        was_open = question.answered_at is None
        await forum.reply(s, request, question, data, ident, access.manage)
        await s.commit()
        if data.answered and was_open:
            await forum.notify_answered(s, request, topic, question, data.body)
    raise web.HTTPSeeOther(f"/forum/topics/{topic.id}?notice=reply-posted#q{question.id}")


async def question_mark(request: web.Request) -> web.StreamResponse:
    """question_mark: POST answered=1 (mark answered) or answered=0 (open again); trainers, operators."""
    ident = require(request)
    form = await read_form(request)
    answered = str(form.get("answered", "1")) == "1"
    async with request.app[DB]() as s:
        question, topic = await forum.get_question(s, int_param(request, "id"))
        await enrolment.require_access(s, ident, topic.program_id, manage=True)
        was_open = question.answered_at is None
        await forum.mark(s, request, question, answered, ident)
        await s.commit()
        if answered and was_open:
            await forum.notify_answered(s, request, topic, question, "")
    back = str(form.get("next", ""))
    if back.startswith("/forum/") and not back.startswith("//"):
        raise web.HTTPSeeOther(back)
    code = "marked-answered" if answered else "marked-open"
    raise web.HTTPSeeOther(f"/forum/topics/{topic.id}?notice={code}#q{question.id}")


@aiohttp_jinja2.template("forum_unanswered.html")
async def unanswered_page(request: web.Request) -> dict[str, Any]:
    """unanswered_page: every open question of the programs the trainer answers for."""
    ident = require(request, Role.OPERATOR, Role.TRAINER, Role.LEADER)
    async with request.app[DB]() as s:
        rows = await forum.unanswered(s, ident)
    return {"rows": rows, "notice": notice(request)}


# --- quizzes --------------------------------------------------------------------------------------

@aiohttp_jinja2.template("quiz_list.html")
async def quizzes_page(request: web.Request) -> dict[str, Any]:
    """quizzes_page: a program's quizzes with the caller's best score."""
    async with request.app[DB]() as s:
        ident, program, access = await _program(s, request, int_param(request, "id"))
        rows = await selfstudy.list_quizzes(s, program.id, published_only=not access.manage)
        best: dict[int, tuple[int, bool]] = {}
        if ident.user_id is not None:
            for quiz, _n in rows:
                attempts = await selfstudy.attempts_of(s, quiz.id, ident.user_id)
                if attempts:
                    best[quiz.id] = (max(a.score_percent for a in attempts), any(a.passed for a in attempts))
    return _hub(program, access, "quizzes", ident, rows=rows, best=best, notice=notice(request))


async def quiz_form(request: web.Request) -> web.StreamResponse:
    """quiz_form: the quiz editor (new: /study/{pid}/quizzes/new, edit: /quizzes/{id}/edit); saves via the API."""
    async with request.app[DB]() as s:
        quiz = None
        questions: list[Any] = []
        if "qid" in request.match_info:
            quiz, questions = await selfstudy.get_quiz(s, int_param(request, "qid"))
            pid = quiz.program_id
        else:
            pid = int_param(request, "id")
        ident, program, access = await _program(s, request, pid, manage=True)
        meetings = await forum.program_meetings(s, program.id, ident)
    data = {"title": quiz.title if quiz else "", "description": quiz.description if quiz else "",
            "pass_percent": quiz.pass_percent if quiz else 70, "published": quiz.published if quiz else True,
            "meeting_id": quiz.meeting_id if quiz else None,
            "questions": [{"text": q.text, "choices": q.choices, "correct": q.correct} for q in questions]}
    return aiohttp_jinja2.render_template("quiz_form.html", request, _hub(
        program, access, "quizzes", ident, quiz=quiz, data=json.dumps(data, ensure_ascii=False),
        meetings=meetings, notice=""))


async def quiz_delete(request: web.Request) -> web.StreamResponse:
    """quiz_delete: POST /quizzes/{id}/delete (trainers of the program, operators)."""
    ident = require(request)
    async with request.app[DB]() as s:
        quiz, _q = await selfstudy.get_quiz(s, int_param(request, "qid"))
        await enrolment.require_access(s, ident, quiz.program_id, manage=True)
        pid = quiz.program_id
        await selfstudy.delete_quiz(s, request, quiz)
        await s.commit()
    raise web.HTTPSeeOther(f"/study/{pid}/quizzes?notice=quiz-deleted")


async def quiz_take(request: web.Request) -> web.StreamResponse:
    """quiz_take: the quiz as a form (GET); POST grades it and shows the score."""
    ident = require(request)
    async with request.app[DB]() as s:
        quiz, questions = await selfstudy.get_quiz(s, int_param(request, "qid"))
        ident, program, access = await _program(s, request, quiz.program_id)
        if not quiz.published and not access.manage:
            raise forum.not_found()
        error = ""
        if request.method == "POST":
            form = await read_form(request)
            answers = [_ids(form.getall(f"q{i}", []), f"q{i}") for i in range(len(questions))]
            if ident.user_id is None:
                raise enrolment.forbidden()
            try:
                attempt, _score = await selfstudy.submit(s, quiz, questions, ident.user_id,
                                                         selfstudy.AttemptIn(answers=answers))
                await s.commit()
                raise web.HTTPSeeOther(f"/quizzes/{quiz.id}/attempts/{attempt.id}")
            except ApiError as exc:
                error = field_message(request, exc)
        attempts = await selfstudy.attempts_of(s, quiz.id, ident.user_id) if ident.user_id else []
    return aiohttp_jinja2.render_template("quiz_take.html", request, _hub(
        program, access, "quizzes", ident, quiz=quiz, questions=questions, attempts=attempts, error=error,
        notice=""), status=422 if error else 200)


@aiohttp_jinja2.template("quiz_result.html")
async def quiz_result(request: web.Request) -> dict[str, Any]:
    """quiz_result: one attempt's score with each question right or wrong and the correct choices."""
    ident = require(request)
    async with request.app[DB]() as s:
        quiz, questions = await selfstudy.get_quiz(s, int_param(request, "qid"))
        ident, program, access = await _program(s, request, quiz.program_id)
        attempt = await selfstudy.get_attempt(s, quiz, int_param(request, "aid"), ident, access.manage)
        result = selfstudy.score(questions, attempt.answers, quiz.pass_percent)
        me = await find_user(s, attempt.user_id)
        progress = (await selfstudy.program_progress(s, program.id, [me]))[0] if me is not None else None
    return _hub(program, access, "quizzes", ident, quiz=quiz, questions=questions, attempt=attempt,
                result=result, progress=progress, notice="")


# --- progress and people --------------------------------------------------------------------------

async def progress_page(request: web.Request) -> web.StreamResponse:
    """progress_page: everyone's progress in a program (trainers, operators); ?format=csv downloads it."""
    async with request.app[DB]() as s:
        ident, program, access = await _program(s, request, int_param(request, "id"), manage=True)
        users = await selfstudy.enrolled_users(s, program.id)
        rows = await selfstudy.program_progress(s, program.id, users)
    if request.query.get("format") == "csv":
        table = exports.Table("progress", "", [
            "username", "display_name", "videos_watched", "videos_total", "materials_opened", "materials_total",
            "packages_completed", "packages_passed", "packages_total", "package_score", "package_minutes",
            "quizzes_passed", "quizzes_total", "average_score", "percent"])
        table.rows = [[p.username, p.display_name, p.videos_watched, p.videos_total, p.materials_opened,
                       p.materials_total, p.packages_completed, p.packages_passed, p.packages_total, p.package_score,
                       round(p.package_seconds / 60, 1), p.quizzes_passed, p.quizzes_total, p.average_score,
                       p.percent]
                      for p in rows]
        return web.Response(body=exports.to_csv([table]), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="progress-{program.id}.csv"'})
    return aiohttp_jinja2.render_template("study_progress.html", request, _hub(
        program, access, "progress", ident, rows=rows, notice=notice(request)))


async def people_page(request: web.Request) -> web.StreamResponse:
    """people_page: operators assign trainers and enrol learners (pickers, or a CSV of usernames)."""
    ident = require(request, Role.OPERATOR)
    errors: dict[str, str] = {}
    async with request.app[DB]() as s:
        ident, program, access = await _program(s, request, int_param(request, "id"), manage=True)
        if request.method == "POST":
            try:
                await _save_people(request, s, program.id)
            except ApiError as exc:
                if exc.status >= 500:
                    raise
                await s.rollback()
                await s.refresh(program)
                errors[str(exc.extra.get("field", "form"))] = field_message(request, exc)
        trainers = {u.id for u in await enrolment.trainers(s, program.id)}
        learners = {u.id for u in await enrolment.learners(s, program.id)}
        trainer_choices = await enrolment.choices(s, (Role.TRAINER, Role.LEADER))
        learner_choices = await enrolment.choices(s, (Role.LEARNER,))
    return aiohttp_jinja2.render_template("enrol.html", request, _hub(
        program, access, "people", ident, trainers=trainers, learners=learners, trainer_choices=trainer_choices,
        learner_choices=learner_choices, errors=errors, notice=notice(request)), status=422 if errors else 200)


async def _save_people(request: web.Request, s: AsyncSession, pid: int) -> None:
    post = await read_form(request)
    upload = post.get("file")
    if post.get("action") == "csv":
        data = upload.file.read(enrolment.MAX_CSV_BYTES + 1) if isinstance(upload, web.FileField) else b""
        if not data:
            raise ApiError(422, "invalid", "file: hãy chọn một tệp CSV / choose a CSV file", field="file")
        names = enrolment.parse_usernames_csv(data)
        users = await enrolment.resolve_users(s, "file", (Role.LEARNER,), usernames=names)
        await enrolment.add_learners(s, request, pid, users)
        await s.commit()
        raise web.HTTPSeeOther(f"/study/{pid}/people?notice=learners-imported")
    ids = _ids(post.getall("trainer_ids", []), "trainer_ids")
    await enrolment.set_trainers(s, request, pid, await enrolment.resolve_users(
        s, "trainer_ids", (Role.TRAINER, Role.LEADER), ids))
    ids = _ids(post.getall("learner_ids", []), "learner_ids")
    await enrolment.set_learners(s, request, pid, await enrolment.resolve_users(s, "learner_ids", (Role.LEARNER,), ids))
    await s.commit()
    raise web.HTTPSeeOther(f"/study/{pid}/people?notice=people-saved")


# --- setup ----------------------------------------------------------------------------------------

def setup(app: web.Application) -> None:
    """setup: the learning routes, their template filters, and the Mailer."""
    mail.setup(app)
    env = aiohttp_jinja2.get_env(app)
    env.filters["markdown"] = forum.render_markdown
    env.globals["material_kind_labels"] = KIND_LABELS
    r = app.router
    r.add_get("/study", study_page, name="study")
    r.add_get(r"/study/{id:\d+}", program_hub, name="study-program")
    r.add_get(r"/study/{id:\d+}/materials", materials_page, name="study-materials")
    r.add_get(r"/study/{id:\d+}/quizzes", quizzes_page, name="study-quizzes")
    r.add_get(r"/study/{id:\d+}/quizzes/new", quiz_form, name="quiz-new")
    r.add_get(r"/study/{id:\d+}/progress", progress_page, name="study-progress")
    r.add_get(r"/materials/{id:\d+}", material_page, name="material")
    r.add_post(r"/materials/{id:\d+}/delete", material_delete, name="material-delete")
    r.add_get("/forum/unanswered", unanswered_page, name="forum-unanswered")
    r.add_post(r"/forum/questions/{id:\d+}/reply", question_reply, name="forum-reply")
    r.add_post(r"/forum/questions/{id:\d+}/answered", question_mark, name="forum-mark")
    r.add_get(r"/quizzes/{qid:\d+}/edit", quiz_form, name="quiz-edit")
    r.add_post(r"/quizzes/{qid:\d+}/delete", quiz_delete, name="quiz-delete")
    r.add_get(r"/quizzes/{qid:\d+}/attempts/{aid:\d+}", quiz_result, name="quiz-result")
    for path, handler, name in ((r"/study/{id:\d+}/forum", forum_page, "study-forum"),
                                (r"/study/{id:\d+}/people", people_page, "study-people"),
                                (r"/forum/topics/{id:\d+}", topic_page, "forum-topic"),
                                (r"/forum/meetings/{id:\d+}", meeting_thread, "forum-meeting"),
                                (r"/quizzes/{qid:\d+}", quiz_take, "quiz")):
        resource = r.add_resource(path, name=name)
        resource.add_route("GET", handler)
        resource.add_route("POST", handler)

