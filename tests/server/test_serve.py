"""Tests of `taphuan serve` as a real process: first-run password, TLS self-signed, clean SIGTERM/SIGINT, one-line
start-up errors for storage that cannot be written."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server.storagetest import read_only, read_only_mount_command

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(data_dir: Path, port: int, *extra_env: tuple[str, str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHUAN_")}
    env.update({"TAPHUAN_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    env.update(dict(extra_env))
    return subprocess.Popen([sys.executable, "-m", "server.cli", "--config", str(ROOT / "config.yaml"), "serve",
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line.rstrip("\n"))
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; got: {lines}")


def _stop(proc: subprocess.Popen[str], sig: int) -> float:
    start = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=20)
    return time.monotonic() - start


def test_first_run_prints_password_once_and_sigterm_is_clean(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path / "data", port)
    try:
        lines = _read_until(proc, "left out of garbage collection")
        assert any(f"http://127.0.0.1:{port}/" in line for line in lines)
        assert any("password:" in line for line in lines)
        # the start-up heap is frozen out of the collector's full passes (each would stop the loop ~0.1 s)
        frozen = next(int(line.rsplit(":", 1)[1]) for line in lines if "left out of garbage collection" in line)
        assert frozen > 50_000
        password = next(line.split("password:")[1].strip() for line in lines if "password:" in line)
        assert len(password) >= 12
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
        assert b'"ok"' in body
    finally:
        elapsed = _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0
    assert elapsed < 5, f"shutdown took {elapsed:.1f} s"

    proc = _start(tmp_path / "data", port)
    try:
        lines = _read_until(proc, "running at")
        time.sleep(0.5)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
    finally:
        _stop(proc, signal.SIGINT)
    rest = proc.stdout.read() if proc.stdout else ""
    assert "password:" not in "\n".join(lines) + rest
    assert proc.returncode == 0


def test_tls_self_signed(tmp_path: Path) -> None:
    port = _free_port()
    proc = _start(tmp_path / "data", port, ("TAPHUAN_SERVER__TLS", "self-signed"))
    try:
        lines = _read_until(proc, "running at")
        assert any(f"https://127.0.0.1:{port}/" in line for line in lines)
        ctx = ssl.create_default_context(cafile=str(tmp_path / "data" / "tls" / "self-signed.crt"))
        body = urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10, context=ctx).read()
        assert b'"ok"' in body
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):  # no plain http
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
    finally:
        _stop(proc, signal.SIGTERM)
    assert proc.returncode == 0


def test_bad_config_stops_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sfu:\n  grid_slots: lots\n")
    out = subprocess.run([sys.executable, "-m", "server.cli", "--config", str(bad), "serve"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and "sfu.grid_slots" in err[0]


def test_check_config(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "server.cli", "check-config", str(ROOT / "config.yaml")], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  colour: blue\n")
    out = subprocess.run([sys.executable, "-m", "server.cli", "check-config", str(bad)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "server.colour: unknown key" in out.stderr


def _serve_once(data_dir: Path,
                wrap: Callable[[list[str]], list[str]] = lambda c: c) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAPHUAN_")}
    env.update({"TAPHUAN_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    command = [sys.executable, "-m", "server.cli", "--config", str(ROOT / "config.yaml"), "serve", "--port",
               str(_free_port())]
    return subprocess.run(wrap(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "running at" not in out.stdout
    [line] = out.stderr.strip().splitlines()
    return line


def test_a_read_only_data_directory_stops_start_up_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    command = read_only_mount_command(data, ["true"])
    if command is not None:  # a real read-only mount, in the child's own mount namespace
        line = _one_line(_serve_once(data, lambda c: read_only_mount_command(data, c) or c))
        assert line == f"taphuan: cannot start: data directory {data}: cannot write in it (Read-only file system)"
    with read_only(data):  # (chattr +i as root): the same one line
        line = _one_line(_serve_once(data))
    assert line.startswith(f"taphuan: cannot start: data directory {data}: cannot write in it (")


def test_a_file_for_a_directory_or_a_broken_database_stops_start_up_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    line = _one_line(_serve_once(tmp_path / "data"))
    assert line == f"taphuan: cannot start: data directory {tmp_path / 'data'}: cannot create it (File exists)"
    data = tmp_path / "other"
    (data / "taphuan.sqlite3").mkdir(parents=True)  # a directory where the database should be
    line = _one_line(_serve_once(data))
    assert line.startswith(f"taphuan: cannot start: database sqlite+aiosqlite:///{data / 'taphuan.sqlite3'}: ")
