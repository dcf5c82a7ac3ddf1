"""Tests of server.api.uploads: a CSV upload read from a text/csv body or a multipart `file` part, its limit, the
refused types, and the 422 answer listing every row error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from server.api.uploads import IMPORT_MAX_BYTES, import_error_response, read_upload
from server.config import CONFIG, Config
from server.errors import ApiError
from server.i18n import LANG_COOKIE
from server.people.importer import ImportFailed, RowError

LIMIT = 1000  # the limit the test route passes to read_upload


async def upload(request: web.Request) -> web.Response:
    """upload: read an upload (at most LIMIT bytes) and answer what was read, or the error."""
    try:
        data, name = await read_upload(request, LIMIT)
    except ApiError as exc:
        return web.json_response(exc.payload(), status=exc.status)
    return web.json_response({"text": data.decode(), "name": name})


async def failed(request: web.Request) -> web.Response:
    """failed: the answer to an import with two row errors, given out of order."""
    return import_error_response(request, ImportFailed([RowError(7, "thiếu mã", "no code"),
                                                        RowError(3, "cấp không hợp lệ", "bad level")]))


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Any:
    """client: a test client of an app with the two routes (and a small body limit, which uploads ignore)."""
    app = web.Application(client_max_size=100)
    app[CONFIG] = config
    app.router.add_post("/upload", upload)
    app.router.add_get("/failed", failed)
    return await aiohttp_client(app)


async def test_a_csv_body_with_its_file_name(client: Any) -> None:
    r = await client.post("/upload", data="code,name\n01,Hà Nội\n".encode(),
                          headers={"Content-Type": "text/csv", "X-File-Name": "don-vi.csv"})
    assert r.status == 200
    assert await r.json() == {"text": "code,name\n01,Hà Nội\n", "name": "don-vi.csv"}
    r = await client.post("/upload", data=b"x", headers={"Content-Type": "application/vnd.ms-excel",
                                                         "X-File-Name": "a" * 200})
    assert r.status == 200 and (await r.json())["name"] == "a" * 120


async def test_a_multipart_file_part_after_other_fields(client: Any) -> None:
    form = aiohttp.FormData()
    form.add_field("kind", "units")
    form.add_field("file", "mã,tên\nLH1,Lớp một\n".encode(), filename="lop.csv", content_type="text/csv")
    r = await client.post("/upload", data=form)
    assert r.status == 200 and await r.json() == {"text": "mã,tên\nLH1,Lớp một\n", "name": "lop.csv"}
    form = aiohttp.FormData()
    form.add_field("other", b"code,name\n", filename="lop.csv", content_type="text/csv")
    r = await client.post("/upload", data=form)
    assert r.status == 400 and (await r.json())["error"]["code"] == "bad-request"


async def test_other_types_are_refused_with_415(client: Any) -> None:
    for content_type in ("application/json", "text/html", "image/png"):
        r = await client.post("/upload", data=b"{}", headers={"Content-Type": content_type})
        assert r.status == 415, content_type
        assert (await r.json())["error"]["code"] == "unsupported-media-type"


async def test_the_limit_holds_for_every_way_of_sending(client: Any) -> None:
    mb = IMPORT_MAX_BYTES // (1024 * 1024)
    r = await client.post("/upload", data=b"x" * LIMIT, headers={"Content-Type": "text/csv"})
    assert r.status == 200 and len((await r.json())["text"]) == LIMIT

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(11):
            yield b"x" * 100

    bodies: list[tuple[Any, dict[str, str]]] = [
        (b"x" * (LIMIT + 1), {"Content-Type": "text/csv"}),  # read, then refused
        (b"x" * (LIMIT + 70_000), {"Content-Type": "text/csv"}),  # refused by its Content-Length
        (chunks(), {"Content-Type": "text/csv"}),  # no Content-Length
    ]
    form = aiohttp.FormData()
    form.add_field("file", b"x" * (LIMIT + 1), filename="lon.csv", content_type="text/csv")
    bodies.append((form, {}))
    for data, headers in bodies:
        r = await client.post("/upload", data=data, headers=headers)
        assert r.status == 413
        error = (await r.json())["error"]
        assert error["code"] == "too-large" and f"tối đa {mb} MB" in error["message"]


async def test_row_errors_answer_422_in_the_language_of_the_request(client: Any) -> None:
    r = await client.get("/failed")
    assert r.status == 422
    body = await r.json()
    assert body["error"]["code"] == "import-invalid" and body["error"]["message"].startswith("Tệp có 2 lỗi")
    assert body["errors"] == [
        {"row": 3, "message": "cấp không hợp lệ / bad level", "text": "dòng 3: cấp không hợp lệ"},
        {"row": 7, "message": "thiếu mã / no code", "text": "dòng 7: thiếu mã"},
    ]
    client.session.cookie_jar.update_cookies({LANG_COOKIE: "en"})
    body = await (await client.get("/failed")).json()
    assert [e["text"] for e in body["errors"]] == ["row 3: bad level", "row 7: no code"]
