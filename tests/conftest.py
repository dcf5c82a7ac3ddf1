"""Shared fixtures: a configured app on a temporary data directory, users and logged-in clients."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web, web_app
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.auth import COOKIE, create_login, hash_password
from server.config import Config, load_config
from server.db.engine import DB
from server.db.models import Role, User
from tests.pgserver import PgServer, migrate_database
from tests.zones import OTHER_DAY, other_day_zone

pytest_plugins = ["tests.watchdog"]  # ends the run with every task's stack when a test hangs past its timeout

_counter = itertools.count(1)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """pytest_asyncio_loop_factories: tests run on the loop production runs on (server.event_loop: uvloop).

    TAPHUAN_TEST_LOOP=asyncio runs the suite on asyncio's own loop (the fallback) instead.
    """
    from tests.watchdog import NAME  # (imported here: the plugin is imported first, with its asserts rewritten)

    track = config.pluginmanager.get_plugin(NAME).track
    if os.environ.get("TAPHUAN_TEST_LOOP", "uvloop") == "uvloop":
        import uvloop

        return {"uvloop": track(uvloop.new_event_loop)}
    return {"asyncio": track(asyncio.new_event_loop)}


def pytest_sessionstart(session: pytest.Session) -> None:
    """pytest_sessionstart: with TAPHUAN_REQUIRE_COMPILED=1 (scripts/test.sh sets it) the run stops when the C
    extension sfu._fanout is not built or was refused, instead of skipping every compiled-path test."""
    if os.environ.get("TAPHUAN_REQUIRE_COMPILED") == "1":
        from sfu.consumer import COMPILED
        from sfu.hooks.guard import LIBSRTP_PROBLEM

        if not COMPILED:
            raise pytest.UsageError(
                "TAPHUAN_REQUIRE_COMPILED=1 but the compiled SFU path is off: "
                + (LIBSRTP_PROBLEM or "sfu._fanout was not built (gcc and the Python headers are needed)"))


def pytest_configure(config: pytest.Config) -> None:
    """pytest_configure: the `both_databases` marker (see pytest_generate_tests)."""
    config.addinivalue_line("markers", "both_databases: storage test, run on SQLite and on PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """pytest_generate_tests: a test marked `both_databases` (storage tests: SQL whose meaning differs between
    engines) runs twice, on SQLite ([sqlite]) and on a real PostgreSQL ([postgresql]), through `database_url`."""
    if metafunc.definition.get_closest_marker("both_databases") and "database_url" in metafunc.fixturenames:
        metafunc.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def _forget_middleware_chains() -> Iterator[None]:
    """_forget_middleware_chains: after each test, aiohttp's cache of the middleware chains it built per (handler,
    applications) is emptied. It keeps up to 1024 of them, each holding its Application and so everything the app
    holds (its database engine, its rooms, their aiortc peers): a test's app outlived it by hundreds of tests, and
    by the middle of the suite the process held 2.6 million objects, each full collection of which stopped the
    event loop for 2-3 s (a signalling-flood test measured a classroom's frame rate at a sixth of the rate before).
    One application per process, as served, fills it with one entry per route."""
    yield
    cache = getattr(web_app, "_cached_build_middleware", None)  # (aiohttp 3.10+; without it, nothing to forget)
    if cache is not None:
        cache.cache_clear()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """postgres: a real PostgreSQL cluster for the whole run (started when a test first needs it)."""
    server = PgServer.start()
    yield server
    server.stop()


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """database_url: the `database.url` of a test's app: "" (SQLite in the data dir) unless the test is marked
    `both_databases`, whose [postgresql] run gets a new database, migrated to every head, on `postgres`.
    TAPHUAN_TEST_DATABASE=postgresql runs every other test on PostgreSQL too (a whole-suite check)."""
    if getattr(request, "param", os.environ.get("TAPHUAN_TEST_DATABASE", "sqlite")) == "postgresql":
        server: PgServer = request.getfixturevalue("postgres")
        return server.migrated_database()
    return ""


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sqlite_template: an SQLite database migrated to every head once per run, which `make_config` copies into each
    test's data dir. Migrating took ~0.2 s per test, and each migration's tables (new schema objects every time)
    stayed reachable from the test's SQLAlchemy dialect, which the mappers' statement caches keep: a million
    objects by the middle of the suite, and every full collection then stopped the event loop for over a second.
    The app still migrates at start-up, and finds every head applied."""
    path = tmp_path_factory.mktemp("template") / "taphuan.sqlite3"
    migrate_database(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def make_config(tmp_path: Path, database_url: str, sqlite_template: Path) -> Callable[..., Config]:
    """make_config: a Config on a temporary data dir (and `database_url`); keyword overrides use dotted keys. On
    SQLite the data dir starts with a copy of `sqlite_template` (unless the test names its own data dir or database)."""

    def make(**overrides: Any) -> Config:
        base: dict[str, Any] = {"data_dir": str(tmp_path / "data"), "sfu.ice_addresses": ["127.0.0.1"]}
        if database_url:
            base["database.url"] = database_url
        base["recorder.auto_start"] = False  # tests that want automatic recording turn it on
        base["broadcast.enabled"] = base["broadcast.archive"] = False  # (encoding costs CPU): tests that want it too
        named = {k.replace("__", "."): v for k, v in overrides.items()}
        base.update(named)
        config = load_config(None, env={}, overrides=base)
        if not database_url and not {"data_dir", "database.url"} & named.keys():
            target = tmp_path / "data" / "taphuan.sqlite3"
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(sqlite_template, target)
        return config

    return make


@pytest.fixture
def config(make_config: Callable[..., Config], request: pytest.FixtureRequest) -> Config:
    """config: the default test configuration, with the overrides a test passes by indirect parametrization
    (`@pytest.mark.parametrize("config", [{"timezone": "Etc/GMT+12"}], indirect=True)`); a timezone of
    `tests.zones.OTHER_DAY` becomes one whose day is not UTC's as the test starts."""
    params = dict(getattr(request, "param", {}))
    if params.get("timezone") == OTHER_DAY:
        params["timezone"] = other_day_zone()
    return make_config(**params)


@pytest.fixture
def app(config: Config) -> web.Application:
    """app: the application (started by the client fixture)."""
    return create_app(config)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> TestClient[Any, Any]:
    """client: a test client of the running app (anonymous)."""
    return await aiohttp_client(app)


@dataclass
class LoggedIn:
    """LoggedIn: a logged-in test client with its user and CSRF token."""

    client: TestClient[Any, Any]
    user: User
    csrf: str

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """LoggedIn.headers: headers for a state-changing JSON request."""
        h = {"X-CSRF-Token": self.csrf}
        h.update(extra or {})
        return h

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.client.get(path, **kw)

    async def post(self, path: str, **kw: Any) -> Any:
        return await self.client.post(path, headers=self.headers(kw.pop("headers", None)), **kw)

    async def put(self, path: str, **kw: Any) -> Any:
        return await self.client.put(path, headers=self.headers(kw.pop("headers", None)), **kw)

    async def patch(self, path: str, **kw: Any) -> Any:
        return await self.client.patch(path, headers=self.headers(kw.pop("headers", None)), **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.client.delete(path, headers=self.headers(kw.pop("headers", None)), **kw)


@pytest.fixture
def make_user(app: web.Application) -> Callable[..., Awaitable[User]]:
    """make_user: create an account directly in the database (the app must be started)."""

    async def make(role: Role | str = Role.OPERATOR, username: str | None = None, password: str = "secret-pass-1",
                   **fields: Any) -> User:
        role = Role(role)
        async with app[DB]() as s:
            user = User(username=username or f"{role.value}{next(_counter)}",
                        display_name=fields.pop("display_name", f"Test {role.value}"), role=role,
                        password_hash=hash_password(password), **fields)
            s.add(user)
            await s.commit()
            return user

    return make


class SharedClient(TestClient):  # type: ignore[type-arg]
    """SharedClient: another browser (own cookie jar) on the already running test server."""

    async def close(self) -> None:
        if not self._closed:
            await self._session.close()
            self._closed = True


@pytest.fixture
async def login_as(app: web.Application, client: TestClient[Any, Any],
                   make_user: Callable[..., Awaitable[User]]) -> AsyncIterator[Callable[..., Awaitable[LoggedIn]]]:
    """login_as: a new client (own cookies) logged in as a new user of `role`, or as `user`."""
    made: list[SharedClient] = []

    async def login(role: Role | str = Role.OPERATOR, user: User | None = None, **fields: Any) -> LoggedIn:
        if user is None:
            user = await make_user(role, **fields)
        cl = SharedClient(client.server)
        await cl.start_server()
        made.append(cl)
        async with app[DB]() as s:
            login = await create_login(s, _FakeRequest(app), user=user, hours=1)  # type: ignore[arg-type]
            await s.commit()
        cl.session.cookie_jar.update_cookies({COOKIE: login.id}, response_url=cl.make_url("/"))
        return LoggedIn(client=cl, user=user, csrf=login.csrf_token)

    yield login
    for cl in made:
        await cl.close()


class _FakeRequest:
    """_FakeRequest: the few request attributes create_login reads."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.headers: dict[str, str] = {"User-Agent": "pytest"}
        self.remote = "127.0.0.1"


@pytest.fixture
def make_meeting(app: web.Application) -> Callable[..., Awaitable[Any]]:
    """make_meeting: a program + meeting (published by default) with presenters and invited classrooms."""
    import datetime as dt

    from sqlalchemy import insert

    from server.db.models import Meeting, MeetingStatus, Program, meeting_classrooms, meeting_presenters

    async def make(presenters: list[User] = (), classrooms: list[int] = (),  # type: ignore[assignment]
                   status: MeetingStatus = MeetingStatus.PUBLISHED, kind: str = "lecture",
                   video_codec: str = "VP8", title: str = "Bài giảng thử") -> Meeting:
        now = dt.datetime.now(dt.UTC)
        async with app[DB]() as s:
            program = Program(title="Chương trình thử")
            s.add(program)
            await s.flush()
            meeting = Meeting(program_id=program.id, title=title, kind=kind, status=status,
                              starts_at=now - dt.timedelta(minutes=5), ends_at=now + dt.timedelta(hours=2),
                              video_codec=video_codec)
            s.add(meeting)
            await s.flush()
            for u in presenters:
                await s.execute(insert(meeting_presenters).values(meeting_id=meeting.id, user_id=u.id))
            for c in classrooms:
                await s.execute(insert(meeting_classrooms).values(meeting_id=meeting.id, classroom_id=c))
            await s.commit()
            return meeting

    return make


@pytest.fixture
def make_classroom(app: web.Application) -> Callable[..., Awaitable[int]]:
    """make_classroom: a classroom in the first province; returns its id."""
    from sqlalchemy import select

    from server.db.models import Classroom, Unit, UnitLevel

    async def make(code: str | None = None, name: str = "Lớp học thử") -> int:
        async with app[DB]() as s:
            unit = await s.scalar(select(Unit).order_by(Unit.id).limit(1))
            if unit is None:
                unit = Unit(code="99", name="Tỉnh thử", level=UnitLevel.PROVINCE)
                s.add(unit)
                await s.flush()
            room = Classroom(code=code or f"LH{next(_counter)}", name=name, unit_id=unit.id)
            s.add(room)
            await s.commit()
            return room.id

    return make


@pytest.fixture
async def clients() -> AsyncIterator[list[Any]]:
    """clients: the clients a test made (LiveClients, or tests/sfu Clients), closed at its end; the test fails
    if a LiveClient received a message that docs/protocol.schema.json does not allow."""
    import asyncio

    from tests.protocol_schema import ProtocolViolation

    made: list[Any] = []
    yield made
    await asyncio.gather(*(c.close() for c in made), return_exceptions=True)
    violations = [v for c in made for v in getattr(c, "violations", ())]  # tests/sfu put their own Clients here
    if violations:
        raise ProtocolViolation("\n".join(violations))
