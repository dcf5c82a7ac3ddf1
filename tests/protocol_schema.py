"""protocol_schema: checks signalling messages against docs/protocol.schema.json, the contract of docs/protocol.md.

The scripted participants (tests/live_client.py) check every message they send and receive; the browser tests
check every WebSocket frame Chromium sends or receives (tests/e2e/conftest.py). A message whose `type` the
schema does not list is a violation too.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "protocol.schema.json"

Direction = Literal["client", "server"]


class ProtocolViolation(AssertionError):
    """ProtocolViolation: a message that docs/protocol.schema.json does not allow."""


@cache
def schema() -> dict[str, Any]:
    """schema: docs/protocol.schema.json, parsed."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def _validator(direction: Direction) -> Draft202012Validator:
    # The whole document is the root (its $defs resolve); the $ref picks one direction's entry point.
    root = {**schema(), "$ref": f"#/$defs/{direction}-message"}
    Draft202012Validator.check_schema(root)
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def problem(direction: Direction, message: Any) -> str | None:
    """problem: why `message` (a parsed JSON value) is not a valid `direction` message, or None if it is."""
    error = best_match(_validator(direction).iter_errors(message))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(message)"
    return f"{direction} message {json.dumps(message, ensure_ascii=False)[:300]}: at {where}: {error.message}"


def check(direction: Direction, message: Any) -> None:
    """check: raise ProtocolViolation unless `message` is a valid `direction` message."""
    reason = problem(direction, message)
    if reason is not None:
        raise ProtocolViolation(reason)


def check_text(direction: Direction, text: str | bytes) -> str | None:
    """check_text: `problem` for one WebSocket frame (a frame that is not a JSON text is a problem too)."""
    if isinstance(text, bytes):
        return f"{direction} frame is binary ({len(text)} bytes)"
    try:
        message = json.loads(text)
    except ValueError:
        return f"{direction} frame is not JSON: {text[:200]!r}"
    return problem(direction, message)
