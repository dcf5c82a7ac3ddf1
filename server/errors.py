"""server.errors: the one error type handlers raise; rendered as {"error": {"code", "message"}}."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class ApiError(web.HTTPException):
    """ApiError: an HTTP error with a stable machine code and a human message (Vietnamese / English)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        self.status_code = status
        super().__init__(reason=None)
        self.code = code
        self.message = message
        self.extra = extra

    def payload(self) -> dict[str, Any]:
        """ApiError.payload: the JSON body."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body.update(self.extra)
        return {"error": body}
