"""server.learning.forum: questions to trainers: a thread per meeting and free topics per program.

Learners and classrooms ask questions (Markdown) in a topic; trainers reply and mark a question
answered (or open it again). `unanswered(s, ident)` lists the open questions of the programs a trainer
answers for (every program for operators). Anyone who may read the program (see
`server.people.enrolment.program_access`) may read, ask and reply; only those who manage it mark answers.

Markdown is rendered safely by `render_markdown`: markdown-it (CommonMark, tables, strikethrough) with
raw HTML disabled, then nh3 (an allow-list HTML sanitiser) as a second fence: no scripts, event
attributes, `javascript:` or data: URLs survive; links get `rel="nofollow noopener noreferrer"`.

E-mail notifications (optional, `smtp` in config.yaml) through `server.mail.Mailer`: a new question
goes to the program's trainers and presenters, an answer (a question marked answered) to the asker.
Writes of operators and trainers (answers, marks, topics) are audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

import nh3
from aiohttp import web
from markdown_it import MarkdownIt
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.auth import Identity
from server.config import CONFIG
from server.db.models import (
    ForumQuestion,
    ForumReply,
    ForumTopic,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    User,
    utcnow,
)
from server.errors import ApiError
from server.mail import MAILER
from server.people import enrolment

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Body = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20000)]
TAGS = {"p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a",
        "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td"}
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"style"}, "td": {"style"}}


class TopicIn(BaseModel):
    """TopicIn: a free topic of a program."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    title: Title


class QuestionIn(BaseModel):
    """QuestionIn: a question (title, Markdown body)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    title: Title
    body: Body = ""


class ReplyIn(BaseModel):
    """ReplyIn: a reply (Markdown); `answered` also marks the question answered (trainers only)."""

    model_config = ConfigDict(extra="forbid")  # a command: an unknown key is an error

    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
    answered: bool = False


# --- Markdown -------------------------------------------------------------------------------------

def _md() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.disable(["image"])
    # Headings inside a post start at h3 (the page has h1 and h2).
    md.add_render_rule("heading_open", _heading_open)
    md.add_render_rule("heading_close", _heading_close)
    return md


def _shift(tag: str) -> str:
    return f"h{min(6, int(tag[1]) + 2)}"


def _heading_open(self: object, tokens: list, idx: int, options: object, env: object) -> str:
    return f"<{_shift(tokens[idx].tag)}>"


def _heading_close(self: object, tokens: list, idx: int, options: object, env: object) -> str:
    return f"</{_shift(tokens[idx].tag)}>\n"


def render_markdown(text: str) -> Markup:
    """render_markdown: Markdown as sanitised HTML, safe to put in a page."""
    html = _md().render(text or "")
    clean = nh3.clean(html, tags=TAGS, attributes=ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                      link_rel="nofollow noopener noreferrer", strip_comments=True)
    return Markup(clean)  # noqa: S704 - sanitised by nh3 just above


# --- reading --------------------------------------------------------------------------------------

@dataclass
class TopicRow:
    """TopicRow: a topic (or a meeting without a thread yet) with its question counts."""

    topic: ForumTopic | None
    meeting: Meeting | None
    title: str
    questions: int = 0
    open_questions: int = 0
    last_at: dt.datetime | None = None


@dataclass
class QuestionView:
    """QuestionView: a question with its author, replies and their authors."""

    question: ForumQuestion
    author: User | None
    replies: list[tuple[ForumReply, User | None]]
    answered_by: User | None


def not_found() -> ApiError:
    """not_found: 404 for a topic or question."""
    return ApiError(404, "not-found", "Không tìm thấy. / Not found.")


async def program_meetings(s: AsyncSession, program_id: int, ident: Identity) -> list[Meeting]:
    """program_meetings: the meetings of a program that get a thread (published ones for non-staff)."""
    q = select(Meeting).where(Meeting.program_id == program_id).order_by(Meeting.starts_at, Meeting.id)
    if not ident.is_staff:
        q = q.where(Meeting.status == MeetingStatus.PUBLISHED)
    else:
        q = q.where(Meeting.status != MeetingStatus.CANCELLED)
    return list((await s.scalars(q)).all())


async def topics(s: AsyncSession, program_id: int, ident: Identity) -> list[TopicRow]:
    """topics: a program's meeting threads (one per meeting, by start) then its free topics (newest first)."""
    stats = (select(ForumQuestion.topic_id, func.count(ForumQuestion.id).label("n"),
                    func.count(ForumQuestion.id).filter(ForumQuestion.answered_at.is_(None)).label("open"),
                    func.max(ForumQuestion.created_at).label("last"))
             .group_by(ForumQuestion.topic_id).subquery())
    rows = (await s.execute(select(ForumTopic, stats.c.n, stats.c.open, stats.c.last)
                            .outerjoin(stats, stats.c.topic_id == ForumTopic.id)
                            .where(ForumTopic.program_id == program_id)
                            .order_by(ForumTopic.created_at.desc(), ForumTopic.id.desc()))).all()
    by_meeting = {t.meeting_id: (t, n, o, last) for t, n, o, last in rows if t.meeting_id is not None}
    out: list[TopicRow] = []
    for m in await program_meetings(s, program_id, ident):
        t, n, o, last = by_meeting.get(m.id, (None, 0, 0, None))
        out.append(TopicRow(topic=t, meeting=m, title=m.title, questions=int(n or 0), open_questions=int(o or 0),
                            last_at=_aware(last)))
    for t, n, o, last in rows:
        if t.meeting_id is None:
            out.append(TopicRow(topic=t, meeting=None, title=t.title, questions=int(n or 0),
                                open_questions=int(o or 0), last_at=_aware(last)))
    return out


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


async def get_topic(s: AsyncSession, topic_id: int) -> ForumTopic:
    """get_topic: one topic, or 404."""
    topic = await s.get(ForumTopic, topic_id)
    if topic is None:
        raise not_found()
    return topic


async def thread_meeting(s: AsyncSession, ident: Identity, meeting_id: int) -> Meeting:
    """thread_meeting: a meeting whose thread the caller may open (staff: any; others: published ones), or 404."""
    meeting = await s.get(Meeting, meeting_id)
    if meeting is None or (not ident.is_staff and meeting.status != MeetingStatus.PUBLISHED):
        raise not_found()
    return meeting


async def meeting_topic(s: AsyncSession, meeting: Meeting, actor_id: int | None, create: bool) -> ForumTopic | None:
    """meeting_topic: the thread of a meeting (made on first use when `create`)."""
    topic = await s.scalar(select(ForumTopic).where(ForumTopic.meeting_id == meeting.id))
    if topic is None and create:
        topic = ForumTopic(program_id=meeting.program_id, meeting_id=meeting.id, title=meeting.title,
                           created_at=utcnow(), created_by=actor_id)
        s.add(topic)
        await s.flush()
    return topic


async def _users(s: AsyncSession, ids: set[int | None]) -> dict[int, User]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return {u.id: u for u in (await s.scalars(select(User).where(User.id.in_(wanted)))).all()}


async def questions(s: AsyncSession, topic_id: int) -> list[QuestionView]:
    """questions: a topic's questions with replies: open ones first, then newest first."""
    qs = list((await s.scalars(select(ForumQuestion).where(ForumQuestion.topic_id == topic_id)
                               .order_by(ForumQuestion.created_at.desc(), ForumQuestion.id.desc()))).all())
    replies: dict[int, list[ForumReply]] = {q.id: [] for q in qs}
    if qs:
        for r in (await s.scalars(select(ForumReply).where(ForumReply.question_id.in_(list(replies)))
                                  .order_by(ForumReply.created_at, ForumReply.id))).all():
            replies[r.question_id].append(r)
    ids: set[int | None] = {q.author_id for q in qs} | {q.answered_by for q in qs}
    ids |= {r.author_id for rs in replies.values() for r in rs}
    users = await _users(s, ids)
    views = [QuestionView(question=q, author=users.get(q.author_id or 0),
                          replies=[(r, users.get(r.author_id or 0)) for r in replies[q.id]],
                          answered_by=users.get(q.answered_by or 0)) for q in qs]
    views.sort(key=lambda v: v.question.answered_at is not None)
    return views


async def get_question(s: AsyncSession, question_id: int) -> tuple[ForumQuestion, ForumTopic]:
    """get_question: a question and its topic, or 404."""
    q = await s.get(ForumQuestion, question_id)
    if q is None:
        raise not_found()
    return q, await get_topic(s, q.topic_id)


@dataclass
class OpenQuestion:
    """OpenQuestion: an unanswered question with where it was asked."""

    question: ForumQuestion
    topic: ForumTopic
    program: Program
    author: User | None


async def unanswered(s: AsyncSession, ident: Identity, program_id: int | None = None) -> list[OpenQuestion]:
    """unanswered: open questions of the programs `ident` answers for (all for operators), oldest first."""
    q = (select(ForumQuestion, ForumTopic, Program).join(ForumTopic, ForumTopic.id == ForumQuestion.topic_id)
         .join(Program, Program.id == ForumTopic.program_id).where(ForumQuestion.answered_at.is_(None))
         .order_by(ForumQuestion.created_at, ForumQuestion.id))
    if program_id is not None:
        q = q.where(ForumTopic.program_id == program_id)
    if ident.role != Role.OPERATOR:
        ids = enrolment.readable_ids(ident)
        if ident.role not in (Role.TRAINER, Role.LEADER) or ids is None:
            return []
        q = q.where(ForumTopic.program_id.in_(ids))
    rows = (await s.execute(q)).all()
    users = await _users(s, {qq.author_id for qq, _t, _p in rows})
    return [OpenQuestion(question=qq, topic=t, program=p, author=users.get(qq.author_id or 0)) for qq, t, p in rows]


# --- writing --------------------------------------------------------------------------------------

async def create_topic(s: AsyncSession, request: web.Request | None, program_id: int, data: TopicIn,
                       actor_id: int | None) -> ForumTopic:
    """create_topic: a free topic of a program (audited)."""
    topic = ForumTopic(program_id=program_id, meeting_id=None, title=data.title, created_at=utcnow(),
                       created_by=actor_id)
    s.add(topic)
    await s.flush()
    audit.record(s, request, "forum.topic", f"topic:{topic.id}", program_id=program_id, title=topic.title)
    return topic


async def ask(s: AsyncSession, topic: ForumTopic, data: QuestionIn, author_id: int | None) -> ForumQuestion:
    """ask: add a question to a topic."""
    question = ForumQuestion(topic_id=topic.id, author_id=author_id, title=data.title, body=data.body,
                             created_at=utcnow())
    s.add(question)
    await s.flush()
    return question


async def reply(s: AsyncSession, request: web.Request | None, question: ForumQuestion, data: ReplyIn,
                ident: Identity, manage: bool) -> ForumReply:
    """reply: add a reply; with `answered` (trainers only, 403 otherwise) also mark the question answered."""
    if data.answered and not manage:
        raise ApiError(403, "forbidden", "Chỉ giảng viên mới đánh dấu đã trả lời. / Only trainers mark answers.")
    r = ForumReply(question_id=question.id, author_id=ident.user_id, body=data.body, created_at=utcnow())
    s.add(r)
    await s.flush()
    if manage:
        audit.record(s, request, "forum.reply", f"question:{question.id}", reply_id=r.id)
    if data.answered:
        await mark(s, request, question, True, ident)
    return r


async def mark(s: AsyncSession, request: web.Request | None, question: ForumQuestion, answered: bool,
               ident: Identity) -> ForumQuestion:
    """mark: mark a question answered (or open again); audited."""
    if answered and question.answered_at is None:
        question.answered_at = utcnow()
        question.answered_by = ident.user_id
    elif not answered:
        question.answered_at = None
        question.answered_by = None
    audit.record(s, request, "forum.answered" if answered else "forum.reopened", f"question:{question.id}")
    return question


# --- notifications --------------------------------------------------------------------------------

def _base_url(request: web.Request) -> str:
    public = request.app[CONFIG].server.public_url.rstrip("/")
    return public or f"{request.scheme}://{request.host}"


async def notify_new_question(s: AsyncSession, request: web.Request, topic: ForumTopic,
                              question: ForumQuestion) -> None:
    """notify_new_question: e-mail the program's trainers and presenters about a new question."""
    mailer = request.app.get(MAILER)
    if mailer is None or not mailer.enabled:
        return
    staff = await enrolment.staff_of(s, topic.program_id)
    program = await s.get(Program, topic.program_id)
    link = f"{_base_url(request)}/forum/topics/{topic.id}#q{question.id}"
    mailer.send([u.email for u in staff if u.id != question.author_id and not u.disabled],
                f"[Taphuan] Câu hỏi mới / New question: {question.title}",
                f"Có câu hỏi mới trong chương trình «{program.title if program else ''}», chủ đề «{topic.title}»:\n\n"
                f"{question.title}\n\n{question.body}\n\nTrả lời tại / Answer at: {link}\n")


async def notify_answered(s: AsyncSession, request: web.Request, topic: ForumTopic, question: ForumQuestion,
                          answer: str) -> None:
    """notify_answered: e-mail the asker that the question was answered."""
    mailer = request.app.get(MAILER)
    if mailer is None or not mailer.enabled or question.author_id is None:
        return
    asker = await s.get(User, question.author_id)
    if asker is None or not asker.email:
        return
    link = f"{_base_url(request)}/forum/topics/{topic.id}#q{question.id}"
    mailer.send([asker.email], f"[Taphuan] Đã trả lời / Answered: {question.title}",
                f"Câu hỏi của bạn «{question.title}» đã được trả lời. / Your question was answered.\n\n"
                f"{answer}\n\nXem tại / See: {link}\n")
