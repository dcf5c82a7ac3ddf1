"""livetest: shared helpers of the tests that drive /ws with scripted participants."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from server.auth import COOKIE, create_login
from server.db.engine import DB
from server.db.models import Role, User
from tests.conftest import LoggedIn, SharedClient, _FakeRequest
from tests.live_client import LiveClient

Factory = Callable[..., Awaitable[Any]]


async def connect(who: LoggedIn, made: list[LiveClient]) -> LiveClient:
    """connect: a LiveClient on `who`'s cookies, closed by the test's `clients` fixture."""
    lc = LiveClient(who.client.session, str(who.client.make_url("/ws")))
    made.append(lc)
    return await lc.connect()


async def classroom_login(login_as: Factory, make_user: Factory, make_classroom: Factory,
                          name: str = "Lớp học thử") -> tuple[LoggedIn, int]:
    """classroom_login: a new classroom with its account, logged in."""
    classroom_id = await make_classroom(name=name)
    user: User = await make_user(Role.CLASSROOM, classroom_id=classroom_id, display_name=name)
    return await login_as(user=user), classroom_id


async def guest_login(client: object, app: object, meeting_id: int) -> LoggedIn:
    """guest_login: a guest login scoped to one meeting (as a guest join link makes)."""
    cl = SharedClient(client.server)  # type: ignore[attr-defined]
    await cl.start_server()
    async with app[DB]() as s:  # type: ignore[index]
        login = await create_login(s, _FakeRequest(app), user=None, hours=1, meeting_id=meeting_id,  # type: ignore[arg-type]
                                   guest_name="Khách mời", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        await s.commit()
    cl.session.cookie_jar.update_cookies({COOKIE: login.id}, response_url=cl.make_url("/"))
    return LoggedIn(client=cl, user=None, csrf=login.csrf_token)  # type: ignore[arg-type]
