"""Tests of server.health: /healthz checks the database; /metrics exports Prometheus text to allowed clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import CONFIG, Config
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
