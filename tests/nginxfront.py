"""nginxfront: the nginx caching front of docs/deploy.md ("Live broadcast behind nginx caches"), run for real.

`deploy_block()` reads the documented block as it is; `render` puts it in a whole nginx.conf with its node
(`upstream`), its `listen` and its files (cache, logs, pid) moved into a directory of the caller's; `NginxFront`
runs it (as the current user) until `stop()`. Used by tests/test_deploy.py and bench/broadcast.py, so both run
exactly what the documentation tells operators to install.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"
HEADING = "## Live broadcast behind nginx caches"


def deploy_block() -> str:
    """deploy_block: the nginx block of the section, exactly as documented."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split(HEADING, 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```nginx\n(.*?)```", section, re.S)
    if found is None:
        raise ValueError("no nginx block in docs/deploy.md's live broadcast section")
    return found.group(1)


def render(block: str, *, upstream: str, listen: str, root: Path, workers: int = 1) -> str:
    """render: a whole nginx.conf running `block` against `upstream` on `listen`, its files under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    out = block.replace("/var/lib/nginx/taphuan-live", str(root / "cache"))
    out = out.replace("/var/log/nginx/taphuan-live.log", str(root / "logs" / "access.log"))
    out, n = re.subn(r"server 127\.0\.0\.1:8080;", f"server {upstream};", out)
    if n != 1:
        raise ValueError("the block's upstream server line changed: update tests/nginxfront.py")
    out, n = re.subn(r"listen 80;", f"listen {listen};", out)
    if n != 1:
        raise ValueError("the block's listen line changed: update tests/nginxfront.py")
    temp = root / "tmp"
    temp.mkdir(exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""  # as root, workers would run as nobody: not in our dir
    return (f"{user}worker_processes {workers};\npid {root / 'nginx.pid'};\n"
            f"error_log {root / 'logs' / 'error.log'} warn;\n"
            f"events {{ worker_connections 16384; }}\n"
            f"http {{\n  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
            f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
            f"  types {{ application/vnd.apple.mpegurl m3u8; video/mp4 mp4; }}\n{out}\n}}\n")


def nginx() -> str | None:
    """nginx: the nginx binary (Debian's /usr/sbin/nginx), None when not installed."""
    return shutil.which("nginx") or (str(Path("/usr/sbin/nginx")) if Path("/usr/sbin/nginx").exists() else None)


def check(conf: Path) -> subprocess.CompletedProcess[str]:
    """check: `nginx -t` on a configuration file."""
    binary = nginx()
    assert binary is not None
    return subprocess.run([binary, "-t", "-c", str(conf), "-p", str(conf.parent)], capture_output=True, text=True,
                          timeout=30)


@dataclass
class NginxFront:
    """NginxFront: the documented front running in `root`, in front of `upstream`, on 127.0.0.1:`port`."""

    root: Path
    upstream: str
    port: int
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def log(self) -> Path:
        """NginxFront.log: its access log (with the cache status of each request)."""
        return self.root / "logs" / "access.log"

    def start(self) -> NginxFront:
        """NginxFront.start: write the configuration, check it and run nginx in the foreground (own process)."""
        conf = self.root / "nginx.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(render(deploy_block(), upstream=self.upstream, listen=f"127.0.0.1:{self.port}",
                               root=self.root, workers=self.workers))
        result = check(conf)
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        binary = nginx()
        assert binary is not None
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.root), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {(self.root / 'logs' / 'error.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError("nginx did not listen")

    def cache_statuses(self) -> dict[str, int]:
        """NginxFront.cache_statuses: how many requests the log shows per cache status (HIT, MISS, …, "-")."""
        counts: dict[str, int] = {}
        try:
            lines = self.log.read_text().splitlines()
        except OSError:
            return counts
        for line in lines:
            parts = line.split()
            if len(parts) >= 2:
                counts[parts[-2]] = counts.get(parts[-2], 0) + 1
        return counts

    def stop(self) -> None:
        """NginxFront.stop: stop nginx."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
