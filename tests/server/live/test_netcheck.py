"""Tests of server.live.netcheck: the device check's ping, download and upload endpoints (auth, limits, no caching)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from server.db.models import Role
from server.live import netcheck
from tests.conftest import LoggedIn

Login = Callable[..., Awaitable[LoggedIn]]


@pytest.mark.parametrize("method,path", [("GET", "/netcheck/ping"), ("GET", "/netcheck/download?bytes=10"),
                                         ("POST", "/netcheck/upload")])
async def test_login_required(client: Any, method: str, path: str) -> None:
    resp = await client.request(method, path, data=b"x" * 10)
    # Anonymous: 401 JSON (a POST without a CSRF token is refused before that, also without a body leak).
    assert resp.status in (401, 403)
    body = await resp.json()
    assert body["error"]["code"] in ("unauthenticated", "csrf")
    if method == "GET":
        assert resp.status == 401


@pytest.mark.parametrize("role", list(Role))
async def test_every_role_may_measure(login_as: Login, role: Role) -> None:
    who = await login_as(role)
    resp = await who.get("/netcheck/ping")
    assert resp.status == 204
    assert "no-store" in resp.headers["Cache-Control"]
    resp = await who.get("/netcheck/download?bytes=5000")
    assert resp.status == 200
    data = await resp.read()
    assert len(data) == 5000
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert "no-store" in resp.headers["Cache-Control"]
    resp = await who.post("/netcheck/upload", data=b"\0" * 7000,
                          headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 200
    assert (await resp.json()) == {"bytes": 7000}


async def test_download_is_random_and_default_size(login_as: Login) -> None:
    who = await login_as(Role.CLASSROOM)
    a = await (await who.get("/netcheck/download?bytes=64")).read()
    b = await (await who.get("/netcheck/download?bytes=64")).read()
    assert a != b
    default = await (await who.get("/netcheck/download")).read()
    assert len(default) == netcheck.DOWNLOAD_DEFAULT


@pytest.mark.parametrize("value", ["0", "-1", "abc", str(netcheck.DOWNLOAD_MAX + 1), "1e9"])
async def test_download_size_bounded(login_as: Login, value: str) -> None:
    who = await login_as(Role.CLASSROOM)
    resp = await who.get(f"/netcheck/download?bytes={value}")
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad-request"


async def test_download_max_allowed(login_as: Login) -> None:
    who = await login_as(Role.CLASSROOM)
    resp = await who.get(f"/netcheck/download?bytes={netcheck.DOWNLOAD_MAX}")
    assert resp.status == 200
    assert len(await resp.read()) == netcheck.DOWNLOAD_MAX


async def test_upload_limit(login_as: Login, app: Any) -> None:
    who = await login_as(Role.CLASSROOM)
    limit = netcheck.upload_limit(app)
    ok = await who.post("/netcheck/upload", data=b"\0" * limit, headers={"Content-Type": "application/octet-stream"})
    assert ok.status == 200
    assert (await ok.json())["bytes"] == limit
    over = await who.post("/netcheck/upload", data=b"\0" * (limit + 1),
                          headers={"Content-Type": "application/octet-stream"})
    assert over.status == 413
    assert (await over.json())["error"]["code"] == "too-large"


async def test_upload_chunked_over_limit(login_as: Login, app: Any) -> None:
    who = await login_as(Role.CLASSROOM)
    limit = netcheck.upload_limit(app)

    async def chunks() -> Any:
        for _ in range(limit // 65536 + 2):
            yield b"\0" * 65536

    resp = await who.post("/netcheck/upload", data=chunks(), headers={"Content-Type": "application/octet-stream"})
    assert resp.status == 413
    assert (await resp.json())["error"]["code"] == "too-large"


async def test_upload_needs_csrf(login_as: Login) -> None:
    who = await login_as(Role.CLASSROOM)
    resp = await who.client.post("/netcheck/upload", data=b"\0" * 10)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "csrf"


async def test_budget_per_login_with_injectable_clock(login_as: Any) -> None:
    from server.live.netcheck import BYTES_PER_MINUTE, DOWNLOAD_MAX, NETCHECK_BUDGET, NetcheckBudget

    now = [0.0]
    user = await login_as(Role.CLASSROOM)
    budget: NetcheckBudget = user.client.app[NETCHECK_BUDGET]
    budget.clock = lambda: now[0]  # no login has spent anything yet: every bucket will use this clock
    allowed = BYTES_PER_MINUTE // DOWNLOAD_MAX
    for _ in range(allowed):
        assert (await user.get(f"/netcheck/download?bytes={DOWNLOAD_MAX}")).status == 200
    refused = await user.get(f"/netcheck/download?bytes={DOWNLOAD_MAX}")
    assert refused.status == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert (await refused.json())["error"]["code"] == "rate-limited"
    other = await login_as(Role.CLASSROOM)  # another login has its own budget
    assert (await other.get("/netcheck/download?bytes=1000")).status == 200
    now[0] += 60  # a minute later the budget is back
    assert (await user.get(f"/netcheck/download?bytes={DOWNLOAD_MAX}")).status == 200
