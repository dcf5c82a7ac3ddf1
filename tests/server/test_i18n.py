"""Tests of server.i18n and the catalogs: Vietnamese by default, English after /lang/en, complete .po files."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urldefrag, urljoin, urlsplit

import pytest
from aiohttp.test_utils import make_mocked_request
from babel.messages.pofile import read_po
from sqlalchemy import insert

from server import audit
from server.db.engine import DB
from server.db.models import (
    AttendanceEvent,
    Classroom,
    ForumQuestion,
    ForumTopic,
    Material,
    MaterialKind,
    MeetingStatus,
    Quiz,
    QuizQuestion,
    Recording,
    RecordingState,
    Role,
    Unit,
    UnitLevel,
    program_learners,
    program_trainers,
)
from server.i18n import LOCALE_DIR, Translations, localized
from tests.server.livetest import guest_login

HTML = {"Accept": "text/html"}
CATALOGS = sorted(p.name for p in (LOCALE_DIR / "vi" / "LC_MESSAGES").glob("*.po"))
TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"


async def test_home_is_vietnamese_by_default_and_english_after_switch(
        login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    r = await op.client.get("/", headers=HTML)
    html = await r.text()
    assert r.status == 200
    assert '<html lang="vi" data-timezone="Asia/Ho_Chi_Minh">' in html
    for text in ("Tập huấn trực tuyến", "Xin chào", "Đăng xuất", "Chương trình", "Buổi tập huấn sắp tới"):
        assert text in html, text

    r = await op.client.get("/lang/en?next=/programs", headers=HTML, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/programs"
    r = await op.client.get("/", headers=HTML)
    html = await r.text()
    assert '<html lang="en" data-timezone="Asia/Ho_Chi_Minh">' in html
    for text in ("Online teacher training", "Hello", "Log out", "Programs", "Upcoming meetings"):
        assert text in html, text
    assert "Xin chào" not in html and "Đăng xuất" not in html

    await op.client.get("/lang/vi", headers=HTML)
    html = await (await op.client.get("/", headers=HTML)).text()
    assert "Đăng xuất" in html


async def test_error_pages_use_the_language(login_as: Callable[..., Awaitable[Any]]) -> None:
    trainer = await login_as(Role.TRAINER)
    html = await (await trainer.client.get("/programs", headers=HTML)).text()
    assert "Không được phép" in html and "Vai trò của bạn không được phép" in html
    await trainer.client.get("/lang/en", headers=HTML)
    html = await (await trainer.client.get("/programs", headers=HTML)).text()
    assert "Not allowed" in html and "Your role may not do this." in html and "Vai trò" not in html


def test_every_area_has_its_catalog() -> None:
    for area in ("base.po", "meetings.po", "accounts.po", "units.po", "live.po", "console.po", "learning.po",
                 "archive.po"):
        assert area in CATALOGS, area


@pytest.mark.parametrize("name", CATALOGS)
def test_catalog_is_complete(name: str) -> None:
    with (LOCALE_DIR / "vi" / "LC_MESSAGES" / name).open("rb") as fh:
        catalog = read_po(fh, locale="vi")
    ids = [m for m in catalog if m.id]
    assert ids
    for m in ids:
        assert m.string, f"{name}: no translation for {m.id!r}"
        assert sorted(re.findall(r"%\(\w+\)[sd]", str(m.id))) == sorted(re.findall(r"%\(\w+\)[sd]", str(m.string)))


def _catalog_ids() -> dict[str, set[str]]:
    """_catalog_ids: every message id of the Vietnamese catalogs, with the translations each one has."""
    ids: dict[str, set[str]] = {}
    for name in CATALOGS:
        with (LOCALE_DIR / "vi" / "LC_MESSAGES" / name).open("rb") as fh:
            for m in read_po(fh, locale="vi"):
                if m.id:
                    ids.setdefault(str(m.id), set()).add(str(m.string))
    return ids


def test_every_string_of_the_templates_is_translated() -> None:
    ids = _catalog_ids()
    vi = Translations().get("vi")
    missing = []
    for path in sorted(TEMPLATES.glob("*.html")):
        for match in re.finditer(r"""_\(\s*(["'])(.+?)(?<!\\)\1\s*\)""", path.read_text()):
            msgid = match.group(2).replace('\\"', '"').replace("\\'", "'")
            if msgid not in ids or not vi.gettext(msgid):
                missing.append((path.name, msgid))
    assert not missing, missing


def test_catalogs_agree_on_shared_messages() -> None:
    """The catalogs are merged at start: a message id translated differently in two of them would show one of
    the two everywhere (use a distinct message id for a distinct meaning)."""
    conflicts = {msgid: strings for msgid, strings in _catalog_ids().items() if len(strings) > 1}
    assert not conflicts, conflicts


def test_a_meeting_is_a_buoi_tap_huan_in_the_finished_catalogs() -> None:
    """A Meeting is "buổi tập huấn" (as meetings.po says); "cuộc họp" / "phòng họp" are not used for it."""
    for name in ("live.po", "accounts.po", "archive.po", "console.po"):
        with (LOCALE_DIR / "vi" / "LC_MESSAGES" / name).open("rb") as fh:
            for m in read_po(fh, locale="vi"):
                text = str(m.string).lower()
                assert "cuộc họp" not in text and "phòng họp" not in text, (name, m.id, m.string)


async def test_localized_picks_the_requests_half(app: Any) -> None:
    def request(lang: str) -> Any:
        return make_mocked_request("GET", "/", headers={"Cookie": f"lang={lang}"}, app=app)

    assert localized(request("vi"), "Không tìm thấy. / Not found.") == "Không tìm thấy."
    assert localized(request("en"), "Không tìm thấy. / Not found.") == "Not found."
    assert localized(request("en"), "a: b / c / d") == "c / d"
    assert localized(request("en"), "Chỉ một ngôn ngữ") == "Chỉ một ngôn ngữ"


# --- every page in Vietnamese: no message id, code or English left ------------------------------------------

ENGLISH_WORDS = {"Save", "Cancel", "Delete", "Edit", "Back", "Next", "Previous", "Search", "Loading", "Error",
                 "Submit", "Close", "Yes", "No", "None", "True", "False", "null", "undefined", "Meeting", "Meetings",
                 "Program", "Programs", "Classroom", "Classrooms", "Recording", "Trainer", "Leader", "Operator",
                 "Learner", "Guest", "Status", "Actions", "Details", "Upload", "Download", "Today", "Home"}
"""ENGLISH_WORDS: English UI words that must not appear as words in a Vietnamese page."""
FUNCTION_WORDS = {"the", "of", "and", "to", "is", "a", "an", "in", "for", "by", "with", "not", "no", "on", "at",
                  "this", "your", "are", "was", "be"}
SKIP_LINKS = re.compile(r"^(?:/static/|/api/|/lang/|/logout|/j/|/metrics|/healthz)|[?&]format=|\.(?:ics|csv|xlsx)\b")
ROLES = (Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER)


class _PageWords(HTMLParser):
    """_PageWords: the words a reader sees (text outside script and style, titles, placeholders, labels) and the
    page's links."""

    READ = ("title", "placeholder", "aria-label", "alt")

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.links: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self._hidden += 1
        values = {k: v or "" for k, v in attrs}
        if tag == "a" and values.get("href"):
            self.links.append(values["href"])
        self.words += [values[k] for k in self.READ if values.get(k)]
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.words.append(values["value"])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template"):
            self._hidden = max(0, self._hidden - 1)

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.words.append(" ".join(data.split()))


def untranslated_words(words: list[str], translated_ids: set[str], codes: set[str]) -> list[str]:
    """untranslated_words: the texts of a Vietnamese page that are message ids, codes or English."""
    found = []
    for text in words:
        tokens = re.findall(r"[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]|[A-Za-z]", text)
        if text in translated_ids:
            found.append(f"message id {text!r}")
        elif codes & set(tokens):
            found.append(f"code {sorted(codes & set(tokens))} in {text!r}")
        elif ENGLISH_WORDS & set(tokens):
            found.append(f"English {sorted(ENGLISH_WORDS & set(tokens))} in {text!r}")
        elif text.isascii() and len(tokens) >= 3 and FUNCTION_WORDS & {t.lower() for t in tokens}:
            found.append(f"English sentence {text!r}")
    return found


def test_the_checker_sees_ids_codes_and_english() -> None:
    ids, codes = {"Give the floor"}, {"joinlink.open", "trainer"}
    assert untranslated_words(["Trao quyền phát biểu", "Tài khoản #3", "Mã: PH-01", "op.audit · 05/12/2026 14:05",
                               "CSV · XLSX", "Camera · Micro"], ids, codes) == []
    assert len(untranslated_words(["Give the floor", "joinlink.open", "Vai trò: trainer", "Lưu · Save",
                                   "Join link revoked by the operator"], ids, codes)) == 5


async def _crawl(who: Any, start: str, limit: int = 90) -> dict[str, list[str]]:
    """_crawl: GET every page reachable by links from `start` (one page per path shape: digits and query values
    do not make a new page), with the words each one shows."""
    seen: set[str] = set()
    queue, pages = [start], dict[str, list[str]]()
    while queue and len(pages) < limit:
        url = urldefrag(queue.pop(0)).url
        shape = re.sub(r"\d+", "N", url.split("?")[0]) + "?" + ",".join(sorted(
            k for k in parse_qs(urlsplit(url).query)))
        if shape in seen:
            continue
        seen.add(shape)
        r = await who.client.get(url, headers=HTML, allow_redirects=False)
        if r.status != 200 or not r.headers.get("Content-Type", "").startswith("text/html"):
            continue
        parser = _PageWords()
        parser.feed(await r.text())
        pages[url] = parser.words
        for href in parser.links:
            target = urljoin(url, href)
            if target.startswith("/") and not SKIP_LINKS.search(target):
                queue.append(target)
    return pages


async def _seed_site(app: Any, make_user: Callable[..., Awaitable[Any]],
                     make_meeting: Callable[..., Awaitable[Any]]) -> tuple[dict[Role, Any], int]:
    """_seed_site: a unit, a classroom, a live meeting with attendance, a recording, material, quiz and forum
    question, audit entries; the account of each role that sees them."""
    async with app[DB]() as s:
        unit = Unit(code="01", name="Hà Nội", level=UnitLevel.PROVINCE)
        s.add(unit)
        await s.flush()
        room = Classroom(code="PH-01", name="Phòng Ba Đình", unit_id=unit.id)
        s.add(room)
        await s.commit()
    users = {Role.OPERATOR: await make_user(Role.OPERATOR, display_name="Trần Văn Minh"),
             Role.TRAINER: await make_user(Role.TRAINER, display_name="Nguyễn Thị Lan"),
             Role.LEADER: await make_user(Role.LEADER, display_name="Lê Văn Hùng"),
             Role.CLASSROOM: await make_user(Role.CLASSROOM, classroom_id=room.id, display_name="Phòng Ba Đình"),
             Role.LEARNER: await make_user(Role.LEARNER, display_name="Phạm Thu Hà")}
    trainer, room_user = users[Role.TRAINER], users[Role.CLASSROOM]
    meeting = await make_meeting(presenters=[trainer], classrooms=[room.id], title="Bài 3: Dạy học số")
    async with app[DB]() as s:
        await s.execute(insert(program_learners).values(program_id=meeting.program_id, user_id=users[Role.LEARNER].id))
        await s.execute(insert(program_trainers).values(program_id=meeting.program_id, user_id=trainer.id))
        audit.record(s, None, "joinlink.open", f"meeting:{meeting.id}", link_id=1, classroom_id=room.id)
        audit.record(s, None, "live.mute", f"meeting:{meeting.id}", participant="p1", source="mic", muted=True)
        audit.record(s, None, "user.disable", f"user:{trainer.id}", via="cli")
        at = meeting.starts_at + dt.timedelta(minutes=1)
        s.add_all([AttendanceEvent(meeting_id=meeting.id, at=at, kind="join", participant="p1", user_id=trainer.id,
                                   role="trainer", name="Nguyễn Thị Lan"),
                   AttendanceEvent(meeting_id=meeting.id, at=at, kind="join", participant="p2",
                                   user_id=room_user.id, classroom_id=room.id, role="classroom", name="Phòng Ba Đình"),
                   AttendanceEvent(meeting_id=meeting.id, at=at + dt.timedelta(seconds=30), kind="quality",
                                   participant="p2", user_id=room_user.id, classroom_id=room.id, role="classroom",
                                   data={"loss": 0.131, "bitrate": 1_500_000, "rtt": 80}),
                   Recording(meeting_id=meeting.id, program_id=meeting.program_id, title="Bài 3: Dạy học số",
                             directory="r1", state=RecordingState.READY, published=True, file="lecture.webm",
                             mime="video/webm", duration=754.5, size=1_572_864, ended_at=at),
                   Material(program_id=meeting.program_id, meeting_id=meeting.id, title="Giáo án bài 3",
                            kind=MaterialKind.DOCUMENT, filename="giao-an.pdf", mime="application/pdf",
                            size=1_572_864, sha256="0" * 64, created_by=trainer.id)])
        quiz = Quiz(program_id=meeting.program_id, title="Kiểm tra bài 3", published=True, created_by=trainer.id)
        topic = ForumTopic(program_id=meeting.program_id, title="Hỏi đáp bài 3", created_by=trainer.id)
        s.add_all([quiz, topic])
        await s.flush()
        s.add_all([QuizQuestion(quiz_id=quiz.id, position=1, text="Một cộng một?", choices=["1", "2"], correct=[1]),
                   ForumQuestion(topic_id=topic.id, author_id=users[Role.LEARNER].id, title="Nộp bài ở đâu?",
                                 body="Em nộp bài tập ở đâu ạ?")])
        await s.commit()
    return users, meeting.id


async def test_every_page_in_vietnamese_shows_no_message_id_code_or_english(
        app: Any, client: Any, login_as: Callable[..., Awaitable[Any]], make_user: Callable[..., Awaitable[Any]],
        make_meeting: Callable[..., Awaitable[Any]]) -> None:
    vi = Translations().get("vi")
    translated = {i for i in _catalog_ids() if vi.gettext(i) != i and re.search(r"[a-z]{3}", i)}
    codes = set(audit.ACTIONS) | {r.value for r in Role} | {s.value for s in MeetingStatus}
    users, meeting_id = await _seed_site(app, make_user, make_meeting)
    problems = []
    for role in ROLES:
        pages = await _crawl(await login_as(user=users[role]), "/")
        assert len(pages) >= (30 if role == Role.OPERATOR else 5), (role, sorted(pages))
        problems += [f"{role.value} {url}: {p}" for url, words in pages.items()
                     for p in untranslated_words(words, translated, codes)]
    guest = await guest_login(client, app, meeting_id)  # a join link's guest: the live room and what it links to
    try:
        pages = await _crawl(guest, f"/live/{meeting_id}")
    finally:
        await guest.client.close()
    assert f"/live/{meeting_id}" in pages
    problems += [f"guest {url}: {p}" for url, words in pages.items()
                 for p in untranslated_words(words, translated, codes)]
    assert not problems, "untranslated words in Vietnamese pages:\n" + "\n".join(problems)
