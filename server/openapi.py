"""server.openapi: the API route registry and the OpenAPI 3 document built from it.

Every /api/v1 handler is declared with `@endpoint(...)` (method, path, summary, roles, body and
response pydantic models). `ApiRegistry.add_routes` registers them with aiohttp (checking roles before
the handler runs, so no handler can forget) and `ApiRegistry.document()` builds the OpenAPI document
from the same declarations, so the document cannot drift from the code. The request parameter helpers here
(`int_param`, `int_query`, `id_query`, `parse_int`) serve the pages too; they keep ids and integers within what
the database stores (`server.inputs`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.auth import require
from server.db.models import Role
from server.errors import ApiError
from server.inputs import bad_number, check_id, is_int64, json_out_of_range

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Endpoint:
    """Endpoint: one declared API route."""

    method: str
    path: str
    name: str
    summary: str
    handler: Handler
    roles: tuple[Role, ...] = ()
    public: bool = False
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    response_list: bool = False
    tag: str = ""
    status: int = 200
    content_type: str = "application/json"
    query: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def endpoint(method: str, path: str, *, name: str, summary: str, roles: Iterable[Role] = (),
             public: bool = False, body: type[BaseModel] | None = None,
             response: type[BaseModel] | None = None, response_list: bool = False, tag: str = "",
             status: int = 200, content_type: str = "application/json",
             query: Iterable[tuple[str, str]] = ()) -> Callable[[Handler], Handler]:
    """endpoint: declare an API handler; `roles` empty means any logged-in user, unless `public`."""

    def wrap(handler: Handler) -> Handler:
        handler.__endpoint__ = Endpoint(  # type: ignore[attr-defined]
            method=method.upper(), path=path, name=name, summary=summary, handler=handler,
            roles=tuple(roles), public=public, body=body, response=response, response_list=response_list,
            tag=tag, status=status, content_type=content_type, query=tuple(query))
        return handler

    return wrap


def _guarded(ep: Endpoint) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not ep.public:
            require(request, *ep.roles)
        return await ep.handler(request)

    guarded.__name__ = ep.handler.__name__
    return guarded


class ApiRegistry:
    """ApiRegistry: the declared endpoints of the application."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def add_module(self, app: web.Application, module: Any) -> None:
        """ApiRegistry.add_module: register every @endpoint handler found in a module."""
        for value in vars(module).values():
            ep = getattr(value, "__endpoint__", None)
            if isinstance(ep, Endpoint):
                self.endpoints.append(ep)
                app.router.add_route(ep.method, ep.path, _guarded(ep), name=ep.name)

    def document(self, title: str = "Taphuan API", version: str = "1") -> dict[str, Any]:
        """ApiRegistry.document: the OpenAPI 3.1 document of every endpoint."""
        paths: dict[str, Any] = {}
        schemas: dict[str, Any] = {}

        def ref(model: type[BaseModel]) -> dict[str, Any]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        error_ref = ref(ErrorBody)
        for ep in sorted(self.endpoints, key=lambda e: (e.path, e.method)):
            op: dict[str, Any] = {"operationId": ep.name, "summary": ep.summary, "tags": [ep.tag or "misc"]}
            params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                      for p in _path_params(ep.path)]
            params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"},
                        "description": d} for q, d in ep.query]
            if params:
                op["parameters"] = params
            if ep.body is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(ep.body)}}}
            ok: dict[str, Any] = {"description": "OK"}
            if ep.response is not None:
                schema = ref(ep.response)
                if ep.response_list:
                    schema = {"type": "array", "items": schema}
                ok["content"] = {ep.content_type: {"schema": schema}}
            elif ep.content_type != "application/json":
                ok["content"] = {ep.content_type: {}}
            responses: dict[str, Any] = {str(ep.status): ok}
            for code, text in _error_statuses(ep):
                responses[code] = {"description": text, "content": {"application/json": {"schema": error_ref}}}
            op["responses"] = responses
            if ep.public:
                op["security"] = []
            else:
                roles = ", ".join(r.value for r in ep.roles) or "any logged-in user"
                op["description"] = f"Roles: {roles}."
            paths.setdefault(_openapi_path(ep.path), {})[ep.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version,
                     "description": "JSON API of Taphuan. Errors: {\"error\": {\"code\", \"message\"}}."},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "cookie": {"type": "apiKey", "in": "cookie", "name": "taphuan_login"},
                    "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                },
            },
            "security": [{"cookie": [], "csrf": []}],
        }


class ErrorDetail(BaseModel):
    """ErrorDetail: a machine code and a human message."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """ErrorBody: the shape of every API error."""

    error: ErrorDetail


def _path_params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _openapi_path(path: str) -> str:
    return "/".join(("{" + p[1:-1].split(":")[0] + "}") if p.startswith("{") else p for p in path.split("/"))


def _error_statuses(ep: Endpoint) -> list[tuple[str, str]]:
    out = []
    if ep.body is not None or ep.query:
        out.append(("422", "Invalid input"))
    if ep.body is not None:
        out.append(("413", "Body too large"))
    if not ep.public:
        out += [("401", "Not logged in"), ("403", "Role not allowed or CSRF token missing")]
    if "{" in ep.path:
        out.append(("404", "Not found"))
    return out


async def parse_body(request: web.Request, model: type[M]) -> M:
    """parse_body: the JSON body validated into `model`, or a 422 naming the first wrong field."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported-media-type", "Cần gửi JSON. / Send application/json.")
    try:
        raw = await request.read()
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad-json", "Nội dung không phải JSON hợp lệ. / Body is not valid JSON.") from None
    if (where := json_out_of_range(data)) is not None:
        raise bad_number(where)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        raise ApiError(422, "invalid", f"{loc}: {err['msg']}", field=loc) from None


def json_response(data: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> web.Response:
    """json_response: serialise pydantic models (and lists of them) as JSON."""
    if isinstance(data, BaseModel):
        payload: Any = data.model_dump(mode="json")
    elif isinstance(data, list):
        payload = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in data]
    else:
        payload = data
    return web.json_response(payload, status=status)


def int_param(request: web.Request, name: str) -> int:
    """int_param: an id in the path: 404 when it is not a number, 400 when out of range (`server.inputs.is_id`)."""
    try:
        value = int(request.match_info[name])
    except (KeyError, ValueError):
        raise ApiError(404, "not-found", "Không tìm thấy. / Not found.") from None
    return check_id(value, name)


@overload
def int_query(request: web.Request, name: str, default: int, *, low: int | None = None,
              high: int | None = None) -> int: ...


@overload
def int_query(request: web.Request, name: str, default: None = None, *, low: int | None = None,
              high: int | None = None) -> int | None: ...


def int_query(request: web.Request, name: str, default: int | None = None, *, low: int | None = None,
              high: int | None = None) -> int | None:
    """int_query: a query parameter as int (`default` when absent or empty; kept within [low, high]), or a 422
    (400 beyond 64 bits)."""
    text = request.query.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(422, "invalid", f"{name}: cần một số nguyên / must be an integer", field=name) from None
    if not is_int64(value):
        raise bad_number(name)
    if low is not None:
        value = max(low, value)
    if high is not None:
        value = min(high, value)
    return value


def id_query(request: web.Request, name: str) -> int | None:
    """id_query: an id in the query (None when absent or empty), a 422 when not a number, 400 when out of range."""
    value = int_query(request, name)
    return None if value is None else check_id(value, name)


def parse_int(value: Any, name: str = "value") -> int | None:
    """parse_int: a form or query value as int, None when it is empty or not a number (forms and filters); a 400
    naming `name` beyond 64 bits."""
    try:
        number = int(str(value if value is not None else "").strip())
    except ValueError:
        return None
    if not is_int64(number):
        raise bad_number(name)
    return number

API: web.AppKey[ApiRegistry] = web.AppKey("api")
