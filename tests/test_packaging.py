"""Tests of the installed package: a wheel of the checkout serves from any directory (README "Install as a service").

The wheel is built offline from a copy of the sources, installed with --no-deps into a fresh venv that borrows
this venv's dependencies (one .pth line per site-packages directory, never the checkout), and `taphuan serve`
runs from an empty temporary directory with a relative data_dir in its configuration file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("server", "sfu", "recorder")
NOT_SHIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.egg-info")
NOT_READ_AT_RUN_TIME = (".c", ".h")  # compiled into sfu._fanout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*args: str | Path, timeout: float = 300) -> str:
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{args} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _build_wheel(tmp: Path) -> Path:
    """_build_wheel: a wheel of a copy of the sources (the checkout's own build/ and *.so stay out of it)."""
    from setuptools import __version__ as setuptools_version

    major = int(setuptools_version.split(".")[0])
    if major < 77:
        pytest.fail(f"setuptools {setuptools_version} is older than pyproject.toml's build-system needs (77); "
                    "pip install -c constraints.txt -e '.[test]' installs a newer one")
    src = tmp / "src"
    for top in (*PACKAGES, "web"):
        shutil.copytree(ROOT / top, src / top, symlinks=True, ignore=NOT_SHIPPED)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", tmp / "dist", src)
    (wheel,) = (tmp / "dist").glob("taphuan-*.whl")
    return wheel


def _make_venv(tmp: Path, wheel: Path) -> tuple[Path, Path]:
    """_make_venv: a fresh venv holding the wheel alone, with this venv's dependencies reachable; (bin, site)."""
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    deps = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p) != ROOT]
    (site / "_taphuan_test_deps.pth").write_text("\n".join(deps) + "\n", encoding="utf-8")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "-q", wheel)
    return venv / "bin", site


def _outside_checkout(path: str) -> bool:
    """_outside_checkout: `path` is not the checkout's root nor inside its sources."""
    p = Path(path).resolve()
    return p != ROOT and not any(p.is_relative_to(ROOT / top) for top in (*PACKAGES, "web"))


def _shipped(site: Path) -> list[tuple[Path, Path]]:
    """_shipped: (checkout file, installed file) for every file the server may read at run time."""
    pairs = []
    for top, installed in (*((p, site / p) for p in PACKAGES), ("web", site / "server" / "web")):
        for dirpath, dirnames, filenames in os.walk(ROOT / top):
            dirnames[:] = [d for d in dirnames if d != "__pycache__" and not d.endswith(".egg-info")]
            for name in filenames:
                if name.startswith(".") or name.endswith((".pyc", ".so", *NOT_READ_AT_RUN_TIME)):
                    continue
                path = Path(dirpath, name)
                pairs.append((path, installed / path.relative_to(ROOT / top)))
    return pairs


def test_wheel_serves_from_any_directory(tmp_path: Path) -> None:
    bin_dir, site = _make_venv(tmp_path, _build_wheel(tmp_path))
    missing = [str(src.relative_to(ROOT)) for src, dst in _shipped(site)
               if not dst.is_file() or dst.read_bytes() != src.read_bytes()]
    assert not missing, f"not shipped in the wheel (pyproject.toml package-data): {missing}"

    etc, run_dir = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    run_dir.mkdir()
    port = _free_port()
    config = etc / "config.yaml"
    config.write_text(f"data_dir: data\nserver:\n  port: {port}\nsfu:\n  ice_addresses: [127.0.0.1]\n",
                      encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "PYTHONUNBUFFERED": "1"}

    probe = subprocess.run(
        [bin_dir / "python", "-c", "import json, sys, server, sfu, recorder, server.app; print(json.dumps("
         "{'files': [server.__file__, sfu.__file__, recorder.__file__], 'web': str(server.app.WEB_DIR), "
         "'path': sys.path}))"],
        cwd=run_dir, env=env, capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    seen = json.loads(probe.stdout)
    assert [Path(f).parent for f in seen["files"]] == [site / p for p in PACKAGES], seen
    assert Path(seen["web"]) == site / "server" / "web"
    assert all(_outside_checkout(p) for p in seen["path"] if p), seen["path"]

    proc = subprocess.Popen([bin_dir / "taphuan", "serve", "--config", config], cwd=run_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while time.monotonic() < deadline and not any("Taphuan is running at" in line for line in lines):
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line.rstrip("\n"))
        assert any(f"http://127.0.0.1:{port}/" in line for line in lines), lines
        chatter = [line for line in lines if re.search(r"\b(INFO|DEBUG)\b", line) or "alembic" in line]
        assert not chatter, f"library chatter before the URL line: {chatter}"

        base = f"http://127.0.0.1:{port}"
        assert b'"ok"' in urllib.request.urlopen(f"{base}/healthz", timeout=30).read()
        page = urllib.request.urlopen(f"{base}/login", timeout=30).read().decode()
        assert "Đăng nhập" in page  # the Vietnamese catalog, rendered by a template
        match = re.search(r'href="(/static/app\.css\?v=[^"]+)"', page)
        assert match, page
        served = urllib.request.urlopen(base + match.group(1), timeout=30).read()
        assert served == (site / "server" / "web" / "static" / "app.css").read_bytes()

        proc_dir = Path("/proc") / str(proc.pid)
        if proc_dir.is_dir():  # Linux: what the running server really uses
            assert Path(os.readlink(proc_dir / "cwd")) == run_dir.resolve()
            mapped = {line.split(maxsplit=5)[5] for line in (proc_dir / "maps").read_text().splitlines()
                      if len(line.split(maxsplit=5)) == 6 and line.split(maxsplit=5)[5].startswith("/")}
            assert all(_outside_checkout(path) for path in mapped), sorted(mapped)
        assert (etc / "data" / "taphuan.sqlite3").is_file()  # data_dir is relative to the configuration file
        assert not (run_dir / "data").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
