"""livetest: shared helpers of the tests that drive /ws with scripted participants."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from server.db.models import Role, User
from tests.conftest import LoggedIn
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
