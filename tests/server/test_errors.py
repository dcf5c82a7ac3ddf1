"""Tests of server.errors: ApiError's status, code, message and extra fields in the documented shape."""

from __future__ import annotations

from aiohttp import web

from server.errors import ApiError


def test_payload_is_the_documented_error_shape() -> None:
    exc = ApiError(409, "conflict", "Trùng lịch. / Schedule conflict.")
    assert exc.status == 409 and exc.status_code == 409
    assert exc.payload() == {"error": {"code": "conflict", "message": "Trùng lịch. / Schedule conflict."}}


def test_extra_fields_go_inside_the_error() -> None:
    exc = ApiError(422, "invalid", "Sai. / Wrong.", field="title", conflicts=[{"id": 3}])
    assert exc.payload() == {"error": {"code": "invalid", "message": "Sai. / Wrong.", "field": "title",
                                       "conflicts": [{"id": 3}]}}


def test_it_is_an_http_exception_aiohttp_can_send() -> None:
    exc = ApiError(429, "rate-limited", "Chậm lại. / Slow down.")
    assert isinstance(exc, web.HTTPException)
    exc.headers["Retry-After"] = "7"  # handlers add headers; the error middleware passes some on
    assert exc.headers["Retry-After"] == "7"
    assert ApiError(404, "not-found", "x").status == 404  # the status is per instance, not per class
    assert exc.status == 429
