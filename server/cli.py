"""server.cli: the `taphuan` command: serve, user, import, check-config, migrate, backup, restore, drain."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from server.config import Config, ConfigError, load_config
from server.logs import setup_logging
from server.storage import StartupError

DEFAULT_CONFIG = "config.yaml"


def _config(args: argparse.Namespace, overrides: dict[str, object] | None = None) -> Config:
    path = args.config or os.environ.get("TAPHUAN_CONFIG")
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    return load_config(path, overrides=overrides)


async def _serve(config: Config) -> None:
    from aiohttp import web

    from server.app import FIRST_PASSWORD, create_app
    from server.tls import ssl_context

    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None,
                           shutdown_timeout=config.server.shutdown_timeout)
    try:
        await runner.setup()
        ctx = ssl_context(config)
        site = web.TCPSite(runner, config.server.host, config.server.port, ssl_context=ctx,
                           shutdown_timeout=config.server.shutdown_timeout)
        await site.start()
    except (StartupError, OSError) as exc:
        with contextlib.suppress(Exception):  # what did start (the database, the SFU) stops again
            await runner.cleanup()
        if isinstance(exc, StartupError):
            raise
        where = exc.filename or f"{config.server.host}:{config.server.port}"
        raise StartupError(f"{where}: {exc.strerror or exc}") from None
    scheme = "https" if ctx else "http"
    host = config.server.host if config.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    url = config.server.public_url or f"{scheme}://{host}:{config.server.port}/"
    print(f"Taphuan is running at {url}", flush=True)
    from server.learning.content import CONTENT

    if CONTENT in app:  # the SCORM content origin (docs/learning.md)
        content = app[CONTENT]
        print(f"E-learning packages play from {content.origin or f'{content.scheme}://{host}:{content.port}'}",
              flush=True)
    password = app.get(FIRST_PASSWORD)
    if password:
        print("First run: operator account created.", flush=True)
        print("  username: admin", flush=True)
        print(f"  password: {password}", flush=True)
        print("  (shown only this once; change it after logging in)", flush=True)
    # The start-up heap (routes, templates, the database schema, codec tables: ~200 k objects) lives as long as the
    # process: frozen, it is left out of every full collection, each of which stops the event loop, and the media
    # it forwards, for as long as it scans (76-110 ms for the started app on this host with a test run beside it;
    # about 0 after the freeze). Logged after the URL: nothing comes before that line.
    gc.collect()
    gc.freeze()
    logging.getLogger("taphuan").info("start-up objects left out of garbage collection: %d", gc.get_freeze_count())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("Shutting down…", flush=True)
    try:
        await asyncio.wait_for(runner.cleanup(), timeout=config.server.shutdown_timeout + 1.5)
    except TimeoutError:
        logging.getLogger("taphuan").warning("shutdown took too long; exiting anyway")


def cmd_serve(args: argparse.Namespace) -> int:
    """cmd_serve: run the server until SIGINT/SIGTERM."""
    overrides: dict[str, object] = {}
    if args.host:
        overrides["server.host"] = args.host
    if args.port:
        overrides["server.port"] = args.port
    config = _config(args, overrides)
    setup_logging(config)
    with asyncio.Runner(loop_factory=loop_factory(config.server.event_loop)) as runner:
        runner.run(_serve(config))
    return 0


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """loop_factory makes the configured event loop: uvloop when asked for and installed, else asyncio's."""
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            logging.getLogger("taphuan").warning("uvloop is not installed; using asyncio's event loop")
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def cmd_check_config(args: argparse.Namespace) -> int:
    """cmd_check_config: validate a configuration file and say so."""
    load_config(args.file)
    print(f"{args.file}: OK")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """cmd_user: account management (add, list, passwd, disable)."""
    from server.people.accounts import run_user_command

    return asyncio.run(run_user_command(_config(args), args))


def cmd_import(args: argparse.Namespace) -> int:
    """cmd_import: import units or classrooms from CSV."""
    from server.people.importer import run_import_command

    return asyncio.run(run_import_command(_config(args), args))


def cmd_backup(args: argparse.Namespace) -> int:
    """cmd_backup: a consistent copy of the database and media while the server runs."""
    from server.backup import run_backup

    return asyncio.run(run_backup(_config(args), args.dir))


def cmd_migrate(args: argparse.Namespace) -> int:
    """cmd_migrate: bring the database's schema up to every head of this version (what `serve` does at start;
    before an upgrade of several nodes, run once), printing each step."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from server.db.engine import make_engine, migrate_reporting

    config = _config(args)
    where = make_url(config.database_url).render_as_string(hide_password=True)

    async def run() -> int:
        engine = make_engine(config.database_url, busy_timeout=config.database.busy_timeout)
        try:
            done = await migrate_reporting(engine)
        except DBAPIError as exc:
            raise StartupError(f"database {where}: {' '.join(str(exc.orig or exc).split())[:200]}") from None
        finally:
            await engine.dispose()
        print(f"database {where}: at {', '.join(done.before) or 'nothing (empty)'}", flush=True)
        for step in done.applied:
            print(f"  applied {step}", flush=True)
        if done.applied:
            print(f"now at {', '.join(done.after)} ({len(done.applied)} migrations applied)", flush=True)
        else:
            print("already up to date: nothing to do", flush=True)
        return 0

    return asyncio.run(run())


def cmd_restore(args: argparse.Namespace) -> int:
    """cmd_restore: a backup of `taphuan backup` into an empty database and the data directory."""
    from server.restore import run_restore

    return asyncio.run(run_restore(_config(args), args.backup, args.force))


def cmd_drain(args: argparse.Namespace) -> int:
    """cmd_drain: before an upgrade of one of several nodes: no new meeting on it, then wait for its rooms to end."""
    from server.live.cluster import run_drain

    return asyncio.run(run_drain(_config(args), args.timeout))


def build_parser() -> argparse.ArgumentParser:
    """build_parser: the argument parser of `taphuan`."""
    parser = argparse.ArgumentParser(prog="taphuan", description="Taphuan: online teacher training server")
    parser.add_argument("--config", help="config file (default: $TAPHUAN_CONFIG, else ./config.yaml if present)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the server")
    p.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("file")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("user", help="manage accounts")
    p.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    usub = p.add_subparsers(dest="user_command", required=True)
    a = usub.add_parser("add", help="create an account (prints a generated password unless --password)")
    a.add_argument("username")
    a.add_argument("--role", required=True,
                   choices=["operator", "trainer", "leader", "classroom", "learner"])
    a.add_argument("--name", help="display name")
    a.add_argument("--password", help="password (default: generated and printed)")
    a.add_argument("--classroom", help="classroom code (role classroom)")
    usub.add_parser("list", help="list accounts")
    pw = usub.add_parser("passwd", help="set a new password (prints a generated one unless --password)")
    pw.add_argument("username")
    pw.add_argument("--password")
    d = usub.add_parser("disable", help="disable an account and end its logins")
    d.add_argument("username")
    e = usub.add_parser("enable", help="enable a disabled account")
    e.add_argument("username")
    p.set_defaults(func=cmd_user)

    p = sub.add_parser("import", help="import reference data from CSV")
    p.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    p.add_argument("what", choices=["units", "classrooms"])
    p.add_argument("file")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("backup", help="copy the database and media to DIR (safe while running)")
    p.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    p.add_argument("dir")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("migrate", help="bring the database schema up to date (printing each step)")
    p.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("restore", help="restore a backup folder into an empty database (stop the servers first)")
    p.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    p.add_argument("backup", help="a folder written by `taphuan backup`")
    p.add_argument("--force", action="store_true", help="replace what the database holds (all of it)")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("drain", help="several nodes: place no new meeting on this node, wait for its rooms to end")
    p.add_argument("--config", dest="config", default=argparse.SUPPRESS)
    p.add_argument("--timeout", type=float, default=4 * 3600.0,
                   help="give up after this many seconds (exit 1; the node stays draining); default 4 hours")
    p.set_defaults(func=cmd_drain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """main: entry point of the `taphuan` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"taphuan: configuration error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"taphuan: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
