"""Tests of docs/deploy.md: the live broadcast's nginx caching front is valid nginx (`nginx -t` on exactly the
documented block) and, run in front of a real Taphuan node, caches the public link's HLS files (the node sees one
request per file), passes logged-in viewers' private files and heartbeats through, and serves Range from its cache."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.config import CONFIG
from server.db.models import Role
from tests.nginxfront import NginxFront, check, deploy_block, nginx, render

pytestmark = pytest.mark.skipif(nginx() is None, reason="needs nginx (scripts/test.sh installs it)")


def test_the_documented_block_passes_nginx_t(tmp_path: Path) -> None:
    block = deploy_block()
    assert "proxy_cache_key $uri;" in block and "location /hls/p/" in block
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(block, upstream="127.0.0.1:8080", listen="127.0.0.1:18080", root=tmp_path))
    result = check(conf)
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.conf"  # the check can fail
    broken.write_text(conf.read_text().replace("proxy_cache_lock on;", "proxy_cache_lock maybe;"))
    assert check(broken).returncode != 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_front_caches_public_files_only(app: Any, client: Any, login_as: Any, make_meeting: Any,
                                                  tmp_path: Path) -> None:
    from tests.server.live.test_watch import broadcast

    meeting = await make_meeting()
    rid = await broadcast(app, meeting, ended=False)
    op = await login_as(Role.OPERATOR)
    url = (await (await op.put(f"/api/v1/broadcasts/{meeting.id}/public-link")).json())["url"]
    token = url.split("?k=", 1)[1]
    front = NginxFront(tmp_path / "nginx", f"127.0.0.1:{client.server.port}", _free_port()).start()
    base = f"http://127.0.0.1:{front.port}"
    try:
        async with aiohttp.ClientSession() as http:
            seg = f"{base}/hls/p/{token}/{rid}/720p/seg1.m4s"
            statuses = []
            for _ in range(5):
                async with http.get(seg) as r:
                    assert r.status == 200
                    body = await r.read()
                    statuses.append(r.headers["X-Cache-Status"])
            assert statuses[0] == "MISS" and statuses[1:] == ["HIT"] * 4
            async with http.get(seg, headers={"Range": "bytes=0-99"}) as r:
                assert r.status == 206 and await r.read() == body[:100] and r.headers["X-Cache-Status"] == "HIT"
            async with http.get(f"{base}/hls/p/{token}/{rid}/720p/index.m3u8") as r:
                assert r.headers["Content-Type"] == "application/vnd.apple.mpegurl"
            # A logged-in viewer's private file goes through, never cached.
            cookies = {c.key: c.value for c in op.client.session.cookie_jar}
            for _ in range(2):
                async with http.get(f"{base}/hls/{rid}/720p/seg1.m4s", cookies=cookies) as r:
                    assert r.status == 200 and "X-Cache-Status" not in r.headers
                    assert r.headers["Cache-Control"].startswith("private")
            async with http.get(f"{base}/hls/{rid}/720p/seg1.m4s") as r:
                assert r.status == 401  # no cookie: refused by the node, not answered from a cache
            async with http.get(f"{base}/api/v1/broadcasts/{meeting.id}?k={token}") as r:
                assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    finally:
        front.stop()
    counts = front.cache_statuses()
    assert counts.get("HIT", 0) >= 5 and counts.get("MISS", 0) >= 2
    assert app[CONFIG].data_path.exists()
