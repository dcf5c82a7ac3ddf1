"""Tests of server.reports.headcount and its API: entry, validation, who may enter and who sees the total."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update

from server.db.engine import DB
from server.db.models import AuditEntry, Headcount, Meeting, MeetingStatus, Role, User
from server.reports.headcount import HeadcountIn, parse_names_csv
from tests.server.livetest import Factory, classroom_login


def test_names_csv_with_a_header_or_a_plain_list() -> None:
    assert parse_names_csv("\ufeffSTT;Họ tên;Trường\n1;Nguyễn Văn An;THCS A\n2;Trần Thị Bình;THCS B\n") == [
        "Nguyễn Văn An", "Trần Thị Bình"]
    assert parse_names_csv("Lê Văn C\n\n  Phạm Thị D  \n") == ["Lê Văn C", "Phạm Thị D"]
    assert parse_names_csv("") == []


@pytest.mark.parametrize("data, problem", [
    ({"count": -1}, "count"), ({"count": 501}, "count"), ({"count": "mười"}, "count"),
    ({"count": 1, "names": ["A", "B"]}, "smaller than the number of names"),
    ({"count": 5, "names": ["x" * 201]}, "at most 200"),
    ({"count": 500, "names": ["n"] * 501}, "names"),
    ({"count": 1, "names_csv": "A\nB\n"}, "smaller than the number of names"),
])
def test_validation(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as err:
        HeadcountIn.model_validate(data)
    assert problem in str(err.value)


def test_valid_input_drops_blank_names_and_merges_the_csv() -> None:
    h = HeadcountIn.model_validate({"count": 3, "names": [" An ", ""], "names_csv": "Họ tên\nBình\n"})
    assert h.names == ["An", "Bình"] and h.count == 3
    assert HeadcountIn.model_validate({"count": 0}).names == []


@pytest.mark.both_databases
async def test_classroom_enters_its_headcount_and_presenters_see_the_total(
        app: Any, login_as: Factory, make_user: Factory, make_classroom: Factory, make_meeting: Factory) -> None:
    trainer: User = await make_user(Role.TRAINER)
    a, a_id = await classroom_login(login_as, make_user, make_classroom, "Điểm cầu A")
    b, b_id = await classroom_login(login_as, make_user, make_classroom, "Điểm cầu B")
    outsider, _c = await classroom_login(login_as, make_user, make_classroom, "Không được mời")
    meeting = await make_meeting(presenters=[trainer], classrooms=[a_id, b_id])
    url = f"/api/v1/meetings/{meeting.id}/headcount"

    r = await a.put(url, json={"count": 25, "names": ["Nguyễn Văn An", "Trần Thị Bình"]})
    assert r.status == 200, await r.text()
    own = await r.json()
    assert [e["classroom_id"] for e in own["entries"]] == [a_id]  # a classroom sees its own only
    assert own["total"] == 25
    r = await b.put(url, json={"count": 12, "names_csv": "Họ tên\nLê Văn C\n"})
    assert r.status == 200
    r = await a.put(url, json={"count": 26})  # a correction replaces the row
    assert r.status == 200

    r = await a.put(url, json={"count": 1, "names": ["A", "B"]})
    assert r.status == 422 and "count" in (await r.json())["error"]["message"]
    r = await a.put(url, json={"count": 5, "classroom_id": b_id})
    assert r.status == 403  # not another classroom's figure
    r = await outsider.put(url, json={"count": 3})
    assert r.status == 404  # not invited: the meeting is not even visible

    t = await login_as(user=trainer)
    data = await (await t.get(url)).json()
    assert data["total"] == 38 and data["reported"] == 2 and data["invited"] == 2
    assert {e["classroom_id"]: e["names"] for e in data["entries"]}[b_id] == ["Lê Văn C"]
    r = await t.put(url, json={"count": 3})
    assert r.status == 403  # trainers read, classrooms enter

    op = await login_as(Role.OPERATOR)
    r = await op.put(url, json={"count": 30, "classroom_id": a_id})
    assert r.status == 200 and (await r.json())["total"] == 42
    r = await op.put(url, json={"count": 30})
    assert r.status == 422  # an operator names the classroom
    for role in (Role.LEARNER, Role.GUEST):
        other = await login_as(role)
        assert (await other.get(url)).status == 403
        assert (await other.put(url, json={"count": 1})).status == 403
    async with app[DB]() as s:
        rows = (await s.scalars(select(Headcount).where(Headcount.meeting_id == meeting.id))).all()
        assert sorted(h.count for h in rows) == [12, 30]
        audits = (await s.scalars(select(AuditEntry).where(AuditEntry.action == "headcount.save"))).all()
        assert len(audits) == 4


async def test_entry_window_and_unpublished_meetings(app: Any, login_as: Factory, make_user: Factory,
                                                     make_classroom: Factory, make_meeting: Factory) -> None:
    a, a_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(classrooms=[a_id])
    url = f"/api/v1/meetings/{meeting.id}/headcount"
    now = dt.datetime.now(dt.UTC)
    async with app[DB]() as s:
        await s.execute(update(Meeting).where(Meeting.id == meeting.id).values(
            starts_at=now + dt.timedelta(hours=2), ends_at=now + dt.timedelta(hours=4)))
        await s.commit()
    r = await a.put(url, json={"count": 3})
    assert r.status == 409 and (await r.json())["error"]["code"] == "too-early"
    async with app[DB]() as s:
        await s.execute(update(Meeting).where(Meeting.id == meeting.id).values(
            starts_at=now - dt.timedelta(days=40), ends_at=now - dt.timedelta(days=39)))
        await s.commit()
    r = await a.put(url, json={"count": 3})
    assert r.status == 409 and (await r.json())["error"]["code"] == "closed"
    op = await login_as(Role.OPERATOR)
    assert (await op.put(url, json={"count": 3, "classroom_id": a_id})).status == 200  # operators may correct
    async with app[DB]() as s:
        await s.execute(update(Meeting).where(Meeting.id == meeting.id).values(status=MeetingStatus.CANCELLED))
        await s.commit()
    r = await op.put(url, json={"count": 3, "classroom_id": a_id})
    assert r.status == 409
