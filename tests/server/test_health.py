"""Tests of server.health: /healthz checks the database, its writability, the data directory and free disk (with real
storage faults); /metrics exports Prometheus text to allowed clients."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import CONFIG, Config
from server.db.engine import ENGINE
from tests.server.storagetest import read_only, write_locked


async def test_healthz_ok(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    free = body.pop("free_bytes")
    assert body == {"status": "ok", "database": "ok", "data_dir": "ok", "disk": "ok",
                    "min_free_bytes": client.app[CONFIG].recorder.min_free_bytes}
    assert 0 < free <= shutil.disk_usage(client.app[CONFIG].data_path).total
    assert resp.headers["X-Request-Id"]


async def test_healthz_degraded_when_the_database_is_write_locked(client: TestClient[Any, Any]) -> None:
    with write_locked(client.app[CONFIG].data_path / "taphuan.sqlite3"):
        resp = await client.get("/healthz")  # reads still work (WAL): the server is up, but cannot write
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "degraded" and body["database"] == "locked" and body["data_dir"] == "ok"
    assert (await client.get("/healthz")).status == 200


async def test_healthz_degraded_when_the_data_directory_refuses_files(client: TestClient[Any, Any]) -> None:
    uploads = client.app[CONFIG].data_path / "uploads"
    with read_only(uploads):
        resp = await client.get("/healthz")
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "degraded" and body["database"] == "ok"
        assert body["data_dir"].startswith(f"{uploads}: ")
    assert (await client.get("/healthz")).status == 200


async def test_healthz_degraded_when_disk_is_low(make_config: Callable[..., Config], aiohttp_client: Any) -> None:
    client = await aiohttp_client(create_app(make_config(**{"recorder.min_free_bytes": 10**18})))
    resp = await client.get("/healthz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "degraded" and body["disk"] == "low" and body["free_bytes"] < 10**18


async def test_healthz_reports_broken_database(client: TestClient[Any, Any]) -> None:
    await client.app[ENGINE].dispose()
    db_file = client.app[CONFIG].data_path / "taphuan.sqlite3"
    db_file.unlink()
    db_file.mkdir()  # a directory where the database should be: it cannot open
    resp = await client.get("/healthz")
    assert resp.status == 503
    assert (await resp.json())["status"] == "error"  # still JSON


async def test_metrics(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/metrics")  # loopback is allowed by default
    assert resp.status == 200
    assert "taphuan_ws_connections" in await resp.text()


TOKEN = "s3cret-scrape-token-0123"


async def test_metrics_are_not_public(make_config: Callable[..., Config], aiohttp_client: Any) -> None:
    config = make_config(**{"metrics.allow": ["10.0.0.0/8"], "metrics.token": TOKEN})
    client = await aiohttp_client(create_app(config))
    resp = await client.get("/metrics")  # loopback, but not in this list
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    assert "taphuan_" not in await resp.text()
    for wrong in ("Bearer nope", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN):
        assert (await client.get("/metrics", headers={"Authorization": wrong})).status == 403, wrong
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and "taphuan_ws_connections" in await resp.text()


async def test_a_proxied_request_counts_as_its_client(make_config: Callable[..., Config],
                                                      aiohttp_client: Any) -> None:
    direct = await aiohttp_client(create_app(make_config()))
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):  # a proxy we do not know: the client is unknown
        assert (await direct.get("/metrics", headers={header: "127.0.0.1"})).status == 403, header
    behind = await aiohttp_client(create_app(make_config(**{"server.trusted_proxies": ["127.0.0.1"]})))
    assert (await behind.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})).status == 403
    assert (await behind.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})).status == 200
