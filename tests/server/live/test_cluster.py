"""Tests of server.live.cluster: two nodes (create_app twice, on two ports) sharing one real redis-server, one real
PostgreSQL and one data directory. A meeting's room is placed on one node; a classroom coming through the other
is sent to the owner (`moved` on its socket, a redirect for the live page) and gets the presenter's media there;
placement prefers the least loaded node and skips a draining one."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from yarl import URL

from server.app import create_app
from server.auth import COOKIE
from server.cli import main
from server.config import CONFIG, Config
from server.db.engine import DB
from server.db.models import Recording, RecordingState, Role, User
from server.live.cluster import CLUSTER, draining_key, room_key
from server.live.rooms import open_meetings
from server.live.service import LIVE
from tests.conftest import LoggedIn, SharedClient
from tests.live_client import LiveClient, page_origin
from tests.pgserver import PgServer
from tests.recorder.media import ffprobe
from tests.server.livetest import Factory, classroom_login, connect
from tests.server.test_bus import _free_port, redis_url  # noqa: F401  (fixture: a real redis-server)
from tests.server.test_serve import ROOT, _read_until
from tests.test_deploy import blocks, tool

pytestmark = pytest.mark.redis
Client = TestClient[Any, Any]
PORTS = web.AppKey("test_ports", dict)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Any]:  # noqa: F811
    """redis: a client of the module's redis-server, emptied first."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def ports() -> dict[str, int]:
    """ports: the ports of node a and node b and of an nginx in front (known before the apps are made: each
    names its own URL)."""
    return {"a": _free_port(), "b": _free_port(), "front": _free_port()}


@pytest.fixture
def node_config(make_config: Callable[..., Config], redis_url: str, postgres: PgServer,  # noqa: F811
                redis: Any, ports: dict[str, int]) -> Callable[[str], Config]:
    """node_config: the configuration of node `name`: one database, one Redis, one data directory for both."""
    database = postgres.migrated_database()

    def make(name: str, front: bool = False, **more: Any) -> Config:
        url = f"http://127.0.0.1:{ports['front' if front else name]}"  # behind nginx: one address for all
        return make_config(**{"bus.kind": "redis", "bus.redis_url": redis_url, "database.url": database,
                              "cluster.node_id": name, "cluster.url": url,
                              "cluster.lease_seconds": 3, "sfu.room_grace_seconds": 0.3, **more})
    return make


@pytest.fixture
def config(node_config: Callable[..., Config], request: pytest.FixtureRequest) -> Config:
    """config: node a's (the conftest's `app`, `client`, `login_as`... are node a), with the overrides a test
    passes by indirect parametrization."""
    return node_config("a", **getattr(request, "param", {}))


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application, ports: dict[str, int]) -> Client:
    """client: node a, on its port."""
    return await aiohttp_client(app, server_kwargs={"port": ports["a"]})


@pytest.fixture
async def node_b(aiohttp_client: Any, client: Client, node_config: Callable[[str], Config],
                 ports: dict[str, int]) -> Client:
    """node_b: the second node, on its port (started after node a)."""
    return await aiohttp_client(create_app(node_config("b")), server_kwargs={"port": ports["b"]})


async def on_node(who: LoggedIn, node: Client, made: list[SharedClient]) -> SharedClient:
    """on_node: the same browser (its login cookie) talking to `node`."""
    cookie = who.client.session.cookie_jar.filter_cookies(who.client.make_url("/"))[COOKIE].value
    cl = SharedClient(node.server)
    await cl.start_server()
    made.append(cl)
    cl.session.cookie_jar.update_cookies({COOKIE: cookie}, response_url=cl.make_url("/"))
    return cl


@pytest.fixture
async def browsers() -> AsyncIterator[list[SharedClient]]:
    made: list[SharedClient] = []
    yield made
    for cl in made:
        await cl.close()


async def test_a_classroom_coming_through_b_is_sent_to_the_owner_a_and_gets_media_there(
        client: Client, node_b: Client, login_as: Factory, make_user: Factory, make_meeting: Factory,
        make_classroom: Factory, clients: list[LiveClient], browsers: list[SharedClient], redis: Any,
        ports: dict[str, int]) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    room, classroom_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[classroom_id])

    await redis.set(draining_key("b"), "1")  # (else node a or b, whichever had less CPU lately)
    t = await connect(trainer, clients)  # the presenter opens the room on node a
    await t.join(meeting.id)
    await redis.delete(draining_key("b"))
    assert (await t.publish())["type"] == "answer"
    assert await redis.get(room_key(meeting.id)) == b"a"

    on_b = await on_node(room, node_b, browsers)
    page = await on_b.get(f"/live/{meeting.id}?view=x", allow_redirects=False)  # the live page: a redirect
    assert page.status == 307, await page.text()
    assert page.headers["Location"] == f"http://127.0.0.1:{ports['a']}/live/{meeting.id}?view=x&node=a"

    via_b = LiveClient(on_b.session, str(on_b.make_url("/ws")))  # a page of node b opened before: `moved`
    clients.append(via_b)
    await via_b.connect()
    started = time.perf_counter()
    moved = await via_b.request("join", version=1, meeting_id=meeting.id)
    assert moved["type"] == "error" and moved["error"]["code"] == "moved", moved
    refused = time.perf_counter()
    url = moved["error"]["url"]
    assert url == f"ws://127.0.0.1:{ports['a']}/ws?node=a"
    a = LiveClient(on_b.session, url, origin=page_origin(str(on_b.make_url("/ws"))))  # b's page, a's socket
    clients.append(a)
    await a.connect()
    opened = time.perf_counter()
    joined = await a.join(meeting.id)
    print(f"\nthe extra hop: `moved` {1000 * (refused - started):.1f} ms, a's socket {1000 * (opened - refused):.1f} ms"
          f" (then the join itself {1000 * (time.perf_counter() - opened):.1f} ms)")
    assert joined["room"]["presenter_id"] == t.participant_id
    await a.wait_frames("presenter-video", 5)  # the presenter's media, from node a
    assert open_meetings(node_b.app[LIVE]) == []  # node b opened no room for it
    assert open_meetings(client.app[LIVE]) == [meeting.id]

    stranger = LiveClient(on_b.session, url, origin="http://127.0.0.1:9")  # not a node's page: refused
    with pytest.raises(Exception, match="403"):
        await stranger.connect()


async def test_placement_prefers_the_least_loaded_node_and_skips_a_draining_one(
        client: Client, node_b: Client, login_as: Factory, make_user: Factory, make_meeting: Factory,
        clients: list[LiveClient], redis: Any) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    first = await make_meeting(presenters=[trainer_user])
    second = await make_meeting(presenters=[trainer_user])
    third = await make_meeting(presenters=[trainer_user])
    t = await connect(trainer, clients)
    await redis.set(draining_key("b"), "1")  # two idle nodes: else whichever had less CPU lately (b in one full run)
    await t.join(first.id)  # node a now holds a room and a participant
    a, b = client.app[CLUSTER], node_b.app[CLUSTER]
    await b.heartbeat([], 0)  # b's heartbeat says draining while the mark is set...
    await redis.delete(draining_key("b"))  # ...and no longer counts once it is gone (one CI run had a sent there)
    await a.heartbeat(open_meetings(client.app[LIVE]), client.app[LIVE].sfu.participant_count())
    nodes = {n.node_id: n for n in await b.nodes()}
    assert (nodes["a"].rooms, nodes["a"].participants, nodes["b"].rooms, nodes["b"].draining) == (1, 1, 0, False)

    other = await connect(trainer, clients)  # asked on node a, the next meeting goes to the idle node b
    moved = await other.request("join", version=1, meeting_id=second.id)
    assert moved["error"]["code"] == "moved" and moved["error"]["url"].endswith("?node=b"), moved
    assert await redis.get(room_key(second.id)) == b"b"

    await redis.set(draining_key("b"), "1")  # `taphuan drain` on node b: the loaded node a gets the next one
    assert (await other.join(third.id))["type"] == "joined"
    assert await redis.get(room_key(third.id)) == b"a"
    assert {n.node_id: n.draining for n in await a.nodes()} == {"a": False, "b": True}


async def test_drain_places_nothing_new_on_the_node_and_waits_for_its_rooms_to_end(
        client: Client, node_b: Client, login_as: Factory, make_user: Factory, make_meeting: Factory,
        clients: list[LiveClient], redis: Any, redis_url: str, tmp_path: Path,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    first = await make_meeting(presenters=[trainer_user])
    later = await make_meeting(presenters=[trainer_user])
    await redis.set(draining_key("b"), "1")
    t = await connect(trainer, clients)
    await t.join(first.id)  # node a holds a room
    await redis.delete(draining_key("b"))
    await client.app[CLUSTER].heartbeat(open_meetings(client.app[LIVE]), client.app[LIVE].sfu.participant_count())
    path = tmp_path / "node-a.yaml"
    path.write_text(f"bus:\n  kind: redis\n  redis_url: {redis_url}\ncluster:\n  node_id: a\n", encoding="utf-8")

    assert await asyncio.to_thread(main, ["--config", str(path), "drain", "--timeout", "1"]) == 1  # room open
    out = capsys.readouterr().out
    assert "node a: 1 rooms, 1 participants still open" in out and "still 1 rooms" in out, out
    assert await redis.get(draining_key("a")) == b"1"

    drain = asyncio.ensure_future(asyncio.to_thread(main, ["--config", str(path), "drain", "--timeout", "60"]))
    other = await connect(trainer, clients)  # asked on the draining node a, a new meeting goes to node b
    moved = await other.request("join", version=1, meeting_id=later.id)
    assert moved["error"]["code"] == "moved" and moved["error"]["url"].endswith("?node=b"), moved
    await asyncio.sleep(1.5)
    assert not drain.done()  # the room is still open
    assert (await t.request("leave"))["type"] == "ok"  # the meeting's last participant leaves: its room closes
    assert await asyncio.wait_for(drain, 30) == 0
    out = capsys.readouterr().out
    assert "draining" in out and "no room open: drained" in out, out


def start_node(config: Config, name: str, port: int, url: str | None = None) -> subprocess.Popen[str]:
    """start_node: `taphuan serve` as node `name` on `port`, in its own process, sharing `config`'s database, Redis
    and data directory; it records its meetings. Its `cluster.url` is `url` (behind a front) or its own address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHUAN_")}
    env.update({"PYTHONUNBUFFERED": "1", "TAPHUAN_DATA_DIR": str(config.data_path),
                "TAPHUAN_DATABASE__URL": config.database_url, "TAPHUAN_BUS__KIND": "redis",
                "TAPHUAN_BUS__REDIS_URL": config.bus.redis_url, "TAPHUAN_CLUSTER__NODE_ID": name,
                "TAPHUAN_CLUSTER__URL": url or f"http://127.0.0.1:{port}", "TAPHUAN_CLUSTER__LEASE_SECONDS": "3",
                "TAPHUAN_SERVER__HOST": "127.0.0.1", "TAPHUAN_SFU__ICE_ADDRESSES": "[127.0.0.1]",
                "TAPHUAN_RECORDER__AUTO_START": "true", "TAPHUAN_RECORDER__SEGMENT_SECONDS": "1",
                "TAPHUAN_RECORDER__MIN_FREE_BYTES": "0", "TAPHUAN_BROADCAST__ENABLED": "false",
                "TAPHUAN_BROADCAST__ARCHIVE": "false"})
    return subprocess.Popen([sys.executable, "-m", "server.cli", "--config", str(ROOT / "config.yaml"), "serve",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


async def enter_like_the_page(session: aiohttp.ClientSession, home: str, origin: str, meeting_id: int,
                              made: list[LiveClient], resume: dict[str, str] | None = None) -> LiveClient:
    """enter_like_the_page: what web/static/protocol.js does: join (resume) on the page's own socket, follow a
    `moved` to the owner's socket, go back home when that socket cannot be opened, join afresh when the resume
    token is refused; retries with a short back-off."""
    url = home
    while True:
        lc = LiveClient(session, url, origin=origin)
        made.append(lc)
        try:
            await lc.connect()
        except aiohttp.ClientError:  # the node it was sent to is gone
            url = home
            await asyncio.sleep(0.5)
            continue
        fields: dict[str, Any] = {"resume": resume} if resume else {}
        reply = await lc.request("join", version=1, meeting_id=meeting_id, **fields)
        if reply["type"] == "error" and reply["error"]["code"] == "moved":
            url = reply["error"]["url"]
            await lc.close()
            continue
        if reply["type"] == "error" and reply["error"]["code"] == "token":
            reply = await lc.request("join", version=1, meeting_id=meeting_id)
        assert reply["type"] == "joined", reply
        lc.participant_id, lc.resume_token = reply["participant_id"], reply["resume_token"]
        return lc


async def recording_parts(app: web.Application, meeting_id: int, within: float, count: int = 1) -> list[Recording]:
    """recording_parts: the meeting's recordings, by part, once `count` of them exist and the last is recording."""
    deadline = time.monotonic() + within
    while True:
        async with app[DB]() as s:
            parts = list((await s.scalars(select(Recording).where(Recording.meeting_id == meeting_id)
                                          .order_by(Recording.part))).all())
        if len(parts) >= count and parts[-1].state == RecordingState.RECORDING:
            return parts
        assert time.monotonic() < deadline, [(p.part, p.state) for p in parts]
        await asyncio.sleep(0.2)


async def finished_recording(app: web.Application, recording_id: int, within: float) -> Recording:
    """finished_recording: the recording once it is ready or failed."""
    deadline = time.monotonic() + within
    while True:
        async with app[DB]() as s:
            row = await s.get(Recording, recording_id)
        assert row is not None
        if row.state in (RecordingState.READY, RecordingState.FAILED):
            return row
        assert time.monotonic() < deadline, (row.state, row.progress)
        await asyncio.sleep(0.3)


RECORDING = {"recorder.auto_start": True, "recorder.segment_seconds": 1.0, "recorder.min_free_bytes": 0}


@pytest.mark.parametrize("config", [RECORDING], indirect=True)
async def test_when_the_owner_dies_its_meeting_is_made_again_on_a_living_node_and_the_page_rejoins_there(
        client: Client, login_as: Factory, make_user: Factory, make_meeting: Factory, make_classroom: Factory,
        clients: list[LiveClient], browsers: list[SharedClient], redis: Any, ports: dict[str, int]) -> None:
    trainer_user: User = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    room, classroom_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[classroom_id])
    node_b = await asyncio.to_thread(start_node, client.app[CONFIG], "b", ports["b"])
    try:
        await asyncio.to_thread(_read_until, node_b, "running at")
        await redis.set(draining_key("a"), "1")  # the meeting goes to node b
        home = str(client.make_url("/ws"))
        origin = page_origin(home)  # the pages are node a's
        t = await enter_like_the_page(trainer.client.session, home, origin, meeting.id, clients)
        c = await enter_like_the_page(room.client.session, home, origin, meeting.id, clients)
        assert await redis.get(room_key(meeting.id)) == b"b" and c.url.endswith(f":{ports['b']}/ws?node=b")
        await redis.delete(draining_key("a"))
        assert (await t.publish())["type"] == "answer"
        [first] = await recording_parts(client.app, meeting.id, within=20)  # node b records
        video = client.app[CONFIG].data_path / "recordings" / first.directory / "program-video"
        deadline = time.monotonic() + 30
        while len([p for p in video.glob("*.mkv") if p.stat().st_size > 0]) < 2:  # a segment or two on disk
            assert time.monotonic() < deadline, "node b wrote no video segment"
            await asyncio.sleep(0.2)

        node_b.send_signal(signal.SIGKILL)  # node b dies: no clean-up, its heartbeat and leases expire
        killed = time.monotonic()
        t, c = await asyncio.wait_for(asyncio.gather(
            enter_like_the_page(trainer.client.session, home, origin, meeting.id, clients,
                                {"participant_id": t.participant_id, "token": t.resume_token}),
            enter_like_the_page(room.client.session, home, origin, meeting.id, clients,
                                {"participant_id": c.participant_id, "token": c.resume_token})), 30)
        took = time.monotonic() - killed
        print(f"\nnode b killed: the classroom joined again on node a after {took:.1f} s")
        assert took < 15  # (a generous bound: the lease is 3 s here)
        assert await redis.get(room_key(meeting.id)) == b"a"
        assert open_meetings(client.app[LIVE]) == [meeting.id]
        assert (await t.publish())["type"] == "answer"
        await c.wait_frames("presenter-video", 5)  # the presenter's media again, now from node a
        # the recording goes on as the meeting's next part (one archive entry); node b's part is recovered
        parts = await recording_parts(client.app, meeting.id, within=20, count=2)
        assert [(p.part, p.recovered) for p in parts] == [(1, True), (2, False)]
        assert parts[0].state != RecordingState.RECORDING  # node b's part is being finalized from its segments
        recovered = await finished_recording(client.app, parts[0].id, within=120)
        assert recovered.state == RecordingState.READY, (recovered.state, recovered.error)
        watched = ffprobe(client.app[CONFIG].data_path / "recordings" / recovered.directory / recovered.file)
        assert float(watched["format"]["duration"]) > 0 and recovered.duration > 0, watched["format"]
    finally:
        if node_b.poll() is None:
            node_b.kill()
        node_b.wait(timeout=10)


@pytest.fixture
def front(ports: dict[str, int], tmp_path: Path) -> Iterator[str]:
    """front: docs/deploy.md's nginx for several nodes in front of node a and node b (plain HTTP on loopback)."""
    [(_, body)] = [(path, text) for lang, path, text in blocks() if lang == "nginx" and "cluster" in path]
    body = body.replace("10.0.0.11:8080", f"127.0.0.1:{ports['a']}").replace("10.0.0.12:8080",
                                                                             f"127.0.0.1:{ports['b']}")
    body = body.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{ports['front']};")
    body = "\n".join(line for line in body.splitlines() if "ssl_certificate" not in line)
    (tmp_path / "site.conf").write_text(body, encoding="utf-8")
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  include {tmp_path}/site.conf;\n}}\n", encoding="utf-8")
    proc = subprocess.Popen([tool("nginx"), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", ports["front"]), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{ports['front']}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("config", [{"front": True}], indirect=True)
async def test_behind_the_documented_nginx_the_node_parameter_reaches_the_owner(
        client: Client, aiohttp_client: Any, node_config: Callable[..., Config], front: str,
        login_as: Factory, make_user: Factory, make_meeting: Factory, make_classroom: Factory,
        clients: list[LiveClient], redis: Any, ports: dict[str, int]) -> None:
    b = await aiohttp_client(create_app(node_config("b", front=True)), server_kwargs={"port": ports["b"]})
    trainer_user: User = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    room, classroom_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[classroom_id])
    home = front.replace("http", "ws") + "/ws"

    async def browser(who: LoggedIn) -> aiohttp.ClientSession:
        cookie = who.client.session.cookie_jar.filter_cookies(who.client.make_url("/"))[COOKIE].value
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        session.cookie_jar.update_cookies({COOKIE: cookie}, response_url=URL(front))
        return session

    presenter, classroom = await browser(trainer), await browser(room)
    try:
        await redis.set(draining_key("b"), "1")
        t = await enter_like_the_page(presenter, home, front, meeting.id, clients)  # nginx: either node
        await redis.delete(draining_key("b"))
        assert await redis.get(room_key(meeting.id)) == b"a"
        assert (await t.publish())["type"] == "answer"

        statuses = set()
        for _ in range(4):  # without node=, nginx takes turns: node b redirects to the owner, node a serves
            page = await classroom.get(f"{front}/live/{meeting.id}", allow_redirects=False)
            statuses.add(page.status)
            if page.status == 307:
                assert page.headers["Location"] == f"{front}/live/{meeting.id}?node=a"
        assert statuses == {200, 307}, statuses
        for _ in range(3):  # with node=a, nginx always reaches node a; with node=b, node b (which redirects)
            assert (await classroom.get(f"{front}/live/{meeting.id}?node=a", allow_redirects=False)).status == 200
            assert (await classroom.get(f"{front}/live/{meeting.id}?node=b", allow_redirects=False)).status == 307

        c = LiveClient(classroom, f"{home}?node=a", origin=front)  # the page's socket carries its node=
        clients.append(c)
        await c.connect()
        await c.join(meeting.id)  # no `moved`: nginx brought it to the owner
        await c.wait_frames("presenter-video", 5)
        assert open_meetings(client.app[LIVE]) == [meeting.id] and open_meetings(b.app[LIVE]) == []
    finally:
        for lc in clients:
            await lc.close()
        await presenter.close()
        await classroom.close()
