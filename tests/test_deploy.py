"""Tests of docs/deploy.md: every configuration block in it (a fenced block whose first line is `# file: PATH`) is
checked by the tool that will read it: the systemd unit with `systemd-analyze verify`, nginx sites with `nginx -t`,
the firewall with `nft -c`, coturn's file by starting coturn on it, Taphuan's own with its configuration loader.
Paths that exist only on a server (the certificate, the installed command) are pointed at stand-ins here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.config import CONFIG, load_config
from server.db.models import Role
from tests.nginxfront import NginxFront, check, deploy_block, nginx, render
from tests.server.test_bus import _free_port

needs_nginx = pytest.mark.skipif(nginx() is None, reason="needs nginx (scripts/test.sh installs it)")

ROOT = Path(__file__).resolve().parents[1]
CERT = "/etc/letsencrypt/live/taphuan.example.vn/"


def blocks() -> list[tuple[str, str, str]]:
    """blocks: (language, target path, text) of every configuration block of docs/deploy.md."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    out = []
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", text, re.S):
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            out.append((lang, first.removeprefix("# file: ").split()[0], body))
    return out


def of_kind(lang: str, suffix: str = "") -> list[tuple[str, str]]:
    return [(path, body) for kind, path, body in blocks() if kind == lang and path.endswith(suffix)]


def tool(name: str) -> str:
    exe = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.path.exists(p)), None)
    assert exe, f"{name} is required (scripts/test.sh installs it)"
    return exe


def test_every_block_is_one_this_module_checks() -> None:
    kinds = sorted((lang, Path(path).suffix) for lang, path, _ in blocks())
    assert kinds == [("ini", ".conf"), ("ini", ".env"), ("ini", ".service"), ("nft", ".conf"), ("nginx", ".conf"),
                     ("nginx", ".conf"), ("yaml", ".yaml")], kinds


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    [(path, body)] = of_kind("ini", ".service")
    command = tmp_path / "taphuan"  # the installed command, a stand-in here
    command.write_text("#!/bin/sh\n", encoding="utf-8")
    command.chmod(0o755)
    assert "/opt/taphuan/bin/taphuan serve" in body
    unit = tmp_path / Path(path).name
    unit.write_text(body.replace("/opt/taphuan/bin/taphuan", str(command)), encoding="utf-8")
    done = subprocess.run([tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_nginx_sites_pass_nginx_t(tmp_path: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=taphuan.example.vn", "-keyout", str(tmp_path / "privkey.pem"), "-out",
                    str(tmp_path / "fullchain.pem")], check=True, capture_output=True, timeout=60)
    sites = of_kind("nginx")
    assert len(sites) == 2
    for n, (_, body) in enumerate(sites):
        site = tmp_path / f"site{n}.conf"
        site.write_text(body.replace(CERT, f"{tmp_path}/"), encoding="utf-8")
        main = tmp_path / f"nginx{n}.conf"
        main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
                        f"http {{\n  access_log off;\n  include {site};\n}}\n", encoding="utf-8")
        done = subprocess.run([tool("nginx"), "-t", "-q", "-p", str(tmp_path), "-c", str(main)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


def test_the_firewall_rules_parse(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("nft -c needs root (scripts/test.sh runs as root)")
    [(_, body)] = of_kind("nft")
    rules = tmp_path / "nftables.conf"
    rules.write_text(body, encoding="utf-8")
    done = subprocess.run([tool("nft"), "-c", "-f", str(rules)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "udp dport 40000-40999 accept" in body  # the SFU's range, as the yaml block sets it
    [(_, yaml)] = of_kind("yaml")
    assert 'udp_ports: "40000-40999"' in yaml


def test_coturn_starts_on_its_file(tmp_path: Path) -> None:
    [(_, body)] = of_kind("ini", "turnserver.conf")
    conf = tmp_path / "turnserver.conf"
    conf.write_text(body, encoding="utf-8")
    port = _free_port()
    proc = subprocess.Popen([tool("turnserver"), "-c", str(conf), "--listening-ip", "127.0.0.1", "--listening-port",
                             str(port), "--no-tls", "--no-dtls", "--log-file", "stdout", "--pidfile",
                             str(tmp_path / "turn.pid"), "--min-port", "49160", "--max-port", "49170"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(1.5)
        assert proc.poll() is None, "coturn stopped"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert "Default realm: turn.example.vn" in out, out
    assert "Bad configuration" not in out and "CONFIG ERROR" not in out, out


def test_the_node_configuration_loads(tmp_path: Path) -> None:
    [(_, body)] = of_kind("yaml")
    path = tmp_path / "config.yaml"
    path.write_text(body, encoding="utf-8")
    config = load_config(path, env={})
    assert (config.bus.kind, config.cluster.node_id, config.cluster.url) == ("redis", "a",
                                                                            "https://taphuan.example.vn")
    assert config.database_url.startswith("postgresql+asyncpg://")
    assert config.cluster.edge_above == 60  # one meeting across nodes above 60 participants (docs/sfu.md, Cascade)


def test_the_secrets_file_gives_every_node_the_same_keys(tmp_path: Path) -> None:
    [(path, env_file)] = of_kind("ini", ".env")
    [(_, unit)] = of_kind("ini", ".service")
    assert f"EnvironmentFile=-{path}" in unit  # the unit reads it (when it exists: one node needs none)
    env = dict(line.split("=", 1) for line in env_file.splitlines() if line and not line.startswith("#"))
    [(_, body)] = of_kind("yaml")
    node = tmp_path / "config.yaml"
    node.write_text(body, encoding="utf-8")
    config = load_config(node, env=env)
    assert (config.secrets.session_key, config.secrets.link_key) == (env["TAPHUAN_SECRETS__SESSION_KEY"],
                                                                    env["TAPHUAN_SECRETS__LINK_KEY"])
    assert config.secrets.session_key != config.secrets.link_key


# --- the live broadcast's caching front (its block has no `# file:` line: it is checked here, and run)

@needs_nginx
def test_the_documented_block_passes_nginx_t(tmp_path: Path) -> None:
    block = deploy_block()
    assert "proxy_cache_key \"$uri $arg__HLS_msn $arg__HLS_part\";" in block and "location /hls/p/" in block
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(block, upstream="127.0.0.1:8080", listen="127.0.0.1:18080", root=tmp_path))
    result = check(conf)
    assert result.returncode == 0, result.stderr
    broken = tmp_path / "broken.conf"  # the check can fail
    broken.write_text(conf.read_text().replace("proxy_cache_lock on;", "proxy_cache_lock maybe;"))
    assert check(broken).returncode != 0


@needs_nginx
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
