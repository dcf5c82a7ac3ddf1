"""server.live.hls: the HLS files of broadcasts and archived recordings, served so that HTTP caches can carry them.

Routes (the playlists name their files relatively, so a player stays under the prefix it started from):
- `/hls/{recording}/{file}`: for a login that may watch the recording's meeting live (`server.live.watch`) or the
  recording in the archive (`server.live.recordings.visible`). Answers are `private`: no shared cache keeps them.
- `/hls/p/{token}/{recording}/{file}`: for anyone holding the meeting's public link (`token`), with no login and no
  cookie looked at: answers are `public`, the same bytes for every viewer, so one node feeds any number of caches
  (docs/deploy.md, "Live broadcast behind nginx caches").

`file` is `master.m3u8` or `<rendition>/<name>` with a rendition of letters and digits and a name ending in
`.m3u8`, `.mp4` or `.m4s`; nothing else is served. The broadcaster writes segments, parts and init files whole
before listing them and never rewrites them, and replaces playlists atomically, so:
- segments and parts (`.m4s`, `video/iso.segment`) and init files (`.mp4`, `video/mp4`): `max-age=31536000,
  immutable`, with Range (206 and Content-Range, from aiohttp's FileResponse) and ETag;
- playlists (`application/vnd.apple.mpegurl`): `max-age=1` while live, `watch.ended_playlist_seconds` once a media
  playlist carries `#EXT-X-ENDLIST` (the master playlist: once the broadcast ended); live public ones also
  `X-Accel-Expires` to the end of the current second (`LIVE_EXPIRES`).
GET and HEAD carry `Access-Control-Allow-Origin: *` and OPTIONS answers a CORS preflight: a player on another
origin (a ministry portal embedding the stream) reads the public files; private ones still need the cookie, which
`*` never lets a cross-origin page send.

Blocking playlist reload (LL-HLS, `broadcast.low_latency`): a media playlist asked for with `_HLS_msn=M` (and
`_HLS_part=P`) is answered once it lists segment M complete (part P of segment M), at most three target durations
later (then 503); a request too far ahead or malformed is a 400. One poller per playlist file watches it every
`BLOCK_POLL` seconds while anyone waits (`Blocking`), however many requests wait. Such answers are the playlist
as of that point or later whenever asked, so caches may keep them `BLOCKED_TARGETS` target durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

from server.auth import ANON_CSRF, identity
from server.config import CONFIG
from server.db.engine import DB
from server.live.recordings import may_view
from server.live.watch import WATCH, broadcast_of, forbidden, may_watch_cached, not_found, public_ok
from server.live.watch import setup as watch_setup
from server.openapi import check_id

FILE = re.compile(r"^(?:master\.m3u8|[A-Za-z0-9_-]{1,16}/[A-Za-z0-9_.-]{1,64}\.(?:m3u8|mp4|m4s))$")
TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4", ".m4s": "video/iso.segment"}
IMMUTABLE = "max-age=31536000, immutable"
MAX_PLAYLIST = 8 << 20  # a playlist is read up to this size (a 3-hour event playlist of 2 s segments is ~0.6 MB)
PLAYLIST_ENTRIES = 256
MAX_HELD = 4 << 20  # a segment or init file up to this size is sent from memory (a 2 s segment at 8 Mbit/s is 2 MB)
MAX_HELD_BYTES = 64 << 20  # at most this much of them (the live edge of a few broadcasts)
# nginx counts a cached answer's lifetime in whole seconds and keeps it fresh through its last second: `max-age=1`
# keeps a live playlist 1 to 2 s (1.5 on average), a second of latency behind the cache. This header (which nginx
# takes before Cache-Control, and does not pass on) makes it fresh to the end of the current second: 0-1 s.
LIVE_EXPIRES = "X-Accel-Expires"
BLOCK_POLL = 0.02  # seconds between two looks at a playlist someone waits on
BLOCKED_TARGETS = 6  # cache lifetime of a blocking reload's answer, in target durations
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag",
        "Timing-Allow-Origin": "*"}


def _unknown() -> web.HTTPNotFound:
    return web.HTTPNotFound(text="Không có tệp này. / No such file.")


def _target(root: Path, directory: str, name: str) -> tuple[Path, os.stat_result]:
    """_target: the file `name` of a recording's hls/ directory and its stat (404 when the name or the file is not
    one). `FILE` admits no `..` component and `directory` is the server's own: no path resolving (a dozen lstat
    calls per request at a thousand viewers)."""
    if not FILE.match(name) or "/" in directory or directory in ("", ".", ".."):
        raise _unknown()
    path = root / directory / "hls" / name
    try:
        st = os.stat(path)
    except OSError:
        raise _unknown() from None
    if not stat.S_ISREG(st.st_mode):
        raise _unknown()
    return path, st


@dataclass
class Segments:
    """Segments: the segment and init files last served, held in memory up to `MAX_HELD_BYTES`: at the live edge
    every viewer fetches the same few files, so each is read once and sent from memory, without a thread-pool hop
    per request (what aiohttp's FileResponse costs)."""

    entries: OrderedDict[Path, tuple[int, int, bytes]] = field(default_factory=OrderedDict)
    held: int = 0

    def read(self, path: Path, st: os.stat_result) -> bytes:
        """Segments.read: the file's bytes (never rewritten by the broadcaster: a changed one is read again)."""
        hit = self.entries.get(path)
        if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            self.entries.move_to_end(path)
            return hit[2]
        with open(path, "rb") as f:  # a segment just written: in the page cache
            body = f.read(MAX_HELD)
        if hit is not None:
            self.held -= len(hit[2])
        self.entries[path] = (st.st_mtime_ns, st.st_size, body)
        self.held += len(body)
        while self.held > MAX_HELD_BYTES and len(self.entries) > 1:
            _, (_, _, old) = self.entries.popitem(last=False)
            self.held -= len(old)
        return body


@dataclass
class Playlists:
    """Playlists: the playlists last read, by path, with the mtime and size they were read at: a playlist is read
    from the disk once per change (the broadcaster replaces it every segment), not once per viewer."""

    entries: OrderedDict[Path, tuple[int, int, bytes]] = field(default_factory=OrderedDict)

    def read(self, path: Path, st: os.stat_result) -> bytes:
        """Playlists.read: the playlist's bytes (a few kB from the page cache: read in the loop)."""
        hit = self.entries.get(path)
        if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            self.entries.move_to_end(path)
            return hit[2]
        with open(path, "rb") as f:
            body = f.read(MAX_PLAYLIST)
        self.entries[path] = (st.st_mtime_ns, st.st_size, body)
        while len(self.entries) > PLAYLIST_ENTRIES:
            self.entries.popitem(last=False)
        return body


@dataclass(frozen=True)
class Position:
    """Position: where a media playlist stands: the last complete segment's number (-1: none) and how many parts
    it lists, the parts listed of the segment after it, the target duration, whether it ended."""

    last: int
    parts: int
    open_parts: int
    target: int
    ended: bool

    def has(self, msn: int, part: int | None) -> bool:
        """Position.has: whether the playlist lists segment `msn` complete (`part` None) or its part `part` (a part
        past a complete segment's last one is the next segment's first, as the LL-HLS rules say)."""
        if self.ended or self.last > msn:
            return True
        if part is None:
            return self.last >= msn
        if self.last == msn:
            return part < self.parts or self.parts == 0 or self.open_parts > 0
        return self.last == msn - 1 and self.open_parts > part


def position(body: bytes) -> Position:
    """position: the Position of a media playlist's text."""
    sequence, target, segments, parts, open_parts = 0, 1, 0, 0, 0
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":", 1)[1] or 0)
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = max(1, int(line.split(":", 1)[1] or 1))
        elif line.startswith("#EXT-X-PART:"):
            open_parts += 1
        elif line and not line.startswith("#"):
            segments += 1
            parts, open_parts = open_parts, 0
    return Position(sequence + segments - 1, parts, open_parts, target, b"#EXT-X-ENDLIST" in body)


def _directive(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise web.HTTPBadRequest(text=f"{name}: không hợp lệ. / {name}: not a valid number.")
    return int(text)


@dataclass
class _Watched:
    key: tuple[int, int]
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0
    task: asyncio.Task[None] | None = None


@dataclass
class Blocking:
    """Blocking: the playlists someone waits on (blocking playlist reload), one poller task each."""

    watched: dict[Path, _Watched] = field(default_factory=dict)

    async def changed(self, path: Path, key: tuple[int, int], within: float) -> None:
        """Blocking.changed: return when `path`'s (mtime, size) differs from `key` (what the caller just read), or
        after `within` seconds."""
        entry = self.watched.get(path)
        if entry is None:
            entry = self.watched[path] = _Watched(key)
        if entry.key != key:  # the caller saw a change the poller has not: the others waiting look again
            entry.key = key
            entry.changed.set()
            entry.changed = asyncio.Event()
        entry.waiters += 1
        if entry.task is None:
            entry.task = asyncio.get_running_loop().create_task(self._poll(path, entry), name="hls-blocking")
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.changed.wait(), within)
        finally:
            entry.waiters -= 1

    async def _poll(self, path: Path, entry: _Watched) -> None:
        try:
            while entry.waiters > 0:
                await asyncio.sleep(BLOCK_POLL)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                key = (st.st_mtime_ns, st.st_size)
                if key != entry.key:
                    entry.key = key
                    entry.changed.set()
                    entry.changed = asyncio.Event()
        finally:
            entry.task = None
            if entry.waiters <= 0 and self.watched.get(path) is entry:
                del self.watched[path]

    def close(self) -> None:
        """Blocking.close: stop the pollers (the app stops)."""
        for entry in self.watched.values():
            if entry.task is not None:
                entry.task.cancel()


async def _blocked(request: web.Request, path: Path, st: os.stat_result, body: bytes, msn: int,
                   part: int | None) -> bytes:
    """_blocked: the playlist once it lists segment `msn` (part `part`): 400 too far ahead, 503 after three target
    durations."""
    pos = position(body)
    if msn > pos.last + 2:
        raise web.HTTPBadRequest(text="_HLS_msn: quá xa. / _HLS_msn: too far ahead.")
    deadline = asyncio.get_running_loop().time() + 3 * pos.target
    while not pos.has(msn, part):
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise web.HTTPServiceUnavailable(text="Chưa có phần này. / Not made yet.",
                                             headers={"Cache-Control": "no-store", **CORS})
        await request.app[BLOCKING].changed(path, (st.st_mtime_ns, st.st_size), left)
        try:
            st = os.stat(path)
            body = request.app[PLAYLISTS].read(path, st)
        except OSError:
            raise _unknown() from None
        pos = position(body)
    return body


async def _serve(request: web.Request, found: tuple[Path, os.stat_result], meeting_id: int,
                 public: bool) -> web.StreamResponse:
    """_serve: one HLS file with its type, cache lifetime (public or private) and CORS headers."""
    path, st = found
    scope = "public" if public else "private"
    kind = TYPES[path.suffix]
    headers = dict(CORS)
    headers["Content-Type"] = kind
    if path.suffix == ".m3u8":
        msn = _directive(request, "_HLS_msn") if path.name != "master.m3u8" else None
        part = _directive(request, "_HLS_part") if msn is not None else None
        if msn is None and "_HLS_part" in request.query and path.name != "master.m3u8":
            raise web.HTTPBadRequest(text="_HLS_part cần _HLS_msn. / _HLS_part needs _HLS_msn.")
        try:
            body = request.app[PLAYLISTS].read(path, st)
        except OSError:
            raise _unknown() from None
        if msn is not None:
            body = await _blocked(request, path, st, body, msn, part)
            if b"#EXT-X-ENDLIST" not in body:
                headers["Cache-Control"] = f"{scope}, max-age={BLOCKED_TARGETS * position(body).target}"
                return web.Response(body=body, headers=headers)
        if path.name == "master.m3u8":
            broadcast = await broadcast_of(request.app, meeting_id)
            ended = broadcast is None or broadcast.directory != path.parent or not broadcast.live
        else:
            ended = b"#EXT-X-ENDLIST" in body
        age = request.app[CONFIG].watch.ended_playlist_seconds if ended else 1
        headers["Cache-Control"] = f"{scope}, max-age={age}"
        if public and not ended:  # nginx: fresh to the end of this second, not 1-2 s (see LIVE_EXPIRES)
            headers[LIVE_EXPIRES] = f"@{int(time.time())}"
        return web.Response(body=body, headers=headers)
    headers["Cache-Control"] = f"{scope}, {IMMUTABLE}"
    if "Range" in request.headers or st.st_size > MAX_HELD:
        return web.FileResponse(path, headers=headers)  # Range (206, Content-Range) and large files: from the disk
    etag = f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
    headers["ETag"] = etag
    headers["Last-Modified"] = formatdate(st.st_mtime, usegmt=True)
    headers["Accept-Ranges"] = "bytes"
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    try:
        body = request.app[SEGMENTS].read(path, st)
    except OSError:
        raise _unknown() from None
    return web.Response(body=body, headers=headers)  # (for HEAD aiohttp sends the headers only)


def _recording_id(request: web.Request) -> int:
    text = request.match_info["recording"]
    if not text.isascii() or not text.removeprefix("-").isdigit() or len(text) > 40:
        raise _unknown()
    return check_id(int(text), "recording")  # a number out of range: 400, as every id in a path


async def private_file(request: web.Request) -> web.StreamResponse:
    """private_file: GET /hls/{recording}/{file}: for a login allowed to watch (404 unknown, 403 excluded)."""
    rid = _recording_id(request)
    owner = await request.app[WATCH].recording_owner(rid)
    ident = identity(request)
    if owner is None:
        raise not_found()
    meeting_id, directory = owner
    if ident is None:
        raise web.HTTPUnauthorized(text="Cần đăng nhập. / Login required.")
    allowed = await may_watch_cached(request.app, ident, meeting_id)
    if not allowed:
        async with request.app[DB]() as s:
            allowed = await may_view(s, ident, rid)
    if not allowed:
        raise forbidden()
    return await _serve(request, _target(request.app[WATCH].root, directory, request.match_info["file"]),
                        meeting_id, public=False)


async def public_file(request: web.Request) -> web.StreamResponse:
    """public_file: GET /hls/p/{token}/{recording}/{file}: for the holders of the meeting's public link."""
    rid = _recording_id(request)
    owner = await request.app[WATCH].recording_owner(rid)
    if owner is None:
        raise not_found()
    meeting_id, directory = owner
    if not await public_ok(request.app, meeting_id, request.match_info["token"]):
        raise forbidden()
    # No cookie either: the anonymous visitor's CSRF cookie (the site's context processors make one for every
    # anonymous request) would stop caches from sharing the answer, or worse, have them share the cookie.
    request.pop(ANON_CSRF, None)
    return await _serve(request, _target(request.app[WATCH].root, directory, request.match_info["file"]),
                        meeting_id, public=True)


async def preflight(request: web.Request) -> web.Response:
    """preflight: OPTIONS on an HLS file: the CORS answer for GET and HEAD (with Range)."""
    return web.Response(status=204, headers={**CORS, "Access-Control-Allow-Methods": "GET, HEAD",
                                             "Access-Control-Allow-Headers": "Range",
                                             "Access-Control-Max-Age": "86400"})


def setup(app: web.Application) -> None:
    """setup: the HLS file routes (public first: `p` is never a recording id), the playlists' and segments' caches,
    and the access caches they use (server.live.watch)."""
    watch_setup(app)
    app[PLAYLISTS] = Playlists()
    app[SEGMENTS] = Segments()
    app[BLOCKING] = Blocking()
    app.on_cleanup.append(_stop_blocking)
    app.router.add_get("/hls/p/{token}/{recording}/{file:.+}", public_file, name="hls-public")
    app.router.add_route("OPTIONS", "/hls/p/{token}/{recording}/{file:.+}", preflight)
    app.router.add_get("/hls/{recording}/{file:.+}", private_file, name="hls")
    app.router.add_route("OPTIONS", "/hls/{recording}/{file:.+}", preflight)


async def _stop_blocking(app: web.Application) -> None:
    app[BLOCKING].close()


PLAYLISTS: web.AppKey[Playlists] = web.AppKey("hls_playlists", Playlists)
BLOCKING: web.AppKey[Blocking] = web.AppKey("hls_blocking", Blocking)
SEGMENTS: web.AppKey[Segments] = web.AppKey("hls_segments", Segments)
