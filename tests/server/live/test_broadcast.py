"""Tests of server/live/broadcast.py: the live HLS broadcast of a real room (aiortc publishers, the app's SFU and
recorder, the worker process) checked with ffprobe across a screen share's stop and a presenter hand-over, ending
with the meeting; the archive's renditions made from a recording without a broadcast, with progress."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import socket
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from recorder.hls import read_segments
from recorder.timeline import load
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import Recording, RecordingState, Role
from server.live import broadcast
from server.live.broadcast import BROADCASTS
from server.live.recordings import RECORDERS
from server.live.service import LIVE
from tests.recorder.hlsmedia import centre_colours, jumps, near, packet_times
from tests.recorder.media import ffprobe
from tests.sfu.helpers import BLUE, RED, ColorTrack, join, publish, wait_until

Factory = Callable[..., Awaitable[Any]]
GREEN = (150, 44, 21)
SMALL = [{"name": "240p", "width": 320, "height": 240, "video_kbps": 300},
         {"name": "120p", "width": 160, "height": 120, "video_kbps": 100}]
FPS = 15


@pytest.fixture
def config(make_config: Callable[..., Any], request: pytest.FixtureRequest) -> Any:
    """config: the broadcast on, small renditions (the test's cameras are 320 × 240), 1 s segments."""
    values = dict(recorder__segment_seconds=1.0, recorder__min_free_bytes=0, broadcast__enabled=True,
                  broadcast__archive=True, broadcast__renditions=SMALL, broadcast__fps=FPS,
                  broadcast__segment_seconds=1.0, broadcast__preset="ultrafast")
    return make_config(**{**values, **getattr(request, "param", {})})


def probe(path: Path, stream: str) -> list[float]:
    """probe: the pts (seconds) of one stream's packets of an HLS playlist (ffprobe)."""
    return [t for t, _key in packet_times(path, stream)]


def _shrink(transport: Any) -> None:
    """_shrink makes the kernel's buffer of the worker's input small: a socket pair (uvloop) or a pipe (asyncio)."""
    end = transport.get_extra_info("socket") or transport.get_extra_info("pipe")
    fd = os.dup(end.fileno())
    if stat.S_ISSOCK(os.fstat(fd).st_mode):
        with socket.socket(fileno=fd) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    else:
        try:
            fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ
        finally:
            os.close(fd)


async def _sample(client: Any, name: str) -> float:
    """_sample: one sample of the app's /metrics (0 when absent)."""
    text = await (await client.get("/metrics")).text()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def _row(app: Any, recording_id: int) -> Recording:
    async with app[DB]() as s:
        row = await s.get(Recording, recording_id)
    assert row is not None
    return row


async def test_live_broadcast_is_continuous_across_a_screen_share_and_a_hand_over(
        app: Any, client: Any, make_meeting: Factory, make_user: Factory, login_as: Factory) -> None:
    first = await make_user(Role.TRAINER)
    second = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[first, second])
    room = await app[LIVE].sfu.room(str(meeting.id))
    a = await join(room, "a", "trainer", decode=False)
    b = await join(room, "b", "trainer", decode=False)
    try:
        await publish(room, a, video=ColorTrack(RED, (320, 240)), screen=ColorTrack(BLUE, (320, 240)))
        await publish(room, b, video=ColorTrack(GREEN, (320, 240)))
        if room.presenter_id != "a":
            await room.set_presenter("b", "a")
        rid = await app[RECORDERS].start(meeting.id, None, room)
        broadcasts = app[BROADCASTS]
        await wait_until(lambda: broadcasts.live(meeting.id), within=30)
        hls = broadcasts.directory(meeting.id)
        assert hls == app[CONFIG].data_path / "recordings" / (await _row(app, rid)).directory / "hls"
        assert (await _row(app, rid)).hls_state == "live"
        live = broadcasts.running[meeting.id]
        await wait_until(lambda: live.segments >= 2, within=30)
        playlist = (hls / "240p" / "index.m3u8").read_text()
        assert "#EXT-X-ENDLIST" not in playlist and '#EXT-X-MAP:URI="init.mp4"' in playlist
        assert "#EXT-X-PROGRAM-DATE-TIME:" in playlist
        # the watch page's side (server.live.watch, server.live.hls) sees this broadcast live and serves its files
        viewer = await login_as(user=first)
        state = await (await viewer.client.get(f"/api/v1/broadcasts/{meeting.id}")).json()
        assert (state["state"], state["recording_id"]) == ("live", rid), state
        master = await viewer.client.get(state["master_url"])
        assert master.status == 200 and "240p/index.m3u8" in await master.text()
        media = await viewer.client.get(state["master_url"].replace("master.m3u8", "240p/index.m3u8"))
        assert media.status == 200 and media.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
        await room.mute("a", "a", "screen", True)  # the screen share stops: the camera follows
        await asyncio.sleep(3.0)
        await room.set_presenter("a", "b")  # the hand-over: the second trainer's camera
        await asyncio.sleep(3.0)
        await app[RECORDERS].finish_meeting(meeting.id)
        assert not broadcasts.live(meeting.id) and broadcasts.directory(meeting.id) is None
        state = await (await viewer.client.get(f"/api/v1/broadcasts/{meeting.id}")).json()
        assert state["state"] == "ended", state
    finally:
        for c in (a, b):
            await c.close()
    row = await _row(app, rid)
    assert row.hls_state == "ready"
    directory = hls.parent
    master = (hls / "master.m3u8").read_text()
    assert 0 < master.index("240p/index.m3u8") < master.index("120p/index.m3u8")  # both fit a 320 × 240 source
    assert 'CODECS="avc1.' in master and ',mp4a.40.2"' in master and "RESOLUTION=320x240" in master
    index = hls / "240p" / "index.m3u8"
    text = index.read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-VERSION:7" in text
    segments = read_segments(hls / "240p")
    assert [s.n for s in segments] == list(range(len(segments)))
    for s, nxt in zip(segments, segments[1:], strict=False):  # one after the other, on the keyframe grid
        assert abs(s.t + s.duration - nxt.t) < 1e-3 and abs(nxt.t - round(nxt.t)) < 1e-3
    assert all((hls / "240p" / f"seg{s.n}.m4s").stat().st_size > 0 for s in segments)

    video = packet_times(index, "v:0")
    times = [t for t, _key in video]
    assert jumps(times, 1 / FPS) == []
    assert abs(times[0] - segments[0].t) < 0.01
    assert abs(times[-1] + 1 / FPS - (segments[-1].t + segments[-1].duration)) < 0.01
    audio = probe(index, "a:0")
    assert jumps(audio, 1024 / 48000) == [] and abs(audio[-1] - times[-1]) < 0.2
    info = ffprobe(index)
    assert sorted(s["codec_name"] for s in info["streams"]) == ["aac", "h264"]
    keyframes = [t for t, key in video if key]
    assert [round(k, 3) for k in keyframes] == [round(s.t, 3) for s in segments]

    shown = [(e.t, e.source, e.participant_id) for e in load(directory) if e.kind == "shown"]
    assert [(s, p) for _t, s, p in shown][:3] == [("screen", "a"), ("presenter-video", "a"), ("presenter-video", "b")]
    picture = centre_colours(index)
    camera_at, handed_at = shown[1][0], shown[2][0]

    def at(lo: float, hi: float) -> list[tuple[int, int, int]]:
        return [c for t, c in picture if lo <= t <= hi]

    assert all(near(c, (16, 128, 128), 2) for c in at(0, shown[0][0] - 0.1))  # black before the first picture
    shared = at(shown[0][0] + 0.2, camera_at - 0.5)
    assert shared and all(near(c, BLUE) for c in shared)
    assert at(camera_at + 0.5, handed_at - 0.5) and all(near(c, RED) for c in at(camera_at + 0.5, handed_at - 0.5))
    assert at(handed_at + 0.5, times[-1]) and all(near(c, GREEN) for c in at(handed_at + 0.5, times[-1]))


@pytest.mark.parametrize("config", [{"broadcast__enabled": False}], indirect=True)
async def test_a_recording_without_broadcast_gets_the_renditions_from_its_lecture(
        app: Any, client: Any, make_meeting: Factory, make_user: Factory, login_as: Factory) -> None:
    trainer = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer])
    room = await app[LIVE].sfu.room(str(meeting.id))
    a = await join(room, "a", "trainer", decode=False)
    try:
        await publish(room, a, video=ColorTrack(RED, (320, 240)))
        rid = await app[RECORDERS].start(meeting.id, None, room)
        assert app[BROADCASTS].running == {}
        await asyncio.sleep(4.0)
        await app[RECORDERS].finish_meeting(meeting.id)
    finally:
        await a.close()
    seen: list[tuple[str, int]] = []
    deadline = time.monotonic() + 90
    while True:
        row = await _row(app, rid)
        seen.append((row.hls_state, app[BROADCASTS].progress.get(rid, row.hls_progress)))
        if row.hls_state in ("ready", "failed") or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert row.state == RecordingState.READY and row.hls_state == "ready" and row.hls_progress == 100, seen
    states = [state for state, _p in seen]
    assert "queued" in states and states.index("queued") < states.index("ready"), seen  # the archive page can tell
    progress = [p for state, p in seen if state == "encoding"]
    assert progress == sorted(progress), seen
    hls = app[CONFIG].data_path / "recordings" / row.directory / "hls"
    index = hls / "240p" / "index.m3u8"
    text = index.read_text()
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-DISCONTINUITY\n" not in text
    assert (hls.parent / row.file).exists()  # the lecture file stays
    times = probe(index, "v:0")
    assert jumps(times, 1 / FPS) == []
    assert abs(times[-1] + 1 / FPS - row.duration) < 0.2, (times[-1], row.duration)
    operator = await login_as(Role.OPERATOR)
    body = await (await operator.client.get(f"/api/v1/recordings/{rid}")).json()
    assert body["hls_state"] == "ready" and body["hls_progress"] == 100


async def test_a_continued_recording_continues_its_broadcast(app: Any, client: Any, make_meeting: Factory,
                                                             make_user: Factory,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Also: a worker that stalls (SIGSTOP, as a starved CPU would) loses frames, counted, and the room goes on;
    its output stays continuous once it runs again; a worker killed is replaced and the timeline goes on."""
    monkeypatch.setattr(broadcast, "PIPE_BYTES", 2000)  # a small pipe (below too): the stall fills it in a second
    trainer = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer])
    room = await app[LIVE].sfu.room(str(meeting.id))
    a = await join(room, "a", "trainer", decode=False)
    broadcasts = app[BROADCASTS]
    try:
        await publish(room, a, video=ColorTrack(RED, (320, 240)))
        rid = await app[RECORDERS].start(meeting.id, None, room)
        await wait_until(lambda: meeting.id in broadcasts.running and broadcasts.running[meeting.id].segments >= 2,
                         within=30)
        hls = broadcasts.directory(meeting.id)
        assert hls is not None
        assert await _sample(client, "taphuan_broadcasts") == 1
        live = broadcasts.running[meeting.id]
        assert live.proc is not None and live.proc.stdin is not None
        _shrink(live.proc.stdin.transport)  # (the solid-colour camera sends a few kB/s)
        os.kill(live.proc.pid, signal.SIGSTOP)
        try:
            await wait_until(lambda: live.dropped > 30, within=20)
        finally:
            os.kill(live.proc.pid, signal.SIGCONT)
        assert await _sample(client, "taphuan_broadcast_dropped_frames_total") >= 30
        listed = len(read_segments(hls / "240p"))
        await wait_until(lambda: len(read_segments(hls / "240p")) >= listed + 2, within=30)  # it goes on
        dead = live.proc
        dead.kill()  # a worker that dies is replaced: the broadcast goes on behind a discontinuity
        await wait_until(lambda: live.proc is not None and live.proc is not dead
                         and any(s.discontinuity for s in read_segments(hls / "240p")), within=30)
        await app[RECORDERS].stop(meeting.id, None)  # a moderator stops the recording: the broadcast ends
        index = hls / "240p" / "index.m3u8"
        assert index.read_text().rstrip().endswith("#EXT-X-ENDLIST") and not broadcasts.live(meeting.id)
        first = read_segments(hls / "240p")
        assert await app[RECORDERS].start(meeting.id, None, room) == rid  # continued: the same recording
        offset = app[RECORDERS].active[meeting.id].participant.offset  # where the continuation's media goes
        await wait_until(lambda: len(read_segments(hls / "240p")) >= len(first) + 2, within=30)
        await wait_until(lambda: broadcasts.directory(meeting.id) == hls, within=10)  # once its worker says so
        assert "#EXT-X-ENDLIST" not in index.read_text()
        await app[RECORDERS].finish_meeting(meeting.id)
        assert await _sample(client, "taphuan_broadcasts") == 0
    finally:
        await a.close()
    segments = read_segments(hls / "240p")
    assert segments[:len(first)] == first and segments[len(first)].discontinuity
    assert [s.discontinuity for s in segments].count(True) == 2  # the new worker's, the continuation's
    assert [s.n for s in segments] == list(range(len(segments)))
    text = index.read_text()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 2 and text.rstrip().endswith("#EXT-X-ENDLIST")
    times = probe(index, "v:0")
    cut = segments[len(first)].t
    assert [b for _a, b in jumps(times, 1 / FPS)] == [pytest.approx(cut, abs=0.01)]  # only where the wait was cut
    assert cut - (first[-1].t + first[-1].duration) < 0.5
    assert abs(cut - offset) <= 1 / FPS + 1e-3  # the first run ended with the recording: the second one starts in
    # time for the continuation's first media
    assert (await _row(app, rid)).hls_state == "ready"
