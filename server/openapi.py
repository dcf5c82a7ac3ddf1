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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from aiohttp import web
from pydantic import BaseModel, ValidationError

from server.auth import CSRF_EXEMPT, require
from server.db.models import Role
from server.errors import ApiError
from server.inputs import bad_number, check_id, is_int64, json_out_of_range

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)
Schema = dict[str, Any]

INTEGER: Schema = {"type": "integer", "format": "int64"}
ID: Schema = {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}  # a row id (SQLite's range)
DATE: Schema = {"type": "string", "format": "date"}
TEXT: Schema = {"type": "string"}
FLAG: Schema = {"type": "string", "enum": ["true", "false", "1", "0"]}


def one_of(*values: str) -> Schema:
    """one_of: the schema of a string parameter taking one of `values`."""
    return {"type": "string", "enum": list(values)}


# A query parameter without a schema of its own gets one from its name (integers, days, months, a date or time);
# any other name is free text. An empty value means the same as an absent one (allowEmptyValue).
_QUERY_SCHEMAS: dict[str, Schema] = {
    "limit": INTEGER, "offset": INTEGER, "id": ID, "parent": ID, "unit": ID,
    "since": DATE, "until": DATE, "at": DATE, "today": DATE,
    "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
    "from": {"anyOf": [DATE, {"type": "string", "format": "date-time"}]},
    "to": {"anyOf": [DATE, {"type": "string", "format": "date-time"}]},
}

# What each error status means in the document; every one answers ErrorBody.
_ERROR_TEXT = {
    400: "Malformed request: body not JSON, multipart without a boundary or without its file, a number out of range",
    401: "Not logged in",
    403: "Role not allowed, or the CSRF token missing or wrong",
    404: "Not found (or not visible to the caller)",
    409: "Conflicts with the current state",
    410: "Gone",
    413: "Body too large",
    415: "Unsupported Content-Type",
    416: "Range not satisfiable",
    422: "Invalid input",
    429: "Too many attempts: try again after Retry-After seconds",
    503: "Busy (the database locked, password checks queued) or storage failing: try again after Retry-After",
}
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Upload:
    """Upload: a file upload request body: multipart/form-data with a binary `file` part and the text `fields`
    (name, description); `csv` when a text/csv body is accepted too (the importers)."""

    fields: tuple[tuple[str, str], ...] = ()
    csv: bool = False


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
    schemas: tuple[tuple[str, Schema], ...] = field(default_factory=tuple)
    upload: Upload | None = None
    errors: tuple[int, ...] = ()
    body_optional: bool = False
    partial: bool = False


def endpoint(method: str, path: str, *, name: str, summary: str, roles: Iterable[Role] = (),
             public: bool = False, body: type[BaseModel] | None = None,
             response: type[BaseModel] | None = None, response_list: bool = False, tag: str = "",
             status: int = 200, content_type: str = "application/json",
             query: Iterable[tuple[str, str]] = (), schemas: Mapping[str, Schema] | None = None,
             upload: Upload | None = None, errors: Iterable[int] = (), body_optional: bool = False,
             partial: bool = False) -> Callable[[Handler], Handler]:
    """endpoint: declare an API handler; `roles` empty means any logged-in user, unless `public`.

    `schemas` gives a path or query parameter a schema other than the default (path: an integer id; query:
    from its name, see `_QUERY_SCHEMAS`); `upload` declares a file upload body; `errors` the error statuses
    the handler answers besides those every endpoint of its kind can (400, 401, 403, 404 with a path
    parameter, 413, 415, 422); `body_optional` a JSON body that may be left out; `partial` a file answered
    in part (206) for a Range request.
    """

    def wrap(handler: Handler) -> Handler:
        handler.__endpoint__ = Endpoint(  # type: ignore[attr-defined]
            method=method.upper(), path=path, name=name, summary=summary, handler=handler,
            roles=tuple(roles), public=public, body=body, response=response, response_list=response_list,
            tag=tag, status=status, content_type=content_type, query=tuple(query),
            schemas=tuple((schemas or {}).items()), upload=upload, errors=tuple(errors),
            body_optional=body_optional, partial=partial)
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
        """ApiRegistry.document: the OpenAPI 3.1 document of every endpoint.

        Raises ValueError when two different models would share a component name (one would hide the other).
        """
        paths: dict[str, Any] = {}
        schemas: dict[str, Any] = {}
        owners: dict[str, str] = {}

        def add(name: str, owner: str, schema: Schema) -> None:
            if owners.setdefault(name, owner) != owner:
                raise ValueError(f"two models named {name} in the OpenAPI document: {owners[name]} and {owner}")
            schemas[name] = schema

        def ref(model: type[BaseModel]) -> dict[str, Any]:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                add(name, _owner_of(model, name), sub)
            add(model.__name__, f"{model.__module__}.{model.__qualname__}", schema)
            return {"$ref": f"#/components/schemas/{model.__name__}"}

        error_ref = ref(ErrorBody)
        for ep in sorted(self.endpoints, key=lambda e: (e.path, e.method)):
            op: dict[str, Any] = {"operationId": ep.name, "summary": ep.summary, "tags": [ep.tag or "misc"]}
            params = _parameters(ep)
            if params:
                op["parameters"] = params
            if ep.body is not None:
                op["requestBody"] = {"required": not ep.body_optional,
                                     "content": {"application/json": {"schema": ref(ep.body)}}}
            elif ep.upload is not None:
                op["requestBody"] = _upload_body(ep.upload)
            ok: dict[str, Any] = {"description": "OK" if ep.status != 201 else "Created"}
            if ep.status == 204:
                ok = {"description": "Done (no content)"}
            elif ep.response is not None:
                schema = ref(ep.response)
                if ep.response_list:
                    schema = {"type": "array", "items": schema}
                ok["content"] = {ep.content_type: {"schema": schema}}
            elif ep.content_type != "application/json":
                ok["content"] = {ep.content_type: {"schema": {"type": "string", "format": "binary"}}}
            responses: dict[str, Any] = {str(ep.status): ok}
            if ep.partial:
                responses["206"] = {"description": "Part of the file (Range request)", "content": ok["content"]}
            for code in _error_statuses(ep):
                responses[str(code)] = {"description": _ERROR_TEXT[code],
                                        "content": {"application/json": {"schema": error_ref}}}
            op["responses"] = responses
            if ep.public:
                # an anonymous unsafe request (the login) carries the double-submit CSRF cookie and header; one
                # exempt from CSRF (a bearer token's request: clients that are not browsers) carries nothing
                unsafe = ep.method in _UNSAFE and ep.path not in CSRF_EXEMPT
                op["security"] = [{"anonymousCsrf": [], "csrf": []}] if unsafe else []
            else:
                roles = ", ".join(r.value for r in ep.roles) or "any logged-in user"
                op["description"] = f"Roles: {roles}."
                if ep.method not in _UNSAFE:
                    op["security"] = [{"cookie": []}]
            paths.setdefault(_openapi_path(ep.path), {})[ep.method.lower()] = op
        return {
            "openapi": "3.1.0",
            "info": {"title": title, "version": version,
                     "description": "JSON API of Taphuan. Errors: {\"error\": {\"code\", \"message\"}}. "
                                    "A request that changes something (POST, PUT, PATCH, DELETE) carries the "
                                    "login's CSRF token (from POST /api/v1/login) in the X-CSRF-Token header. "
                                    "JSON bodies are commands: an unknown key is refused (422)."},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "cookie": {"type": "apiKey", "in": "cookie", "name": "taphuan_login"},
                    "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token"},
                    "bearer": {"type": "http", "scheme": "bearer",
                               "description": "A token from POST /api/v1/tokens (clients that are not browsers)"},
                    "anonymousCsrf": {"type": "apiKey", "in": "cookie", "name": "taphuan_csrf",
                                      "description": "GET /api/v1/csrf sets it; send its value in X-CSRF-Token"},
                },
            },
            "security": [{"cookie": [], "csrf": []}, {"bearer": []}],
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


def _owner_of(model: type[BaseModel], name: str) -> str:
    """_owner_of: the qualified name of the model `name` that `model` refers to (a field's model or enum)."""
    seen: set[type] = set()
    todo: list[Any] = [model]
    while todo:
        kind = todo.pop()
        if not isinstance(kind, type) or kind in seen:
            todo.extend(getattr(kind, "__args__", ()))
            continue
        seen.add(kind)
        if kind.__name__ == name and kind is not model:
            return f"{kind.__module__}.{kind.__qualname__}"
        if issubclass(kind, BaseModel):
            todo.extend(f.annotation for f in kind.model_fields.values())
    return name


def _parameters(ep: Endpoint) -> list[dict[str, Any]]:
    given = dict(ep.schemas)
    params: list[dict[str, Any]] = [{"name": p, "in": "path", "required": True, "schema": given.get(p, ID)}
                                    for p in _path_params(ep.path)]
    params += [{"name": q, "in": "query", "required": False, "allowEmptyValue": True, "description": d,
                "schema": given.get(q) or _QUERY_SCHEMAS.get(q) or (ID if q.endswith("_id") else TEXT)}
               for q, d in ep.query]
    return params


def _upload_body(upload: Upload) -> dict[str, Any]:
    properties: dict[str, Any] = {"file": {"type": "string", "format": "binary"}}
    properties.update({name: {"type": "string", "description": text} for name, text in upload.fields})
    content: dict[str, Any] = {"multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                                                  "properties": properties}}}
    if upload.csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"required": True, "content": content}


def _error_statuses(ep: Endpoint) -> list[int]:
    """_error_statuses: the error statuses an endpoint can answer: those its kind implies, and its own."""
    out = set(ep.errors)
    takes_input = ep.body is not None or ep.upload is not None
    if takes_input or ep.query or "{" in ep.path:
        out.add(400)  # malformed input: not JSON, multipart without a boundary, an integer out of range
    if takes_input:
        out |= {413, 415, 422}
    if ep.query:
        out.add(422)
    if not ep.public or ep.method in _UNSAFE:
        out.add(403)  # a role not allowed, or (unsafe methods) the CSRF token missing
    if not ep.public:
        out.add(401)
    if "{" in ep.path or any(p["schema"] is ID for p in _parameters(ep)):
        out.add(404)  # the id in the path, or a query parameter's, names nothing the caller may see
    out.add(503)  # any request may find the database locked or the disk failing (server.errors)
    return sorted(out)


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
