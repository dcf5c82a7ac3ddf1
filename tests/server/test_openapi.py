"""Tests of server.openapi: every /api/ route is documented, the document is valid OpenAPI 3, errors match; the
request parameter helpers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from openapi_spec_validator import validate

from server.errors import ApiError
from server.openapi import API, ErrorBody, int_param, int_query, parse_int


def _openapi_path(path: str) -> str:
    return re.sub(r"\{([^}:]+)(:[^}]*)?\}", r"{\1}", path)


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """api_routes: (METHOD, path) of every aiohttp route under /api/ (HEAD added for GET excluded)."""
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix") or ""
        if path.startswith("/api/") and route.method not in ("HEAD", "OPTIONS"):
            out.add((route.method, _openapi_path(path)))
    return out


async def test_every_api_route_is_documented(app: web.Application, client: Any) -> None:
    r = await client.get("/api/v1/openapi.json")
    assert r.status == 200
    doc = await r.json()
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    routes = api_routes(app)
    assert ("GET", "/api/v1/meetings") in routes  # the walk over the router finds our routes
    missing = sorted(routes - documented)
    assert not missing, f"API routes missing from openapi.json: {missing}"
    extra = sorted(documented - routes)
    assert not extra, f"documented but not routed: {extra}"
    assert "*" not in {m for m, _ in routes}, "API routes must name their method"


async def test_document_is_valid_openapi(client: Any) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    validate(doc)
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


async def test_error_schema_and_error_responses(client: Any) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    body = schemas["ErrorBody"]
    assert body["required"] == ["error"]
    detail_ref = body["properties"]["error"]["$ref"].rsplit("/", 1)[-1]
    detail = schemas[detail_ref]
    assert set(detail["required"]) == {"code", "message"}
    assert set(ErrorBody.model_json_schema()["properties"]) == {"error"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op.get("security") == []:
                continue
            for status in ("401", "403"):
                resp = op["responses"].get(status)
                assert resp, f"{method} {path} lacks {status}"
                assert resp["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}


async def test_real_errors_match_the_schema(client: Any, login_as: Any) -> None:
    r = await client.get("/api/v1/meetings")
    ErrorBody.model_validate(await r.json())
    learner = await login_as("learner")
    r = await learner.get("/api/v1/meetings")
    assert r.status == 403
    ErrorBody.model_validate(await r.json())
    op = await login_as("operator")
    r = await op.post("/api/v1/meetings", json={"title": "x"})
    assert r.status == 422
    ErrorBody.model_validate(await r.json())


async def test_meeting_endpoints_are_described(app: web.Application, client: Any) -> None:
    doc = app[API].document()
    ops = doc["paths"]["/api/v1/meetings"]
    assert {p["name"] for p in ops["get"]["parameters"]} == {"from", "to", "status"}
    assert ops["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/MeetingIn")
    meeting_in = doc["components"]["schemas"]["MeetingIn"]
    assert meeting_in["properties"]["starts_at"]["format"] == "date-time"
    for action in ("publish", "unpublish", "cancel"):
        assert "post" in doc["paths"][f"/api/v1/meetings/{{id}}/{action}"]


def test_int_query_defaults_bounds_and_422() -> None:
    request = make_mocked_request("GET", "/x?limit=5000&offset=-3&empty=&page=2&bad=2x")
    assert int_query(request, "limit", 100, low=1, high=500) == 500
    assert int_query(request, "offset", 0, low=0) == 0
    assert int_query(request, "page") == 2 and int_query(request, "empty") is None
    assert int_query(request, "absent", 7) == 7
    with pytest.raises(ApiError) as info:
        int_query(request, "bad")
    assert info.value.status == 422 and info.value.extra["field"] == "bad"
    assert info.value.message == "bad: cần một số nguyên / must be an integer"


def test_int_param_and_parse_int() -> None:
    request = make_mocked_request("GET", "/x", match_info={"id": "12", "name": "abc"})
    assert int_param(request, "id") == 12
    for name in ("name", "missing"):
        with pytest.raises(ApiError) as info:
            int_param(request, name)
        assert info.value.status == 404
    assert [parse_int(v) for v in ("4", " 5 ", "", None, "x", "-2", 6)] == [4, 5, None, None, None, -2, 6]
