"""server.health: GET /healthz (JSON: the database, its writability, the data directory, free disk) and GET /metrics
(Prometheus, not public)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from server.auth import client_ip
from server.config import CONFIG
from server.db.engine import DB, ENGINE
from server.db.models import Recording, RecordingState
from server.errors import ApiError
from server.metrics import METRICS, REGISTRY
from server.storage import data_dir_state, database_state, free_bytes


async def healthz(request: web.Request) -> web.Response:
    """healthz: the server's health as JSON: `status` "ok" (200); "degraded" (503: the database cannot be written,
    being locked or read-only, the data directory refuses files, or free disk is below recorder.min_free_bytes);
    "error" (503: the database does not answer). Each check is named with its state; free disk in bytes."""
    config = request.app[CONFIG]
    try:
        async with request.app[DB]() as s:
            await s.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means unhealthy
        return web.json_response({"status": "error", "database": " ".join(str(exc).split())[:200]}, status=503)
    database = await database_state(request.app[ENGINE], config.database.busy_timeout)
    data_dir = await asyncio.to_thread(data_dir_state, config.data_path)
    free = await asyncio.to_thread(free_bytes, config.data_path / "recordings")
    disk = "ok" if free >= config.recorder.min_free_bytes else "low"
    healthy = database == "ok" and data_dir == "ok" and disk == "ok"
    return web.json_response({"status": "ok" if healthy else "degraded", "database": database, "data_dir": data_dir,
                              "disk": disk, "free_bytes": free, "min_free_bytes": config.recorder.min_free_bytes},
                             status=200 if healthy else 503)


log = logging.getLogger("taphuan.health")


def may_read_metrics(request: web.Request) -> bool:
    """may_read_metrics: the request bears `metrics.token`, or its client address is in `metrics.allow`.

    The address is the peer's, or the one a trusted proxy forwards (server.auth.client_ip); a request that
    carries forwarding headers from a peer that is not a trusted proxy has no known client address: refused.
    """
    cfg = request.app[CONFIG].metrics
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if cfg.token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), cfg.token.encode()):
        return True
    proxied = any(h in request.headers for h in ("X-Forwarded-For", "Forwarded", "X-Real-IP"))
    if proxied and not _in(request.remote or "", request.app[CONFIG].server.trusted_proxies):
        return False
    return _in(client_ip(request), cfg.allow)


def _in(address: str, networks: list[str]) -> bool:
    """_in: whether `address` (an IPv4-mapped IPv6 address counts as its IPv4 one) is in one of `networks`."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    found = False
    for net in networks:
        with contextlib.suppress(ValueError):
            found = found or ip in ipaddress.ip_network(net, strict=False)
    return found


async def metrics(request: web.Request) -> web.Response:
    """metrics: Prometheus text exposition of the app's registry, for `metrics.allow` or `metrics.token` only."""
    if not may_read_metrics(request):
        raise ApiError(403, "forbidden", "Chỉ các địa chỉ trong metrics.allow hoặc có mã metrics.token mới đọc được "
                                         "/metrics. / /metrics is readable only from metrics.allow addresses or "
                                         "with the metrics.token bearer token.")
    await _count_recordings(request.app)
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _count_recordings(app: web.Application) -> None:
    """_count_recordings: set taphuan_recordings{state} from the database (every state, 0 when none); a database
    that does not answer leaves the last values (and /healthz says so)."""
    try:
        async with app[DB]() as s:
            rows = (await s.execute(select(Recording.state, func.count()).group_by(Recording.state))).all()
    except Exception:  # any database failure: /healthz reports it; the other metrics still render
        log.warning("metrics: recordings not counted", exc_info=True)
        return
    counts = {state: 0 for state in RecordingState} | {RecordingState(state): n for state, n in rows}
    for state, n in counts.items():
        app[METRICS].recordings.labels(state=state.value).set(n)


def setup(app: web.Application) -> None:
    """setup: add the health and metrics routes."""
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics, name="metrics")
