"""Tests of server.metrics: one registry per application, exported at /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from server.app import create_app
from server.config import Config
from server.db.models import Role
from server.metrics import Metrics
from tests.live_client import page_origin


def test_each_metrics_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()  # a second set in one process: no "duplicated timeseries" from a global registry
    a.ws_connections.inc(3)
    a.logins.labels(result="ok").inc()
    assert a.registry.get_sample_value("taphuan_ws_connections") == 3
    assert a.registry.get_sample_value("taphuan_logins_total", {"result": "ok"}) == 1
    assert b.registry.get_sample_value("taphuan_ws_connections") == 0
    assert b.registry.get_sample_value("taphuan_logins_total", {"result": "ok"}) is None


async def _gauge(client: TestClient[Any, Any]) -> float:
    text = await (await client.get("/metrics")).text()
    match = re.search(r"^taphuan_ws_connections (\S+)$", text, re.M)
    assert match, text
    return float(match.group(1))


async def test_open_websockets_are_counted_at_metrics(client: TestClient[Any, Any],
                                                      login_as: Callable[..., Awaitable[Any]]) -> None:
    who = await login_as(Role.TRAINER)
    assert await _gauge(client) == 0
    origin = page_origin(str(who.client.make_url("/ws")))
    sockets = [await who.client.ws_connect("/ws", headers={"Origin": origin}) for _ in range(2)]
    assert await _gauge(client) == 2
    for ws in sockets:
        await ws.close()
    for _ in range(100):  # the server notices the close a moment later
        if await _gauge(client) == 0:
            break
        await asyncio.sleep(0.05)
    assert await _gauge(client) == 0


async def _sample(client: TestClient[Any, Any], name: str, **labels: str) -> float:
    """_sample: one sample of the app's /metrics, 0 when absent."""
    text = await (await client.get("/metrics")).text()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    series = f"{name}{{{wanted}}}" if labels else name
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def test_logins_and_http_requests_are_counted(client: TestClient[Any, Any],
                                                     make_user: Callable[..., Awaitable[Any]]) -> None:
    from tests.server.test_auth import api_login, form_login

    await make_user(Role.TRAINER, username="an", password="good-password")
    await make_user(Role.TRAINER, username="binh", password="good-password", disabled=True)
    login = {"route": "/api/v1/login"}
    before = {status: await _sample(client, "taphuan_http_requests_total", **login, status=status)
              for status in ("200", "401", "403")}
    unmatched = await _sample(client, "taphuan_http_requests_total", route="unmatched", status="404")
    assert (await form_login(client, "an", "good-password")).status == 303  # the page form counts the same
    assert (await api_login(client, "an", "nope-nope")).status == 401
    assert (await api_login(client, "an", "nope-nope")).status == 401
    assert (await api_login(client, "an", "good-password")).status == 200
    assert (await api_login(client, "binh", "good-password")).status == 403
    for _ in range(3):
        assert (await client.get("/no-such-page")).status == 404
    assert (await client.get("/static/app.css")).status == 200
    assert await _sample(client, "taphuan_logins_total", result="failed") == 2
    assert await _sample(client, "taphuan_logins_total", result="ok") == 2
    assert await _sample(client, "taphuan_logins_total", result="disabled") == 1
    for status, more in (("200", 1), ("401", 2), ("403", 1)):
        assert await _sample(client, "taphuan_http_requests_total", **login, status=status) == before[status] + more
    assert await _sample(client, "taphuan_http_requests_total", route="/login", status="303") == 1
    assert await _sample(client, "taphuan_http_requests_total", route="unmatched", status="404") == unmatched + 3
    assert await _sample(client, "taphuan_http_requests_total", route="/static", status="200") == 1
    text = await (await client.get("/metrics")).text()
    assert "/no-such-page" not in text  # the route's template, never the path someone typed


async def test_websocket_messages_and_drops_are_counted(make_config: Callable[..., Config],
                                                        aiohttp_client: Any) -> None:
    from server.auth import hash_password
    from server.db.engine import DB
    from server.db.models import User
    from tests.server.test_auth import api_login

    config = make_config(**{"limits.ws_messages_per_second": 1.0, "limits.ws_burst": 3,
                            "limits.ws_message_bytes": 1024})
    client = await aiohttp_client(create_app(config))
    async with client.app[DB]() as s:
        s.add(User(username="an", display_name="An", role=Role.TRAINER, password_hash=hash_password("good-password")))
        await s.commit()
    assert (await api_login(client, "an", "good-password")).status == 200
    ws = await client.ws_connect("/ws", headers={"Origin": page_origin(str(client.make_url("/ws")))})
    await ws.send_bytes(b"\x00binary")
    for i in range(8):
        await ws.send_json({"type": "ping", "id": i})
    await ws.send_str('{"type": "ping", "pad": "' + "x" * 2000 + '"}')
    await ws.send_json({"type": "ping", "id": "last"})
    received: list[dict[str, Any]] = []
    with contextlib.suppress(asyncio.TimeoutError):
        while True:  # whatever the server answers, until it has been quiet for a while
            received.append(await ws.receive_json(timeout=2.0))
    await ws.close()
    pongs = sum(1 for m in received if m.get("type") == "pong")
    dropped = {r: await _sample(client, "taphuan_ws_messages_refused_total", reason=r)
               for r in ("binary", "rate-limited", "too-large")}
    assert await _sample(client, "taphuan_ws_messages_total", direction="in") == 11  # every frame
    assert dropped["binary"] == 1 and dropped["rate-limited"] >= 1
    assert pongs + sum(dropped.values()) == 11  # each message handled (a pong) or dropped, never both
    assert await _sample(client, "taphuan_ws_messages_total", direction="out") == len(received)


async def test_media_forwarded_and_recordings_by_state(login_as: Callable[..., Awaitable[Any]],
                                                       make_user: Callable[..., Awaitable[Any]],
                                                       make_meeting: Callable[..., Awaitable[Any]],
                                                       make_classroom: Callable[..., Awaitable[int]],
                                                       clients: list[Any], client: TestClient[Any, Any]) -> None:
    from server.db.engine import DB
    from server.db.models import Recording, RecordingState
    from tests.server.livetest import classroom_login, connect

    trainer_user = await make_user(Role.TRAINER)
    trainer = await login_as(user=trainer_user)
    room, classroom_id = await classroom_login(login_as, make_user, make_classroom)
    meeting = await make_meeting(presenters=[trainer_user], classrooms=[classroom_id])
    assert await _sample(client, "taphuan_forwarded_packets_total") == 0
    t = await connect(trainer, clients)
    await t.join(meeting.id)
    await t.publish()
    c = await connect(room, clients)
    await c.join(meeting.id)
    assert await _sample(client, "taphuan_rooms") == 1
    assert await _sample(client, "taphuan_participants") == 2
    await c.wait_frames("presenter-video", 10)
    packets = await _sample(client, "taphuan_forwarded_packets_total")
    octets = await _sample(client, "taphuan_forwarded_bytes_total")
    assert packets >= 10 and octets > packets * 10  # at least the frames it decoded, each many bytes
    await c.close()  # its consumers go: what they sent stays counted
    for _ in range(100):
        if await _sample(client, "taphuan_participants") == 1:
            break
        await asyncio.sleep(0.05)
    assert await _sample(client, "taphuan_participants") == 1
    assert await _sample(client, "taphuan_forwarded_packets_total") >= packets
    assert await _sample(client, "taphuan_forwarded_bytes_total") >= octets

    async with client.app[DB]() as s:
        for state in (RecordingState.PROCESSING, RecordingState.READY, RecordingState.READY):
            s.add(Recording(meeting_id=meeting.id, title="Bài giảng", directory="x", state=state))
        await s.commit()
    recording_now = await _sample(client, "taphuan_recordings", state="recording")  # the meeting's own, if any
    assert await _sample(client, "taphuan_recordings", state="ready") == 2
    assert await _sample(client, "taphuan_recordings", state="processing") == 1
    assert await _sample(client, "taphuan_recordings", state="failed") == 0
    async with client.app[DB]() as s:
        for rec in (await s.scalars(select(Recording).where(Recording.state == RecordingState.READY))).all():
            rec.state = RecordingState.FAILED
        await s.commit()
    assert await _sample(client, "taphuan_recordings", state="ready") == 0
    assert await _sample(client, "taphuan_recordings", state="failed") == 2
    assert await _sample(client, "taphuan_recordings", state="recording") == recording_now


async def test_live_rooms_and_participants_are_read_from_the_sfu(client: TestClient[Any, Any]) -> None:
    from server.live.service import LIVE
    from sfu.participant import Capabilities

    assert await _sample(client, "taphuan_rooms") == 0
    room = await client.app[LIVE].sfu.room("42")

    async def on_event(event: Any) -> None:
        pass

    await room.join("p-1", "guest", "Khách", Capabilities(), on_event)
    assert await _sample(client, "taphuan_rooms") == 1
    assert await _sample(client, "taphuan_participants") == 1
    await room.leave("p-1")
    assert await _sample(client, "taphuan_participants") == 0
