"""server.inputs: bad input stopped where it enters: ids and integers in range, request bodies that parse.

The database stores 64-bit integers: a larger number reaching a query raised OverflowError (a 500). So every id
that comes from outside (a path, a query, a form, a JSON body, a WebSocket message) is checked here against
1 ≤ id ≤ 2^63−1 (`is_id`, the pydantic type `Id`), and every other integer against the 64-bit range
(`is_int64`; `parse_body` refuses a JSON body holding a larger number anywhere, `json_out_of_range`).

Form and multipart bodies are read through `read_form` and `malformed_body`: a multipart request without a
boundary, a truncated or garbled part, an unknown charset or undecodable text answer 400 `bad-request` naming
the problem, never a 500.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy
from pydantic import Field

from server.errors import ApiError

MAX_ID = 2**63 - 1
MIN_INT = -(2**63)
MAX_PAGE = 1_000_000  # the last page number a listing accepts (its offset stays far within 64 bits)
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""Id: a database id in a pydantic model (1 ≤ id ≤ 2^63−1; else the usual 422 naming the field)."""


def is_int64(value: int) -> bool:
    """is_int64: whether the database can store the integer (−2^63 ≤ value ≤ 2^63−1)."""
    return MIN_INT <= value <= MAX_ID


def is_id(value: object) -> bool:
    """is_id: whether `value` is an int (not a bool) that can be a database id (1 ≤ value ≤ 2^63−1)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def bad_id(name: str) -> ApiError:
    """bad_id: the 400 for an id out of range."""
    return ApiError(400, "bad-request", f"{name}: mã phải từ 1 đến 2^63−1 / an id is between 1 and 2^63-1",
                    field=name)


def bad_number(name: str) -> ApiError:
    """bad_number: the 400 for an integer beyond 64 bits."""
    return ApiError(400, "bad-request", f"{name}: số quá lớn / number out of range (64-bit integers)",
                    field=name)


def check_id(value: int, name: str) -> int:
    """check_id: `value` when it can be an id, else a 400 naming `name`."""
    if not is_id(value):
        raise bad_id(name)
    return value


def json_out_of_range(data: Any, where: str = "") -> str | None:
    """json_out_of_range: the path ("items.2.id", or "body") of the first integer beyond 64 bits in parsed JSON."""
    if isinstance(data, bool):
        return None
    if isinstance(data, int):
        return None if is_int64(data) else (where or "body")
    items: Any = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found = json_out_of_range(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def malformed(problem: object) -> ApiError:
    """malformed: the 400 for a body that cannot be read as its Content-Type says."""
    return ApiError(400, "bad-request", f"Nội dung gửi lên không đọc được. / Malformed request body: {problem}")


# What aiohttp raises for a form or multipart body it cannot read: ValueError (no boundary, a truncated part,
# a part without a name; UnicodeDecodeError), LookupError (an unknown charset), HttpProcessingError (a garbled
# part header).
MALFORMED = (ValueError, LookupError, HttpProcessingError)


@contextmanager
def malformed_body() -> Iterator[None]:
    """malformed_body: reading a multipart body inside this block: what the reader cannot parse becomes a 400."""
    try:
        yield
    except MALFORMED as exc:
        raise malformed(exc) from None


async def read_form(request: web.Request) -> MultiDictProxy[Any]:
    """read_form: `request.post()` (URL-encoded or multipart form), or a 400 when the body is malformed."""
    with malformed_body():
        return await request.post()
