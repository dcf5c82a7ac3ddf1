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

import pytest

from server.config import load_config
from tests.server.test_bus import _free_port

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
    assert kinds == [("ini", ".conf"), ("ini", ".service"), ("nft", ".conf"), ("nginx", ".conf"),
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
