"""server.learning.content: the content origin, a second aiohttp application that plays SCORM packages.

Packages run their own scripts; they must not reach the learner's session or the site's API. So they are
served by a separate application on its own origin (`learning.content_origin`; the embedded server listens
for it on `learning.content_host`:`learning.content_port`, started by `content_ctx` with the site, over HTTPS
when the site is; without a configured origin, browsers reach it at the site's host name and the content port),
which has no session, no database and no site route:

- `GET /pkg/<sha256>/<path>`: a file of an extracted package (<data_dir>/packages/<sha256>/), at an immutable
  URL (`Cache-Control: public, max-age=31536000, immutable`): the hash names the content.
- `GET /player?site=<site origin>`: the player page, holding the SCORM runtime (vendored scorm-again: `API` for
  1.2, `API_1484_11` for 2004) that a SCO finds through `window.parent`. It talks only to the page that
  framed it, by `postMessage` to the given site origin: that page launches it with the attempt's token and
  data, and relays its commits to the site API with the learner's session (web/static/scorm.js).
- `GET /rt/<file>`: the player's scripts.

Every response carries the content origin's own Content-Security-Policy: scripts inline and eval allowed
(authoring tools' output needs them), `connect-src 'self'` (nothing to the site), no plugins, framed only by
the site (`server.public_url`'s origin; without it, by any page: then a package is no more secret than its
hash) and by itself. A cookie of the site that reaches this origin (the same host on another port, in
development) is never read.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from server.config import CONFIG, Config
from server.learning.scorm import packages_root, remove_stale_temps
from server.storage import StartupError
from server.tls import ssl_context

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
RUNTIME_FILES = {"scorm-again.min.js": STATIC / "vendor" / "scorm-again.min.js",
                 "scorm-player.js": STATIC / "scorm-player.js"}
IMMUTABLE = "public, max-age=31536000, immutable"
TYPES = {".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8", ".js": "text/javascript",
         ".css": "text/css", ".json": "application/json", ".xml": "application/xml", ".svg": "image/svg+xml",
         ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".webp": "image/webp", ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg",
         ".m4a": "audio/mp4", ".ogg": "audio/ogg", ".wav": "audio/wav", ".woff": "font/woff",
         ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf", ".txt": "text/plain; charset=utf-8",
         ".vtt": "text/vtt", ".pdf": "application/pdf", ".swf": "application/octet-stream"}


@dataclass
class ContentOrigin:
    """ContentOrigin: the running content origin: the configured address browsers use ("" when not configured),
    the port it listens on and its scheme."""

    origin: str
    port: int
    scheme: str = "http"

    def for_request(self, request: web.Request) -> str:
        """ContentOrigin.for_request: the configured origin, else the site's host name (as this browser reached
        it) with the content port."""
        if self.origin:
            return self.origin
        host = request.host
        name = host[:host.index("]") + 1] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
        if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", name or ""):
            name = "127.0.0.1"
        return f"{self.scheme}://{name}:{self.port}"


CONTENT: web.AppKey[ContentOrigin] = web.AppKey("content_origin", ContentOrigin)
CONFIG_OF: web.AppKey[Config] = web.AppKey("content_config", Config)


def site_origin(config: Config) -> str:
    """site_origin: the site's origin from `server.public_url` ("" when not configured)."""
    parts = urlsplit(config.server.public_url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def policy(config: Config) -> str:
    """policy: the content origin's Content-Security-Policy."""
    site = site_origin(config)
    ancestors = f"'self' {site}" if site else "'self' http: https:"
    return ("default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:; connect-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; worker-src 'self' blob:; "
            f"frame-ancestors {ancestors}")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = policy(request.app[CONFIG_OF])
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.headers.popall("Set-Cookie", None)


def _version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12] if path.is_file() else "0"


def player_html() -> str:
    """player_html: the player page (runtime scripts with version queries; a frame for the SCO)."""
    tags = "".join(f'<script src="/rt/{name}?v={_version(path)}"></script>' for name, path in RUNTIME_FILES.items())
    return ("<!doctype html><html lang=\"vi\"><head><meta charset=\"utf-8\"><title>Bài giảng điện tử</title>"
            "<style>html,body{margin:0;height:100%;background:#fff}iframe{border:0;width:100%;height:100%;"
            "display:block}</style>" + tags + "</head><body><iframe id=\"sco\" title=\"Bài giảng điện tử\" "
            "allow=\"fullscreen; autoplay\"></iframe></body></html>")


async def player(request: web.Request) -> web.Response:
    """player: the page holding the SCORM runtime (cached briefly: its scripts carry version queries)."""
    return web.Response(text=player_html(), content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "public, max-age=300"})


async def runtime_file(request: web.Request) -> web.FileResponse:
    """runtime_file: the vendored runtime or the player script (immutable with their version query)."""
    path = RUNTIME_FILES.get(request.match_info["name"])
    if path is None or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": "text/javascript; charset=utf-8",
                                           "Cache-Control": IMMUTABLE if "v" in request.query else "no-cache"})


async def package_file(request: web.Request) -> web.FileResponse:
    """package_file: one file of an extracted package (404 outside the package or missing)."""
    root = packages_root(request.app[CONFIG_OF].data_path) / request.match_info["sha"]
    rel = request.match_info["path"]
    if not root.is_dir() or "\x00" in rel:
        raise web.HTTPNotFound()
    path = (root / rel).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise web.HTTPNotFound()
    kind = TYPES.get(path.suffix.lower(), "application/octet-stream")
    return web.FileResponse(path, headers={"Content-Type": kind, "Cache-Control": IMMUTABLE})


def create_content_app(config: Config) -> web.Application:
    """create_content_app: the content origin's application (package files, player, runtime)."""
    app = web.Application(client_max_size=1024)
    app[CONFIG_OF] = config
    app.on_response_prepare.append(_headers)
    app.router.add_get("/player", player, name="scorm-player")
    app.router.add_get(r"/rt/{name:[a-z0-9.-]+\.js}", runtime_file, name="scorm-runtime")
    app.router.add_get(r"/pkg/{sha:[0-9a-f]{64}}/{path:.+}", package_file, name="scorm-package-file")
    return app


def _listen_host(config: Config) -> str:
    return config.learning.content_host or config.server.host


async def content_ctx(app: web.Application) -> AsyncIterator[None]:
    """content_ctx: start the content origin's listener beside the site (stopped with it)."""
    config = app[CONFIG]
    await asyncio.to_thread(remove_stale_temps, packages_root(config.data_path))
    host = _listen_host(config)
    runner = web.AppRunner(create_content_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    reuse = hasattr(socket, "SO_REUSEPORT") and config.learning.content_port != 0
    ctx = ssl_context(config)  # a site served over HTTPS frames its packages over HTTPS too (no mixed content)
    site = web.TCPSite(runner, host, config.learning.content_port, reuse_port=reuse or None, ssl_context=ctx)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise StartupError(f"learning.content_port {host}:{config.learning.content_port}: "
                           f"{exc.strerror or exc}") from None
    port = config.learning.content_port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port = int(address[1])
            break
    app[CONTENT] = ContentOrigin(origin=config.learning.content_origin, port=port, scheme="https" if ctx else "http")
    yield
    await runner.cleanup()
