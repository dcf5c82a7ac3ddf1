"""Tests of server.middlewares: errors as JSON or a page, body size limit, security headers."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.config import CONFIG


async def test_html_error_page_for_browsers(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/no-such-page", headers={"Accept": "text/html"})
    assert resp.status == 404
    assert "text/html" in resp.headers["Content-Type"]
    assert "404" in await resp.text()


async def test_body_size_limit_is_json_413(client: TestClient[Any, Any]) -> None:
    big = b"x" * (client.app[CONFIG].limits.max_body_bytes + 10)
    resp = await client.post("/api/v1/openapi.json", data=big, headers={"Content-Type": "application/json"})
    assert resp.status in (403, 405, 413)  # refused before reading; never 500
    body = await resp.json()
    assert "error" in body


async def test_security_headers(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/healthz")
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "SAMEORIGIN"



async def test_unknown_api_route_is_json_404(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/nope")
    assert resp.status == 404
    body = await resp.json()
    assert body["error"]["code"] == "not-found"

