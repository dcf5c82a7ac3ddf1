"""pgserver: a real PostgreSQL server for the storage tests, started once per test run (like redis-server).

`PgServer.start(folder)` runs Debian's `initdb` and `postgres` (the `postgresql` package: scripts/test.sh installs
it) on a Unix socket in a fresh directory, no TCP port. PostgreSQL refuses to run as root: as root the cluster
belongs to the `postgres` account the package creates (else `nobody`) and both commands run through `runuser`.
Durability is off (fsync, synchronous_commit, full_page_writes): the cluster lives as long as the run.

A run killed before it could stop its cluster leaves it to the next run, which stops and removes it.

`server.new_database()` creates an empty database and returns its SQLAlchemy async URL
(`postgresql+asyncpg://…?host=<socket dir>`); `server.migrated_database()` one at every migration head, copied
from a template migrated once (a copy takes milliseconds, a migration seconds).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

USER = "taphuan"  # the cluster's superuser (trust authentication on its private socket)
PREFIX = "taphuan-pg-"  # the cluster's directory in the temp dir: taphuan-pg-<pytest's pid>-<random>


def binaries() -> Path | None:
    """binaries: the directory of initdb and postgres (the newest installed major version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("postgres")
    return Path(exe).parent if exe else None


def remove_stale() -> None:
    """remove_stale: stop and remove the clusters of runs that no longer exist (a run killed with SIGKILL cannot
    stop its own: its directory names its process id)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        try:
            owner = int(folder.name[len(PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if owner == os.getpid() or Path(f"/proc/{owner}").exists():
            continue
        pid_file = folder / "data" / "postmaster.pid"
        try:
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)  # immediate shutdown
        except (OSError, ValueError, IndexError):
            pass
        shutil.rmtree(folder, ignore_errors=True)


def _capture(failed: list[BaseException], fn: object) -> None:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:  # handed to the caller's thread
        failed.append(exc)


def migrate_database(url: str) -> None:
    """migrate_database: the database at `url` migrated to every head, in a thread of its own (a test's event loop
    may be running in this one); what failed is raised here."""
    import asyncio
    import threading

    from server.db.engine import make_engine, migrate

    async def run() -> None:
        engine = make_engine(url)
        try:
            await migrate(engine)
        finally:
            await engine.dispose()

    failed: list[BaseException] = []
    thread = threading.Thread(target=lambda: _capture(failed, lambda: asyncio.run(run())))
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


class PgServer:
    """PgServer: one running PostgreSQL cluster in `folder` (socket and data), stopped by `stop()`."""

    def __init__(self, folder: Path, bindir: Path, proc: subprocess.Popen[bytes], run_as: list[str]) -> None:
        self.folder, self.bindir, self.proc, self.run_as = folder, bindir, proc, run_as
        self._names = itertools.count(1)
        self._template: str | None = None

    @classmethod
    def start(cls) -> PgServer:
        """PgServer.start: initdb + postgres in a new directory under the system's temp dir (readable by the
        cluster's account, which the pytest temp dirs of root are not); waits until it accepts connections."""
        bindir = binaries()
        assert bindir, "PostgreSQL is required for the storage tests (scripts/test.sh installs `postgresql`)"
        remove_stale()
        folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                account = pwd.getpwnam("nobody")
            os.chown(folder, account.pw_uid, account.pw_gid)
            run_as = ["runuser", "-u", account.pw_name, "--"]
        data = folder / "data"
        made = subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", USER, "-A", "trust",
                               "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], capture_output=True, text=True)
        assert made.returncode == 0, f"initdb failed: {made.stderr.strip()}"
        log = open(folder / "postgres.log", "wb")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [*run_as, str(bindir / "postgres"), "-D", str(data), "-k", str(folder), "-c", "listen_addresses=",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200", "-c", "shared_buffers=32MB"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        server = cls(folder, bindir, proc, run_as)
        deadline = time.monotonic() + 60
        while server.psql("postgres", "SELECT 1").returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise AssertionError("postgres did not start: "
                                     + (folder / "postgres.log").read_text(errors="replace")[-2000:])
            time.sleep(0.1)
        return server

    def psql(self, database: str, sql: str) -> subprocess.CompletedProcess[str]:
        """PgServer.psql: run one SQL command with psql (as the cluster's superuser)."""
        return subprocess.run([str(self.bindir / "psql"), "-h", str(self.folder), "-U", USER, "-d", database,
                               "-v", "ON_ERROR_STOP=1", "-qAtc", sql], capture_output=True, text=True)

    def url(self, database: str) -> str:
        """PgServer.url: the SQLAlchemy async URL of one database of this cluster."""
        return f"postgresql+asyncpg://{USER}@/{database}?host={self.folder}"

    def new_database(self, template: str = "template0") -> str:
        """PgServer.new_database: a new database (empty, or a copy of `template`); its URL."""
        name = f"t{os.getpid()}_{next(self._names)}"
        done = self.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        assert done.returncode == 0, done.stderr
        return self.url(name)

    def migrated_database(self) -> str:
        """PgServer.migrated_database: a new database at every migration head (copied from a template)."""
        if self._template is None:
            name = f"tmpl{os.getpid()}"
            done = self.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE template0')
            assert done.returncode == 0, done.stderr

            migrate_database(self.url(name))
            self._template = name
        return self.new_database(self._template)

    def stop(self) -> None:
        """PgServer.stop: fast shutdown (SIGINT), then remove the cluster's directory."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # the whole group: runuser does not pass signals on
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
