"""server.live.netcheck: the network check of the device check page: round-trip time, download and upload estimates.

Three small endpoints for logged-in users (any role), never cached:
- `GET /netcheck/ping`: an empty 204 reply (the browser times several of them),
- `GET /netcheck/download?bytes=N`: N random bytes (1 ≤ N ≤ DOWNLOAD_MAX; random so no proxy compresses them),
- `POST /netcheck/upload`: reads and discards a body of at most UPLOAD_MAX bytes, replies `{"bytes": n}`.
Sizes are bounded so the check costs the server little; the page uses at most a few hundred KiB each way.
Each login also has a budget (`NetcheckBudget`): BYTES_PER_MINUTE of test data and REQUESTS_PER_MINUTE
requests, refilled continuously; beyond it the answer is 429 with Retry-After.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

from aiohttp import web

from server.auth import require
from server.config import CONFIG
from server.errors import ApiError
from server.ratelimit import TokenBucket

DOWNLOAD_MAX = 2 * 1024 * 1024
DOWNLOAD_DEFAULT = 256 * 1024
UPLOAD_MAX = 1024 * 1024
BYTES_PER_MINUTE = 16 * 1024 * 1024
REQUESTS_PER_MINUTE = 120
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate", "Pragma": "no-cache"}


class NetcheckBudget:
    """NetcheckBudget: per-login token buckets for test bytes and requests (injectable clock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._bytes: dict[str, TokenBucket] = {}
        self._requests: dict[str, TokenBucket] = {}

    def spend(self, login_id: str, size: int) -> None:
        """NetcheckBudget.spend: take one request and `size` bytes, or raise 429 with the wait."""
        if len(self._bytes) > 10_000:  # forget idle logins now and then (the buckets refill anyway)
            self._bytes.clear()
            self._requests.clear()
        requests = self._requests.setdefault(
            login_id, TokenBucket(REQUESTS_PER_MINUTE / 60, REQUESTS_PER_MINUTE, self.clock))
        data = self._bytes.setdefault(login_id, TokenBucket(BYTES_PER_MINUTE / 60, BYTES_PER_MINUTE, self.clock))
        if not requests.take():
            wait = 1
        elif not data.take(size):
            wait = max(1, math.ceil((size - data.tokens) / data.rate))
        else:
            return
        exc = ApiError(429, "rate-limited", f"Kiểm tra mạng quá nhiều; thử lại sau {wait} giây. / "
                                            f"Too many network checks: try again in {wait} s.", retry_after=wait)
        exc.headers["Retry-After"] = str(wait)
        raise exc


def _spend(request: web.Request, size: int) -> None:
    ident = require(request)
    request.app[NETCHECK_BUDGET].spend(ident.login_id, size)


def upload_limit(app: web.Application) -> int:
    """upload_limit: the largest upload body accepted (UPLOAD_MAX, or less if the server's body limit is lower)."""
    return min(UPLOAD_MAX, app[CONFIG].limits.max_body_bytes)


async def ping(request: web.Request) -> web.Response:
    """ping: GET /netcheck/ping: an empty reply for timing round trips."""
    _spend(request, 0)
    return web.Response(status=204, headers=NO_STORE)


async def download(request: web.Request) -> web.Response:
    """download: GET /netcheck/download?bytes=N: N random bytes, not cacheable."""
    require(request)
    raw = request.query.get("bytes", str(DOWNLOAD_DEFAULT))
    try:
        size = int(raw)
    except ValueError:
        raise ApiError(400, "bad-request", "bytes phải là số nguyên. / bytes must be an integer.") from None
    if not 1 <= size <= DOWNLOAD_MAX:
        raise ApiError(400, "bad-request", f"bytes từ 1 đến {DOWNLOAD_MAX}. / bytes must be 1 to {DOWNLOAD_MAX}.",
                       max=DOWNLOAD_MAX)
    _spend(request, size)
    return web.Response(body=os.urandom(size), content_type="application/octet-stream", headers=NO_STORE)


async def upload(request: web.Request) -> web.Response:
    """upload: POST /netcheck/upload: read and discard the body (bounded), reply with its size."""
    require(request)
    limit = upload_limit(request.app)
    too_large = ApiError(413, "too-large", f"Dữ liệu thử quá lớn (tối đa {limit} byte). / Test upload over {limit} "
                                           "bytes.", max=limit)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    _spend(request, request.content_length or limit)
    total = 0
    while True:
        chunk = await request.content.readany()
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise too_large
    return web.json_response({"bytes": total}, headers=NO_STORE)


def setup(app: web.Application) -> None:
    """setup: add the network check routes and the per-login budget."""
    app[NETCHECK_BUDGET] = NetcheckBudget()
    app.router.add_get("/netcheck/ping", ping, name="netcheck-ping")
    app.router.add_get("/netcheck/download", download, name="netcheck-download")
    app.router.add_post("/netcheck/upload", upload, name="netcheck-upload")

NETCHECK_BUDGET: web.AppKey[NetcheckBudget] = web.AppKey("netcheck_budget")
