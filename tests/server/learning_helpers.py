"""learning_helpers: a program with an assigned trainer, an enrolled learner and a published meeting; uploads of
materials, forum posts, quizzes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from aiohttp import FormData, web
from sqlalchemy import insert

from server import files
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import (
    Meeting,
    MeetingStatus,
    Program,
    Role,
    User,
    meeting_classrooms,
    program_learners,
    program_trainers,
)

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n" + b"0123456789" * 300 + b"\n%%EOF\n"


@dataclass
class World:
    """World: a program and the people around it (logged-in clients)."""

    program_id: int
    meeting_id: int
    classroom_id: int
    operator: Any
    trainer: Any
    learner: Any
    outsider: Any


async def make_world(app: web.Application, login_as: Callable[..., Awaitable[Any]],
                     make_classroom: Callable[..., Awaitable[int]], **learner_fields: Any) -> World:
    """make_world: program "Tập huấn Toán 6" with a trainer, a learner, a classroom invited to a published meeting."""
    operator = await login_as(Role.OPERATOR)
    trainer = await login_as(Role.TRAINER, display_name="Cô Lan", email="lan@example.edu.vn")
    learner = await login_as(Role.LEARNER, display_name="Nguyễn Văn An", **learner_fields)
    outsider = await login_as(Role.LEARNER, display_name="Người ngoài")
    classroom_id = await make_classroom()
    now = dt.datetime.now(dt.UTC)
    async with app[DB]() as s:
        program = Program(title="Tập huấn Toán 6")
        s.add(program)
        await s.flush()
        meeting = Meeting(program_id=program.id, title="Buổi 1: Số tự nhiên", status=MeetingStatus.PUBLISHED,
                          starts_at=now + dt.timedelta(days=1), ends_at=now + dt.timedelta(days=1, hours=2))
        s.add(meeting)
        await s.flush()
        await s.execute(insert(program_trainers).values(program_id=program.id, user_id=trainer.user.id))
        await s.execute(insert(program_learners).values(program_id=program.id, user_id=learner.user.id))
        await s.execute(insert(meeting_classrooms).values(meeting_id=meeting.id, classroom_id=classroom_id))
        await s.commit()
        return World(program.id, meeting.id, classroom_id, operator, trainer, learner, outsider)


def upload_form(data: bytes, filename: str = "bai-giang.pdf", **fields: str) -> FormData:
    """upload_form: a multipart form with the file and optional fields."""
    form = FormData(quote_fields=False)  # as browsers send it: UTF-8 names, not percent-encoded
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return form


async def classroom_login(login_as: Callable[..., Awaitable[Any]], classroom_id: int) -> Any:
    """classroom_login: a logged-in classroom account of `classroom_id`."""
    return await login_as(Role.CLASSROOM, classroom_id=classroom_id)


# --- materials ------------------------------------------------------------------------------------

async def upload(who: Any, pid: int, data: bytes = PDF, filename: str = "bai-giang.pdf", **fields: str) -> Any:
    """upload: POST a material to program `pid` (the response)."""
    return await who.post(f"/api/v1/programs/{pid}/materials", data=upload_form(data, filename, **fields))


def stored_files(app: web.Application) -> list[str]:
    """stored_files: the names (digests) of the files in the content store."""
    root = files.uploads_root(app[CONFIG])
    return sorted(p.name for p in root.glob("??/*"))


# --- forum ----------------------------------------------------------------------------------------

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


async def new_topic(who: Any, pid: int, title: str = "Đánh giá học sinh") -> int:
    """new_topic: a forum topic of program `pid` made over the API; its id."""
    r = await who.post(f"/api/v1/programs/{pid}/forum/topics", json={"title": title})
    assert r.status == 201, await r.text()
    return int((await r.json())["topic_id"])


async def ask(who: Any, topic_id: int, title: str = "Làm sao chấm bài?", body: str = "Xin hướng dẫn") -> int:
    """ask: a question asked in a topic over the API; its id."""
    r = await who.post(f"/api/v1/forum/topics/{topic_id}/questions", json={"title": title, "body": body})
    assert r.status == 201, await r.text()
    return int((await r.json())["id"])


# --- self-study -----------------------------------------------------------------------------------

MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + b"\x00" * 3000
QUIZ = {
    "title": "Kiểm tra nhanh bài 1",
    "pass_percent": 60,
    "published": True,
    "questions": [
        {"text": "2 + 2 = ?", "choices": ["3", "4", "5"], "correct": [1]},
        {"text": "Số nào là số chẵn?", "choices": ["2", "3", "4", "7"], "correct": [0, 2]},
        {"text": "Thủ đô của Việt Nam?", "choices": ["Hà Nội", "Huế"], "correct": [0]},
    ],
}


async def make_quiz(who: Any, pid: int, **changes: Any) -> int:
    """make_quiz: a quiz (QUIZ with `changes`) of program `pid` made over the API; its id."""
    r = await who.post(f"/api/v1/programs/{pid}/quizzes", json={**QUIZ, **changes})
    assert r.status == 201, await r.text()
    return int((await r.json())["id"])


__all__ = ["MP4", "PDF", "QUIZ", "XSS", "User", "World", "ask", "assert_inert", "classroom_login", "make_quiz",
           "make_world", "new_topic", "stored_files", "upload", "upload_form"]
