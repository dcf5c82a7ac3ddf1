"""storagetest: storage that refuses to be written, for the tests of storage faults (real file systems, real SQLite).

Tests run as root here, where chmod stops nothing: a directory is made read-only with `chattr +i` (creating or
removing entries in it fails; as root this needs CAP_LINUX_IMMUTABLE), or with chmod when not root. A child process
can get a real read-only mount instead (`read_only_mount_command`: a private mount namespace, nothing to undo).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """read_only: while inside, `path` (a directory) refuses new entries; restored after (skips when impossible)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"no way to make a directory read-only as root here (chattr: {made.stderr.strip()})")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def read_only_mount_command(path: Path, command: list[str]) -> list[str] | None:
    """read_only_mount_command: `command` run with `path` mounted read-only in a private mount namespace (the real
    thing: "Read-only file system"), or None when this machine cannot (no unshare, not root, no CAP_SYS_ADMIN)."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        return None
    probe = subprocess.run([unshare, "-m", "sh", "-c", f"mount --bind '{path}' '{path}' && "
                            f"mount -o remount,bind,ro '{path}'"], capture_output=True)
    if probe.returncode != 0:
        return None
    script = (f"mount --bind '{path}' '{path}' && mount -o remount,bind,ro '{path}' && exec \"$@\"")
    return [unshare, "-m", "sh", "-c", script, "sh", *command]


@contextlib.contextmanager
def write_locked(database: Path) -> Iterator[sqlite3.Connection]:
    """write_locked: another connection holds the SQLite database's write lock (BEGIN EXCLUSIVE) while inside."""
    con = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN EXCLUSIVE")
        yield con
        con.execute("ROLLBACK")
    finally:
        con.close()
