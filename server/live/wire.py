"""server.live.wire: what every signalling handler shares: the error type, field checks, the moderator roles.

The route record (`Route`) is in server.live.connection; server.live.signalling says where each area's handlers are.
"""

from __future__ import annotations

import re
from typing import Any

from server.db.models import Role
from server.inputs import is_id, is_int64

MODERATORS = frozenset({Role.OPERATOR, Role.TRAINER, Role.LEADER})
FORBIDDEN = "Vai trò của bạn không được phép làm việc này. / Your role may not do this."
LONE_SURROGATE = "Chuỗi chứa ký tự không hợp lệ (nửa cặp UTF-16). / A string holds a lone UTF-16 surrogate."
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class SignalError(Exception):
    """SignalError: a refused request; becomes an `error` message with `code` and `message`."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.extra = extra  # more fields of the error (e.g. `url` of `moved`)


def field(msg: dict[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    """field: `msg[name]` if it has the expected type (bool is not an int; an int within 64 bits), else SignalError
    bad-message."""
    if name not in msg or msg[name] is None:
        if optional:
            return None
        raise SignalError("bad-message", f"thiếu trường {name} / missing field {name!r}")
    value = msg[name]
    if isinstance(value, bool) and kind is int:
        raise SignalError("bad-message", f"{name} must be an integer")
    if not isinstance(value, kind):
        raise SignalError("bad-message", f"trường {name} sai kiểu / field {name!r} has the wrong type")
    if isinstance(value, int) and not is_int64(value):
        raise SignalError("bad-message", f"trường {name}: số quá lớn / field {name!r} is out of range (64-bit)")
    return value


def id_field(msg: dict[str, Any], name: str) -> int:
    """id_field: `msg[name]` as a database id (1 ≤ id ≤ 2^63−1, `server.inputs.is_id`), else bad-message."""
    value = field(msg, name, int)
    if not is_id(value):
        raise SignalError("bad-message", f"trường {name}: mã từ 1 đến 2^63−1 / field {name!r}: an id is 1 to 2^63-1")
    return int(value)


def lone_surrogate(value: Any) -> bool:
    """lone_surrogate: whether a parsed JSON value holds a string, key or value, with a lone UTF-16 surrogate
    (`"\\ud800"`: valid JSON, but no text; it cannot be written as UTF-8 or stored).

    json.loads joins a valid pair into one character, and text that arrived as UTF-8 has none: a surrogate left in
    a string came from a lone `\\uD800`-`\\uDFFF` escape (so a message without `\\u` need not be walked).
    """
    stack = [value]
    while stack:  # iterative: the nesting depth is the sender's choice
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


LINK_PREFIX = "link-"  # the ids of a cascade's relay participants: link-<the other node> (server.live.cascade)


def is_link(participant_id: str | None) -> bool:
    """is_link: is this a cascade's relay participant (one end of a link between nodes), no one to show?"""
    return bool(participant_id) and str(participant_id).startswith(LINK_PREFIX)
