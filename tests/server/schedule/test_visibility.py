"""Tests of server.schedule.visibility: one rule, the same answer on every surface.

For each kind of caller and each state of a regional meeting, the API (`/api/v1/meetings/{id}`), the meeting page,
the calendar, the live page and `join` over /ws agree with the rule written out here (independently of the code):
who sees the meeting, and who enters its live room. A leader who does not chair a regional meeting neither
sees nor enters it (it used to enter every regional meeting, drafts included, while the API said 404).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import insert

from server.auth import COOKIE, Identity, create_login
from server.db.engine import DB
from server.db.models import (
    Meeting,
    MeetingKind,
    MeetingStatus,
    Program,
    Role,
    User,
    meeting_classrooms,
    meeting_presenters,
    program_learners,
)
from server.schedule.visibility import Refusal, refusal
from tests.conftest import LoggedIn, SharedClient, _FakeRequest
from tests.live_client import LiveClient
from tests.server.livetest import Factory, connect

HTML = {"Accept": "text/html"}
STATES = ("draft", "published", "live", "ended", "cancelled")
# who: (role, is the meeting theirs, through a join link)
CALLERS = {
    "operator": (Role.OPERATOR, True, False),
    "trainer presenting": (Role.TRAINER, True, False),
    "trainer not presenting": (Role.TRAINER, False, False),
    "leader chairing": (Role.LEADER, True, False),
    "leader not chairing": (Role.LEADER, False, False),
    "classroom invited": (Role.CLASSROOM, True, False),
    "classroom not invited": (Role.CLASSROOM, False, False),
    "classroom by link": (Role.CLASSROOM, True, True),
    "learner enrolled": (Role.LEARNER, True, False),
    "learner not enrolled": (Role.LEARNER, False, False),
    "guest by link": (Role.GUEST, True, True),
    "guest with another meeting's link": (Role.GUEST, False, True),
}
READERS = {Role.OPERATOR, Role.TRAINER, Role.LEADER, Role.CLASSROOM}  # the meeting API and pages


def sees(caller: str, state: str) -> bool:
    """sees: the rule, written out: staff of the meeting see every state; invitees once it was published."""
    role, theirs, _link = CALLERS[caller]
    if not theirs:
        return False
    if role in (Role.OPERATOR, Role.TRAINER, Role.LEADER):
        return True
    return state != "draft"


def enters(caller: str, state: str) -> bool:
    """enters: whoever sees it, except learners and a cancelled meeting."""
    return sees(caller, state) and CALLERS[caller][0] != Role.LEARNER and state != "cancelled"


@pytest.fixture
async def browsers(client: Any) -> AsyncIterator[list[SharedClient]]:
    made: list[SharedClient] = []
    yield made
    for cl in made:
        await cl.close()


async def _login(app: web.Application, client: Any, made: list[SharedClient], user: User | None,
                 meeting_id: int | None = None) -> LoggedIn:
    """_login: a browser logged in as `user`, or through a join link of `meeting_id` (a classroom's or a guest's)."""
    cl = SharedClient(client.server)
    await cl.start_server()
    made.append(cl)
    async with app[DB]() as s:
        login = await create_login(s, _FakeRequest(app), user=user, hours=1, meeting_id=meeting_id,  # type: ignore[arg-type]
                                   guest_name="Khách" if user is None else "")
        await s.commit()
    cl.session.cookie_jar.update_cookies({COOKIE: login.id}, response_url=cl.make_url("/"))
    return LoggedIn(client=cl, user=user, csrf=login.csrf_token)  # type: ignore[arg-type]


async def _world(app: web.Application, make_classroom: Factory) -> dict[str, Any]:
    """_world: one regional meeting per state, chaired by a leader with a trainer, one classroom invited, the
    program's learner enrolled; the others are strangers to them."""
    now = dt.datetime.now(dt.UTC)
    people: dict[str, User] = {}
    async with app[DB]() as s:
        for name, (role, _theirs, _link) in CALLERS.items():
            if role != Role.GUEST:  # no password: these log in through a session made below
                cid = await make_classroom() if role == Role.CLASSROOM else None
                people[name] = User(username=name.replace(" ", "-"), display_name=name, role=role, classroom_id=cid)
                s.add(people[name])
        await s.commit()
    times = {"draft": (now + dt.timedelta(days=20), MeetingStatus.DRAFT, None),
             "published": (now + dt.timedelta(days=20), MeetingStatus.PUBLISHED, now),
             "live": (now - dt.timedelta(minutes=5), MeetingStatus.PUBLISHED, now),
             "ended": (now - dt.timedelta(hours=3), MeetingStatus.PUBLISHED, now),
             "cancelled": (now + dt.timedelta(days=21), MeetingStatus.CANCELLED, now)}
    meetings: dict[str, int] = {}
    async with app[DB]() as s:
        program = Program(title="Chương trình vùng")
        s.add(program)
        await s.flush()
        await s.execute(insert(program_learners).values(program_id=program.id,
                                                        user_id=people["learner enrolled"].id))
        for state, (start, status, published) in times.items():
            m = Meeting(program_id=program.id, title=f"Hội nghị {state}", kind=MeetingKind.REGIONAL, status=status,
                        starts_at=start, ends_at=start + dt.timedelta(hours=2), first_published_at=published)
            s.add(m)
            await s.flush()
            for name in ("trainer presenting", "leader chairing"):
                await s.execute(insert(meeting_presenters).values(meeting_id=m.id, user_id=people[name].id))
            await s.execute(insert(meeting_classrooms).values(
                meeting_id=m.id, classroom_id=people["classroom invited"].classroom_id))
            meetings[state] = m.id
        elsewhere = Meeting(program_id=program.id, title="Buổi khác", status=MeetingStatus.PUBLISHED,
                            starts_at=now, ends_at=now + dt.timedelta(hours=1), first_published_at=now)
        s.add(elsewhere)
        await s.commit()
        meetings["elsewhere"] = elsewhere.id
    return {"people": people, "meetings": meetings}


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_every_surface_follows_the_one_rule(caller: str, app: web.Application, client: Any,
                                                  make_classroom: Factory,
                                                  browsers: list[SharedClient], clients: list[LiveClient]) -> None:
    world = await _world(app, make_classroom)
    role, _theirs, link = CALLERS[caller]
    user = world["people"].get(caller)
    mismatches: list[str] = []

    async def login_for(state: str) -> LoggedIn:
        if not link:
            return await _login(app, client, browsers, user)
        target = world["meetings"]["elsewhere" if caller.startswith("guest with") else state]
        return await _login(app, client, browsers, user, meeting_id=target)

    who = None if link else await login_for("")
    for state in STATES:
        mid = world["meetings"][state]
        me = await login_for(state) if link else who
        assert me is not None
        seen, entered = sees(caller, state), enters(caller, state)

        def check(surface: str, got: object, want: object, state: str = state) -> None:
            if got != want:
                mismatches.append(f"{state}: {surface}: got {got}, want {want}")

        r = await me.get(f"/api/v1/meetings/{mid}")
        check("API", r.status, (200 if seen else 404) if role in READERS else 403)
        r = await me.get(f"/meetings/{mid}", headers=HTML)
        check("meeting page", r.status, (200 if seen else 404) if role in READERS else 403)
        start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).date().isoformat()
        end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date().isoformat()
        r = await me.get("/api/v1/calendar", params={"from": start, "to": end})
        check("calendar", r.status == 200 and mid in {e["id"] for e in await r.json()}, seen)
        r = await me.get(f"/live/{mid}", headers=HTML)
        check("live page", r.status, 200 if entered else 403)
        lc = await connect(me, clients)
        reply = await lc.request("join", version=1, meeting_id=mid)
        check("/ws join", reply["type"] in ("joined", "lobby"), entered)
        if not entered:
            check("/ws error", reply.get("error", {}).get("code"), "forbidden")
        await lc.close()
    assert not mismatches, f"{caller}:\n" + "\n".join(mismatches)


async def test_refusal_says_why(app: web.Application, client: Any, make_classroom: Factory) -> None:
    """The `forbidden` message of `join` names the reason: not invited, not published yet, or cancelled."""
    world = await _world(app, make_classroom)
    ids = world["meetings"]
    people = world["people"]

    def ident(name: str, meeting_id: int | None = None) -> Identity:
        u = people[name]
        return Identity("x", u.role, "c", user_id=u.id, classroom_id=u.classroom_id, meeting_id=meeting_id)

    async with app[DB]() as s:
        invited = ident("classroom invited")
        assert await refusal(s, invited, ids["published"]) is None
        assert await refusal(s, invited, ids["draft"]) == Refusal.NOT_PUBLISHED
        assert await refusal(s, invited, ids["cancelled"]) == Refusal.CANCELLED
        assert await refusal(s, invited, 10**9) == Refusal.NOT_FOUND
        assert await refusal(s, ident("leader not chairing"), ids["draft"]) == Refusal.NOT_INVITED
        assert await refusal(s, ident("leader chairing"), ids["draft"]) is None
        assert await refusal(s, ident("operator"), ids["cancelled"]) == Refusal.CANCELLED
        assert await refusal(s, ident("learner enrolled"), ids["live"]) == Refusal.NOT_INVITED
        assert await refusal(s, ident("classroom by link", ids["live"]), ids["ended"]) == Refusal.NOT_INVITED

