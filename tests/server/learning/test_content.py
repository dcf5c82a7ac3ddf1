"""server.learning.content: the content origin listens beside the site, serves package files at immutable URLs and
the player with its runtime, under its own policy (no connection to the site), and has no site route or cookie."""

from __future__ import annotations

import hashlib
import re
import socket
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from server.app import create_app
from server.auth import COOKIE
from server.config import CONFIG
from server.db.engine import DB
from server.learning import scormrt
from server.learning.content import CONTENT, ContentOrigin, policy
from server.storage import StartupError
from server.tls import self_signed
from tests.server.scorm_helpers import scorm12


async def test_the_content_origin_serves_packages_and_the_player_but_nothing_of_the_site(
        app: web.Application, client: Any, tmp_path: Path, login_as: Any) -> None:
    data = scorm12()
    sha = hashlib.sha256(data).hexdigest()
    path = tmp_path / "goi.zip"
    path.write_bytes(data)
    async with app[DB]() as s:
        pkg = await scormrt.register(s, app[CONFIG], sha, path)
        await s.commit()
    assert pkg.version == "1.2"
    site = str(client.make_url("/")).rstrip("/")
    origin = f"http://127.0.0.1:{app[CONTENT].port}"
    assert app[CONTENT].origin == ""  # not configured: the site's host name with the content port
    assert origin.startswith("http://127.0.0.1:") and origin != site
    someone = await login_as()
    session_cookie = someone.client.session.cookie_jar.filter_cookies(client.make_url("/"))[COOKIE].value
    async with aiohttp.ClientSession(cookies={COOKIE: session_cookie}) as http:
        async with http.get(f"{origin}/pkg/{sha}/sco-1/index.html") as r:
            assert r.status == 200 and r.content_type == "text/html"
            assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            csp = r.headers["Content-Security-Policy"]
            assert "connect-src 'self';" in csp and "'unsafe-eval'" in csp and "object-src 'none'" in csp
            assert "Set-Cookie" not in r.headers
            assert "LMSInitialize" in await r.text()
        async with http.get(f"{origin}/player?site={site}") as r:
            page = await r.text()
            assert r.status == 200 and '<iframe id="sco"' in page
            assert "/rt/scorm-again.min.js?v=" in page and "/rt/scorm-player.js?v=" in page
        async with http.get(f"{origin}/rt/scorm-again.min.js?v=1") as r:
            assert r.status == 200 and "Scorm2004API" in await r.text()
            assert "immutable" in r.headers["Cache-Control"]
        for bad in (f"/pkg/{sha}/%2e%2e/%2e%2e/secrets/session.key", f"/pkg/{sha}/../{sha}/imsmanifest.xml.x",
                    f"/pkg/{'0' * 64}/imsmanifest.xml", "/rt/app.js", "/api/v1/me", "/", "/study",
                    "/static/app.js", "/materials/1/play"):
            async with http.get(origin + bad) as r:
                assert r.status == 404, bad  # no site route, whatever cookie comes along


def test_the_policy_names_the_site_as_the_only_other_framer(make_config: Any) -> None:
    framed = policy(make_config(**{"server.public_url": "https://taphuan.example.vn/"}))
    assert framed.endswith("frame-ancestors 'self' https://taphuan.example.vn")
    assert "connect-src 'self';" in framed and "taphuan.example.vn" not in framed.split("frame-ancestors")[0]


def _nginx_t(tmp_path: Path, server: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"pid {tmp_path}/nginx.pid;\nevents {{}}\nhttp {{\naccess_log off;\n{server}\n}}\n")
    return subprocess.run(["nginx", "-t", "-q", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c",
                           str(conf)], capture_output=True, text=True, timeout=60)


def test_the_nginx_block_of_the_docs_passes_nginx_t(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[3] / "docs" / "learning.md").read_text()
    block = re.search(r"```nginx\n(.*?)```", text, re.S)
    assert block is not None
    cert, key = self_signed(tmp_path / "tls", ["hoclieu.example.vn"])
    server = (block.group(1).replace("/etc/ssl/taphuan/hoclieu.crt", str(cert))
              .replace("/etc/ssl/taphuan/hoclieu.key", str(key)))
    assert server != block.group(1) and "proxy_pass http://127.0.0.1:8081;" in server
    run = _nginx_t(tmp_path, server)
    assert run.returncode == 0, run.stderr
    assert _nginx_t(tmp_path, server.replace("expires max;", "expires forever;")).returncode != 0  # it can fail


def test_without_a_configured_origin_browsers_use_the_site_host_name_and_the_content_port() -> None:
    running = ContentOrigin(origin="", port=41234)
    for host, expected in (("taphuan.local:8080", "http://taphuan.local:41234"), ("[::1]:8080", "http://[::1]:41234"),
                           ("10.0.0.5", "http://10.0.0.5:41234"), ("bad host<>", "http://127.0.0.1:41234")):
        assert running.for_request(make_mocked_request("GET", "/", headers={"Host": host})) == expected
    configured = ContentOrigin(origin="https://hoclieu.example.vn", port=8081, scheme="https")
    assert configured.for_request(make_mocked_request("GET", "/", headers={"Host": "x:1"})) == \
        "https://hoclieu.example.vn"


async def test_a_busy_content_port_stops_start_up_with_one_line(make_config: Any) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        runner = web.AppRunner(create_app(make_config(**{"learning.content_port": port})))
        with pytest.raises(StartupError, match=rf"^learning.content_port 127.0.0.1:{port}: "):
            await runner.setup()
        await runner.cleanup()
