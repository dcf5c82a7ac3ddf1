"""Tests of server.learning.forum: safe Markdown, the meeting a thread belongs to, e-mail on a new question and on an
answer."""

from __future__ import annotations

import asyncio
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import pytest
from aiohttp import web

from server.auth import Identity
from server.db.engine import DB
from server.db.models import Meeting, MeetingStatus, Role
from server.errors import ApiError
from server.learning import forum
from server.learning.forum import render_markdown
from server.mail import MAILER
from tests.server.learning_helpers import XSS, World, ask, assert_inert, make_world, new_topic
from tests.server.mailtest import Inbox, config, smtp  # noqa: F401  (fixtures)


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
