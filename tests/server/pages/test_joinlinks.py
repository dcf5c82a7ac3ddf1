"""Tests of server.pages.joinlinks: every invited classroom's join link at once, the CSV and the printable list."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, insert, select

from server.db.engine import DB
from server.db.models import AuditEntry, Role, meeting_classrooms
from tests.server.people.test_accounts import HTML, JSON, LoginAs, make_classroom, make_meeting, new_link


async def test_links_for_all_invited_classrooms_csv_and_print(login_as: LoginAs, app: web.Application) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(app)
    rooms = [await make_classroom(app, code=f"CT-0{i}", name=f"Phòng họp số {i}") for i in (1, 2, 3)]
    other = await make_classroom(app, code="KM-01", name="Phòng không được mời")
    async with app[DB]() as s:
        for room in rooms:
            await s.execute(insert(meeting_classrooms).values(meeting_id=meeting.id, classroom_id=room.id))
        await s.commit()
    await new_link(op, meeting.id, classroom_id=rooms[0].id)  # already has one: it is kept, not doubled

    resp = await op.post(f"/meetings/{meeting.id}/links/invited", data={"csrf_token": op.csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("done=invited&made=2")
    html = await (await op.get(resp.headers["Location"], headers=HTML)).text()
    assert "Số liên kết vừa tạo cho các lớp được mời chưa có liên kết: 2" in html
    resp = await op.post(f"/meetings/{meeting.id}/links/invited", data={"csrf_token": op.csrf}, allow_redirects=False)
    assert resp.headers["Location"].endswith("made=0")  # a second click makes none
    async with app[DB]() as s:
        made = await s.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.action == "joinlink.create"))
    assert made == 3  # each link made is audit-logged, as one made by hand

    resp = await op.get(f"/meetings/{meeting.id}/links.csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    text = (await resp.read()).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = text.lstrip("\ufeff").strip().splitlines()
    assert rows[0] == "code,classroom,unit,link,valid_until"
    assert [r.split(",")[0] for r in rows[1:]] == ["CT-01", "CT-02", "CT-03"]
    assert all("/j/" in r and "Tỉnh Thử" in r for r in rows[1:]) and other.code not in text

    page = await (await op.get(f"/meetings/{meeting.id}/links/print", headers=HTML)).text()
    assert page.count("/j/") == 3 and "Phòng họp số 2" in page and "In danh sách" in page


async def test_other_roles_are_refused(login_as: LoginAs, app: web.Application) -> None:
    meeting = await make_meeting(app)
    for role in (Role.TRAINER, Role.LEADER, Role.CLASSROOM, Role.LEARNER):
        who = await login_as(role)
        for path in (f"/meetings/{meeting.id}/links.csv", f"/meetings/{meeting.id}/links/print"):
            assert (await who.get(path, headers=JSON)).status == 403, (role, path)
        resp = await who.post(f"/meetings/{meeting.id}/links/invited", data={"csrf_token": who.csrf}, headers=JSON)
        assert resp.status == 403
    op = await login_as(Role.OPERATOR)
    assert (await op.get("/meetings/99999/links.csv", headers=JSON)).status == 404
    resp = await op.post("/meetings/99999/links/invited", data={"csrf_token": op.csrf}, headers=JSON)
    assert resp.status == 404
