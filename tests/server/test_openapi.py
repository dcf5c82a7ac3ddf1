"""Tests of server.openapi: every /api/ route is documented, the document is valid OpenAPI 3, errors match; the
request parameter helpers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from openapi_spec_validator import validate
from pydantic import BaseModel

from server.errors import ApiError
from server.openapi import API, ApiRegistry, ErrorBody, endpoint, int_param, int_query, parse_int


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


async def test_each_model_keeps_its_own_component(app: web.Application) -> None:
    """Two models of one name (PersonOut, ProgressOut, QuestionIn, QuestionOut) once overwrote each other."""
    doc = app[API].document()
    schemas = doc["components"]["schemas"]
    for ep in app[API].endpoints:
        for model in (ep.body, ep.response):
            if model is not None:
                own = model.model_json_schema(ref_template="#/components/schemas/{model}")
                assert schemas[model.__name__]["properties"] == own["properties"], f"{ep.name}: {model.__name__}"
    presenter = schemas["MeetingOut"]["properties"]["presenters"]["items"]["$ref"].rsplit("/", 1)[-1]
    member = schemas["EnrolOut"]["properties"]["people"]["items"]["$ref"].rsplit("/", 1)[-1]
    assert presenter != member and "email" in schemas[member]["properties"]


def test_a_second_model_of_the_same_name_is_refused() -> None:
    def model(module: str) -> type[BaseModel]:
        return type("ThingOut", (BaseModel,), {"__module__": module, "__annotations__": {"id": int}})

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    registry = ApiRegistry()
    for i, mod in enumerate(("server.api.one", "server.api.two")):
        h = endpoint("GET", f"/api/v1/thing{i}", name=f"thing{i}", summary="x", response=model(mod))(handler)
        registry.endpoints.append(h.__endpoint__)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="two models named ThingOut"):
        registry.document()


async def test_request_bodies_refuse_unknown_keys(app: web.Application, login_as: Any) -> None:
    doc = app[API].document()
    schemas = doc["components"]["schemas"]
    bodies = {op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
              for ops in doc["paths"].values() for op in ops.values()
              if "application/json" in op.get("requestBody", {}).get("content", {})}
    todo, seen = list(bodies), set()
    while todo:  # the body models and every model they hold
        name = todo.pop()
        if name in seen or schemas[name].get("type") != "object":
            continue
        seen.add(name)
        assert schemas[name].get("additionalProperties") is False, f"{name} accepts unknown keys"
        todo += re.findall(r"#/components/schemas/(\w+)", str(schemas[name]))
    assert {"PeopleIn", "MeetingPatch", "QuizIn", "QuizQuestionIn", "HeadcountIn"} <= seen
    op = await login_as("operator")
    r = await op.post("/api/v1/programs", json={"title": "Chương trình", "titel": "typo"})
    assert r.status == 422 and (await r.json())["error"]["field"] == "titel"


async def test_error_statuses_are_documented_where_they_can_happen(app: web.Application, login_as: Any) -> None:
    paths = app[API].document()["paths"]

    def statuses(path: str, method: str) -> set[str]:
        return set(paths[path][method]["responses"])

    assert statuses("/api/v1/meetings/{id}", "patch") == {"200", "400", "401", "403", "404", "409", "413", "415",
                                                         "422"}
    assert statuses("/api/v1/me", "get") == {"200", "401", "403"}
    assert {"400", "401", "403", "413", "415", "422", "429"} <= statuses("/api/v1/login", "post")
    assert statuses("/api/v1/programs/{id}", "delete") >= {"204", "409"}
    assert "content" not in paths["/api/v1/programs/{id}"]["delete"]["responses"]["204"]
    upload = paths["/api/v1/import/units"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data", "text/csv"} and {"413", "415"} <= statuses("/api/v1/import/units",
                                                                                              "post")
    assert paths["/api/v1/users/{id}"]["get"]["parameters"][0]["schema"]["type"] == "integer"
    op = await login_as("operator")
    r = await op.patch("/api/v1/programs/1", data=b"title=x", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = await op.patch("/api/v1/programs/1", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400
    ErrorBody.model_validate(await r.json())


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
