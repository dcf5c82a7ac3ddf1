"""server.health: GET /healthz (JSON, checks the database) and GET /metrics (Prometheus)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from server.db.engine import DB
from server.metrics import REGISTRY


async def healthz(request: web.Request) -> web.Response:
    """healthz: 200 {"status": "ok"} when the database answers, else 503."""
    try:
        async with request.app[DB]() as s:
            await s.execute(text("SELECT 1"))
    except Exception as exc:  # any database failure means unhealthy
        return web.json_response({"status": "error", "database": str(exc)[:200]}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """metrics: Prometheus text exposition of the app's registry."""
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup(app: web.Application) -> None:
    """setup: add the health and metrics routes."""
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics, name="metrics")
