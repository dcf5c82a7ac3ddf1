"""Tests of server.api.reports: a scripted meeting with a drop and a rejoin (aiortc clients), a restart mid-meeting,
the injectable clock, role checks (a classroom sees only its own figures)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import insert

from server.app import create_app
from server.config import Config
from server.db.engine import DB
from server.db.models import (
    AttendanceEvent,
    Headcount,
    Meeting,
    MeetingStatus,
    Program,
    Role,
    User,
    meeting_classrooms,
)
from server.live.attendance import close_open_intervals
from server.reports.build import CLOCK
from tests.live_client import LiveClient
from tests.server.livetest import Factory, classroom_login, connect

HTML = {"Accept": "text/html"}
T0 = dt.datetime(2025, 9, 15, 1, 0, tzinfo=dt.UTC)


class Clock:
    """Clock: a settable clock for the reports (None: the real time)."""

    def __init__(self) -> None:
        self.at: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self.at or dt.datetime.now(dt.UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(config: Config, clock: Clock) -> web.Application:
    """app: the application with the reports' clock injected."""
    application = create_app(config)
    application[CLOCK] = clock
    return application


async def test_scripted_meeting_with_drop_and_rejoin(login_as: Factory, make_user: Factory, make_classroom: Factory,
                                                     make_meeting: Factory, clients: list[LiveClient],
                                                     app: Any) -> None:
    trainer: User = await make_user(Role.TRAINER)
    a_login, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp A")
    b_login, b_id = await classroom_login(login_as, make_user, make_classroom, "Lớp B")
    meeting = await make_meeting(presenters=[trainer], classrooms=[a_id, b_id])
    t_login = await login_as(user=trainer)
    t = await connect(t_login, clients)
    await t.join(meeting.id)
    a = await connect(a_login, clients)
    await a.join(meeting.id)
    b = await connect(b_login, clients)
    await b.join(meeting.id)
    await a.request("raise-hand", raised=True)
    await t.request("give-floor", participant_id=a.participant_id)
    await a.request("chat", text="Em xin hỏi")
    poll = await t.request("poll-create", question="Rõ chưa?", choices=["Rõ", "Chưa"])
    await a.request("poll-answer", poll_id=poll["poll_id"], choice=0)
    await b.request("poll-answer", poll_id=poll["poll_id"], choice=1)
    await asyncio.sleep(0.3)
    await a.ws.close(code=4000)  # type: ignore[union-attr]  # the network drops
    await t.wait(lambda m: m.get("type") == "participant-state" and m["state"] == "reconnecting")
    await asyncio.sleep(0.3)
    a2 = await connect(a_login, clients)  # comes back as a new participant (a fresh page load)
    await a2.join(meeting.id)
    await asyncio.sleep(0.3)
    await a2.request("leave")
    await asyncio.sleep(0.2)

    r = await t_login.get(f"/api/v1/reports/meetings/{meeting.id}")
    assert r.status == 200, await r.text()
    report = await r.json()
    rooms = {c["classroom_id"]: c for c in report["classrooms"]}
    ra = rooms[a_id]
    assert [i["how"] for i in ra["intervals"]] == ["drop", "leave"]
    assert ra["drops"] == 1 and ra["hands"] == 1 and ra["chat"] == 1 and ra["poll_answers"] == 1
    assert ra["floor_minutes"] > 0 and ra["floor"][0]["how"] == "drop"  # the floor ended with the drop
    assert 0 < ra["minutes"] < 1 and 0 < ra["share"] < 0.01
    rb = rooms[b_id]
    assert rb["attended"] and [i["how"] for i in rb["intervals"]] == ["now"]  # still connected: counts to now
    assert report["live"] is True and report["totals"]["attended"] == 2
    assert report["totals"]["poll_answers"] == 2
    assert any(o["role"] == "trainer" for o in report["others"])
    assert max(p["classrooms"] for p in report["timeline"]) >= 1

    # A classroom sees only its own figures.
    r = await b_login.get(f"/api/v1/reports/meetings/{meeting.id}")
    mine = await r.json()
    assert [c["classroom_id"] for c in mine["classrooms"]] == [b_id] and mine["others"] == []
    listing = await (await b_login.get("/api/v1/reports/meetings")).json()
    assert [m["meeting_id"] for m in listing] == [meeting.id] and listing[0]["totals"]["invited"] == 1
    r = await b_login.get("/api/v1/reports/export.csv", params={"report": "meeting", "id": str(meeting.id)})
    text = (await r.read()).decode("utf-8-sig")
    assert "Lớp B" in text and "Lớp A" not in text


async def past_meeting(app: Any, classroom_ids: list[int], start: dt.datetime = T0) -> int:
    """past_meeting: a published two-hour meeting from `start` inviting these classrooms; its id."""
    async with app[DB]() as s:
        program = Program(title="Chương trình báo cáo")
        s.add(program)
        await s.flush()
        m = Meeting(program_id=program.id, title="Buổi có khởi động lại", status=MeetingStatus.PUBLISHED,
                    starts_at=start, ends_at=start + dt.timedelta(hours=2))
        s.add(m)
        await s.flush()
        for c in classroom_ids:
            await s.execute(insert(meeting_classrooms).values(meeting_id=m.id, classroom_id=c))
        await s.commit()
        return m.id


async def add_events(app: Any, meeting_id: int, rows: list[tuple[int, str, str, int | None]]) -> None:
    """add_events: attendance events (minute after T0, kind, participant, classroom) of a meeting."""
    async with app[DB]() as s:
        for minute, kind, pid, room in rows:
            s.add(AttendanceEvent(meeting_id=meeting_id, at=T0 + dt.timedelta(minutes=minute), kind=kind,
                                  participant=pid, classroom_id=room, role="classroom", name=pid, data={}))
        await s.commit()


async def test_restart_mid_meeting_and_the_injected_clock(app: Any, clock: Clock, login_as: Factory,
                                                          make_classroom: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    a_id = await make_classroom(name="Lớp khởi động lại")
    m = await past_meeting(app, [a_id])
    await add_events(app, m, [(0, "join", "p1", a_id), (45, "quality", "p1", a_id)])
    clock.at = T0 + dt.timedelta(minutes=50)  # the meeting is live at 50 min: the open interval counts to now
    report = await (await op.get(f"/api/v1/reports/meetings/{m}")).json()
    (row,) = report["classrooms"]
    assert row["minutes"] == 50 and row["intervals"][0]["how"] == "now" and report["live"]
    assert await close_open_intervals(app, since_days=100000) == 1  # what start-up does after a crash
    await add_events(app, m, [(60, "join", "p2", a_id), (100, "leave", "p2", a_id)])
    clock.at = T0 + dt.timedelta(hours=5)
    report = await (await op.get(f"/api/v1/reports/meetings/{m}")).json()
    (row,) = report["classrooms"]
    assert [(i["minutes"], i["how"]) for i in row["intervals"]] == [(45, "closed-at-restart"), (40, "leave")]
    assert row["minutes"] == 85 and row["share"] == pytest.approx(85 / 120, abs=1e-4) and not report["live"]


async def test_role_checks(app: Any, clock: Clock, login_as: Factory, make_user: Factory, make_classroom: Factory,
                           make_meeting: Factory) -> None:
    trainer: User = await make_user(Role.TRAINER)
    other_trainer = await login_as(Role.TRAINER)
    a, a_id = await classroom_login(login_as, make_user, make_classroom, "Lớp riêng")
    b, b_id = await classroom_login(login_as, make_user, make_classroom, "Lớp khác")
    outsider, _ = await classroom_login(login_as, make_user, make_classroom, "Lớp không mời")
    m = await make_meeting(presenters=[trainer], classrooms=[a_id, b_id])
    async with app[DB]() as s:
        s.add(Headcount(meeting_id=m.id, classroom_id=a_id, count=9, names=[]))
        s.add(Headcount(meeting_id=m.id, classroom_id=b_id, count=40, names=[]))
        await s.commit()
    op = await login_as(Role.OPERATOR)
    t = await login_as(user=trainer)
    learner = await login_as(Role.LEARNER)
    guest = await login_as(Role.GUEST)
    url = f"/api/v1/reports/meetings/{m.id}"
    assert (await op.get(url)).status == 200
    assert (await t.get(url)).status == 200
    assert (await other_trainer.get(url)).status == 404  # not their meeting
    assert (await outsider.get(url)).status == 404
    for who in (learner, guest):
        r = await who.get(url)
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    own = await (await a.get(url)).json()
    assert [c["classroom_id"] for c in own["classrooms"]] == [a_id] and own["totals"]["teachers"] == 9
    for path in ("/api/v1/reports/monthly", f"/api/v1/reports/units/{1}", "/api/v1/reports/progress"):
        for who in (a, learner, guest):
            assert (await who.get(path)).status == 403, (path, who.user.role)
    for path in ("/api/v1/reports/monthly", "/api/v1/reports/units/1"):
        assert (await t.get(path)).status == 403
    assert (await t.get(f"/api/v1/reports/programs/{m.program_id}")).status == 200
    assert (await other_trainer.get(f"/api/v1/reports/programs/{m.program_id}")).status == 404
    assert (await learner.get("/api/v1/reports/progress/me")).status == 200
    assert (await op.get("/api/v1/reports/progress/me")).status == 403
    for who, allowed in ((a, False), (learner, False), (t, False), (op, True)):
        r = await who.get("/api/v1/reports/export.xlsx", params={"report": "monthly"})
        assert (r.status == 200) is allowed, (who.user.role, r.status)
    r = await op.get("/api/v1/reports/meetings", params={"from": "2025-13-01"})
    assert r.status == 422
    r = await op.get("/api/v1/reports/monthly", params={"month": "May"})
    assert r.status == 422
    r = await op.get("/api/v1/reports/meetings", params={"unit_id": "999999"})
    assert r.status == 422
    r = await op.get("/api/v1/reports/export.csv", params={"report": "nope"})
    assert r.status == 422
    # pages
    assert (await a.get("/reports", headers=HTML)).status == 403
    assert (await t.get(f"/reports/meetings/{m.id}", headers=HTML)).status == 200
    assert (await a.get(f"/reports/meetings/{m.id}", headers=HTML)).status == 403


async def test_english_nav_link_and_monthly_api(app: Any, clock: Clock, login_as: Factory,
                                                make_config: Callable[..., Config]) -> None:
    op = await login_as(Role.OPERATOR)
    html = await (await op.get("/", headers=HTML)).text()
    assert 'href="/reports"' in html and ">Báo cáo<" in html
    clock.at = T0
    data = await (await op.get("/api/v1/reports/monthly")).json()
    assert data["month"] == "2025-09" and data["totals"]["meetings"] == 0
    trainer = await login_as(Role.TRAINER)
    assert 'href="/reports"' not in await (await trainer.get("/", headers=HTML)).text()


async def test_exports_check_every_query_parameter(login_as: Any) -> None:
    """A month or a date the chosen report does not read was taken as it came (the API's document refuses it)."""
    op = await login_as(Role.OPERATOR)
    for params in ({"report": "progress", "month": "May"}, {"report": "meetings", "month": "2025-13"},
                   {"report": "progress", "from": "yesterday"}, {"report": "monthly", "to": "2025-02-30"}):
        r = await op.get("/api/v1/reports/export.csv", params=params)
        assert r.status == 422, params
        assert (await r.json())["error"]["field"] in ("month", "from", "to")
    r = await op.get("/api/v1/reports/export.csv", params={"report": "", "month": "2025-05"})
    assert r.status == 200  # an empty report is the default one (meetings)
