"""Tests of server.passwords: argon2 off the event loop, in a bounded pool (real argon2, real HTTP logins)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from argon2 import PasswordHasher

from server.app import create_app
from server.auth import hash_password
from server.config import Config
from server.db.engine import DB
from server.db.models import Role, User
from server.passwords import PASSWORDS, PasswordPool, PasswordsBusy, hash_in, verify_in


class TimedHasher(PasswordHasher):
    """TimedHasher: real argon2 that notes when each check ran (perf_counter start and end, from its thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list[tuple[float, float]] = []

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 (argon2's own names)
        start = time.perf_counter()
        try:
            return super().verify(hash, password)
        finally:
            self.spans.append((start, time.perf_counter()))


class GatedHasher(PasswordHasher):
    """GatedHasher: real argon2 whose checks wait until the test opens the gate (a slow or busy machine)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002
        self.gate.wait(30)
        return super().verify(hash, password)


async def _app_with(aiohttp_client: Any, config: Config, pool: PasswordPool) -> tuple[web.Application, Any]:
    app = create_app(config)
    app[PASSWORDS] = pool
    client = await aiohttp_client(app)
    async with app[DB]() as s:
        hashed = hash_password("dung-mat-khau")
        for name in ("an", "binh", "chi", "dung", "giang"):
            s.add(User(username=name, display_name=name, role=Role.TRAINER, password_hash=hashed))
        await s.commit()
    return app, client


async def _login(client: Any, username: str, password: str) -> Any:
    token = (await (await client.get("/api/v1/csrf")).json())["csrf_token"]
    return await client.post("/api/v1/login", json={"username": username, "password": password},
                             headers={"X-CSRF-Token": token})


async def test_logins_are_checked_while_the_loop_keeps_serving(aiohttp_client: Any,
                                                               make_config: Callable[..., Config]) -> None:
    hasher = TimedHasher()
    _app, client = await _app_with(aiohttp_client, make_config(), PasswordPool(2, 16, hasher=hasher))
    ticks: list[float] = []
    health: list[tuple[float, int]] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.005)

    async def healthz() -> None:
        while not done.is_set():
            resp = await client.get("/healthz")
            health.append((time.perf_counter(), resp.status))

    tasks = [asyncio.create_task(ticker()), asyncio.create_task(healthz())]
    logins = await asyncio.gather(*(_login(client, name, "sai-mat-khau") for name in ("an", "binh", "chi", "dung")),
                                  _login(client, "giang", "dung-mat-khau"))
    done.set()
    await asyncio.gather(*tasks)
    assert [r.status for r in logins] == [401, 401, 401, 401, 200]  # the checks' answers are right
    assert len(hasher.spans) == 5

    def during_a_check(t: float) -> bool:
        return any(start < t < end for start, end in hasher.spans)

    # On the loop, a check would hold it: nothing else could run while one is under way.
    assert any(during_a_check(t) for t in ticks), "the loop never ran while a password was being checked"
    assert any(during_a_check(t) and status == 200 for t, status in health), "/healthz never answered meanwhile"


async def test_a_full_queue_refuses_at_once_and_recovers(aiohttp_client: Any,
                                                         make_config: Callable[..., Config]) -> None:
    hasher = GatedHasher()
    pool = PasswordPool(1, 1, hasher=hasher)  # one check running, one waiting
    _app, client = await _app_with(aiohttp_client, make_config(), pool)
    waiting = [asyncio.create_task(_login(client, "an", "sai-mat-khau")),
               asyncio.create_task(_login(client, "binh", "dung-mat-khau"))]
    for _ in range(2000):
        if pool.pending == 2:
            break
        await asyncio.sleep(0.01)
    assert pool.pending == 2
    busy = await _login(client, "chi", "dung-mat-khau")
    assert busy.status == 503 and busy.headers["Retry-After"] == "1"
    assert (await busy.json())["error"]["code"] == "busy"
    hasher.gate.set()
    assert [r.status for r in await asyncio.gather(*waiting)] == [401, 200]
    assert pool.pending == 0
    assert (await _login(client, "chi", "dung-mat-khau")).status == 200  # room again


async def test_the_bound_holds_for_checks_whose_caller_went_away() -> None:
    hasher = GatedHasher()
    pool = PasswordPool(1, 0, hasher=hasher)
    stored = hash_password("mat-khau-1")
    first = asyncio.create_task(pool.verify(stored, "mat-khau-1"))
    await asyncio.sleep(0)  # the task submits its check
    assert pool.pending == 1
    first.cancel()  # the client hung up: its thread still works on it
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(PasswordsBusy):
        await pool.verify(stored, "mat-khau-1")
    hasher.gate.set()
    for _ in range(2000):
        if pool.pending == 0:
            break
        await asyncio.sleep(0.01)
    assert await pool.verify(stored, "mat-khau-1")
    pool.close()


async def test_hash_and_verify_with_and_without_a_pool() -> None:
    pool = PasswordPool(1, 4)
    try:
        for source in (pool, None):
            hashed = await hash_in(source, "mật-khẩu-mới")
            assert hashed.startswith("$argon2id$")
            assert await verify_in(source, hashed, "mật-khẩu-mới")
            assert not await verify_in(source, hashed, "mật-khẩu-cũ")
            assert not await verify_in(source, "", "mật-khẩu-mới")  # an account without a password (classrooms)
            assert not await verify_in(source, "not-a-hash", "x")
        assert not await pool.verify_unknown("bất-kỳ")
    finally:
        pool.close()
