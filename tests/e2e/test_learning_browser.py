"""Real Chromium: a trainer uploads materials with the progress bar; a learner opens the program, views the PDF,
watches the video, asks in the forum (the trainer answers), takes a quiz and sees the score and progress.
Screenshots of the materials, PDF viewer, forum, quiz, score and progress pages go to tests/artifacts/."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path

import av
import numpy as np
import pytest
from playwright.async_api import Browser, Page
from sqlalchemy import insert

from server.db.engine import DB
from server.db.models import Meeting, MeetingStatus, Program, Role, User, program_learners, program_trainers
from tests.e2e.browser import ARTIFACTS, WAIT_MS
from tests.e2e.conftest import LiveServer, new_context

pytestmark = pytest.mark.browser

QUIZ = {
    "title": "Kiểm tra nhanh: Số tự nhiên", "pass_percent": 60, "published": True,
    "description": "Ba câu hỏi ngắn để tự đánh giá sau buổi học.",
    "questions": [
        {"text": "Số tự nhiên nhỏ nhất là số nào?", "choices": ["0", "1", "10"], "correct": [0]},
        {"text": "Những số nào là số nguyên tố?", "choices": ["2", "4", "5", "9"], "correct": [0, 2]},
        {"text": "12 chia hết cho số nào sau đây?", "choices": ["5", "7", "3"], "correct": [2]},
    ],
}


def make_pdf(path: Path) -> None:
    """make_pdf: a small valid one-page PDF with a heading and a few lines."""
    lines = ["BT /F1 26 Tf 72 720 Td (Bai giang 1: So tu nhien) Tj ET",
             "BT /F1 14 Tf 72 680 Td (Muc tieu: nhan biet tap hop so tu nhien va cac phep tinh.) Tj ET",
             "BT /F1 14 Tf 72 655 Td (1. Tap hop N = {0; 1; 2; 3; ...}) Tj ET",
             "BT /F1 14 Tf 72 630 Td (2. Thu tu trong tap hop so tu nhien) Tj ET",
             "0.08 0.39 0.77 RG 4 w 72 600 m 540 600 l S"]
    stream = "\n".join(lines).encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    path.write_bytes(bytes(out))


def make_webm(path: Path, seconds: int = 2) -> None:
    """make_webm: a short VP8 WebM (320×240, moving colour bars) made with PyAV."""
    with av.open(str(path), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(seconds * 10):
            img = np.zeros((240, 320, 3), dtype=np.uint8)
            img[:, :, 0] = (np.arange(320) + i * 8) % 256
            img[:, :, 2] = 160
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


async def shot(page: Page, name: str, full: bool = True) -> None:
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky top bar stays at the top of full-page shots
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full)


async def test_learner_studies_a_program(browser: Browser, live_server: LiveServer, tmp_path: Path,
                                         make_user: Callable[..., Awaitable[User]]) -> None:
    app = live_server.app
    trainer = await make_user(Role.TRAINER, username="gv.lan", display_name="Cô Nguyễn Thị Lan")
    learner = await make_user(Role.LEARNER, username="hv.an", display_name="Trần Văn An")
    for i, name in enumerate(("Lê Thị Bình", "Phạm Minh Châu")):
        other = await make_user(Role.LEARNER, username=f"hv.{i}", display_name=name)
        if i == 0:
            extra = other
    now = dt.datetime.now(dt.UTC)
    async with app[DB]() as s:
        program = Program(title="Tập huấn Chương trình GDPT 2018 — Toán 6",
                          description="Bồi dưỡng giáo viên dạy môn Toán lớp 6 theo chương trình mới.")
        s.add(program)
        await s.flush()
        s.add(Meeting(program_id=program.id, title="Buổi 1: Số tự nhiên", status=MeetingStatus.PUBLISHED,
                      starts_at=now + dt.timedelta(days=12), ends_at=now + dt.timedelta(days=12, hours=2)))
        await s.execute(insert(program_trainers).values(program_id=program.id, user_id=trainer.id))
        for u in (learner, extra):
            await s.execute(insert(program_learners).values(program_id=program.id, user_id=u.id))
        await s.commit()
        pid = program.id
    pdf, webm = tmp_path / "Bài giảng 1 - Số tự nhiên.pdf", tmp_path / "Video bài giảng 1.webm"
    make_pdf(pdf)
    make_webm(webm)

    tctx = await new_context(browser, live_server.url, user=trainer, app=app)
    lctx = await new_context(browser, live_server.url, user=learner, app=app)
    try:
        # the trainer uploads a PDF and a video through the page (XMLHttpRequest with a progress bar)
        tp = await tctx.new_page()
        for path, title in ((pdf, "Bài giảng 1: Số tự nhiên"), (webm, "Video bài giảng 1")):
            await tp.goto(f"/study/{pid}/materials")
            await tp.set_input_files("[data-file]", str(path))
            await tp.fill("#m-title", title)
            await tp.click("[data-submit]")
            await tp.wait_for_url("**notice=material-uploaded")
        assert await tp.locator(".materials-table tbody tr").count() == 2
        await tp.evaluate("""(quiz) => taphuan.fetch(location.pathname.replace('/materials', '')
                              .replace('/study/', '/api/v1/programs/') + '/quizzes', {method: 'POST', body: quiz})
                              .then(r => r.status)""", QUIZ)
        await shot(tp, "learning-materials")

        # the learner opens the program from "My learning" and views the PDF in the browser
        lp = await lctx.new_page()
        await lp.goto("/study")
        await lp.click(f"a[href='/study/{pid}'] >> nth=0")
        await lp.wait_for_selector("h2:has-text('Tiến độ của tôi')")
        await lp.click("a.item-title:has-text('Bài giảng 1: Số tự nhiên')")
        frame = lp.locator("iframe.pdf-frame")
        await frame.wait_for()
        async with lp.expect_response(lambda r: "/file" in r.url and r.status == 200):
            await lp.reload()
        await lp.wait_for_timeout(1500)
        await shot(lp, "learning-pdf-viewer", full=False)

        # the learner watches the short video to the end: the player reports the watching
        await lp.goto(f"/study/{pid}")
        await lp.click("a.item-title:has-text('Video bài giảng 1')")
        await lp.wait_for_selector("video[data-study-video]")
        # the player's script (at the end of the page) counts from the "play" event: it must run first
        await lp.wait_for_function("() => document.readyState !== 'loading'")
        async with lp.expect_response(lambda r: r.url.endswith("/api/v1/study/watch"), timeout=WAIT_MS) as resp:
            await lp.evaluate("() => { const v = document.querySelector('video'); v.muted = true; return v.play(); }")
        watched = await (await resp.value).json()
        assert watched["completed"] is True, watched

        # the learner asks in the forum; the trainer answers and marks it answered
        await lp.goto(f"/study/{pid}/forum")
        await lp.click("a.topic-title:has-text('Buổi 1: Số tự nhiên')")
        await lp.fill("#q-title", "Dạy phép chia có dư thế nào cho dễ hiểu?")
        await lp.fill("#q-body", "Em xin gợi ý **hoạt động** cho học sinh yếu.\n\n- Dùng đồ vật\n- Dùng sơ đồ")
        await lp.click("button:has-text('Gửi câu hỏi')")
        await lp.wait_for_selector(".question .badge-open")
        await tp.goto("/forum/unanswered")
        await tp.click("a.btn:has-text('Trả lời')")
        await tp.fill("details[open] textarea",
                      "Cô gợi ý dùng **que tính**: chia đều vào các nhóm, phần còn lại là *số dư*.")
        await tp.click("details[open] button[type=submit]")
        await tp.wait_for_selector(".question.is-answered")
        await lp.reload()
        await lp.wait_for_selector(".question.is-answered .reply.is-staff strong:has-text('que tính')")
        await shot(lp, "learning-forum")

        # the learner takes the quiz and sees the score
        await lp.goto(f"/study/{pid}/quizzes")
        await lp.click("a.btn:has-text('Làm bài')")
        await lp.check("input[name=q0][value='0']")
        await lp.check("input[name=q1][value='0']")
        await lp.check("input[name=q2][value='0']")
        await lp.wait_for_selector("[data-answered-count]:has-text('3/3')")
        await shot(lp, "learning-quiz")
        await lp.click("button:has-text('Nộp bài')")
        await lp.wait_for_selector(".score-card")
        assert await lp.inner_text("[data-score]") == "33%"
        await shot(lp, "learning-quiz-result-failed", full=False)
        await lp.click("a.btn:has-text('Làm lại')")
        for name, value in (("q0", "0"), ("q1", "0"), ("q1", "2"), ("q2", "2")):
            await lp.check(f"input[name={name}][value='{value}']")
        await lp.click("button:has-text('Nộp bài')")
        await lp.wait_for_selector(".score-card.is-passed")
        assert await lp.inner_text("[data-score]") == "100%"
        await shot(lp, "learning-quiz-result")

        # the learner's own progress: video watched, PDF opened, quiz passed
        await lp.goto(f"/study/{pid}")
        ring = await lp.inner_text(".progress-card .ring")
        assert ring.strip() == "100%"
        await shot(lp, "learning-progress")
        # the trainer sees everyone's progress
        await tp.goto(f"/study/{pid}/progress")
        rows = await tp.locator(".progress-table tbody tr").all_inner_texts()
        assert any("Trần Văn An" in r and "100%" in r for r in rows)
        assert any("Lê Thị Bình" in r and "Chưa bắt đầu" in r for r in rows)
        await shot(tp, "learning-progress-table")
        # the same pages at phone width
        await lp.set_viewport_size({"width": 390, "height": 844})
        await lp.goto(f"/study/{pid}")
        assert await lp.evaluate("document.documentElement.scrollWidth") <= 390
        await shot(lp, "learning-progress-phone")
    finally:
        await tctx.close()
        await lctx.close()
