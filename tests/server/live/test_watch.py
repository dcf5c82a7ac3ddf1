"""Tests of server.live.watch, server.live.hls, server.api.broadcasts, server.live.questions and server.live.viewers:
who may watch a broadcast (page, playlists, segments), the HLS files' headers (types, cache lifetimes, Range, CORS),
the public link (no login, shared caching, revocable), the question box round trip over /ws and heartbeats in
attendance. The broadcasts are real HLS made by the ffmpeg CLI in the broadcaster's layout (tests/hlsgen.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from recorder.hls import Part, PartInfo, Segment, atomic_write, media_playlist
from server.config import CONFIG
from server.db.engine import DB
from server.db.models import (
    AuditEntry,
    BroadcastView,
    ChatMessage,
    Recording,
    RecordingAudience,
    Role,
    Unit,
    UnitLevel,
    User,
    program_learners,
)
from server.live import viewers
from server.live.watch import WATCH, Viewer, viewer_key
from tests.hlsgen import make_hls
from tests.live_client import LiveClient
from tests.server.livetest import Factory, connect

pytestmark = pytest.mark.timeout(120)


async def broadcast(app: Any, meeting: Any, tmp_name: str = "b", *, ended: bool = True,
                    audience: RecordingAudience = RecordingAudience.ENROLLED) -> int:
    """broadcast: a Recording of the meeting whose hls/ holds a real HLS broadcast; returns its id."""
    root: Path = app[CONFIG].data_path / "recordings"
    directory = f"{meeting.id}-{tmp_name}"
    make_hls(root / directory / "hls", seconds=4)
    hls = root / directory / "hls"
    if not ended:  # a live one: its playlists have no ENDLIST yet
        for playlist in hls.glob("*/index.m3u8"):
            playlist.write_text(playlist.read_text().replace("#EXT-X-ENDLIST\n", ""))
    async with app[DB]() as s:
        row = Recording(meeting_id=meeting.id, program_id=meeting.program_id, title=meeting.title,
                        directory=directory, audience=audience)
        s.add(row)
        await s.commit()
        return row.id


async def test_audience_page_playlists_and_segments(app: Any, client: Any, login_as: Factory, make_user: Factory,
                                                    make_meeting: Factory) -> None:
    trainer: User = await make_user(Role.TRAINER, display_name="Cô Nguyễn Thị Hoa")
    meeting = await make_meeting(presenters=[trainer], title="Phát trực tiếp: Toán 6")
    rid = await broadcast(app, meeting, ended=False)
    enrolled = await login_as(Role.LEARNER)
    outsider = await login_as(Role.LEARNER)
    async with app[DB]() as s:
        await s.execute(sa.insert(program_learners).values(program_id=meeting.program_id, user_id=enrolled.user.id))
        await s.commit()
    html = {"Accept": "text/html"}

    page = await enrolled.get(f"/watch/{meeting.id}", headers=html)
    assert page.status == 200
    text = await page.text()
    assert "Phát trực tiếp: Toán 6" in text and "Cô Nguyễn Thị Hoa" in text and "hls.light.min.js" in text
    assert "blob:" in page.headers["Content-Security-Policy"]  # hls.js feeds the video a MediaSource
    state = await (await enrolled.get(f"/api/v1/broadcasts/{meeting.id}")).json()
    assert state["state"] == "live" and state["master_url"] == f"/hls/{rid}/master.m3u8"
    assert state["presenters"] == ["Cô Nguyễn Thị Hoa"]

    # The learner outside the audience: refused on the page, the API, the playlists and the segments.
    assert (await outsider.get(f"/watch/{meeting.id}", headers=html)).status == 403
    for path in (f"/api/v1/broadcasts/{meeting.id}", f"/hls/{rid}/master.m3u8", f"/hls/{rid}/360p/index.m3u8",
                 f"/hls/{rid}/360p/init.mp4", f"/hls/{rid}/360p/seg0.m4s"):
        assert (await outsider.get(path)).status == 403, path
        assert (await enrolled.get(path)).status == 200, path
    assert (await client.get(f"/hls/{rid}/360p/seg0.m4s")).status == 401  # no login, no link
    anon_page = await client.get(f"/watch/{meeting.id}", headers=html, allow_redirects=False)
    assert anon_page.status in (302, 303) and anon_page.headers["Location"].startswith("/login")
    assert (await enrolled.get("/watch/999999", headers=html)).status == 404
    assert (await enrolled.get(f"/hls/{rid}/../secrets/link.key")).status == 404
    assert (await enrolled.get(f"/hls/{rid}/720p/seg99.m4s")).status == 404

    # The audience "all": every learner now sees it (the same setting as publishing the recording).
    async with app[DB]() as s:
        await s.execute(sa.update(Recording).where(Recording.id == rid).values(audience=RecordingAudience.ALL))
        await s.commit()
    app[WATCH].access.clear()  # (access is believed for CACHE_SECONDS)
    assert (await outsider.get(f"/hls/{rid}/360p/seg0.m4s")).status == 200
    # The presenter (who may enter the room) watches too.
    assert (await (await login_as(user=trainer)).get(f"/hls/{rid}/master.m3u8")).status == 200


async def test_hls_headers_range_cors_and_cache_lifetimes(app: Any, client: Any, login_as: Factory,
                                                          make_meeting: Factory) -> None:
    meeting = await make_meeting()
    rid = await broadcast(app, meeting, ended=False)
    op = await login_as(Role.OPERATOR)

    seg = await op.get(f"/hls/{rid}/720p/seg1.m4s")
    body = await seg.read()
    assert seg.status == 200 and seg.headers["Content-Type"] == "video/iso.segment"
    assert seg.headers["Cache-Control"] == "private, max-age=31536000, immutable"  # private: a login's answer
    assert seg.headers["Access-Control-Allow-Origin"] == "*"
    init = await op.get(f"/hls/{rid}/720p/init.mp4")
    assert init.headers["Content-Type"] == "video/mp4" and b"ftyp" in (await init.read())[:16]
    part = await op.get(f"/hls/{rid}/720p/seg1.m4s", headers={"Range": "bytes=10-109"})
    assert part.status == 206 and part.headers["Content-Range"] == f"bytes 10-109/{len(body)}"
    assert await part.read() == body[10:110]
    again = await op.get(f"/hls/{rid}/720p/seg1.m4s", headers={"If-None-Match": seg.headers["ETag"]})
    assert again.status == 304 and await again.read() == b""
    head = await op.client.head(f"/hls/{rid}/720p/seg1.m4s")
    assert head.status == 200 and int(head.headers["Content-Length"]) == len(body)
    pre = await client.options(f"/hls/{rid}/720p/seg1.m4s", headers={
        "Origin": "https://cong.example.vn", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range"})
    assert pre.status == 204 and "GET" in pre.headers["Access-Control-Allow-Methods"]
    assert "Range" in pre.headers["Access-Control-Allow-Headers"]

    live = await op.get(f"/hls/{rid}/720p/index.m3u8")
    assert live.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert live.headers["Cache-Control"] == "private, max-age=1"
    assert (await op.get(f"/hls/{rid}/master.m3u8")).headers["Cache-Control"] == "private, max-age=1"
    # Ended: the playlists carry ENDLIST and keep longer.
    hls = app[CONFIG].data_path / "recordings" / f"{meeting.id}-b" / "hls"
    for playlist in hls.glob("*/index.m3u8"):
        playlist.write_text(playlist.read_text() + "#EXT-X-ENDLIST\n")
    ended = await op.get(f"/hls/{rid}/720p/index.m3u8")
    assert ended.headers["Cache-Control"] == "private, max-age=300"


async def test_public_link_no_login_shared_and_revocable(app: Any, client: Any, login_as: Factory,
                                                         make_meeting: Factory) -> None:
    meeting = await make_meeting(title="Buổi phát công khai")
    rid = await broadcast(app, meeting, ended=False)
    op = await login_as(Role.OPERATOR)
    learner = await login_as(Role.LEARNER)
    assert (await learner.put(f"/api/v1/broadcasts/{meeting.id}/public-link")).status == 403
    off = await (await op.get(f"/api/v1/broadcasts/{meeting.id}/public-link")).json()
    assert off == {"meeting_id": meeting.id, "enabled": False, "url": None}
    on = await (await op.put(f"/api/v1/broadcasts/{meeting.id}/public-link")).json()
    assert on["enabled"] and on["url"].startswith(f"/watch/{meeting.id}?k=")
    token = on["url"].split("?k=", 1)[1]

    page = await client.get(on["url"], headers={"Accept": "text/html"})
    assert page.status == 200 and "Buổi phát công khai" in await page.text()
    state = await (await client.get(f"/api/v1/broadcasts/{meeting.id}?k={token}")).json()
    assert state["public"] is True and state["master_url"] == f"/hls/p/{token}/{rid}/master.m3u8"
    seg = await client.get(f"/hls/p/{token}/{rid}/360p/seg0.m4s")
    assert seg.status == 200 and seg.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    async with aiohttp.ClientSession() as fresh:  # a first visit: no cookie comes back, so a cache may share it
        async with fresh.get(client.make_url(f"/hls/p/{token}/{rid}/360p/seg0.m4s")) as first:
            assert first.status == 200 and "Set-Cookie" not in first.headers
    before = int(time.time())
    listing = await client.get(f"/hls/p/{token}/{rid}/360p/index.m3u8")
    assert listing.headers["Cache-Control"] == "public, max-age=1"
    # nginx keeps it fresh to the end of this second only (not 1-2 s: docs/deploy.md); no such header when private
    assert before <= int(listing.headers["X-Accel-Expires"].removeprefix("@")) <= int(time.time())
    assert "X-Accel-Expires" not in (await op.get(f"/hls/{rid}/360p/index.m3u8")).headers
    # An anonymous viewer asks (CSRF by the site's double-submit cookie); a new player id per question does not
    # escape the limit: the address has one too.
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "taphuan_csrf")
    ask = f"/api/v1/broadcasts/{meeting.id}/questions"
    codes = [(await client.post(ask, headers={"X-CSRF-Token": csrf}, json={
        "viewer": f"anon-player-{i:04d}", "text": "Xin chào", "k": token, "name": "Cô giáo ở Mường Tè"})).status
        for i in range(35)]
    assert codes[0] == 201 and codes[-1] == 429 and codes.count(201) == 30
    assert (await client.post(ask, json={"viewer": "anon-player-x", "text": "?", "k": token})).status == 403  # CSRF
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert (await client.get(f"/hls/p/{forged}/{rid}/360p/seg0.m4s")).status == 403

    # A login outside the audience watches by the link too (the public files).
    outsider = await login_as(Role.LEARNER)
    by_link = await (await outsider.get(f"/api/v1/broadcasts/{meeting.id}?k={token}")).json()
    assert by_link["master_url"] == f"/hls/p/{token}/{rid}/master.m3u8"
    assert (await outsider.get(f"/api/v1/broadcasts/{meeting.id}")).status == 403  # without it: refused

    assert (await op.delete(f"/api/v1/broadcasts/{meeting.id}/public-link")).status == 204
    assert (await client.get(f"/hls/p/{token}/{rid}/360p/seg0.m4s")).status == 403  # revoked at once
    dead = await client.get(on["url"], headers={"Accept": "text/html"}, allow_redirects=False)
    assert dead.status == 403 and "Liên kết xem công khai này đã bị tắt" in await dead.text()
    again = await (await op.put(f"/api/v1/broadcasts/{meeting.id}/public-link")).json()
    assert again["url"] != on["url"]  # a new link: the old one stays dead
    async with app[DB]() as s:
        actions = (await s.scalars(sa.select(AuditEntry.details).where(
            AuditEntry.action == "broadcast.public-link").order_by(AuditEntry.id))).all()
    assert [a["enabled"] for a in actions] == [True, False, True]


async def test_states_waiting_and_ended_with_archive_link(app: Any, login_as: Factory, make_meeting: Factory) -> None:
    meeting = await make_meeting()
    op = await login_as(Role.OPERATOR)
    waiting = await (await op.get(f"/api/v1/broadcasts/{meeting.id}")).json()
    assert waiting["state"] == "waiting" and waiting["master_url"] is None
    rid = await broadcast(app, meeting, ended=True)
    app[WATCH].recordings.clear()
    ended = await (await op.get(f"/api/v1/broadcasts/{meeting.id}")).json()
    assert ended["state"] == "ended" and ended["archive_url"] == f"/archive/{rid}"
    # Its finished renditions are the archive player's video (hls.js by bandwidth); the WebM stays the download.
    rec = await (await op.get(f"/api/v1/recordings/{rid}")).json()
    assert rec["hls_url"] == f"/hls/{rid}/master.m3u8" and rec["download_url"].endswith("/media?download=1")
    live_meeting = await make_meeting()
    live_rid = await broadcast(app, live_meeting, ended=False)
    assert (await (await op.get(f"/api/v1/recordings/{live_rid}")).json())["hls_url"] is None


async def test_question_round_trip(app: Any, client: Any, login_as: Factory, make_user: Factory,
                                   make_meeting: Factory, clients: list[LiveClient]) -> None:
    trainer: User = await make_user(Role.TRAINER)
    meeting = await make_meeting(presenters=[trainer])
    await broadcast(app, meeting, ended=False, audience=RecordingAudience.ALL)
    viewer = await login_as(Role.LEARNER, display_name="Thầy Lò Văn Minh")
    t = await connect(await login_as(user=trainer), clients)
    await t.join(meeting.id)
    base = f"/api/v1/broadcasts/{meeting.id}/questions"

    asked = await viewer.post(base, json={"viewer": "viewer-0001", "text": "  Xin hỏi về bài tập 3?  "})
    assert asked.status == 201
    q = await asked.json()
    assert q["state"] == "pending" and q["text"] == "Xin hỏi về bài tập 3?" and q["name"] == "Thầy Lò Văn Minh"
    seen = await t.wait(lambda m: m.get("type") == "broadcast-question" and m["question"]["id"] == q["id"])
    assert seen["question"]["state"] == "pending"

    # Limits: empty, too long, CSRF, and a classroom of the room may not moderate.
    assert (await viewer.post(base, json={"viewer": "viewer-0001", "text": "   "})).status == 422
    assert (await viewer.post(base, json={"viewer": "viewer-0001", "text": "x" * 501})).status == 422
    assert (await viewer.client.post(base, json={"viewer": "viewer-0001", "text": "Không có CSRF"})).status == 403
    learner_ws = await connect(viewer, clients)
    refused = await learner_ws.request("question-approve", question_id=q["id"], check=False)
    assert refused["type"] == "error"

    assert (await t.request("question-approve", question_id=q["id"]))["type"] == "ok"
    chat = await t.wait(lambda m: m.get("type") == "chat" and m["message"]["text"] == "Xin hỏi về bài tập 3?")
    assert "Thầy Lò Văn Minh" in chat["message"]["from_name"]
    assert (chat["message"]["from"], chat["message"]["from_role"]) == (f"viewer-{q['id']}", "learner")  # not the host
    again = await t.request("question-approve", question_id=q["id"], check=False)
    assert again["error"]["code"] == "state"

    second = await (await viewer.post(base, json={"viewer": "viewer-0001", "text": "Khi nào có bản ghi?"})).json()
    await t.wait(lambda m: m.get("type") == "broadcast-question" and m["question"]["id"] == second["id"])
    assert (await t.request("question-answer", question_id=second["id"], text="Ngay sau buổi học."))["type"] == "ok"
    mine = await (await viewer.get(f"{base}?viewer=viewer-0001")).json()
    assert [(m["state"], m["answer"]) for m in mine] == [("approved", ""), ("answered", "Ngay sau buổi học.")]
    assert mine and (await viewer.get(f"{base}?viewer=viewer-0001")).headers["Cache-Control"] == "no-store"

    # Rate limit: the burst of 3 is spent (2 asked), the next quick ones are refused with 429.
    codes = [(await viewer.post(base, json={"viewer": "viewer-0001", "text": f"Câu {i}"})).status for i in range(3)]
    assert codes[0] == 201 and codes[-1] == 429
    # A moderator joining later gets the waiting ones.
    late = await connect(await login_as(Role.OPERATOR), clients)
    await late.join(meeting.id)
    queue = await late.wait(lambda m: m.get("type") == "broadcast-questions")
    assert [x["text"] for x in queue["questions"]] == ["Câu 0"]
    async with app[DB]() as s:
        assert await s.scalar(sa.select(sa.func.count(ChatMessage.id)).where(
            ChatMessage.meeting_id == meeting.id)) == 1


async def test_heartbeats_count_viewers_per_unit(app: Any, client: Any, login_as: Factory,
                                                 make_meeting: Factory) -> None:
    meeting = await make_meeting()
    await broadcast(app, meeting, ended=False, audience=RecordingAudience.ALL)
    async with app[DB]() as s:
        unit = Unit(code="914", name="Sơn La", level=UnitLevel.PROVINCE)
        s.add(unit)
        await s.commit()
        unit_id = unit.id
    learner = await login_as(Role.LEARNER, unit_id=unit_id)
    beat = await learner.post(f"/api/v1/broadcasts/{meeting.id}/heartbeat", json={"viewer": "abcdefgh-1"})
    assert beat.status == 200 and beat.headers["Cache-Control"] == "no-store"
    assert (await beat.json())["state"] == "live"
    anon = Viewer(viewer_key(None, meeting.id, "anon-viewer-1"), None, True)
    start = dt.datetime.now(dt.UTC)
    for minute in range(4):  # 30 s apart, then a long pause that counts for no more than 45 s
        await viewers.heartbeat(app[DB], meeting.id, anon, now=start + dt.timedelta(seconds=30 * minute))
    await viewers.heartbeat(app[DB], meeting.id, anon, now=start + dt.timedelta(seconds=90 + 3600))
    await viewers.heartbeat(app[DB], meeting.id, anon, now=start + dt.timedelta(seconds=90 + 3605))  # too soon
    async with app[DB]() as s:
        rows = (await s.scalars(sa.select(BroadcastView).where(BroadcastView.meeting_id == meeting.id))).all()
    by_key = {r.viewer: r for r in rows}
    assert by_key[anon.key].seconds == 90 + 45 and by_key[anon.key].public
    assert by_key[f"user:{learner.user.id}"].unit_id == unit_id
    groups = viewers.summary(rows, {unit_id: "Sơn La"})
    assert [(g.name, g.viewers, g.anonymous) for g in groups] == [("Sơn La", 1, False), ("", 1, True)]
    assert groups[1].minutes == pytest.approx(135 / 60)
    bad = await learner.post(f"/api/v1/broadcasts/{meeting.id}/heartbeat", json={"viewer": "<script>"})
    assert bad.status == 422

    # The meeting's attendance page and its export show them.
    op = await login_as(Role.OPERATOR)
    page = await (await op.get(f"/reports/meetings/{meeting.id}", headers={"Accept": "text/html"})).text()
    assert "Người xem buổi phát trực tiếp" in page and "Sơn La" in page and "liên kết công khai" in page
    csv = await (await op.get(f"/api/v1/reports/export.csv?report=meeting&id={meeting.id}")).text()
    assert "Người xem ẩn danh (liên kết công khai),1,2.2" in csv and "Sơn La,1,0" in csv


async def test_blocking_playlist_reload_waits_for_the_part_asked(app: Any, client: Any, login_as: Factory,
                                                                 make_meeting: Factory) -> None:
    meeting = await make_meeting()
    rid = await broadcast(app, meeting, ended=False)
    op = await login_as(Role.OPERATOR)
    playlist = app[CONFIG].data_path / "recordings" / f"{meeting.id}-b" / "hls" / "720p" / "index.m3u8"
    segments = [Segment(i, float(i), 1.0, 1e9 + i) for i in range(3)]

    def write(done: int, open_parts: int) -> None:  # as the broadcaster does with broadcast.low_latency
        parts = PartInfo(0.5, {n: [Part(n, 0, 0.5), Part(n, 1, 0.5)] for n in range(done)}, done,
                         [Part(done, k, 0.5) for k in range(open_parts)])
        atomic_write(playlist, media_playlist(segments[:done], 1, False, None, parts).encode())

    write(2, 1)  # segments 0 and 1, and part 0 of segment 2
    url = f"/hls/{rid}/720p/index.m3u8"
    now = await op.get(f"{url}?_HLS_msn=2&_HLS_part=0")  # listed: at once
    assert now.status == 200 and b'URI="part2.0.m4s"' in await now.read()
    assert now.headers["Cache-Control"] == "private, max-age=6"

    async def later(done: int, open_parts: int) -> None:
        await asyncio.sleep(0.5)
        write(done, open_parts)

    started = time.monotonic()
    writer = asyncio.ensure_future(later(2, 2))
    held = await op.get(f"{url}?_HLS_msn=2&_HLS_part=1")  # the next part: held until it is listed
    await writer
    assert held.status == 200 and b'URI="part2.1.m4s"' in await held.read()
    assert time.monotonic() - started >= 0.45
    writer = asyncio.ensure_future(later(3, 0))
    whole = await op.get(f"{url}?_HLS_msn=2")  # segment 2 complete
    await writer
    assert whole.status == 200 and b"seg2.m4s" in await whole.read()

    assert (await op.get(f"{url}?_HLS_msn=9")).status == 400  # too far ahead
    assert (await op.get(f"{url}?_HLS_msn=x")).status == 400
    assert (await op.get(f"{url}?_HLS_part=1")).status == 400
    started = time.monotonic()
    gone = await op.get(f"{url}?_HLS_msn=4")  # never made: 503 after three target durations
    assert gone.status == 503 and time.monotonic() - started >= 2.5
    assert (await op.get(url)).headers["Cache-Control"] == "private, max-age=1"  # a plain reload as before
