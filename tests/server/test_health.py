"""Tests of server.health: /healthz checks the database; /metrics exports Prometheus text."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.config import CONFIG
from server.db.engine import ENGINE


async def test_healthz_ok(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json()) == {"status": "ok", "database": "ok"}
    assert resp.headers["X-Request-Id"]


async def test_healthz_reports_broken_database(client: TestClient[Any, Any]) -> None:
    await client.app[ENGINE].dispose()
    db_file = client.app[CONFIG].data_path / "taphuan.sqlite3"
    db_file.unlink()
    db_file.mkdir()  # a directory where the database should be: it cannot open
    resp = await client.get("/healthz")
    assert resp.status == 503
    assert (await resp.json())["status"] == "error"


async def test_metrics(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert "taphuan_ws_connections" in await resp.text()
