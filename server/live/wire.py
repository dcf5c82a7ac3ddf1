"""server.live.wire: what every signalling handler shares: the error type, field checks, the route record.

The handlers live by area (server.live.signalling for media and the room, server.live.chat, server.live.polls,
server.live.lobby); each area exports a ROUTES table that server.live.signalling merges.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from server.db.models import Role

if TYPE_CHECKING:
    from server.live.signalling import Connection

MODERATORS = frozenset({Role.OPERATOR, Role.TRAINER, Role.LEADER})
FORBIDDEN = "Vai trò của bạn không được phép làm việc này. / Your role may not do this."


class SignalError(Exception):
    """SignalError: a refused request; becomes an `error` message with `code` and `message`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def field(msg: dict[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    """field: `msg[name]` if it has the expected type (bool is not an int), else SignalError bad-message."""
    if name not in msg or msg[name] is None:
        if optional:
            return None
        raise SignalError("bad-message", f"thiếu trường {name} / missing field {name!r}")
    value = msg[name]
    if isinstance(value, bool) and kind is int:
        raise SignalError("bad-message", f"{name} must be an integer")
    if not isinstance(value, kind):
        raise SignalError("bad-message", f"trường {name} sai kiểu / field {name!r} has the wrong type")
    return value


Handler = Callable[["Connection", dict[str, Any]], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Route:
    """Route: how one request type is handled: who may send it and whether it needs a room."""

    handler: Handler
    roles: frozenset[Role] | None = None
    joined: bool = True
