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
  playlist carries `#EXT-X-ENDLIST` (the master playlist: once the broadcast ended).
GET and HEAD carry `Access-Control-Allow-Origin: *` and OPTIONS answers a CORS preflight: a player on another
origin (a ministry portal embedding the stream) reads the public files; private ones still need the cookie, which
`*` never lets a cross-origin page send.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from aiohttp import web

from server.auth import ANON_CSRF, identity
from server.config import CONFIG
from server.db.engine import DB
from server.live.recordings import may_view
from server.live.watch import WATCH, broadcast_of, forbidden, may_watch_cached, not_found, public_ok

FILE = re.compile(r"^(?:master\.m3u8|[A-Za-z0-9_-]{1,16}/[A-Za-z0-9_.-]{1,64}\.(?:m3u8|mp4|m4s))$")
TYPES = {".m3u8": "application/vnd.apple.mpegurl", ".mp4": "video/mp4", ".m4s": "video/iso.segment"}
IMMUTABLE = "max-age=31536000, immutable"
CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Content-Length, Content-Range, ETag",
        "Timing-Allow-Origin": "*"}


def _unknown() -> web.HTTPNotFound:
    return web.HTTPNotFound(text="Không có tệp này. / No such file.")


def _target(root: Path, directory: str, name: str) -> Path:
    """_target: the file `name` of a recording's hls/ directory (404 when the name or the file is not one)."""
    if not FILE.match(name) or ".." in name:
        raise _unknown()
    hls = (root / directory / "hls").resolve()
    path = (hls / name).resolve()
    if hls not in path.parents or not path.is_file():
        raise _unknown()
    return path


async def _serve(request: web.Request, path: Path, meeting_id: int, public: bool) -> web.StreamResponse:
    """_serve: one HLS file with its type, cache lifetime (public or private) and CORS headers."""
    scope = "public" if public else "private"
    kind = TYPES[path.suffix]
    headers = dict(CORS)
    headers["Content-Type"] = kind
    if path.suffix == ".m3u8":
        try:
            body = await asyncio.to_thread(path.read_bytes)
        except OSError:
            raise _unknown() from None
        if path.name == "master.m3u8":
            broadcast = await broadcast_of(request.app, meeting_id)
            ended = broadcast is None or broadcast.directory.resolve() != path.parent or not broadcast.live
        else:
            ended = b"#EXT-X-ENDLIST" in body
        age = request.app[CONFIG].watch.ended_playlist_seconds if ended else 1
        headers["Cache-Control"] = f"{scope}, max-age={age}"
        return web.Response(body=body, headers=headers)
    headers["Cache-Control"] = f"{scope}, {IMMUTABLE}"
    return web.FileResponse(path, headers=headers)


def _recording_id(request: web.Request) -> int:
    text = request.match_info["recording"]
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise _unknown()
    return int(text)


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
    """setup: the HLS file routes (public first: `p` is never a recording id)."""
    app.router.add_get("/hls/p/{token}/{recording}/{file:.+}", public_file, name="hls-public")
    app.router.add_route("OPTIONS", "/hls/p/{token}/{recording}/{file:.+}", preflight)
    app.router.add_get("/hls/{recording}/{file:.+}", private_file, name="hls")
    app.router.add_route("OPTIONS", "/hls/{recording}/{file:.+}", preflight)
