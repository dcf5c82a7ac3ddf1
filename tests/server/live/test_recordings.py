"""Tests of server/live/recordings.py and server/live/recording_live.py: start/stop over /ws, automatic start,
finalizing in the worker, disk refusal, storage that cannot be written (moderators told), retention, recovery after
`kill -9` of a real server process."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.config import CONFIG, Config
from server.db.engine import DB
from server.db.models import (
    AuditEntry,
    LoginSession,
    Meeting,
    MeetingStatus,
    Program,
    Recording,
    RecordingState,
    Role,
    User,
    meeting_presenters,
    utcnow,
)
from server.live.recordings import RECORDERS
from server.live.service import LIVE
from tests.live_client import LiveClient
from tests.recorder.media import ffprobe
from tests.server.livetest import connect
from tests.server.storagetest import read_only
from tests.server.test_serve import ROOT, _free_port, _read_until
from tests.sfu.helpers import RED, ColorTrack, wait_until

Factory = Callable[..., Awaitable[Any]]


async def _wait_state(app: Any, recording_id: int, states: set[RecordingState], within: float = 60) -> Recording:
    deadline = time.monotonic() + within
    while True:
        async with app[DB]() as s:
            row = await s.get(Recording, recording_id)
        if row is not None and row.state in states:
            return row
        if time.monotonic() > deadline:
            raise TimeoutError(f"recording {recording_id}: {row.state if row else None}")
        await asyncio.sleep(0.2)


@pytest.fixture
def config(make_config: Callable[..., Config], request: pytest.FixtureRequest) -> Config:
    """config: short segments, no disk minimum; more keys with `@pytest.mark.parametrize("config", [{…}],
    indirect=True)`."""
    return make_config(recorder__segment_seconds=1.0, recorder__min_free_bytes=0, sfu__room_grace_seconds=1.0,
                       **getattr(request, "param", {}))


AUTOMATIC = pytest.mark.parametrize("config", [{"recorder__auto_start": True}], indirect=True, ids=["automatic"])


async def test_record_start_stop_over_websocket(app: Any, login_as: Factory, make_meeting: Factory,
                                                make_classroom: Factory, make_user: Factory,
                                                clients: list[LiveClient]) -> None:
    trainer = await login_as(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer.user])
    t = await connect(trainer, clients)
    await t.join(meeting.id)
    await t.publish(ColorTrack(RED))
    reply = await t.request("record-start")
    assert reply["type"] == "ok", reply
    rid = reply["recording_id"]
    note = await t.wait(lambda m: m.get("type") == "recording" and m.get("state") == "recording")
    assert note["recording_id"] == rid
    await t.wait(lambda m: m.get("type") == "participant-joined" and m.get("role") == "recorder")
    assert (await t.request("record-start"))["error"]["code"] == "state"
    began = time.monotonic()
    # what the recorder reports when its disk fell too far behind (tests/recorder/test_participant.py) reaches
    # the row and the API
    on_gap = app[RECORDERS].active[meeting.id].participant.on_gap
    assert on_gap is not None
    on_gap(1)
    for _ in range(50):
        body = await (await trainer.client.get(f"/api/v1/recordings/{rid}")).json()
        if body["gaps"]:
            break
        await asyncio.sleep(0.05)
    assert body["gaps"] == 1 and body["state"] == "recording"
    await asyncio.sleep(3.5)
    assert (await t.request("record-marker", title="Phần 2: thảo luận"))["type"] == "ok"
    assert (await t.request("record-marker", title="", check=False))["error"]["code"] == "bad-message"
    await asyncio.sleep(2.5)
    real = time.monotonic() - began  # the recording lasts at least this long: it stops once the request is in
    assert (await t.request("record-stop"))["type"] == "ok"
    await t.wait(lambda m: m.get("type") == "recording" and m.get("state") == "stopped")
    row = await _wait_state(app, rid, {RecordingState.READY, RecordingState.FAILED})
    assert row.state == RecordingState.READY, row.error
    assert not row.recovered and row.progress == 100
    assert any(c["title"] == "Phần 2: thảo luận" for c in row.chapters)
    path = app[CONFIG].data_path / "recordings" / row.directory / row.file
    info = ffprobe(path)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["opus", "vp8"]
    assert float(info["format"]["duration"]) >= real - 0.1  # give or take a frame
    async with app[DB]() as s:
        actions = set((await s.scalars(select(AuditEntry.action))).all())
    assert {"recording.start", "recording.stop"} <= actions

    classroom_id = await make_classroom()
    room_user = await make_user(Role.CLASSROOM, classroom_id=classroom_id)
    c = await connect(await login_as(user=room_user), clients)
    meeting2 = await make_meeting(classrooms=[classroom_id], presenters=[trainer.user])
    await c.join(meeting2.id)
    assert (await c.request("record-start"))["error"]["code"] == "forbidden"
    assert (await c.request("record-marker", title="x"))["error"]["code"] == "forbidden"


async def test_automatic_start_and_stop_when_room_empties(make_config: Callable[..., Config], aiohttp_client: Any,
                                                          clients: list[LiveClient]) -> None:
    from server.app import create_app

    cfg = make_config(recorder__auto_start=True, recorder__segment_seconds=1.0, recorder__min_free_bytes=0,
                      sfu__room_grace_seconds=0.5)
    app = create_app(cfg)
    client = await aiohttp_client(app)
    async with app[DB]() as s:
        user = User(username="tr-auto", display_name="Trainer", role=Role.TRAINER, password_hash="x")
        program = Program(title="P")
        s.add_all([user, program])
        await s.flush()
        now = utcnow()
        meeting = Meeting(program_id=program.id, title="Tự động", status=MeetingStatus.PUBLISHED,
                          starts_at=now, ends_at=now + dt.timedelta(hours=1))
        unrecorded = Meeting(program_id=program.id, title="Không ghi", status=MeetingStatus.PUBLISHED,
                             starts_at=now, ends_at=now + dt.timedelta(hours=1), record=False)
        s.add_all([meeting, unrecorded])
        await s.flush()
        await s.execute(sa.insert(meeting_presenters).values(
            [{"meeting_id": meeting.id, "user_id": user.id}, {"meeting_id": unrecorded.id, "user_id": user.id}]))
        login = LoginSession(id="tok-auto", user_id=user.id, csrf_token="c", expires_at=now + dt.timedelta(hours=1))
        s.add(login)
        await s.commit()
    client.session.cookie_jar.update_cookies({"taphuan_login": "tok-auto"}, response_url=client.make_url("/"))
    lc = LiveClient(client.session, str(client.make_url("/ws")))
    clients.append(lc)
    await lc.connect()
    await lc.join(meeting.id)
    await lc.publish(ColorTrack(RED))
    note = await lc.wait(lambda m: m.get("type") == "recording" and m.get("state") == "recording")
    await asyncio.sleep(2.0)
    await lc.request("leave")
    row = await _wait_state(app, note["recording_id"], {RecordingState.READY, RecordingState.FAILED})
    assert row.state == RecordingState.READY, row.error
    other = LiveClient(client.session, str(client.make_url("/ws")))
    clients.append(other)
    await other.connect()
    await other.join(unrecorded.id)
    await asyncio.sleep(0.5)
    assert unrecorded.id not in app[RECORDERS].active
    async with app[DB]() as s:
        assert await s.scalar(select(sa.func.count()).select_from(Recording)) == 1


async def test_refused_when_disk_is_nearly_full(make_config: Callable[..., Config], aiohttp_client: Any,
                                                clients: list[LiveClient]) -> None:
    from server.app import create_app

    app = create_app(make_config(recorder__min_free_bytes=10**18))
    client = await aiohttp_client(app)
    async with app[DB]() as s:
        user = User(username="op-disk", display_name="Op", role=Role.OPERATOR, password_hash="x")
        s.add(user)
        await s.flush()
        s.add(LoginSession(id="tok-disk", user_id=user.id, csrf_token="c", expires_at=utcnow() + dt.timedelta(hours=1)))
        await s.commit()
    client.session.cookie_jar.update_cookies({"taphuan_login": "tok-disk"}, response_url=client.make_url("/"))
    async with app[DB]() as s:
        program = Program(title="P")
        s.add(program)
        await s.flush()
        now = utcnow()
        m = Meeting(program_id=program.id, title="Đầy đĩa", status=MeetingStatus.PUBLISHED, starts_at=now,
                    ends_at=now + dt.timedelta(hours=1))
        s.add(m)
        await s.commit()
    lc = LiveClient(client.session, str(client.make_url("/ws")))
    clients.append(lc)
    await lc.connect()
    await lc.join(m.id)
    reply = await lc.request("record-start")
    assert reply["error"]["code"] == "disk-full"
    assert "dung lượng" in reply["error"]["message"] and "disk space" in reply["error"]["message"]
    note = await lc.wait(lambda msg: msg.get("type") == "recording" and msg.get("state") == "refused")
    assert "disk" in note["reason"]
    async with app[DB]() as s:
        assert "recording.refused" in set((await s.scalars(select(AuditEntry.action))).all())
        assert await s.scalar(select(sa.func.count()).select_from(Recording)) == 0


async def test_retention_deletes_old_recordings_with_an_audit_entry(make_config: Callable[..., Config],
                                                                    aiohttp_client: Any) -> None:
    from server.app import create_app

    app = create_app(make_config(recorder__retention_days=30))
    await aiohttp_client(app)
    root = app[CONFIG].data_path / "recordings"
    async with app[DB]() as s:
        old = Recording(title="Cũ", directory="old", state=RecordingState.READY,
                        started_at=utcnow() - dt.timedelta(days=31))
        new = Recording(title="Mới", directory="new", state=RecordingState.READY, started_at=utcnow())
        s.add_all([old, new])
        await s.commit()
    for name in ("old", "new"):
        (root / name).mkdir()
        (root / name / "lecture.webm").write_bytes(b"x")
    assert await app[RECORDERS].retention() == 1
    assert not (root / "old").exists() and (root / "new").exists()
    async with app[DB]() as s:
        titles = set((await s.scalars(select(Recording.title))).all())
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "recording.delete"))
    assert titles == {"Mới"}
    assert entry is not None and "retention" in entry.details["reason"]


async def test_segments_kept_for_a_continuation_go_at_the_next_start(make_config: Callable[..., Config],
                                                                      aiohttp_client: Any) -> None:
    """A server stopped while a meeting could still continue its recording: the next start removes the segments
    kept for it (the lecture file and originals stay); a failed recording keeps them (all that is left of it)."""
    from server.app import create_app

    app = create_app(make_config())
    await aiohttp_client(app)
    root = app[CONFIG].data_path / "recordings"
    async with app[DB]() as s:
        s.add_all([Recording(title="Xong", directory="done", state=RecordingState.READY, file="lecture.webm"),
                   Recording(title="Lỗi", directory="busy", state=RecordingState.FAILED)])
        await s.commit()
    for name in ("done", "busy"):
        (root / name / "program-video").mkdir(parents=True)
        (root / name / "program-video" / "00000.mkv").write_bytes(b"x")
        (root / name / "lecture.webm").write_bytes(b"x")
    await app[RECORDERS].recover()
    assert not (root / "done" / "program-video").exists() and (root / "done" / "lecture.webm").exists()
    assert (root / "busy" / "program-video" / "00000.mkv").exists()


def _setup_db(data_dir: Path) -> int:
    """_setup_db: a trainer with a login, a published recorded meeting he presents; returns the meeting id."""
    engine = sa.create_engine(f"sqlite:///{data_dir / 'taphuan.sqlite3'}")
    with Session(engine) as s:
        user = User(username="tr-kill", display_name="Trainer", role=Role.TRAINER, password_hash="x")
        program = Program(title="Chương trình")
        s.add_all([user, program])
        s.flush()
        now = utcnow()
        meeting = Meeting(program_id=program.id, title="Bài giảng bị ngắt", status=MeetingStatus.PUBLISHED,
                          starts_at=now, ends_at=now + dt.timedelta(hours=1))
        s.add(meeting)
        s.flush()
        s.execute(sa.insert(meeting_presenters).values(meeting_id=meeting.id, user_id=user.id))
        s.add(LoginSession(id="tok-kill", user_id=user.id, csrf_token="c", expires_at=now + dt.timedelta(hours=2)))
        s.commit()
        meeting_id = meeting.id
    engine.dispose()
    return meeting_id


def _serve(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHUAN_")}
    env.update({"TAPHUAN_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
                "TAPHUAN_SFU__ICE_ADDRESSES": "[127.0.0.1]", "TAPHUAN_RECORDER__MIN_FREE_BYTES": "0",
                "TAPHUAN_RECORDER__SEGMENT_SECONDS": "1.0"})
    return subprocess.Popen([sys.executable, "-m", "server.cli", "--config", str(ROOT / "config.yaml"), "serve",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@contextlib.asynccontextmanager
async def served_recording(data_dir: Path, port: int) -> AsyncIterator[tuple[subprocess.Popen[str], LiveClient]]:
    """served_recording: a real server process on `port` whose meeting a client joined and publishes to, once
    its recording runs; the process is killed on the way out if the test left it running."""
    proc = _serve(data_dir, port)
    try:
        await asyncio.to_thread(_read_until, proc, "running at")
        meeting_id = _setup_db(data_dir)
        base = f"http://127.0.0.1:{port}"
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            jar.update_cookies({"taphuan_login": "tok-kill"}, response_url=aiohttp.client.URL(base))
            lc = LiveClient(session, f"{base}/ws")
            await lc.connect()
            try:
                await lc.join(meeting_id)
                await lc.publish(ColorTrack(RED))
                await lc.wait(lambda m: m.get("type") == "recording" and m.get("state") == "recording")
                yield proc, lc
            finally:
                await lc.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_kill_9_during_recording_is_recovered_at_next_start(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", _free_port()
    async with served_recording(data_dir, port) as (proc, _):
        began = time.monotonic()
        await asyncio.sleep(7.0)
        real = time.monotonic() - began
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    proc = _serve(data_dir, port)
    try:
        await asyncio.to_thread(_read_until, proc, "running at")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            session.cookie_jar.update_cookies({"taphuan_login": "tok-kill"},
                                              response_url=aiohttp.client.URL(f"http://127.0.0.1:{port}"))
            deadline = time.monotonic() + 60
            while True:
                async with session.get(f"http://127.0.0.1:{port}/api/v1/recordings") as resp:
                    assert resp.status == 200
                    items = await resp.json()
                if items and items[0]["state"] in ("ready", "failed"):
                    break
                assert time.monotonic() < deadline, items
                await asyncio.sleep(0.5)
            item = items[0]
            assert item["state"] == "ready", item
            assert item["recovered"] is True
            async with session.get(f"http://127.0.0.1:{port}{item['media_url']}") as resp:
                assert resp.status == 200
                (tmp_path / "recovered.webm").write_bytes(await resp.read())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    info = ffprobe(tmp_path / "recovered.webm")
    assert {s["codec_name"] for s in info["streams"]} == {"vp8", "opus"}
    assert float(info["format"]["duration"]) >= real - 5, (info["format"]["duration"], real)


async def _moderator_and_classroom(login_as: Factory, make_meeting: Factory, make_classroom: Factory,
                                   make_user: Factory) -> tuple[Any, Any, Any]:
    trainer = await login_as(Role.TRAINER)
    classroom_id = await make_classroom()
    room = await login_as(user=await make_user(Role.CLASSROOM, classroom_id=classroom_id))
    meeting = await make_meeting(presenters=[trainer.user], classrooms=[classroom_id])
    return trainer, room, meeting


@AUTOMATIC
async def test_a_recording_that_cannot_start_tells_the_moderators(app: Any, login_as: Factory, make_meeting: Factory,
                                                                  make_classroom: Factory, make_user: Factory,
                                                                  clients: list[LiveClient]) -> None:
    trainer, room, meeting = await _moderator_and_classroom(login_as, make_meeting, make_classroom, make_user)
    refused = lambda m: m.get("type") == "recording" and m.get("state") == "refused"  # noqa: E731
    with read_only(app[CONFIG].data_path / "recordings"):
        t = await connect(trainer, clients)
        await t.join(meeting.id)  # the room opens: its automatic recording cannot be written
        note = await t.wait(refused)
        assert "không ghi được bản ghi" in note["reason"] and "cannot write the recording" in note["reason"]
        c = await connect(room, clients)
        await c.join(meeting.id)
        late = await connect(await login_as(user=trainer.user), clients)  # a moderator who comes later is told too
        await late.join(meeting.id)
        assert (await late.wait(refused))["reason"] == note["reason"]
        reply = await t.request("record-start")  # asking again: the same answer, at once
        assert reply["error"]["code"] == "storage" and reply["error"]["message"] == note["reason"]
        assert (await c.request("ping"))["type"] == "pong"
        assert not any(refused(m) for m in c.messages)  # a classroom is not a moderator: not told
        async with app[DB]() as s:
            rows = list((await s.scalars(select(Recording))).all())
            reasons = [e.details.get("reason") for e in (await s.scalars(
                select(AuditEntry).where(AuditEntry.action == "recording.refused"))).all()]
        assert [r.state for r in rows] == [RecordingState.FAILED] * 2 and reasons == ["storage"] * 2
    reply = await t.request("record-start")  # writable again: it records
    assert reply["type"] == "ok", reply
    newcomer = await connect(await login_as(user=trainer.user), clients)
    await newcomer.join(meeting.id)
    assert (await newcomer.request("ping"))["type"] == "pong"
    assert not any(refused(m) for m in newcomer.messages)  # nothing to tell any more


@AUTOMATIC
async def test_a_recording_the_disk_stops_taking_stops_and_says_why(app: Any, login_as: Factory,
                                                                    make_meeting: Factory, make_classroom: Factory,
                                                                    make_user: Factory,
                                                                    clients: list[LiveClient]) -> None:
    trainer, room, meeting = await _moderator_and_classroom(login_as, make_meeting, make_classroom, make_user)
    t = await connect(trainer, clients)
    await t.join(meeting.id)
    await t.publish(ColorTrack(RED))
    started = await t.wait(lambda m: m.get("type") == "recording" and m.get("state") == "recording")
    c = await connect(room, clients)
    await c.join(meeting.id)
    async with app[DB]() as s:
        row = await s.get(Recording, started["recording_id"])
    assert row is not None
    directory = app[CONFIG].data_path / "recordings" / row.directory
    for _ in range(100):  # the presenter's camera has its first segment
        if list(directory.glob("presenter-video/*")):
            break
        await asyncio.sleep(0.1)
    folders = [directory, *(p for p in directory.iterdir() if p.is_dir())]
    with contextlib.ExitStack() as stack:
        for folder in folders:  # no new segment can be created: the disk refuses the recording
            stack.enter_context(read_only(folder))
        stopped = lambda m: m.get("type") == "recording" and m.get("state") == "stopped"  # noqa: E731
        note = await t.wait(stopped, within=30)
        assert note["reason"] == "storage" and note["recording_id"] == row.id
        assert (await c.wait(stopped))["reason"] == "storage"  # everyone sees it stop
        assert meeting.id not in app[RECORDERS].active
        async with app[DB]() as s:
            row = await s.get(Recording, row.id)
        assert row is not None and "cannot write the recording" in row.error
        assert (await t.request("ping"))["type"] == "pong"  # the meeting goes on


async def _recorded_meeting(cfg: Config, aiohttp_client: Any) -> tuple[Any, Any, Meeting]:
    """_recorded_meeting: a started app, its test client logged in as the trainer presenting a published meeting
    recorded automatically, and the meeting."""
    from server.app import create_app

    app = create_app(cfg)
    client = await aiohttp_client(app)
    async with app[DB]() as s:
        user = User(username="tr-parts", display_name="Trainer", role=Role.TRAINER, password_hash="x")
        program = Program(title="P")
        s.add_all([user, program])
        await s.flush()
        now = utcnow()
        meeting = Meeting(program_id=program.id, title="Bài 3: Dạy học tích hợp", status=MeetingStatus.PUBLISHED,
                          starts_at=now, ends_at=now + dt.timedelta(hours=1))
        s.add(meeting)
        await s.flush()
        await s.execute(sa.insert(meeting_presenters).values(meeting_id=meeting.id, user_id=user.id))
        s.add(LoginSession(id="tok-parts", user_id=user.id, csrf_token="c", expires_at=now + dt.timedelta(hours=1)))
        await s.commit()
    client.session.cookie_jar.update_cookies({"taphuan_login": "tok-parts"}, response_url=client.make_url("/"))
    return app, client, meeting


def _recording_now(m: dict[str, Any]) -> bool:
    return m.get("type") == "recording" and m.get("state") == "recording"


async def test_who_comes_back_before_the_emptied_room_closes_is_recorded(make_config: Callable[..., Config],
                                                                         aiohttp_client: Any,
                                                                         clients: list[LiveClient]) -> None:
    """The recorder leaves a room that stood empty; the room itself closes only a grace later, so no new room
    announces whoever comes back meanwhile: they are recorded again all the same (the same recording goes on)."""
    app, client, meeting = await _recorded_meeting(make_config(
        recorder__auto_start=True, recorder__segment_seconds=1.0, recorder__min_free_bytes=0), aiohttp_client)
    lc = LiveClient(client.session, str(client.make_url("/ws")))
    clients.append(lc)
    await lc.connect()
    await lc.join(meeting.id)
    await lc.publish(ColorTrack(RED))
    first = await lc.wait(_recording_now)
    await asyncio.sleep(1.0)
    mark = len(lc.messages)
    await app[RECORDERS].stop(meeting.id, None, "empty")  # as when the trainer came back just as it stopped
    again = await lc.wait(_recording_now, start=mark)
    assert again["recording_id"] == first["recording_id"]
    assert app[RECORDERS].active[meeting.id].recording_id == first["recording_id"]


async def test_a_meeting_is_one_entry_continued_after_a_short_pause_and_in_parts_after_a_long_one(
        make_config: Callable[..., Config], aiohttp_client: Any, clients: list[LiveClient]) -> None:
    """The room empties twice: after a short pause the recording goes on in the same lecture video (the pause cut
    out, a chapter marks it); after a longer one it becomes part 2 of the same entry. finish_meeting ends it, after
    everyone left as while it records."""
    from recorder.archive import has_segments
    from recorder.timeline import CONTINUE_TITLE, load

    cfg = make_config(recorder__auto_start=True, recorder__segment_seconds=1.0, recorder__min_free_bytes=0,
                      sfu__room_grace_seconds=0.5, recorder__continue_gap_minutes=0.08)  # 4.8 s
    app, client, meeting = await _recorded_meeting(cfg, aiohttp_client)
    recorders = app[RECORDERS]

    async def present(seconds: float) -> int:
        lc = LiveClient(client.session, str(client.make_url("/ws")))
        clients.append(lc)
        await lc.connect()
        await lc.join(meeting.id)
        await lc.publish(ColorTrack(RED))
        note = await lc.wait(_recording_now)
        await asyncio.sleep(seconds)
        return int(note["recording_id"])

    async def emptied(recording_id: int) -> None:  # everyone left: the recorder stops after the room's grace
        await _wait_state(app, recording_id, {RecordingState.PROCESSING, RecordingState.READY}, within=20)

    joined = time.monotonic()  # a take's media cannot begin before its join (under load the join and the
    first = await present(3.0)  # publication alone took seconds: the note's arrival is no lower bound)
    await clients[-1].request("leave")
    await emptied(first)
    paused = time.monotonic()
    await wait_until(lambda: str(meeting.id) not in app[LIVE].sfu.rooms, within=10)  # the empty room closed
    await asyncio.sleep(1.0)  # a short pause: the same lecture video goes on
    resumed = time.monotonic()
    again = await present(3.0)
    assert again == first
    await clients[-1].request("leave")
    await emptied(first)
    ended = time.monotonic()
    await wait_until(lambda: first not in recorders.open_parts, within=20)  # a long pause: the wait is over
    rejoined = time.monotonic()
    second = await present(2.5)
    assert second != first
    await clients[-1].request("leave")
    await emptied(second)
    left = time.monotonic()
    assert second in recorders.open_parts
    assert await recorders.finish_meeting(meeting.id) == second  # the meeting is over: nothing continues it
    assert not recorders.open_parts
    await wait_until(lambda: str(meeting.id) not in app[LIVE].sfu.rooms, within=10)  # the empty room closed
    third = await present(1.0)  # it opened again: a part of its own
    assert third not in (first, second)
    assert await recorders.finish_meeting(meeting.id) == third  # and ended while it records
    assert meeting.id not in recorders.active and not recorders.open_parts
    rows = [await _wait_state(app, rid, {RecordingState.READY, RecordingState.FAILED}) for rid in (first, second)]
    assert [(r.state, r.part, r.title, r.meeting_id) for r in rows] == [
        (RecordingState.READY, 1, meeting.title, meeting.id), (RecordingState.READY, 2, meeting.title, meeting.id)]
    async with app[DB]() as s:
        assert await s.scalar(select(sa.func.count()).select_from(Recording)) == 3
    root = cfg.data_path / "recordings"
    one, two = (root / r.directory for r in rows)
    d1 = next(e.t for e in load(one) if e.kind == "stop")  # where the first take's media ended
    duration = float(ffprobe(one / rows[0].file)["format"]["duration"])
    assert abs(duration - rows[0].duration) < 0.2, (duration, rows[0].duration)
    # each take lasts at most the wall-clock time from its join to its stop; the pause between is cut out
    assert d1 < paused - joined + 0.25, (d1, paused - joined)
    assert duration - d1 - 0.1 < ended - resumed + 0.25, (duration, d1, ended - resumed, resumed - paused)
    assert duration > d1 + 2.0, (duration, d1)  # and the second take is in it
    titles = [(c["start"], c["title"]) for c in rows[0].chapters]
    assert (round(d1 + 0.1, 3), CONTINUE_TITLE) in titles, titles
    assert CONTINUE_TITLE not in [c["title"] for c in rows[1].chapters]
    assert 1.5 < float(ffprobe(two / rows[1].file)["format"]["duration"]) < left - rejoined + 0.5
    # nothing can continue them: their segments are gone, lecture and originals stay
    await wait_until(lambda: not has_segments(one) and not has_segments(two), within=20)
    assert (one / "originals").is_dir() and (two / "originals").is_dir()


async def _presenting(client: Any, meeting: Meeting, clients: list[LiveClient]) -> LiveClient:
    lc = LiveClient(client.session, str(client.make_url("/ws")))
    clients.append(lc)
    await lc.connect()
    await lc.join(meeting.id)
    await lc.publish(ColorTrack(RED))
    return lc


async def _rows(app: Any, meeting_id: int) -> list[Recording]:
    async with app[DB]() as s:
        return list((await s.scalars(select(Recording).where(Recording.meeting_id == meeting_id)
                                      .order_by(Recording.part))).all())


async def test_a_moderators_start_and_the_automatic_one_at_once_make_one_recording(
        make_config: Callable[..., Config], aiohttp_client: Any, clients: list[LiveClient]) -> None:
    """Two starts of one meeting at once (a moderator pressing Record as the room opens and records by itself):
    they take turns; the second finds the first recording and is refused, one recorder, one part."""
    from server.live.recordings import RecordingRefused

    app, client, meeting = await _recorded_meeting(make_config(
        recorder__segment_seconds=1.0, recorder__min_free_bytes=0), aiohttp_client)
    await _presenting(client, meeting, clients)
    recorders = app[RECORDERS]
    results = await asyncio.gather(recorders.start(meeting.id, None), recorders.start(meeting.id, None),
                                   return_exceptions=True)
    started = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, RecordingRefused)]
    assert len(started) == 1 and [r.code for r in refused] == ["state"], results
    assert [r.id for r in await _rows(app, meeting.id)] == started
    room = app[LIVE].sfu.rooms[str(meeting.id)]
    assert [p.role for p in room.snapshot().participants].count("recorder") == 1
    assert recorders.active[meeting.id].recording_id == started[0] and not recorders.turns
    assert await recorders.stop(meeting.id, None) == started[0]


async def test_a_room_made_again_while_it_records_is_recorded_in_the_same_part(
        make_config: Callable[..., Config], aiohttp_client: Any, clients: list[LiveClient]) -> None:
    """The meeting's room closes and is made again before the recorder's loss is noticed (a loaded host): the new
    room's start stops the old take and continues it there; the old recorder's late notice stops nothing."""
    app, client, meeting = await _recorded_meeting(make_config(
        recorder__auto_start=True, recorder__segment_seconds=1.0, recorder__min_free_bytes=0,
        sfu__room_grace_seconds=1.0), aiohttp_client)
    lc = await _presenting(client, meeting, clients)
    first = (await lc.wait(_recording_now))["recording_id"]
    recorders, sfu = app[RECORDERS], app[LIVE].sfu
    old = recorders.active[meeting.id].participant
    loop = asyncio.get_running_loop()
    noticed = old.on_lost
    assert noticed is not None
    old.on_lost = lambda: loop.call_later(1.0, noticed)  # the loss is noticed a second late
    await sfu.rooms[str(meeting.id)].close()
    room = await sfu.room(str(meeting.id))  # made again: it records by itself
    again = await _presenting(client, meeting, clients)
    await wait_until(lambda: meeting.id in recorders.active and recorders.active[meeting.id].participant is not old,
                     within=20)
    active = recorders.active[meeting.id]
    assert active.recording_id == first and active.participant.room is room and old.stopped
    await asyncio.sleep(2.0)  # the old recorder's late notice has come
    assert recorders.active[meeting.id] is active and not active.participant.stopped
    assert [(r.id, r.part, r.recovered, r.state) for r in await _rows(app, meeting.id)] == [
        (first, 1, False, RecordingState.RECORDING)]
    # the page in the new room is told it is recorded: by the recorder's presence (it may have joined after the
    # start's `recording`), and no `stopped` came last
    recorders_seen = {p["participant_id"] for m in again.messages if m.get("type") == "joined"
                      for p in m["room"]["participants"] if p["role"] == "recorder"} \
        | {m["participant_id"] for m in again.messages if m.get("type") == "participant-joined"}
    assert active.participant.participant_id in recorders_seen
    assert [m["state"] for m in again.messages if m.get("type") == "recording"][-1:] in ([], ["recording"])


async def test_a_room_that_closes_while_its_recording_starts_leaves_no_part(
        make_config: Callable[..., Config], aiohttp_client: Any) -> None:
    """The room closes while a start sets up (empty for its grace): no failed, empty part in the archive; the
    start is refused as for a closed room, its directory gone, the removal audit-logged."""
    from server.live.recordings import RecordingRefused

    app, _, meeting = await _recorded_meeting(make_config(
        recorder__segment_seconds=1.0, recorder__min_free_bytes=0), aiohttp_client)
    room = await app[LIVE].sfu.room(str(meeting.id))
    results = await asyncio.gather(app[RECORDERS].start(meeting.id, None, room), room.close(),
                                   return_exceptions=True)
    assert isinstance(results[0], RecordingRefused) and results[0].code == "state", results
    assert await _rows(app, meeting.id) == []
    assert not any(app[RECORDERS].root.iterdir())
    async with app[DB]() as s:
        actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
    assert actions[-2:] == ["recording.start", "recording.delete"], actions
    assert meeting.id not in app[RECORDERS].active and not app[RECORDERS].turns
