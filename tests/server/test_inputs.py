"""Tests of server.inputs: ids and integers the database cannot hold, and form or multipart bodies that cannot be
read, are a 400 on every route (they were 500s: SQLite's OverflowError, aiohttp's ValueError)."""

from __future__ import annotations

import re

from aiohttp import FormData, web
from sqlalchemy import select

from server.db.engine import DB
from server.db.models import Program, Role
from server.inputs import MAX_ID, is_id, is_int64, json_out_of_range
from tests.server.livetest import Factory

BIG = 2**63
# Path parameters that are not ids (tokens, file names).
NOT_IDS = {"token", "lang", "slot", "filename"}
UPLOADS = ("/api/v1/import/units", "/api/v1/import/classrooms", "/api/v1/meetings/import",
           "/api/v1/programs/{program}/materials", "/api/v1/meetings/{meeting}/documents")


def test_ranges() -> None:
    assert MAX_ID == 2**63 - 1 and is_id(1) and is_id(MAX_ID)
    assert not any(is_id(v) for v in (0, -1, BIG, True, "1", 1.0, None))
    assert is_int64(-(2**63)) and is_int64(MAX_ID) and not is_int64(BIG) and not is_int64(-(2**63) - 1)
    assert json_out_of_range({"a": [1, {"b": -5}], "c": True, "d": 1e300}) is None
    assert json_out_of_range({"a": [1, {"b": BIG}]}) == "a.1.b"
    assert json_out_of_range([0, -BIG - 1]) == "1" and json_out_of_range(BIG) == "body"


def _routes(app: web.Application) -> list[tuple[str, str, dict[str, str]]]:
    """_routes: (method, path template, {path parameter: its pattern}) of every route with a path."""
    out = []
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("formatter") or info.get("path")
        if not path:
            continue
        pattern = info.get("pattern")
        params = dict(re.findall(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))+)\)", pattern.pattern)) if pattern else {}
        for route in resource:
            if route.method in ("HEAD", "*", "OPTIONS"):
                continue
            out.append((route.method, path, params))
    return out


def _skipped(path: str) -> bool:
    # these end the login the sweep runs as
    return path.startswith("/ws") or any(w in path for w in ("logout", "password", "revoke", "sessions"))


async def test_ids_out_of_range_in_paths_and_queries_are_400(app: web.Application, login_as: Factory,
                                                             make_meeting: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    headers = {"X-CSRF-Token": op.csrf, "Accept": "application/json"}
    failures: list[str] = []
    checked = 0
    for method, path, params in _routes(app):
        ids = {name for name, pattern in params.items() if pattern in (r"[^{}/]+", r"\d+")} - NOT_IDS
        if _skipped(path) or not ids:
            continue
        for bad in (BIG, 0, -1):
            url = path
            for name, pattern in params.items():
                value = str(bad) if name in ids else pattern.split("|")[0] if "|" in pattern else "x"  # {action}
                url = url.replace("{" + name + "}", value)
            r = await op.client.request(method, url, headers=headers,
                                        json={} if method != "GET" and path.startswith("/api/") else None)
            body = await r.text()
            routed = all(re.fullmatch(params[name], str(bad)) for name in ids)
            if not routed:  # e.g. -1 where the route takes digits only: no route, a plain 404
                ok = r.status == 404
            elif method in ("POST", "PUT", "PATCH") and r.status == 422:  # the body is checked first
                ok = "invalid" in body
            else:
                ok = r.status == 400 and "bad-request" in body
            if not ok:
                failures.append(f"{method} {url}: {r.status} {body[:120]}")
            checked += 1
    assert checked > 300 and not failures, "\n".join(failures)
    # Ids in queries: 400 naming the parameter; numbers beyond 64 bits anywhere in a query: 400.
    for url in (f"/api/v1/reports/export.csv?report=meeting&id={BIG}", f"/api/v1/units?parent={BIG}",
                "/api/v1/classrooms?unit=-1", f"/api/v1/recordings?meeting_id={BIG}",
                f"/api/v1/forum/unanswered?program_id={BIG}", f"/api/v1/programs/1/materials?meeting_id={BIG}",
                f"/api/v1/reports/meetings?unit_id={BIG}", f"/api/v1/users?limit={BIG}",
                f"/api/v1/classrooms?offset={BIG}"):
        r = await op.get(url)
        assert r.status == 400, (url, r.status, await r.text())
        assert (await r.json())["error"]["code"] == "bad-request"
    for url in (f"/classrooms?unit={BIG}", f"/audit?page={BIG}", f"/reports?unit_id={BIG}"):
        assert (await op.get(url, headers={"Accept": "text/html"})).status == 400, url
    for url in (f"/audit?page={2**62}", f"/classrooms?page={2**62}"):  # a far page is empty, not an overflow
        assert (await op.get(url, headers={"Accept": "text/html"})).status == 200, url
    assert (await op.get(f"/api/v1/meetings/{meeting.id}")).status == 200  # ordinary ids still work


async def test_integers_beyond_64_bits_in_bodies_are_400(app: web.Application, login_as: Factory,
                                                         make_meeting: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting()
    headers = {"X-CSRF-Token": op.csrf, "Accept": "application/json"}
    failures: list[str] = []
    for method, path, _params in _routes(app):
        if method not in ("POST", "PUT", "PATCH") or not path.startswith("/api/") or _skipped(path):
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        r = await op.client.request(method, url, headers=headers, json={"x": [{"y": BIG}]})
        if r.status >= 500 or (r.status == 400) != ("bad-request" in await r.text()):
            failures.append(f"{method} {url}: {r.status}")
    assert not failures, "\n".join(failures)
    r = await op.patch(f"/api/v1/meetings/{meeting.id}", json={"program_id": BIG})
    assert r.status == 400 and (await r.json())["error"]["field"] == "program_id"
    r = await op.patch(f"/api/v1/meetings/{meeting.id}", json={"classroom_ids": [1, -BIG - 1]})
    assert r.status == 400 and (await r.json())["error"]["field"] == "classroom_ids.1"
    # an id a model expects is 1 or more: the usual 422 naming the field
    r = await op.patch(f"/api/v1/meetings/{meeting.id}", json={"presenter_ids": [0]})
    assert r.status == 422 and (await r.json())["error"]["field"] == "presenter_ids.0"
    r = await op.put(f"/api/v1/programs/{meeting.program_id}/learners", json={"user_ids": [-3]})
    assert r.status == 422
    # pages: form fields beyond 64 bits
    r = await op.post("/notifications/read", data={"id": str(BIG)}, headers={"Accept": "text/html"},
                      allow_redirects=False)
    assert r.status == 400
    r = await op.post(f"/study/{meeting.program_id}/people", data={"action": "save", "learner_ids": str(BIG)},
                      headers={"Accept": "text/html"}, allow_redirects=False)
    assert r.status == 422 and "số quá lớn" in await r.text()  # the form shows the error


async def test_multipart_without_boundary_or_garbled_is_400(app: web.Application, login_as: Factory,
                                                            make_meeting: Factory) -> None:
    op = await login_as(Role.OPERATOR)
    meeting = await make_meeting(kind="regional")
    async with app[DB]() as s:
        program = await s.scalar(select(Program).where(Program.id == meeting.program_id))
        assert program is not None
    uploads = [u.format(program=program.id, meeting=meeting.id) for u in UPLOADS]
    garbled = (b"--abc\r\nGarbage\r\n\r\nx\r\n--abc--\r\n",
               b'--abc\r\nContent-Disposition: form-data; name="kind"\r\nContent-Type: text/plain; charset=bogus'
               b"\r\n\r\nplan\r\n--abc--\r\n")
    for url in uploads:
        r = await op.post(url, data=b"file=x", headers={"Content-Type": "multipart/form-data"})
        assert r.status == 400, (url, r.status, await r.text())
        error = (await r.json())["error"]
        assert error["code"] == "bad-request" and "boundary" in error["message"], (url, error)
        for body in garbled:
            r = await op.post(url, data=body, headers={"Content-Type": "multipart/form-data; boundary=abc"})
            assert r.status == 400, (url, body)
    # Forms of the pages, read through the same helper; the CSRF check reads URL-encoded forms first.
    for url in ("/meetings/import", "/notifications/read", f"/meetings/{meeting.id}/headcount", "/classrooms/new"):
        r = await op.post(url, data=b"x", headers={"Content-Type": "multipart/form-data"})
        assert r.status == 400, (url, r.status)
    r = await op.client.post("/notifications/read", data=b"a=b",
                             headers={"Content-Type": "application/x-www-form-urlencoded; charset=bogus"})
    assert r.status == 400
    r = await op.client.post("/notifications/read", data=b"csrf_token=\xff",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 400
    # Nothing was lost: the same import, well formed, works.
    form = FormData()
    form.add_field("file", b"code,name,level,parent_code,valid_from,valid_to\nH1,Huyen Mot,district,14,,2025-06-30\n",
                   filename="u.csv", content_type="text/csv")
    r = await op.post("/api/v1/import/units", data=form)
    assert r.status == 200, await r.text()
