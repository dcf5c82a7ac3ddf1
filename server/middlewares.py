"""server.middlewares: request id and access log, errors as JSON (API) or a page, security headers.

Order in `create_app`: request_id → errors → security_headers → auth → csrf → handler. Every error a
handler raises becomes `{"error": {"code", "message"}}` with a 4xx/5xx status for API clients, or the
`error.html` page for browsers; an unexpected exception is logged with the request id and returns 500
without details.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from server.errors import ApiError
from server.metrics import METRICS

log = logging.getLogger("taphuan.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_STATUS_CODES = {
    400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
    405: "method-not-allowed", 409: "conflict", 410: "gone", 413: "too-large", 415: "unsupported-media-type",
    422: "invalid", 429: "rate-limited",
}


def wants_json(request: web.Request) -> bool:
    """wants_json: API paths, WebSocket and non-HTML clients get JSON errors."""
    if request.path.startswith("/api/") or request.path in ("/ws", "/healthz"):
        return True
    accept = request.headers.get("Accept", "")
    return "text/html" not in accept


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """request_id_middleware: tag the request with an id (or the proxy's X-Request-Id) and log it."""
    rid = request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(8)
    request[REQUEST_ID] = rid
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-Id"] = rid
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[METRICS].http_requests.labels(status=str(status)).inc()
        if request.path not in ("/metrics", "/healthz"):
            log.info("%s %s %s", request.method, request.path, status,
                     extra={"request_id": rid, "ms": round((time.perf_counter() - start) * 1000, 1),
                            "remote": request.remote})


async def _error_response(request: web.Request, status: int, code: str, message: str,
                          payload: dict[str, object] | None = None) -> web.StreamResponse:
    if wants_json(request):
        body = payload or {"error": {"code": code, "message": message}}
        return web.json_response(body, status=status)
    try:
        from server.pages.context import template_context

        context = await template_context(request)
        context.update({"status": status, "code": code, "message": message})
        return aiohttp_jinja2.render_template("error.html", request, context, status=status)
    except Exception:  # templates missing or broken: plain text still tells the user
        log.exception("error page failed")
        return web.Response(text=f"{status}: {message}", status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """error_middleware: turn every error into the documented error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        resp = await _error_response(request, exc.status, exc.code, exc.message, exc.payload())
        for name, value in exc.headers.items():
            if name.lower() in ("retry-after", "allow"):
                resp.headers[name] = value
        return resp
    except web.HTTPRedirection:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "error")
        message = exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason
        if exc.status == 413:
            message = "Nội dung gửi lên quá lớn. / Request body too large."
        resp = await _error_response(request, exc.status, code, message or code)
        if "Allow" in exc.headers:  # a 405 names the methods the resource has (RFC 9110)
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except HttpProcessingError:  # a body aiohttp's parsers refuse, e.g. a multipart part with broken headers
        return await _error_response(request, 400, "bad-request",
                                     "Nội dung gửi lên sai định dạng. / The request body is malformed.")
    except Exception:
        log.exception("unhandled error", extra={"request_id": request.get(REQUEST_ID)})
        return await _error_response(request, 500, "internal",
                               "Lỗi máy chủ; đã ghi nhật ký. / Server error; it has been logged.")


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """security_headers_middleware: no framing by others, no sniffing, strict referrer."""
    response = await handler(request)
    if not response.prepared:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
    return response

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
