"""Tests of server.api.meetings: CRUD, validation, roles, time zones, audit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select, text

from server.db.engine import DB, ENGINE
from server.db.models import AuditEntry, Classroom, LoginSession, Role, Unit, UnitLevel, User, utcnow
from tests.conftest import SharedClient

API = "/api/v1"


@pytest.fixture
async def world(app: web.Application, login_as: Callable[..., Awaitable[Any]],
                make_user: Callable[..., Awaitable[User]]) -> dict[str, Any]:
    """world: an operator, two trainers, a leader, two classrooms (one with an account), a province."""
    op = await login_as(Role.OPERATOR)
    async with app[DB]() as s:
        hn = Unit(code="01", name="Hà Nội", level=UnitLevel.PROVINCE)
        district = Unit(code="001", name="Ba Đình", level=UnitLevel.DISTRICT)
        s.add_all([hn, district])
        await s.flush()
        c1 = Classroom(code="PH-01", name="Phòng 1", unit_id=hn.id)
        c2 = Classroom(code="PH-02", name="Phòng 2", unit_id=hn.id)
        s.add_all([c1, c2])
        await s.commit()
    trainer = await make_user(Role.TRAINER, display_name="Giảng viên A")
    trainer2 = await make_user(Role.TRAINER, display_name="Giảng viên B")
    leader = await make_user(Role.LEADER, display_name="Lãnh đạo")
    room_user = await make_user(Role.CLASSROOM, classroom_id=c1.id)
    learner = await make_user(Role.LEARNER)
    r = await op.post(f"{API}/programs", json={"title": "Chương trình A", "description": "Mô tả"})
    assert r.status == 201, await r.text()
    program = await r.json()
    return {"op": op, "trainer": trainer, "trainer2": trainer2, "leader": leader, "room_user": room_user,
            "learner": learner, "c1": c1, "c2": c2, "hn": hn, "district": district, "program": program}


def meeting_body(world: dict[str, Any], **over: Any) -> dict[str, Any]:
    """meeting_body: a valid meeting body (08:00–10:00 local on 10 March 2030) with overrides."""
    body: dict[str, Any] = {
        "program_id": world["program"]["id"], "title": "Buổi 1", "kind": "lecture",
        "starts_at": "2030-03-10T08:00:00+07:00", "ends_at": "2030-03-10T10:00:00+07:00",
        "presenter_ids": [world["trainer"].id], "classroom_ids": [world["c1"].id],
    }
    body.update(over)
    return body


async def create(world: dict[str, Any], **over: Any) -> dict[str, Any]:
    r = await world["op"].post(f"{API}/meetings", json=meeting_body(world, **over))
    assert r.status == 201, await r.text()
    return dict(await r.json())


async def audit_actions(app: web.Application) -> list[str]:
    async with app[DB]() as s:
        return list((await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all())


async def test_meeting_create_stores_utc_and_answers_local(app: web.Application, world: dict[str, Any]) -> None:
    m = await create(world)
    assert m["starts_at"] == "2030-03-10T08:00:00+07:00"
    assert m["ends_at"] == "2030-03-10T10:00:00+07:00"
    assert m["status"] == "draft"
    assert [p["id"] for p in m["presenters"]] == [world["trainer"].id]
    assert [c["code"] for c in m["classrooms"]] == ["PH-01"]
    assert m["program_title"] == "Chương trình A"
    async with app[ENGINE].connect() as conn:
        raw = (await conn.execute(text("SELECT starts_at, ends_at FROM meetings WHERE id = :i"),
                                  {"i": m["id"]})).one()
    assert str(raw[0]).startswith("2030-03-10 01:00:00")
    assert str(raw[1]).startswith("2030-03-10 03:00:00")

    # The same instant given in UTC is the same meeting time.
    m2 = await create(world, starts_at="2030-03-11T01:00:00Z", ends_at="2030-03-11T02:30:00Z")
    assert (m2["starts_at"], m2["ends_at"]) == ("2030-03-11T08:00:00+07:00", "2030-03-11T09:30:00+07:00")
    assert "meeting.create" in await audit_actions(app)


@pytest.mark.parametrize(("over", "field"), [
    ({"ends_at": "2030-03-10T07:00:00+07:00"}, "ends_at"),
    ({"ends_at": "2030-03-10T08:00:00+07:00"}, "ends_at"),
    ({"ends_at": "2030-03-12T08:00:00+07:00"}, "ends_at"),
    ({"starts_at": "2030-03-10T08:00:00"}, "starts_at"),
    ({"starts_at": "tomorrow"}, "starts_at"),
    ({"presenter_ids": [999999]}, "presenter_ids"),
    ({"classroom_ids": [999999]}, "classroom_ids"),
    ({"program_id": 999999}, "program_id"),
    ({"video_codec": "AV1"}, "video_codec"),
    ({"kind": "webinar"}, "kind"),
    ({"title": ""}, "title"),
])
async def test_meeting_validation_names_the_field(app: web.Application, world: dict[str, Any],
                                                  over: dict[str, Any], field: str) -> None:
    r = await world["op"].post(f"{API}/meetings", json=meeting_body(world, **over))
    assert r.status == 422, await r.text()
    err = (await r.json())["error"]
    assert err["code"] == "invalid"
    assert err["field"] == field
    assert err["message"].startswith(field)
    assert "meeting.create" not in await audit_actions(app)


async def test_presenter_with_wrong_role_and_provinces(world: dict[str, Any]) -> None:
    op = world["op"]
    for user in (world["room_user"], world["learner"]):
        r = await op.post(f"{API}/meetings", json=meeting_body(world, presenter_ids=[user.id]))
        assert r.status == 422
        err = (await r.json())["error"]
        assert err["field"] == "presenter_ids" and user.username in err["message"]
    r = await op.post(f"{API}/meetings", json=meeting_body(world, province_ids=[world["hn"].id]))
    assert r.status == 422 and (await r.json())["error"]["field"] == "province_ids"
    r = await op.post(f"{API}/meetings", json=meeting_body(world, kind="regional", province_ids=[world["district"].id]))
    assert r.status == 422 and (await r.json())["error"]["field"] == "province_ids"
    m = await create(world, kind="regional", province_ids=[world["hn"].id],
                     presenter_ids=[world["leader"].id, world["trainer"].id])
    assert [u["name"] for u in m["provinces"]] == ["Hà Nội"]
    assert {p["role"] for p in m["presenters"]} == {"leader", "trainer"}


async def test_meeting_patch(app: web.Application, world: dict[str, Any]) -> None:
    op = world["op"]
    m = await create(world)
    r = await op.patch(f"{API}/meetings/{m['id']}", json={"title": "Buổi 1 (sửa)", "video_codec": "H264",
                                                           "classroom_ids": [world["c1"].id, world["c2"].id]})
    assert r.status == 200, await r.text()
    body = await r.json()
    assert (body["title"], body["video_codec"], body["starts_at"]) == ("Buổi 1 (sửa)", "H264", m["starts_at"])
    assert len(body["classrooms"]) == 2

    r = await op.patch(f"{API}/meetings/{m['id']}", json={"ends_at": "2030-03-10T07:59:00+07:00"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "ends_at"
    r = await op.get(f"{API}/meetings/{m['id']}")
    assert (await r.json())["ends_at"] == "2030-03-10T10:00:00+07:00"

    program2 = await (await op.post(f"{API}/programs", json={"title": "B"})).json()
    r = await op.patch(f"{API}/meetings/{m['id']}", json={"program_id": program2["id"]})
    assert (await r.json())["program_title"] == "B"
    assert (await audit_actions(app)).count("meeting.update") == 2


async def test_status_changes(app: web.Application, world: dict[str, Any]) -> None:
    op = world["op"]
    m = await create(world)
    url = f"{API}/meetings/{m['id']}"
    r = await op.delete(url)  # a draft may be deleted; make another
    assert r.status == 204
    m = await create(world)
    url = f"{API}/meetings/{m['id']}"

    r = await op.post(f"{url}/publish")
    assert r.status == 200 and (await r.json())["status"] == "published"
    r = await op.post(f"{url}/publish")
    assert r.status == 409 and (await r.json())["error"]["code"] == "bad-status"
    r = await op.delete(url)
    assert r.status == 409 and (await r.json())["error"]["code"] == "meeting-published"
    r = await op.post(f"{url}/unpublish")
    assert (await r.json())["status"] == "draft"
    r = await op.post(f"{url}/cancel")
    assert (await r.json())["status"] == "cancelled"
    r = await op.post(f"{url}/cancel")
    assert r.status == 409
    r = await op.delete(url)
    assert r.status == 204
    r = await op.post(f"{url}/publish")
    assert r.status == 404
    actions = await audit_actions(app)
    for a in ("meeting.publish", "meeting.unpublish", "meeting.cancel", "meeting.delete"):
        assert a in actions


async def test_regional_meeting_needs_a_leader_to_publish(world: dict[str, Any]) -> None:
    m = await create(world, kind="regional", province_ids=[world["hn"].id])
    r = await world["op"].post(f"{API}/meetings/{m['id']}/publish")
    assert r.status == 422 and (await r.json())["error"]["field"] == "presenter_ids"
    await world["op"].patch(f"{API}/meetings/{m['id']}", json={"presenter_ids": [world["leader"].id]})
    r = await world["op"].post(f"{API}/meetings/{m['id']}/publish")
    assert r.status == 200


async def test_list_filters(world: dict[str, Any]) -> None:
    op = world["op"]
    a = await create(world, title="A")
    b = await create(world, title="B", starts_at="2030-03-20T08:00:00+07:00", ends_at="2030-03-20T09:00:00+07:00")
    await op.post(f"{API}/meetings/{b['id']}/publish")

    async def titles(query: str) -> list[str]:
        r = await op.get(f"{API}/meetings{query}")
        assert r.status == 200, await r.text()
        return [m["title"] for m in await r.json()]

    assert await titles("") == ["A", "B"]
    assert await titles("?status=published") == ["B"]
    assert await titles("?status=draft") == ["A"]
    assert await titles("?from=2030-03-11") == ["B"]
    assert await titles("?to=2030-03-11") == ["A"]
    assert await titles("?from=2030-03-10T09:30:00%2B07:00&to=2030-03-10T09:45") == ["A"]
    assert await titles("?from=2030-03-10T03:00:00Z") == ["B"]  # A ends at 03:00 UTC
    for bad in ("?status=live", "?from=yesterday", "?to=2030-13-01"):
        r = await op.get(f"{API}/meetings{bad}")
        assert r.status == 422, bad
        assert (await r.json())["error"]["field"] in ("status", "from", "to")

    r = await op.get(f"{API}/programs/{world['program']['id']}/meetings")
    assert [m["id"] for m in await r.json()] == [a["id"], b["id"]]
    r = await op.get(f"{API}/programs/999999/meetings")
    assert r.status == 404


async def test_presenters_and_classrooms_read_only_theirs(world: dict[str, Any],
                                                          login_as: Callable[..., Awaitable[Any]]) -> None:
    op = world["op"]
    draft = await create(world, title="Draft")
    pub = await create(world, title="Published")
    other = await create(world, title="Other", presenter_ids=[world["trainer2"].id], classroom_ids=[world["c2"].id])
    cancelled = await create(world, title="Cancelled")
    for m in (pub, other):
        await op.post(f"{API}/meetings/{m['id']}/publish")
    await op.post(f"{API}/meetings/{cancelled['id']}/cancel")

    trainer = await login_as(user=world["trainer"])
    r = await trainer.get(f"{API}/meetings")
    assert [m["title"] for m in await r.json()] == ["Draft", "Published", "Cancelled"]  # drafts: to prepare them
    assert (await trainer.get(f"{API}/meetings/{draft['id']}")).status == 200
    assert (await trainer.get(f"{API}/meetings/{other['id']}")).status == 404
    assert (await trainer.get(f"{API}/meetings/{pub['id']}")).status == 200
    assert (await trainer.get(f"{API}/programs")).status == 200

    room = await login_as(user=world["room_user"])
    r = await room.get(f"{API}/meetings")
    assert [m["title"] for m in await r.json()] == ["Published"]
    assert (await room.get(f"{API}/meetings/{draft['id']}")).status == 404
    assert (await room.get(f"{API}/meetings/{other['id']}")).status == 404
    r = await room.get(f"{API}/programs/{world['program']['id']}/meetings")
    assert [m["title"] for m in await r.json()] == ["Published"]


async def test_roles_refused_with_403_json(app: web.Application, world: dict[str, Any], client: Any,
                                           login_as: Callable[..., Awaitable[Any]]) -> None:
    m = await create(world)
    pid = world["program"]["id"]
    writes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"{API}/programs", {"title": "x"}),
        ("PATCH", f"{API}/programs/{pid}", {"title": "x"}),
        ("DELETE", f"{API}/programs/{pid}", None),
        ("POST", f"{API}/meetings", meeting_body(world)),
        ("PATCH", f"{API}/meetings/{m['id']}", {"title": "x"}),
        ("DELETE", f"{API}/meetings/{m['id']}", None),
        ("POST", f"{API}/meetings/{m['id']}/publish", None),
        ("POST", f"{API}/meetings/{m['id']}/unpublish", None),
        ("POST", f"{API}/meetings/{m['id']}/cancel", None),
    ]
    reads = [f"{API}/meetings", f"{API}/meetings/{m['id']}", f"{API}/programs/{pid}/meetings"]
    for role in (Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER):
        who = await login_as(role)
        for method, path, body in writes:
            r = await who.client.request(method, path, json=body, headers=who.headers())
            assert r.status == 403, (role, method, path, r.status)
            assert (await r.json())["error"]["code"] == "forbidden"
    learner = await login_as(Role.LEARNER)
    for path in reads + [f"{API}/programs", f"{API}/programs/{pid}"]:
        r = await learner.get(path)
        assert r.status == 403, path
        assert (await r.json())["error"]["code"] == "forbidden"
    room = await login_as(Role.CLASSROOM)
    for path in (f"{API}/programs", f"{API}/programs/{pid}"):
        assert (await room.get(path)).status == 403

    # A guest (join-link login without an account) is refused too.
    async with app[DB]() as s:
        s.add(LoginSession(id="guest-login-token", user_id=None, guest_name="Khách", csrf_token="g",
                           expires_at=utcnow() + dt.timedelta(hours=1)))
        await s.commit()
    guest = await login_as(Role.LEARNER)
    guest.client.session.cookie_jar.update_cookies({"taphuan_login": "guest-login-token"})
    for path in reads:
        r = await guest.client.get(path)
        assert r.status == 403, path

    # Anonymous: 401, never 500 (a browser without cookies on the running server: not the app started again)
    anon_client = SharedClient(client.server)
    await anon_client.start_server()
    try:
        for path in reads:
            r = await anon_client.get(path)
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "unauthenticated"
    finally:
        await anon_client.close()


async def test_override_history_keeps_every_reason(world: dict[str, Any]) -> None:
    """Published 3 days ahead with a reason, then moved with another: the meeting's answer lists both, oldest
    first, with author and time; the `publish_override_*` fields hold the last one."""
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date().isoformat()
    m = await create(world, starts_at=f"{day}T08:00:00+07:00", ends_at=f"{day}T10:00:00+07:00")
    op = world["op"]
    first, second = "Bộ dời lịch theo công văn số 7", "Đổi giờ vì trùng họp giao ban"
    r = await op.post(f"{API}/meetings/{m['id']}/publish", json={"override_reason": first})
    assert r.status == 200, await r.text()
    r = await op.patch(f"{API}/meetings/{m['id']}", json={"starts_at": f"{day}T09:00:00+07:00"})
    assert r.status == 409  # a change inside the 10 days needs its own reason
    r = await op.patch(f"{API}/meetings/{m['id']}", json={"starts_at": f"{day}T09:00:00+07:00",
                                                          "override_reason": second})
    assert r.status == 200, await r.text()
    got = await (await op.get(f"{API}/meetings/{m['id']}")).json()
    history = got["override_history"]
    assert [(h["action"], h["reason"]) for h in history] == [("publish", first), ("update", second)]
    assert all(h["by"] == op.user.id and h["at"] for h in history)
    assert got["publish_override_reason"] == second
