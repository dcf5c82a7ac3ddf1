"""Tests of server.schedule.deadlines and the deadline rules of server.schedule.rules: due days, states on a
chosen "today", uploads (type by content, size limit, who may) and downloads."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import FormData
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import select

from server.auth import Identity
from server.config import Config
from server.db.engine import DB
from server.db.models import AuditEntry, Meeting, MeetingKind, MeetingStatus, Role
from server.errors import ApiError
from server.schedule import deadlines
from server.schedule import rules as schedule
from tests.server.schedule import test_rules as test_schedule
from tests.server.schedule.test_rules import API, create, local_day, publish, regional

world = test_schedule.world  # the shared fixture (an operator, people, classrooms, provinces, a program)

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    """config: uploads limited to 8 KiB so the size limit can be tested."""
    return make_config(**{"limits.max_upload_bytes": 8192})


def docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


def _meeting(start: dt.datetime, end: dt.datetime) -> Meeting:
    return Meeting(id=1, kind=MeetingKind.REGIONAL, starts_at=start, ends_at=end)


def test_due_days_are_local_dates() -> None:
    start = dt.datetime(2030, 3, 20, 6, 0, tzinfo=TZ)  # 19 March 23:00 UTC
    end = dt.datetime(2030, 3, 20, 11, 0, tzinfo=TZ)
    assert schedule.due_day("plan", start, end, TZ) == dt.date(2030, 3, 5)
    assert schedule.due_day("joint_report", start, end, TZ) == dt.date(2030, 3, 5)
    assert schedule.due_day("result_report", start, end, TZ) == dt.date(2030, 4, 4)


def test_states_on_a_chosen_day() -> None:
    m = _meeting(dt.datetime(2030, 3, 20, 8, tzinfo=TZ), dt.datetime(2030, 3, 20, 10, tzinfo=TZ))
    on_time = dt.datetime(2030, 3, 4, 9, tzinfo=TZ)
    late = dt.datetime(2030, 3, 6, 0, 30, tzinfo=TZ)

    def states(today: dt.date, received: dict[str, dt.datetime]) -> list[tuple[str, str, bool, int]]:
        return [(d.kind, d.state, d.late, d.days_left) for d in schedule.deadlines_of(m, received, today, TZ)]

    assert states(dt.date(2030, 3, 1), {}) == [("plan", "due", False, 4), ("joint_report", "due", False, 4),
                                               ("result_report", "due", False, 34)]
    assert states(dt.date(2030, 3, 5), {})[0] == ("plan", "due", False, 0)  # the due day itself is still on time
    assert states(dt.date(2030, 3, 6), {})[0] == ("plan", "overdue", False, -1)
    got = states(dt.date(2030, 3, 6), {"plan": on_time, "joint_report": late})
    assert got[0] == ("plan", "received", False, -1) and got[1] == ("joint_report", "received", True, -1)
    assert states(dt.date(2030, 4, 5), {})[2] == ("result_report", "overdue", False, -1)
    assert schedule.deadline_state(dt.date(2030, 3, 5), dt.date(2030, 3, 9), on_time) == "received"


async def published_regional(world: dict[str, Any],
                             login_as: Callable[..., Awaitable[Any]]) -> tuple[dict[str, Any], Any]:
    """published_regional: a published regional meeting inviting classroom 1, and that classroom logged in."""
    data = regional(world, classroom_ids=[world["rooms"][0].id])
    m = await create(world, data)
    assert (await publish(world, m["id"])).status == 200
    return m, await login_as(user=world["room_user"])


def upload(kind: str, content: bytes, name: str) -> FormData:
    form = FormData()
    form.add_field("kind", kind)
    form.add_field("file", content, filename=name, content_type="application/octet-stream")
    return form


async def test_upload_states_and_download(app: Any, world: dict[str, Any],
                                          login_as: Callable[..., Awaitable[Any]]) -> None:
    m, room = await published_regional(world, login_as)
    url = f"{API}/meetings/{m['id']}/documents"
    r = await room.post(url, data=upload("plan", PDF, "ke-hoach.pdf"))
    assert r.status == 201, await r.text()
    doc = await r.json()
    assert doc["content_type"] == "application/pdf" and doc["size"] == len(PDF)
    r = await world["op"].post(url + "?kind=joint_report", data=upload("", docx(), "lien-tich.docx"))
    assert r.status == 201 and (await r.json())["content_type"].endswith("wordprocessingml.document")

    start_day = local_day(20)
    r = await world["op"].get(f"{API}/deadlines?today={(start_day - dt.timedelta(days=14)).isoformat()}")
    rows = await r.json()
    assert [d["state"] for d in rows[0]["deadlines"]] == ["received", "received", "due"]
    r = await room.get(f"{API}/deadlines")
    assert [row["meeting_id"] for row in await r.json()] == [m["id"]]
    r = await room.get(f"{API}/deadlines?today={(start_day + dt.timedelta(days=16)).isoformat()}&state=overdue")
    assert [d["state"] for d in (await r.json())[0]["deadlines"]] == ["received", "received", "overdue"]
    r = await room.get(f"{API}/deadlines?state=received&today=2000-01-01")
    assert len(await r.json()) == 1

    r = await room.get(doc["url"])
    assert r.status == 200 and await r.read() == PDF
    assert "ke-hoach.pdf" in r.headers["Content-Disposition"]
    r = await room.client.get(f"/meetings/{m['id']}/documents/{doc['id']}")
    assert r.status == 200 and await r.read() == PDF
    async with app[DB]() as s:
        assert await s.scalar(select(AuditEntry.id).where(AuditEntry.action == "meeting.document"))


async def test_upload_refusals(world: dict[str, Any], login_as: Callable[..., Awaitable[Any]],
                               make_user: Callable[..., Awaitable[Any]]) -> None:
    m, room = await published_regional(world, login_as)
    url = f"{API}/meetings/{m['id']}/documents"
    r = await room.post(url, data=upload("plan", b"MZ\x90\x00" + b"\x00" * 200, "bao-cao.pdf"))
    assert r.status == 415 and "PDF" in (await r.json())["error"]["message"]
    r = await room.post(url, data=upload("plan", PDF + b"x" * 9000, "big.pdf"))
    assert r.status == 413 and (await r.json())["error"]["code"] == "too-large"
    r = await room.post(url, data=upload("minutes", PDF, "a.pdf"))
    assert r.status == 422 and (await r.json())["error"]["field"] == "kind"
    r = await room.post(url, json={"kind": "plan"})
    assert r.status == 415
    assert (await (await room.get(f"{API}/meetings/{m['id']}/documents")).json())["documents"] == []

    other_room = await login_as(Role.CLASSROOM, classroom_id=world["rooms"][1].id)
    r = await other_room.post(url, data=upload("plan", PDF, "a.pdf"))
    assert r.status == 404  # not invited: the meeting is not visible
    outsider = await login_as(Role.TRAINER)
    r = await outsider.post(url, data=upload("plan", PDF, "a.pdf"))
    assert r.status == 404
    learner = await login_as(Role.LEARNER)
    for method, path in (("POST", url), ("GET", url), ("GET", f"{API}/deadlines")):
        r = await learner.client.request(method, path, headers=learner.headers())
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    # A lecture has no deadlines.
    lecture = await create(world, {**regional(world), "kind": "lecture", "province_ids": [], "title": "Bài",
                                   "presenter_ids": [world["trainer"].id]})
    r = await world["op"].get(f"{API}/meetings/{lecture['id']}/documents")
    assert r.status == 404


async def test_upload_document_refuses_before_reading_the_body(app: Any, client: Any) -> None:
    lecture = Meeting(kind=MeetingKind.LECTURE, status=MeetingStatus.PUBLISHED)
    operator = Identity(login_id="x", role=Role.OPERATOR, csrf_token="")
    request = make_mocked_request("POST", "/api/v1/meetings/1/documents", app=app)
    async with app[DB]() as s:
        with pytest.raises(ApiError) as info:
            await deadlines.upload_document(s, request, operator, lecture)
    assert info.value.status == 403 and info.value.code == "forbidden"
