"""server.api.forum: /api/v1 forum: topics and meeting threads, questions, replies, answered marks.

Readers of a program (see `server.people.enrolment.program_access`) read, ask and reply; its trainers and
operators also mark questions answered and list the unanswered ones. Bodies are Markdown; responses
carry `body_html`, rendered safely by `server.learning.forum.render_markdown`.
"""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.auth import require
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import ForumReply, ForumTopic, Role, User
from server.learning import forum as svc
from server.openapi import endpoint, id_query, int_param, json_response, parse_body
from server.people import enrolment
from server.people.accounts import find_user
from server.schedule.meetings import meeting_by_id

STAFF = (Role.OPERATOR, Role.TRAINER, Role.LEADER)


class TopicOut(BaseModel):
    """TopicOut: a free topic or a meeting's thread (topic_id null until its first question)."""

    topic_id: int | None
    program_id: int
    meeting_id: int | None
    title: str
    questions: int
    open_questions: int
    last_at: dt.datetime | None


class ReplyOut(BaseModel):
    """ReplyOut: a reply with its author."""

    id: int
    author: str
    author_role: str
    body: str
    body_html: str
    created_at: dt.datetime


class QuestionOut(BaseModel):
    """QuestionOut: a question with its replies; answered_at is null while open."""

    id: int
    topic_id: int
    title: str
    body: str
    body_html: str
    author: str
    author_role: str
    created_at: dt.datetime
    answered_at: dt.datetime | None
    answered_by: str | None
    replies: list[ReplyOut] = Field(default_factory=list)


class TopicDetailOut(BaseModel):
    """TopicDetailOut: a topic and its questions (open ones first)."""

    topic: TopicOut
    questions: list[QuestionOut]


class OpenQuestionOut(BaseModel):
    """OpenQuestionOut: an unanswered question and where it was asked."""

    id: int
    title: str
    author: str
    created_at: dt.datetime
    topic_id: int
    topic_title: str
    program_id: int
    program_title: str
    url: str


class AnsweredIn(BaseModel):
    """AnsweredIn: mark a question answered (true) or open it again (false)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    answered: bool = True


class PreviewIn(BaseModel):
    """PreviewIn: Markdown to render."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    text: str = Field(max_length=20000)


class PreviewOut(BaseModel):
    """PreviewOut: the safe HTML of some Markdown."""

    html: str


def _name(user: User | None) -> str:
    return user.display_name or user.username if user else "—"


def _tz(request: web.Request, value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(request.app[CONFIG].tz) if value else None


def reply_out(request: web.Request, r: ForumReply, author: User | None) -> ReplyOut:
    """reply_out: a reply as ReplyOut."""
    return ReplyOut(id=r.id, author=_name(author), author_role=author.role.value if author else "", body=r.body,
                    body_html=str(svc.render_markdown(r.body)), created_at=r.created_at.astimezone(
                        request.app[CONFIG].tz))


def question_out(request: web.Request, v: svc.QuestionView) -> QuestionOut:
    """question_out: a QuestionView as QuestionOut."""
    q = v.question
    return QuestionOut(id=q.id, topic_id=q.topic_id, title=q.title, body=q.body,
                       body_html=str(svc.render_markdown(q.body)), author=_name(v.author),
                       author_role=v.author.role.value if v.author else "",
                       created_at=q.created_at.astimezone(request.app[CONFIG].tz),
                       answered_at=_tz(request, q.answered_at),
                       answered_by=_name(v.answered_by) if q.answered_at else None,
                       replies=[reply_out(request, r, a) for r, a in v.replies])


def topic_out(request: web.Request, row: svc.TopicRow, program_id: int) -> TopicOut:
    """topic_out: a TopicRow as TopicOut."""
    return TopicOut(topic_id=row.topic.id if row.topic else None, program_id=program_id,
                    meeting_id=row.meeting.id if row.meeting else None, title=row.title, questions=row.questions,
                    open_questions=row.open_questions, last_at=_tz(request, row.last_at))


@endpoint("GET", "/api/v1/programs/{id}/forum", name="api-program-forum",
          summary="Forum of a program: a thread per meeting, then free topics", response=TopicOut,
          response_list=True, tag="forum")
async def program_forum(request: web.Request) -> web.Response:
    """program_forum: the topics of a program the caller belongs to."""
    ident = require(request)
    pid = int_param(request, "id")
    async with request.app[DB]() as s:
        await enrolment.require_access(s, ident, pid)
        rows = await svc.topics(s, pid, ident)
    return json_response([topic_out(request, r, pid) for r in rows])


@endpoint("POST", "/api/v1/programs/{id}/forum/topics", name="api-forum-topic-create",
          summary="Start a free topic in a program's forum", body=svc.TopicIn, response=TopicOut, status=201,
          tag="forum")
async def create_topic(request: web.Request) -> web.Response:
    """create_topic: add a free topic (anyone who belongs to the program)."""
    ident = require(request)
    pid = int_param(request, "id")
    data = await parse_body(request, svc.TopicIn)
    async with request.app[DB]() as s:
        await enrolment.require_access(s, ident, pid)
        topic = await svc.create_topic(s, request, pid, data, ident.user_id)
        await s.commit()
    row = svc.TopicRow(topic=topic, meeting=None, title=topic.title)
    return json_response(topic_out(request, row, pid), status=201)


async def _topic_detail(request: web.Request, topic: ForumTopic) -> TopicDetailOut:
    async with request.app[DB]() as s:
        views = await svc.questions(s, topic.id)
        meeting = await meeting_by_id(s, topic.meeting_id)
    open_n = sum(1 for v in views if v.question.answered_at is None)
    row = svc.TopicRow(topic=topic, meeting=meeting, title=topic.title, questions=len(views), open_questions=open_n,
                       last_at=max((v.question.created_at for v in views), default=None))
    return TopicDetailOut(topic=topic_out(request, row, topic.program_id),
                          questions=[question_out(request, v) for v in views])


@endpoint("GET", "/api/v1/forum/topics/{id}", name="api-forum-topic", summary="A topic with its questions",
          response=TopicDetailOut, tag="forum")
async def get_topic(request: web.Request) -> web.Response:
    """get_topic: a topic with its questions and replies."""
    ident = require(request)
    tid = int_param(request, "id")
    async with request.app[DB]() as s:
        topic = await svc.get_topic(s, tid)
        await enrolment.require_access(s, ident, topic.program_id)
    return json_response(await _topic_detail(request, topic))


async def _ask(request: web.Request, topic: ForumTopic, data: svc.QuestionIn) -> web.Response:
    ident = require(request)
    async with request.app[DB]() as s:
        question = await svc.ask(s, topic, data, ident.user_id)
        await s.commit()
        await svc.notify_new_question(s, request, topic, question)
        author = await find_user(s, ident.user_id)
    return json_response(question_out(request, svc.QuestionView(question, author, [], None)), status=201)


@endpoint("POST", "/api/v1/forum/topics/{id}/questions", name="api-forum-ask",
          summary="Ask a question in a topic (Markdown body)", body=svc.QuestionIn, response=QuestionOut,
          status=201, tag="forum")
async def ask_in_topic(request: web.Request) -> web.Response:
    """ask_in_topic: add a question to a topic."""
    ident = require(request)
    tid = int_param(request, "id")
    data = await parse_body(request, svc.QuestionIn)
    async with request.app[DB]() as s:
        topic = await svc.get_topic(s, tid)
        await enrolment.require_access(s, ident, topic.program_id)
    return await _ask(request, topic, data)


@endpoint("POST", "/api/v1/meetings/{id}/forum/questions", name="api-forum-ask-meeting",
          summary="Ask a question in a meeting's thread (made on first use)", body=svc.QuestionIn,
          response=QuestionOut, status=201, tag="forum")
async def ask_in_meeting(request: web.Request) -> web.Response:
    """ask_in_meeting: add a question to the thread of a meeting."""
    ident = require(request)
    mid = int_param(request, "id")
    data = await parse_body(request, svc.QuestionIn)
    async with request.app[DB]() as s:
        meeting = await svc.thread_meeting(s, ident, mid)
        await enrolment.require_access(s, ident, meeting.program_id)
        topic = await svc.meeting_topic(s, meeting, ident.user_id, create=True)
        await s.commit()
    assert topic is not None
    return await _ask(request, topic, data)


@endpoint("POST", "/api/v1/forum/questions/{id}/replies", name="api-forum-reply",
          summary="Reply to a question; trainers may mark it answered at once", body=svc.ReplyIn, response=ReplyOut,
          status=201, tag="forum")
async def reply(request: web.Request) -> web.Response:
    """reply: add a reply (answered=true: trainers of the program and operators only)."""
    ident = require(request)
    qid = int_param(request, "id")
    data = await parse_body(request, svc.ReplyIn)
    async with request.app[DB]() as s:
        question, topic = await svc.get_question(s, qid)
        access = await enrolment.require_access(s, ident, topic.program_id)
        was_open = question.answered_at is None
        r = await svc.reply(s, request, question, data, ident, access.manage)
        await s.commit()
        if data.answered and was_open:
            await svc.notify_answered(s, request, topic, question, data.body)
        author = await find_user(s, ident.user_id)
    return json_response(reply_out(request, r, author), status=201)


@endpoint("POST", "/api/v1/forum/questions/{id}/answered", name="api-forum-answered",
          summary="Mark a question answered or open it again (trainers of the program, operators)", body=AnsweredIn,
          response=QuestionOut, tag="forum")
async def mark_answered(request: web.Request) -> web.Response:
    """mark_answered: set or clear the answered mark."""
    ident = require(request)
    qid = int_param(request, "id")
    data = await parse_body(request, AnsweredIn)
    async with request.app[DB]() as s:
        question, topic = await svc.get_question(s, qid)
        await enrolment.require_access(s, ident, topic.program_id, manage=True)
        was_open = question.answered_at is None
        await svc.mark(s, request, question, data.answered, ident)
        await s.commit()
        if data.answered and was_open:
            await svc.notify_answered(s, request, topic, question, "")
    async with request.app[DB]() as s:
        views = [v for v in await svc.questions(s, topic.id) if v.question.id == qid]
    return json_response(question_out(request, views[0]))


@endpoint("GET", "/api/v1/forum/unanswered", name="api-forum-unanswered",
          summary="Unanswered questions of the programs the caller answers for (oldest first)", roles=STAFF,
          response=OpenQuestionOut, response_list=True, tag="forum", query=(("program_id", "only this program"),))
async def unanswered(request: web.Request) -> web.Response:
    """unanswered: open questions for trainers and operators."""
    ident = require(request)
    pid = id_query(request, "program_id")
    tz = request.app[CONFIG].tz
    async with request.app[DB]() as s:
        rows = await svc.unanswered(s, ident, pid)
    return json_response([OpenQuestionOut(
        id=o.question.id, title=o.question.title, author=_name(o.author),
        created_at=o.question.created_at.astimezone(tz), topic_id=o.topic.id, topic_title=o.topic.title,
        program_id=o.program.id, program_title=o.program.title,
        url=f"/forum/topics/{o.topic.id}#q{o.question.id}") for o in rows])


@endpoint("POST", "/api/v1/forum/preview", name="api-forum-preview", summary="Render Markdown as safe HTML",
          body=PreviewIn, response=PreviewOut, tag="forum")
async def preview(request: web.Request) -> web.Response:
    """preview: the sanitised HTML of a Markdown text (the post preview)."""
    data = await parse_body(request, PreviewIn)
    return json_response(PreviewOut(html=str(svc.render_markdown(data.text))))

