"""Tests of server.openapi: every /api/ route is documented, the document is valid OpenAPI 3, errors match; the
request parameter helpers."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from pydantic import BaseModel

from server.app import create_app
from server.config import load_config
from server.db.engine import DB
from server.db.models import Role, User
from server.errors import ApiError
from server.openapi import API, ApiRegistry, ErrorBody, endpoint, int_param, int_query, parse_int
from server.ratelimit import LOGIN_LIMITER, LoginLimiter


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
                                                         "422", "503"}
    assert statuses("/api/v1/me", "get") == {"200", "401", "403", "503"}  # 503: the database locked, say
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


# --- the document against the running server: schemathesis over every operation ----------------------------------
#
# A real server (its own thread and event loop, as `taphuan serve` runs it) with a small world made through the API;
# accounts logged in the way an API client does (GET /api/v1/csrf, POST /api/v1/login, then the login cookie and its
# X-CSRF-Token). As an operator every operation gets a few positive and negative examples, as a classroom a couple
# of positive ones; derandomized (the same requests on every run) and with every check that applies to a logged-in
# client: an undocumented status, a 500, a body, content type or header outside the document, data the document
# refuses but the server takes (or the reverse) fail the suite.

FUZZ_PASSWORD = "fuzz-account-pass"


@dataclass
class LiveApi:
    """LiveApi: the running server, its app, and the fuzzing accounts' logins (role -> (login, CSRF token))."""

    url: str
    app: web.Application
    loop: asyncio.AbstractEventLoop
    password_hash: str
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)

    def run(self, coro: Any) -> Any:
        """LiveApi.run: run a coroutine on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def log_in(self, role: str) -> None:
        """LiveApi.log_in: the API client's login as fuzz.<role>: an anonymous CSRF token, then POST /api/v1/login."""
        with requests.Session() as http:
            token = http.get(f"{self.url}/api/v1/csrf").json()["csrf_token"]
            r = http.post(f"{self.url}/api/v1/login", json={"username": f"fuzz.{role}", "password": FUZZ_PASSWORD},
                          headers={"X-CSRF-Token": token})
            assert r.status_code == 200, r.text
            self.logins[role] = (http.cookies["taphuan_login"], r.json()["csrf_token"])

    def ensure_logged_in(self, role: str) -> tuple[str, str]:
        """LiveApi.ensure_logged_in: the role's login, after undoing what the last operation did to the account or
        the login (logged out, disabled, role changed, password reset)."""
        me = self.call(role, "GET", "/api/v1/me")
        if me.status_code != 200 or me.json()["role"] != role:
            self.run(self._repair(role))
            self.log_in(role)
        return self.logins[role]

    async def _repair(self, role: str) -> None:
        from sqlalchemy import update

        async with self.app[DB]() as s:
            await s.execute(update(User).where(User.username == f"fuzz.{role}")
                            .values(role=Role(role), disabled=False, password_hash=self.password_hash))
            await s.commit()

    def call(self, role: str, method: str, path: str, **kw: Any) -> requests.Response:
        """LiveApi.call: an API request as the role's account (cookie and CSRF header, as a client sends them)."""
        login, csrf = self.logins[role]
        return requests.request(method, f"{self.url}{path}", headers={"X-CSRF-Token": csrf},
                                cookies={"taphuan_login": login}, timeout=30, **kw)


def _seed(api: LiveApi) -> None:
    """_seed: a few of each resource, made through the API, so the fuzzer's small ids find something."""
    import datetime as dt

    def ok(r: requests.Response) -> Any:
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def call(method: str, path: str, **kw: Any) -> Any:
        return ok(api.call("operator", method, path, **kw))

    provinces = [u["id"] for u in call("GET", "/api/v1/units", params={"level": "province"})][:2]
    rooms = [call("POST", "/api/v1/classrooms", json={"code": f"LH{i}", "name": f"Lớp {i}",
                                                      "unit_id": provinces[0]})["id"] for i in (1, 2)]
    people = {role: call("POST", "/api/v1/users", json={"username": f"fuzz.{role}", "role": role,
                                                        "password": FUZZ_PASSWORD})["user"]
              for role in ("trainer", "leader", "learner")}
    call("POST", "/api/v1/users", json={"username": "fuzz.classroom", "role": "classroom", "classroom_id": rooms[0],
                                        "password": FUZZ_PASSWORD})
    program = call("POST", "/api/v1/programs", json={"title": "Chương trình thử"})["id"]
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=20)
    for kind, hours in (("lecture", 0), ("regional", 3)):
        meeting = call("POST", "/api/v1/meetings", json={
            "program_id": program, "title": f"Buổi {kind}", "kind": kind,
            "starts_at": (start + dt.timedelta(hours=hours)).isoformat(),
            "ends_at": (start + dt.timedelta(hours=hours + 2)).isoformat(),
            "presenter_ids": [people["trainer"]["id"] if kind == "lecture" else people["leader"]["id"]],
            "classroom_ids": rooms if kind == "lecture" else [], "province_ids": provinces if hours else []})
        call("POST", f"/api/v1/meetings/{meeting['id']}/publish")
        call("POST", f"/api/v1/meetings/{meeting['id']}/links", json={"classroom_id": rooms[0]})
    call("PUT", f"/api/v1/programs/{program}/trainers", json={"user_ids": [people["trainer"]["id"]]})
    call("POST", f"/api/v1/programs/{program}/learners", json={"user_ids": [people["learner"]["id"]]})
    call("POST", f"/api/v1/programs/{program}/quizzes", json={
        "title": "Kiểm tra", "published": True, "questions": [{"text": "Một?", "choices": ["a", "b"], "correct": [0]}]})
    topic = call("POST", f"/api/v1/programs/{program}/forum/topics", json={"title": "Hỏi đáp"})
    call("POST", f"/api/v1/forum/topics/{topic['topic_id']}/questions", json={"title": "Câu hỏi", "body": "*ai?*"})


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    """live_api: the server running in a thread, seeded, with the operator and a classroom logged in."""
    from server.auth import hash_password
    from server.cli import loop_factory

    config = load_config(None, env={}, overrides={
        "data_dir": str(tmp_path_factory.mktemp("fuzz") / "data"), "sfu.ice_addresses": ["127.0.0.1"],
        "recorder.auto_start": False,
        # the fuzzer's wrong logins must not lock the accounts' own re-logins out (the limit has its own tests)
        "auth.login_failures_per_minute": 100_000, "auth.login_ip_failures_per_minute": 100_000})
    loop = loop_factory(config.server.event_loop)()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-server", daemon=True)
    thread.start()
    app = create_app(config)
    # nor slow every generated login down: the same made-up username fails again and again, and its slow-down
    # (0.1 s doubling per failure, up to 2 s) made each later token request wait 2 s (~50 s of the module)
    limiter = app[LOGIN_LIMITER]
    assert isinstance(limiter, LoginLimiter), limiter
    limiter.max_delay = 0.0
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=60)
    api = LiveApi(url=f"http://127.0.0.1:{port}", app=app, loop=loop, password_hash=hash_password(FUZZ_PASSWORD))

    async def add_operator() -> None:
        async with app[DB]() as s:
            s.add(User(username="fuzz.operator", display_name="Fuzz", role=Role.OPERATOR,
                       password_hash=api.password_hash))
            await s.commit()

    api.run(add_operator())
    api.log_in("operator")
    _seed(api)
    api.log_in("classroom")
    yield api
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=60)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.close()


def _served_document() -> dict[str, Any]:
    """_served_document: the document the server serves (built from the declarations, without starting it)."""
    return create_app(load_config(None, env={}, overrides={"data_dir": "unused"}))[API].document()


_CREDENTIALS: dict[str, tuple[str, str]] = {}  # role -> (login, CSRF token), set before each case is sent


def _fuzz_schema(role: str, mode: str, examples: int) -> Any:
    """_fuzz_schema: the served document for schemathesis, sending the role's credentials on each generated request
    that keeps its security parameters (a negative example without the cookie or the CSRF header goes without)."""
    config = schemathesis.config.SchemathesisConfig.from_dict({
        "seed": 17, "checks": {"enabled": True},
        "generation": {"mode": mode, "max-examples": examples, "deterministic": True, "no-shrink": True}})
    schema = schemathesis.openapi.from_dict(_served_document(), config=config)

    @schema.auth(refresh_interval=None)
    class Login:
        def get(self, case: Any, context: Any) -> tuple[str, str] | None:
            return _CREDENTIALS.get(role)

        def set(self, case: Any, data: tuple[str, str] | None, context: Any) -> None:
            if data is None:  # while collecting, before the server runs
                return
            case.cookies = {**(case.cookies or {}), "taphuan_login": data[0], "taphuan_csrf": data[1]}
            case.headers = {**(case.headers or {}), "X-CSRF-Token": data[1]}

    return schema


def _send(case: Any, api: LiveApi, role: str) -> None:
    _CREDENTIALS[role] = api.ensure_logged_in(role)
    with requests.Session() as session:  # no cookies of its own: only what the case carries
        case.call_and_validate(base_url=api.url, session=session)


operator_schema = _fuzz_schema("operator", "all", 4)
classroom_schema = _fuzz_schema("classroom", "positive", 2)


@operator_schema.parametrize()
@settings(max_examples=4, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_operations_conform_to_the_document_as_operator(case: Any, live_api: LiveApi) -> None:
    _send(case, live_api, "operator")


@classroom_schema.parametrize()
@settings(max_examples=2, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_operations_conform_to_the_document_as_classroom(case: Any, live_api: LiveApi) -> None:
    _send(case, live_api, "classroom")
