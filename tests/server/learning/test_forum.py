"""Tests of server.learning.forum and its API: safe Markdown, topics, questions, answers, unanswered lists, e-mail."""

from __future__ import annotations

import asyncio
import re
from email import message_from_bytes
from email.header import decode_header, make_header
from html.parser import HTMLParser
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from server.auth import Identity
from server.db.engine import DB
from server.db.models import AuditEntry, Meeting, MeetingStatus, Role
from server.errors import ApiError
from server.learning import forum
from server.learning.forum import render_markdown
from server.mail import MAILER
from tests.server.learning_helpers import World, classroom_login, make_world
from tests.server.mailtest import Inbox, config, smtp  # noqa: F401  (fixtures)

HTML = {"Accept": "text/html"}

XSS = [
    "<script>alert('x')</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    '<a href="javascript:alert(1)">raw link</a>',
    "<iframe src=//evil.example></iframe>",
    '<div onclick="alert(1)">raw html</div>',
    "![x](javascript:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<svg onload="alert(1)"></svg>',
    "<style>body{display:none}</style>",
]


class Elements(HTMLParser):
    """Elements: every start tag with its attributes, as a browser's parser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def assert_inert(html: str) -> None:
    """assert_inert: no active element, no event attribute, no script or data URL."""
    parser = Elements()
    parser.feed(html)
    for tag, attrs in parser.found:
        assert tag not in ("script", "img", "iframe", "svg", "style", "object", "embed", "div", "form"), html
        assert not any(name.startswith("on") for name in attrs), html
        for name in ("href", "src"):
            value = attrs.get(name, "").strip().lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:")), html


@pytest.mark.parametrize("text", XSS)
def test_markdown_renders_attacks_inert(text: str) -> None:
    html = str(render_markdown(text))
    assert_inert(html)
    assert "<script" not in html.lower()


def test_markdown_keeps_formatting_and_safe_links() -> None:
    html = str(render_markdown("# Tiêu đề\n\n**đậm** và *nghiêng*\n\n- một\n- hai\n\n[Bộ GD](https://moet.gov.vn)\n\n"
                               "`code` <b>raw</b>"))
    assert "<h3>Tiêu đề</h3>" in html and "<strong>đậm</strong>" in html and "<em>nghiêng</em>" in html
    assert "<li>một</li>" in html
    assert 'href="https://moet.gov.vn"' in html and 'rel="nofollow noopener noreferrer"' in html
    assert "<code>code</code>" in html and "&lt;b&gt;raw&lt;/b&gt;" in html


@pytest.fixture
async def world(app: web.Application, login_as: Any, make_classroom: Any) -> World:
    return await make_world(app, login_as, make_classroom, email="an@example.edu.vn")


async def new_topic(who: Any, pid: int, title: str = "Đánh giá học sinh") -> int:
    r = await who.post(f"/api/v1/programs/{pid}/forum/topics", json={"title": title})
    assert r.status == 201, await r.text()
    return int((await r.json())["topic_id"])


async def ask(who: Any, topic_id: int, title: str = "Làm sao chấm bài?", body: str = "Xin hướng dẫn") -> int:
    r = await who.post(f"/api/v1/forum/topics/{topic_id}/questions", json={"title": title, "body": body})
    assert r.status == 201, await r.text()
    return int((await r.json())["id"])


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


# --- e-mail ---------------------------------------------------------------------------------------

async def wait_for(inbox: Inbox, n: int, app: web.Application) -> None:
    await app[MAILER].drain(10)
    for _ in range(100):
        if len(inbox.messages) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} e-mails, got {len(inbox.messages)}")


def subject(raw: bytes) -> str:
    return str(make_header(decode_header(message_from_bytes(raw)["Subject"])))


async def test_email_on_new_question_and_on_answer(app: web.Application, world: World,
                                                   smtp: tuple[Inbox, int]) -> None:  # noqa: F811 (fixture)
    inbox, _port = smtp
    tid = await new_topic(world.learner, world.program_id)
    qid = await ask(world.learner, tid, "Hỏi về đánh giá", "Chi tiết câu hỏi")
    await wait_for(inbox, 1, app)
    rcpts, raw = inbox.messages[0]
    assert rcpts == ["lan@example.edu.vn"]
    assert "Hỏi về đánh giá" in subject(raw)
    text = message_from_bytes(raw).get_payload(decode=True).decode()
    assert "Chi tiết câu hỏi" in text and f"/forum/topics/{tid}#q{qid}" in text

    r = await world.trainer.post(f"/api/v1/forum/questions/{qid}/replies",
                                 json={"body": "Đây là câu trả lời", "answered": True})
    assert r.status == 201
    await wait_for(inbox, 2, app)
    rcpts, raw = inbox.messages[1]
    assert rcpts == ["an@example.edu.vn"] and "Đã trả lời" in subject(raw)
    assert "Đây là câu trả lời" in message_from_bytes(raw).get_payload(decode=True).decode()
    # marking again sends nothing more
    await world.trainer.post(f"/api/v1/forum/questions/{qid}/answered", json={"answered": True})
    await app[MAILER].drain(5)
    await asyncio.sleep(0.2)
    assert len(inbox.messages) == 2


async def test_no_smtp_host_sends_nothing(app: web.Application, world: World) -> None:
    assert not app[MAILER].enabled
    tid = await new_topic(world.learner, world.program_id)
    await ask(world.learner, tid)
    assert app[MAILER].tasks == set() and app[MAILER].sent == 0


async def test_thread_meeting_hides_unpublished_meetings_from_non_staff(app: web.Application, world: World) -> None:
    trainer = Identity(login_id="x", role=Role.TRAINER, csrf_token="", user_id=world.trainer.user.id)
    learner = Identity(login_id="y", role=Role.LEARNER, csrf_token="", user_id=world.learner.user.id)
    async with app[DB]() as s:
        assert (await forum.thread_meeting(s, learner, world.meeting_id)).id == world.meeting_id
        meeting = await s.get(Meeting, world.meeting_id)
        assert meeting is not None
        meeting.status = MeetingStatus.DRAFT
        await s.flush()
        assert (await forum.thread_meeting(s, trainer, world.meeting_id)).id == world.meeting_id
        for who, mid in ((learner, world.meeting_id), (trainer, 999_999)):
            with pytest.raises(ApiError) as info:
                await forum.thread_meeting(s, who, mid)
            assert info.value.status == 404
