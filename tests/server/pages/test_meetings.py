"""Tests of server.pages.meetings: program and meeting pages and forms, per role."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlalchemy import select, text

from server.config import Config
from server.db.engine import DB, ENGINE
from server.db.models import Meeting, MeetingKind, MeetingStatus, Program, Role, Unit, UnitLevel, User
from tests.server.pages_helpers import HTML, meeting_by_title, page, post_form, world
from tests.zones import OTHER_DAY

__all__ = ["world"]  # a fixture, used by name


# --- programs -------------------------------------------------------------------------------------

async def test_program_pages_crud(app: web.Application, login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    html = await page(op, "/programs")
    assert "Chưa có chương trình nào" in html

    r = await post_form(op, "/programs/new", {"title": "", "description": ""})
    assert r.status == 422
    assert "Hãy nhập tiêu đề" in await r.text()

    r = await post_form(op, "/programs/new", {"title": "Bồi dưỡng GDPT 2018", "description": "Cho giáo viên"})
    assert r.status == 303
    location = r.headers["Location"]
    assert location.endswith("?notice=program-created")
    html = await page(op, location)
    assert "Bồi dưỡng GDPT 2018" in html and "Đã tạo chương trình." in html
    async with app[DB]() as s:
        program = await s.scalar(select(Program))
        assert program is not None
    pid = program.id

    html = await page(op, f"/programs/{pid}/edit")
    assert 'value="Bồi dưỡng GDPT 2018"' in html and 'name="csrf_token"' in html
    r = await post_form(op, f"/programs/{pid}/edit", {"title": "Đã sửa", "description": ""})
    assert r.status == 303
    assert "Đã sửa" in await page(op, "/programs")

    html = await page(op, f"/programs/{pid}/delete")
    assert "Không thể hoàn tác" in html
    r = await post_form(op, f"/programs/{pid}/delete", {})
    assert r.status == 303 and r.headers["Location"] == "/programs?notice=program-deleted"
    await page(op, f"/programs/{pid}", status=404)


async def test_forms_need_the_csrf_token(login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    r = await op.client.post("/programs/new", data={"title": "x"}, headers=HTML, allow_redirects=False)
    assert r.status == 403
    r = await op.client.post("/programs/new", data={"title": "x", "csrf_token": "wrong"}, headers=HTML)
    assert r.status == 403


async def test_program_with_meetings_delete_page(world: dict[str, Any],
                                                 login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    pid = world["program"].id
    html = await page(op, f"/programs/{pid}/delete")
    assert "vẫn còn 4 buổi tập huấn" in html
    r = await post_form(op, f"/programs/{pid}/delete", {})
    assert r.status == 409
    html = await page(op, f"/programs/{pid}")
    assert "Buổi nháp" in html and "Buổi đang diễn ra" in html


# --- meetings -------------------------------------------------------------------------------------

def _form(world: dict[str, Any], **over: Any) -> list[tuple[str, str]]:
    fields = {"program_id": str(world["program"].id), "title": "Buổi mới", "description": "", "kind": "lecture",
              "date": "2030-05-20", "start_time": "08:00", "end_time": "10:30", "video_codec": "H264",
              "record": "1"}
    fields.update(over)
    out = list(fields.items())
    out += [("presenter_ids", str(world["trainer"].id)), ("classroom_ids", str(world["room"].id)),
            ("classroom_ids", str(world["room2"].id))]
    return out


async def test_meeting_form_creates_in_local_time(app: web.Application, world: dict[str, Any],
                                                  login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    html = await page(op, f"/meetings/new?program_id={world['program'].id}")
    assert "Nguyễn Thị Lan" in html and "Phòng Cầu Giấy" in html and "data-picker-filter" in html
    assert f'<option value="{world["program"].id}" selected>' in html

    r = await post_form(op, "/meetings/new", _form(world))
    assert r.status == 303, await r.text()
    m = await meeting_by_title(app, "Buổi mới")
    assert r.headers["Location"] == f"/meetings/{m.id}?notice=meeting-created"
    assert m.starts_at == dt.datetime(2030, 5, 20, 1, 0, tzinfo=dt.UTC)  # 08:00 in Asia/Ho_Chi_Minh
    assert m.ends_at == dt.datetime(2030, 5, 20, 3, 30, tzinfo=dt.UTC)
    assert (m.status, m.video_codec, m.record) == (MeetingStatus.DRAFT, "H264", True)
    async with app[ENGINE].connect() as conn:
        raw = (await conn.execute(text("SELECT starts_at FROM meetings WHERE id = :i"), {"i": m.id})).scalar()
    assert str(raw).startswith("2030-05-20 01:00:00")

    html = await page(op, f"/meetings/{m.id}")
    assert "20/05/2030 08:00" in html and "20/05/2030 10:30" in html
    assert f'href="/meetings/{m.id}/links"' in html and f'href="/live/{m.id}"' in html
    assert "Nguyễn Thị Lan" in html and "Phòng Cầu Giấy" in html and "Nháp" in html

    html = await page(op, f"/meetings/{m.id}/edit")
    assert 'value="08:00"' in html and 'value="10:30"' in html and 'value="2030-05-20"' in html
    r = await post_form(op, f"/meetings/{m.id}/edit", _form(world, title="Buổi mới (sửa)", start_time="09:00",
                                                             record=""))
    assert r.status == 303
    m = await meeting_by_title(app, "Buổi mới (sửa)")
    assert m.starts_at.hour == 2


@pytest.mark.parametrize(("over", "message"), [
    ({"end_time": "07:00"}, "giờ kết thúc phải sau giờ bắt đầu"),
    ({"title": ""}, "title"),
    ({"program_id": ""}, "hãy chọn một chương trình"),
    ({"date": ""}, "hãy nhập ngày và giờ bắt đầu"),
    ({"date": "20/05/2030"}, "ngày giờ không hợp lệ"),
])
async def test_meeting_form_errors(app: web.Application, world: dict[str, Any],
                                   login_as: Callable[..., Awaitable[Any]], over: dict[str, str],
                                   message: str) -> None:
    op = await login_as(Role.OPERATOR)
    r = await post_form(op, "/meetings/new", _form(world, **over))
    assert r.status == 422
    html = await r.text()
    assert 'class="field-error"' in html and message in html
    async with app[DB]() as s:
        assert await s.scalar(select(Meeting).where(Meeting.title == "Buổi mới")) is None


async def test_meeting_form_refuses_a_classroom_account_as_presenter(
        world: dict[str, Any], login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    fields = _form(world) + [("presenter_ids", str(world["room_user"].id))]
    r = await post_form(op, "/meetings/new", fields)
    assert r.status == 422
    assert "không phải giảng viên hay lãnh đạo" in await r.text()


async def test_meeting_status_buttons_and_delete(app: web.Application, world: dict[str, Any],
                                                 login_as: Callable[..., Awaitable[Any]]) -> None:
    op = await login_as(Role.OPERATOR)
    m = await meeting_by_title(app, "Buổi nháp")
    r = await post_form(op, f"/meetings/{m.id}/publish", {})
    assert r.status == 409 and "10 ngày" in await r.text()  # 8 days ahead: the 10-day rule needs a reason
    r = await post_form(op, f"/meetings/{m.id}/publish", {"override_reason": "Thử công bố sớm có lý do"})
    assert r.status == 303 and r.headers["Location"] == f"/meetings/{m.id}?notice=meeting-publish"
    assert (await meeting_by_title(app, "Buổi nháp")).status == MeetingStatus.PUBLISHED
    r = await post_form(op, f"/meetings/{m.id}/publish", {})
    assert r.status == 409
    assert "Không thể chuyển" in await r.text()
    html = await page(op, f"/meetings/{m.id}/delete")
    assert "hãy huỷ buổi đó trước" in html
    r = await post_form(op, f"/meetings/{m.id}/cancel", {})
    assert r.status == 303
    r = await post_form(op, f"/meetings/{m.id}/delete", {})
    assert r.status == 303 and r.headers["Location"] == f"/programs/{world['program'].id}?notice=meeting-deleted"
    await page(op, f"/meetings/{m.id}", status=404)


async def test_every_override_reason_stays_with_its_author_and_time(
        app: web.Application, world: dict[str, Any], login_as: Callable[..., Awaitable[Any]]) -> None:
    """Publishing inside the 10 days, then moving the meeting: the second reason is asked for and both stay on the
    page, oldest first, each with its author and time (the second used to replace the first)."""
    from server.config import CONFIG

    op = await login_as(Role.OPERATOR, display_name="Điều hành viên Lê Hoa")
    m = await meeting_by_title(app, "Buổi nháp")
    first, second = "Bộ dời lịch gấp theo công văn số 12", "Giảng viên đổi giờ vì trùng họp tỉnh"
    r = await post_form(op, f"/meetings/{m.id}/publish", {"override_reason": first})
    assert r.status == 303
    day = m.starts_at.astimezone(app[CONFIG].tz).strftime("%Y-%m-%d")
    fields = _form(world, title="Buổi nháp", date=day, start_time="07:00", end_time="08:00")
    r = await post_form(op, f"/meetings/{m.id}/edit", fields)
    assert r.status != 303 and "10 ngày" in await r.text()  # a change inside the 10 days needs its own reason
    r = await post_form(op, f"/meetings/{m.id}/edit", fields + [("override_reason", second)])
    assert r.status == 303, await r.text()
    html = await page(op, f"/meetings/{m.id}")
    assert "data-override-history" in html
    assert first in html and second in html and html.index(first) < html.index(second)
    assert html.count("Điều hành viên Lê Hoa") >= 2 and "Sửa buổi đã công bố" in html
    assert html.count("<tr data-reason=") == 2


async def test_meeting_pages_per_role(app: web.Application, world: dict[str, Any],
                                      login_as: Callable[..., Awaitable[Any]]) -> None:
    draft = await meeting_by_title(app, "Buổi nháp")
    theirs = await meeting_by_title(app, "Buổi của người khác")
    trainer = await login_as(user=world["trainer"])
    html = await page(trainer, "/meetings")
    assert "Buổi tuần sau" in html and "Buổi nháp" in html and "Buổi của người khác" not in html  # it presents it
    await page(trainer, f"/meetings/{draft.id}")
    await page(trainer, f"/meetings/{theirs.id}", status=404)
    for path in ("/programs", "/programs/new", f"/meetings/{draft.id}/edit", "/meetings/new"):
        html = await page(trainer, path, status=403)
        assert "Không được phép" in html
    r = await post_form(trainer, f"/meetings/{theirs.id}/cancel", {})
    assert r.status == 403

    room = await login_as(user=world["room_user"])
    html = await page(room, "/meetings")
    assert "Buổi tuần sau" in html and "Buổi nháp" not in html
    live = await meeting_by_title(app, "Buổi đang diễn ra")
    html = await page(room, f"/meetings/{live.id}")
    assert "Vào lớp" in html and f'href="/live/{live.id}"' in html and "/links" not in html

    learner = await login_as(Role.LEARNER)
    await page(learner, "/meetings", status=403)
    await page(learner, f"/meetings/{live.id}", status=403)
    r = await learner.client.get("/programs", allow_redirects=False)  # no text/html: a JSON error
    assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"


async def test_regional_meeting_page_shows_provinces(app: web.Application, world: dict[str, Any],
                                                     login_as: Callable[..., Awaitable[Any]],
                                                     make_user: Callable[..., Awaitable[User]]) -> None:
    leader = await make_user(Role.LEADER, display_name="Phạm Quốc Hùng")
    op = await login_as(Role.OPERATOR)
    fields = _form(world, kind="regional", title="Hội nghị") + [("presenter_ids", str(leader.id)),
                                                                 ("province_ids", str(world["unit"].id))]
    r = await post_form(op, "/meetings/new", fields)
    assert r.status == 303, await r.text()
    m = await meeting_by_title(app, "Hội nghị")
    assert m.kind == MeetingKind.REGIONAL
    html = await page(op, f"/meetings/{m.id}")
    assert "Hà Nội" in html and "Chủ trì và báo cáo viên" in html and "Hội nghị vùng" in html
    # A lecture drops the provinces the form may still send.
    fields = _form(world, title="Bài giảng") + [("province_ids", str(world["unit"].id))]
    r = await post_form(op, "/meetings/new", fields)
    assert r.status == 303


@pytest.mark.parametrize("config", [{"timezone": OTHER_DAY}], indirect=True)
async def test_the_form_offers_the_provinces_of_the_configured_timezones_day(
        app: web.Application, login_as: Callable[..., Awaitable[Any]], config: Config) -> None:
    op = await login_as(Role.OPERATOR)
    local, utc = dt.datetime.now(ZoneInfo(config.timezone)).date(), dt.datetime.now(dt.UTC).date()
    assert local != utc  # else this test could not fail
    async with app[DB]() as s:  # valid until the earlier of the two days: offered only if that is the local day
        s.add(Unit(code="97", name="Tỉnh Cũ Hôm Qua", level=UnitLevel.PROVINCE, valid_to=min(local, utc)))
        await s.commit()
    html = await page(op, "/meetings/new")
    assert ("Tỉnh Cũ Hôm Qua" in html) == (min(local, utc) >= local)
