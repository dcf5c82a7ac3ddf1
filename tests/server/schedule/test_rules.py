"""Tests of server.schedule.rules through server.schedule.meetings and the API: the 10-day rule and its override,
overlaps,
re-checks and notifications when a published meeting is edited."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlalchemy import select

from server.auth import Identity
from server.db.engine import DB
from server.db.models import AuditEntry, Classroom, Meeting, MeetingStatus, Notification, Role, Unit, UnitLevel, User
from server.errors import ApiError
from server.mail import MAILER
from server.schedule import meetings as svc
from server.schedule import rules as schedule
from tests.server.mailtest import Inbox, config, smtp  # noqa: F401  (fixtures)

API = "/api/v1"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
HTML = {"Accept": "text/html"}
OPERATOR = Identity("x", Role.OPERATOR, "c")


@pytest.fixture
async def world(app: web.Application, login_as: Callable[..., Awaitable[Any]],
                make_user: Callable[..., Awaitable[User]]) -> dict[str, Any]:
    """world: an operator, trainers, leaders, three classrooms, two provinces and a program."""
    op = await login_as(Role.OPERATOR)
    async with app[DB]() as s:
        lc = Unit(code="T10", name="Lào Cai", level=UnitLevel.PROVINCE)
        yb = Unit(code="T15", name="Yên Bái", level=UnitLevel.PROVINCE)
        s.add_all([lc, yb])
        await s.flush()
        rooms = [Classroom(code=f"PH-{i}", name=f"Phòng {i}", unit_id=lc.id) for i in (1, 2, 3)]
        s.add_all(rooms)
        await s.commit()
    w: dict[str, Any] = {"op": op, "lc": lc, "yb": yb, "rooms": rooms,
                         "trainer": await make_user(Role.TRAINER, username="gv.a", display_name="Nguyễn Văn A"),
                         "trainer2": await make_user(Role.TRAINER, username="gv.b", display_name="Trần Thị B"),
                         "leader": await make_user(Role.LEADER, username="ld.c", display_name="Lê Văn C"),
                         "leader2": await make_user(Role.LEADER, username="ld.d", display_name="Phạm Thị D")}
    w["room_user"] = await make_user(Role.CLASSROOM, username="phong1", classroom_id=rooms[0].id)
    r = await op.post(f"{API}/programs", json={"title": "Bồi dưỡng 2030"})
    w["program"] = (await r.json())["id"]
    return w


def local_day(days: int) -> dt.date:
    """local_day: the local date `days` from today (configured timezone)."""
    return dt.datetime.now(TZ).date() + dt.timedelta(days=days)


def at(day: dt.date, hhmm: str) -> str:
    """at: an ISO time with offset for a local day and HH:MM."""
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm), tzinfo=TZ).isoformat()


def body(w: dict[str, Any], days: int = 20, start: str = "08:00", end: str = "10:00", **over: Any) -> dict[str, Any]:
    """body: a lecture `days` ahead with trainer A and classroom 1, with overrides."""
    day = local_day(days)
    data: dict[str, Any] = {"program_id": w["program"], "title": "Bài giảng", "kind": "lecture",
                            "starts_at": at(day, start), "ends_at": at(day, end),
                            "presenter_ids": [w["trainer"].id], "classroom_ids": [w["rooms"][0].id]}
    data.update(over)
    return data


def regional(w: dict[str, Any], start: str = "08:00", end: str = "10:00", **over: Any) -> dict[str, Any]:
    """regional: a regional meeting chaired by leader C for Lào Cai, no classroom."""
    data = body(w, start=start, end=end, title="Hội nghị vùng", kind="regional", presenter_ids=[w["leader"].id],
                classroom_ids=[], province_ids=[w["lc"].id])
    data.update(over)
    return data


async def create(w: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    r = await w["op"].post(f"{API}/meetings", json=data)
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def publish(w: dict[str, Any], mid: int, reason: str | None = None) -> Any:
    if reason is None:
        return await w["op"].post(f"{API}/meetings/{mid}/publish")
    return await w["op"].post(f"{API}/meetings/{mid}/publish", json={"override_reason": reason})


async def published(w: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    m = await create(w, data)
    r = await publish(w, m["id"])
    assert r.status == 200, await r.text()
    return dict(await r.json())


# --- the 10-day rule ------------------------------------------------------------------------------

def test_notice_counts_local_calendar_days() -> None:
    now = dt.datetime(2030, 3, 1, 3, 0, tzinfo=dt.UTC)  # 10:00 on 1 March in Hà Nội
    assert schedule.notice_ok(dt.datetime(2030, 3, 11, 0, 5, tzinfo=TZ), now, TZ)  # any hour on the 11th
    assert not schedule.notice_ok(dt.datetime(2030, 3, 10, 23, 30, tzinfo=TZ), now, TZ)  # not the 10th
    assert schedule.earliest_start_day(now, TZ) == dt.date(2030, 3, 11)
    assert schedule.last_publish_day(dt.datetime(2030, 3, 11, 8, tzinfo=TZ), TZ) == dt.date(2030, 3, 1)


def test_notice_around_local_midnight() -> None:
    meeting = dt.datetime(2030, 3, 11, 7, 30, tzinfo=TZ)  # 00:30 UTC on the 11th
    before_midnight = dt.datetime(2030, 3, 1, 16, 59, tzinfo=dt.UTC)  # 23:59 on 1 March local, still the 1st
    after_midnight = dt.datetime(2030, 3, 1, 17, 1, tzinfo=dt.UTC)  # 00:01 on 2 March local (UTC is still the 1st)
    assert schedule.notice_ok(meeting, before_midnight, TZ)
    assert not schedule.notice_ok(meeting, after_midnight, TZ)
    # The same instants in UTC would give the opposite answer for a meeting on the 11th at 23:30 UTC:
    late = dt.datetime(2030, 3, 11, 23, 30, tzinfo=dt.UTC)  # 06:30 on the 12th locally
    assert schedule.notice_ok(late, after_midnight, TZ)


async def test_publish_nine_days_refused_ten_accepted(world: dict[str, Any]) -> None:
    nine = await create(world, body(world, days=9))
    r = await publish(world, nine["id"])
    assert r.status == 409
    err = (await r.json())["error"]
    assert err["code"] == "too-soon" and "10 ngày" in err["message"] and "10 days" in err["message"]
    assert err["earliest_day"] == local_day(10).isoformat()
    ten = await create(world, body(world, days=10, start="00:00", end="01:00", classroom_ids=[world["rooms"][1].id],
                                   presenter_ids=[world["trainer2"].id]))
    r = await publish(world, ten["id"])
    assert r.status == 200 and (await r.json())["status"] == "published"
    r = await world["op"].get(f"{API}/meetings/{nine['id']}")
    assert (await r.json())["status"] == "draft"


@pytest.mark.both_databases
async def test_time_edge_with_an_injected_clock(app: web.Application, world: dict[str, Any]) -> None:
    async with app[DB]() as s:
        data = svc.MeetingIn.model_validate(body(world) | {"starts_at": "2030-03-11T07:30:00+07:00",
                                                           "ends_at": "2030-03-11T09:00:00+07:00"})
        m = await svc.create_meeting(s, None, data)
        await s.commit()
        m = await svc.get_meeting(s, OPERATOR, m.id)
        with pytest.raises(ApiError) as err:
            await svc.change_status(s, None, m, MeetingStatus.PUBLISHED,
                                    now=dt.datetime(2030, 3, 1, 17, 1, tzinfo=dt.UTC))
        assert err.value.code == "too-soon"
        await svc.change_status(s, None, m, MeetingStatus.PUBLISHED, now=dt.datetime(2030, 3, 1, 16, 59, tzinfo=dt.UTC))
        assert m.status == MeetingStatus.PUBLISHED and m.publish_override_reason == ""
        with pytest.raises(ApiError) as err:
            await svc.change_status(s, None, m, MeetingStatus.DRAFT)
            await svc.change_status(s, None, m, MeetingStatus.PUBLISHED,
                                    now=dt.datetime(2030, 3, 12, tzinfo=dt.UTC))
        assert err.value.code == "ended"


async def test_override_needs_a_reason_is_audited_and_shown(app: web.Application, world: dict[str, Any]) -> None:
    m = await create(world, body(world, days=3))
    r = await publish(world, m["id"], reason="gấp")
    assert r.status == 422 and (await r.json())["error"]["field"] == "override_reason"
    r = await publish(world, m["id"], reason="   ")
    assert r.status == 409 and (await r.json())["error"]["code"] == "too-soon"
    reason = "Bộ đổi lịch gấp theo công văn số 123/BGDĐT"
    r = await publish(world, m["id"], reason=reason)
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["publish_override_reason"] == reason and out["publish_override_by"] == world["op"].user.id
    assert out["publish_override_at"] is not None
    async with app[DB]() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "meeting.publish"))
        assert entry is not None and entry.details["override_reason"] == reason
        assert entry.actor_id == world["op"].user.id
    html = await (await world["op"].client.get(f"/meetings/{m['id']}", headers=HTML)).text()
    assert reason in html and "Được công bố khi còn chưa đủ 10 ngày" in html
    room = await _login(world, "room_user")
    html = await (await room.client.get(f"/meetings/{m['id']}", headers=HTML)).text()
    assert reason in html  # the invited classroom sees why too


async def test_override_through_the_page(world: dict[str, Any]) -> None:
    op = world["op"]
    m = await create(world, body(world, days=2))
    page = await (await op.client.get(f"/meetings/{m['id']}", headers=HTML)).text()
    assert 'id="override"' in page and "Công bố với lý do này" in page
    r = await op.client.post(f"/meetings/{m['id']}/publish", data={"csrf_token": op.csrf, "override_reason": ""},
                             headers=HTML, allow_redirects=False)
    assert r.status == 409
    page = await r.text()
    assert "Phải công bố trước ít nhất 10 ngày" in page and "notice-error" in page
    r = await op.client.post(f"/meetings/{m['id']}/publish",
                             data={"csrf_token": op.csrf, "override_reason": "Lãnh đạo Bộ chỉ đạo họp gấp"},
                             headers=HTML, allow_redirects=False)
    assert r.status == 303
    page = await (await op.client.get(f"/meetings/{m['id']}", headers=HTML)).text()
    assert "Lãnh đạo Bộ chỉ đạo họp gấp" in page and 'id="override"' not in page


# --- overlaps -------------------------------------------------------------------------------------

async def _refused(w: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    m = await create(w, data)
    r = await publish(w, m["id"])
    assert r.status == 409, await r.text()
    err = dict((await r.json())["error"])
    assert err["code"] == "overlap"
    return err


@pytest.mark.both_databases
async def test_shared_presenter_refused_with_names(world: dict[str, Any]) -> None:
    first = await published(world, body(world, title="Buổi 1"))
    err = await _refused(world, body(world, title="Buổi 2", start="09:00", end="11:00",
                                     classroom_ids=[world["rooms"][1].id]))
    assert "“Buổi 1”" in err["message"] and "trùng giảng viên Nguyễn Văn A" in err["message"]
    assert "same trainer Nguyễn Văn A" in err["message"]
    assert local_day(20).strftime("%d/%m/%Y") + " 08:00–10:00" in err["message"]
    assert err["conflicts"][0]["meeting_id"] == first["id"]
    assert err["conflicts"][0]["shared"] == [{"kind": "trainer", "id": world["trainer"].id, "name": "Nguyễn Văn A"}]


@pytest.mark.both_databases
async def test_shared_classroom_refused(world: dict[str, Any]) -> None:
    await published(world, body(world, title="Buổi 1"))
    err = await _refused(world, body(world, title="Buổi 2", start="07:00", end="08:30",
                                     presenter_ids=[world["trainer2"].id]))
    assert "trùng phòng học PH-1 Phòng 1" in err["message"] and "trùng giảng viên" not in err["message"]


@pytest.mark.both_databases
async def test_shared_province_between_regional_meetings(world: dict[str, Any]) -> None:
    await published(world, regional(world, title="Vùng Tây Bắc"))
    err = await _refused(world, regional(world, title="Vùng 2", presenter_ids=[world["leader2"].id],
                                         province_ids=[world["lc"].id, world["yb"].id]))
    assert "“Vùng Tây Bắc”" in err["message"] and "trùng tỉnh Lào Cai" in err["message"]
    assert "Yên Bái" not in err["message"]


async def test_shared_leader_between_regional_meetings(world: dict[str, Any]) -> None:
    await published(world, regional(world, title="Vùng A"))
    err = await _refused(world, regional(world, title="Vùng B", province_ids=[world["yb"].id]))
    assert "trùng lãnh đạo Lê Văn C" in err["message"] and "same leader Lê Văn C" in err["message"]


async def test_shared_classroom_and_trainer_between_regional_meetings(world: dict[str, Any]) -> None:
    await published(world, regional(world, title="Vùng A", presenter_ids=[world["leader"].id, world["trainer"].id],
                                    classroom_ids=[world["rooms"][2].id]))
    err = await _refused(world, regional(world, title="Vùng B", presenter_ids=[world["leader2"].id,
                                                                              world["trainer"].id],
                                         province_ids=[world["yb"].id], classroom_ids=[world["rooms"][2].id]))
    assert "trùng giảng viên Nguyễn Văn A" in err["message"] and "trùng phòng học PH-3" in err["message"]


async def test_province_alone_does_not_block_a_lecture(world: dict[str, Any]) -> None:
    await published(world, regional(world, title="Vùng A"))
    lecture = body(world, presenter_ids=[world["trainer2"].id], classroom_ids=[world["rooms"][1].id])
    await published(world, lecture)  # a lecture has no provinces: only presenters and classrooms count


@pytest.mark.both_databases
async def test_adjacent_meetings_are_accepted(world: dict[str, Any]) -> None:
    await published(world, body(world, title="Sáng", start="08:00", end="10:00"))
    await published(world, body(world, title="Tiếp", start="10:00", end="11:00"))
    await published(world, body(world, title="Trước", start="07:00", end="08:00"))
    await published(world, regional(world, title="Vùng 1", start="13:00", end="15:00"))
    await published(world, regional(world, title="Vùng 2", start="15:00", end="17:00"))


@pytest.mark.both_databases
async def test_cancelled_and_draft_meetings_do_not_conflict(world: dict[str, Any]) -> None:
    first = await published(world, body(world, title="Huỷ"))
    await world["op"].post(f"{API}/meetings/{first['id']}/cancel")
    await create(world, body(world, title="Nháp"))  # a draft books nothing
    second = await published(world, body(world, title="Thay thế"))
    # The draft is warned about: it would conflict with the published one.
    r = await world["op"].get(f"{API}/meetings")
    draft = next(m for m in await r.json() if m["title"] == "Nháp")
    r = await world["op"].get(f"{API}/meetings/{draft['id']}")
    conflicts = (await r.json())["conflicts"]
    assert [c["meeting_id"] for c in conflicts] == [second["id"]]
    assert "trùng giảng viên Nguyễn Văn A" in conflicts[0]["message"]
    r = await world["op"].get(f"{API}/meetings/{draft['id']}/conflicts")
    assert [c["title"] for c in await r.json()] == ["Thay thế"]
    page = await (await world["op"].client.get(f"/meetings/{draft['id']}", headers=HTML)).text()
    assert "Chưa thể công bố cho đến khi giải quyết" in page and "Thay thế" in page
    # Republishing the cancelled one is refused now that its slot is taken.
    r = await publish(world, first["id"])
    assert r.status == 409 and "“Thay thế”" in (await r.json())["error"]["message"]


# --- editing a published meeting ------------------------------------------------------------------

async def _login(w: dict[str, Any], name: str) -> Any:
    return await w["login_as"](user=w[name])


@pytest.fixture(autouse=True)
def _keep_login(world: dict[str, Any], login_as: Callable[..., Awaitable[Any]]) -> None:
    world["login_as"] = login_as


async def test_editing_a_published_meeting_rechecks_and_notifies(app: web.Application, world: dict[str, Any]) -> None:
    op = world["op"]
    other = await published(world, body(world, title="Khác", days=25, presenter_ids=[world["trainer2"].id],
                                        classroom_ids=[world["rooms"][1].id]))
    m = await published(world, body(world, title="Chính"))
    url = f"{API}/meetings/{m['id']}"
    # Moving it onto the other meeting while inviting its classroom: refused, naming it.
    r = await op.patch(url, json={"starts_at": other["starts_at"], "ends_at": other["ends_at"],
                                  "classroom_ids": [world["rooms"][0].id, world["rooms"][1].id]})
    assert r.status == 409 and "“Khác”" in (await r.json())["error"]["message"]
    # Moving it to 5 days ahead: refused without a reason, accepted with one.
    soon = local_day(5)
    r = await op.patch(url, json={"starts_at": at(soon, "08:00"), "ends_at": at(soon, "09:00")})
    assert r.status == 409 and (await r.json())["error"]["code"] == "too-soon"
    r = await op.patch(url, json={"starts_at": at(soon, "08:00"), "ends_at": at(soon, "09:00"),
                                  "override_reason": "Đổi theo yêu cầu của Sở"})
    assert r.status == 200, await r.text()
    out = await r.json()
    assert out["publish_override_reason"] == "Đổi theo yêu cầu của Sở" and out["sequence"] == 2
    # A title change within 10 days needs no reason (nobody new, same time).
    r = await op.patch(url, json={"title": "Chính (sửa)", "classroom_ids": [world["rooms"][2].id]})
    assert r.status == 409 and (await r.json())["error"]["code"] == "too-soon"  # a newly invited classroom
    r = await op.patch(url, json={"title": "Chính (sửa)"})
    assert r.status == 200 and (await r.json())["sequence"] == 3
    async with app[DB]() as s:
        rows = list((await s.scalars(select(Notification).where(Notification.meeting_id == m["id"])
                                     .order_by(Notification.id))).all())
    kinds = [(n.kind, n.user_id, n.classroom_id) for n in rows]
    assert ("published", None, world["rooms"][0].id) in kinds
    assert ("published", world["trainer"].id, None) in kinds
    assert kinds.count(("changed", None, world["rooms"][0].id)) == 2
    assert kinds.count(("changed", world["trainer"].id, None)) == 2
    moved = next(n for n in rows if n.kind == "changed")
    assert "đã thay đổi (giờ bắt đầu, giờ kết thúc)" in moved.text and soon.strftime("%d/%m/%Y") in moved.text

    # The classroom sees the changes on its home page and through the API, then marks them read.
    room = await _login(world, "room_user")
    html = await (await room.client.get("/", headers=HTML)).text()
    assert "Thay đổi lịch" in html and "Chính (sửa)" in html
    r = await room.get(f"{API}/notifications?unread=1")
    notes = await r.json()
    assert len(notes) == 3 and notes[0]["text"].startswith("Buổi tập huấn “Chính (sửa)” đã thay đổi (tên)")
    r = await room.post(f"{API}/notifications/{notes[0]['id']}/read")
    assert (await r.json())["marked"] == 1
    trainer = await _login(world, "trainer2")
    r = await trainer.post(f"{API}/notifications/{notes[1]['id']}/read")
    assert r.status == 404  # not theirs
    r = await room.client.post("/notifications/read", data={"csrf_token": room.csrf}, allow_redirects=False)
    assert r.status == 303
    assert await (await room.get(f"{API}/notifications?unread=1")).json() == []


async def test_uninvited_and_cancelled_are_notified(app: web.Application, world: dict[str, Any]) -> None:
    m = await published(world, body(world, classroom_ids=[world["rooms"][0].id, world["rooms"][1].id]))
    r = await world["op"].patch(f"{API}/meetings/{m['id']}", json={"classroom_ids": [world["rooms"][0].id]})
    assert r.status == 200
    await world["op"].post(f"{API}/meetings/{m['id']}/cancel")
    async with app[DB]() as s:
        rows = [(n.kind, n.classroom_id) for n in (await s.scalars(
            select(Notification).where(Notification.classroom_id.is_not(None)).order_by(Notification.id))).all()]
        meeting = await s.get(Meeting, m["id"])
        assert meeting is not None and meeting.sequence == 3
    assert ("uninvited", world["rooms"][1].id) in rows
    assert ("cancelled", world["rooms"][0].id) in rows and ("cancelled", world["rooms"][1].id) not in rows


async def test_page_edit_of_published_meeting_shows_the_conflict(world: dict[str, Any]) -> None:
    op = world["op"]
    await published(world, body(world, title="Đã có", presenter_ids=[world["trainer2"].id]))
    m = await published(world, body(world, title="Của tôi", days=21, classroom_ids=[world["rooms"][1].id]))
    day = local_day(20)
    form = {"csrf_token": op.csrf, "program_id": str(world["program"]), "title": "Của tôi", "kind": "lecture",
            "date": day.isoformat(), "start_time": "09:00", "end_time": "10:30",
            "presenter_ids": str(world["trainer2"].id), "classroom_ids": str(world["rooms"][1].id),
            "video_codec": "VP8", "record": "1"}
    r = await op.client.post(f"/meetings/{m['id']}/edit", data=form, headers=HTML)
    assert r.status == 422
    html = await r.text()
    assert "Lịch bị trùng" in html and "“Đã có”" in html and "trùng giảng viên Trần Thị B" in html


async def test_roles_refused_on_rule_endpoints(world: dict[str, Any], login_as: Callable[..., Awaitable[Any]]) -> None:
    m = await create(world, body(world))
    for role in (Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER):
        who = await login_as(role)
        for method, path in (("POST", f"{API}/meetings/{m['id']}/publish"),
                             ("GET", f"{API}/meetings/{m['id']}/conflicts")):
            r = await who.client.request(method, path, json={"override_reason": "x" * 20}, headers=who.headers())
            assert r.status == 403, (role, path)
            assert (await r.json())["error"]["code"] == "forbidden"


# --- e-mail through SMTP (a local aiosmtpd server) -----------------------------------------------

async def test_invitees_are_emailed(app: web.Application, world: dict[str, Any], smtp: tuple[Inbox, int],  # noqa: F811 (fixture)
                                    make_user: Callable[..., Awaitable[User]]) -> None:
    inbox, _port = smtp
    async with app[DB]() as s:
        for name, mail in (("trainer", "gv.a@example.edu.vn"), ("room_user", "phong1@example.edu.vn"),
                           ("trainer2", "gv.b@example.edu.vn")):
            user = await s.get(User, world[name].id)
            assert user is not None
            user.email = mail
        await s.commit()
    m = await create(world, body(world, title="Buổi có thư"))
    too_soon = await create(world, body(world, days=2, title="Không gửi", presenter_ids=[world["trainer2"].id],
                                        classroom_ids=[]))
    assert (await publish(world, too_soon["id"])).status == 409  # refused: no mail for it
    assert (await publish(world, m["id"])).status == 200
    await world["op"].patch(f"{API}/meetings/{m['id']}", json={"title": "Buổi có thư (đổi)"})
    await app[MAILER].drain(10)
    for _ in range(100):
        if len(inbox.messages) >= 2:
            break
        await asyncio.sleep(0.05)
    assert len(inbox.messages) == 2
    rcpts, content = inbox.messages[0]
    assert rcpts == ["gv.a@example.edu.vn", "phong1@example.edu.vn"]
    msg = email.message_from_bytes(content, policy=email.policy.default)
    assert str(msg["Subject"]) == "[Taphuan] Buổi có thư"
    body_text = msg.get_body().get_content()  # type: ignore[union-attr]
    assert "Buổi tập huấn mới: “Buổi có thư”" in body_text and "New meeting" in body_text
    changed = email.message_from_bytes(inbox.messages[1][1], policy=email.policy.default)
    assert "đã thay đổi (tên)" in changed.get_body().get_content()  # type: ignore[union-attr]
    assert all("gv.b@example.edu.vn" not in r for r, _c in inbox.messages)
