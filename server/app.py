"""server.app: `create_app(config)` builds the aiohttp application.

Start/stop order lives in cleanup contexts (each owns what it starts): data directory and secrets →
database (migrations, first operator) → bus → password-hashing threads (server.passwords) → live rooms (SFU) →
recorder. They stop in reverse.
Routes are added by each area's `setup(app)`: pages, API, signalling, health and metrics.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from server import health, pages, sharedlimits
from server.api import setup as setup_api
from server.auth import SECRETS, Secrets, auth_middleware, csrf_middleware
from server.bus import BUS, MemoryBus, RedisBus
from server.config import CONFIG, Config
from server.db.engine import DB, ENGINE, make_engine, make_sessionmaker, migrate
from server.forwarded import forwarded_middleware
from server.i18n import I18N, Translations
from server.live import broadcast, cascade, cluster, hls, meetingbus, recordings, signalling
from server.metrics import METRICS, REGISTRY, Metrics
from server.middlewares import error_middleware, request_id_middleware, security_headers
from server.pages.context import setup_jinja, template_context
from server.passwords import PASSWORDS, PasswordPool, passwords_ctx
from server.ratelimit import LOGIN_LIMITER, LoginLimiter
from server.schedule import reminders
from server.storage import StartupError, check_data_dir

log = logging.getLogger("taphuan")
# Templates and static files ship inside the package: `server/web` is a link to the checkout's top-level `web/`
# and a copy of it in the wheel. Found through the package, never through the working directory.
WEB_DIR = Path(str(files("server") / "web"))
FIRST_PASSWORD = web.AppKey("first_password", str)


async def _data_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    check_data_dir(cfg.data_path)
    try:
        app[SECRETS] = Secrets.load_or_create(cfg.data_path, cfg.secrets)
    except OSError as exc:
        raise StartupError(f"secrets in {cfg.data_path / 'secrets'}: {exc.strerror or exc}") from None
    yield


async def _db_ctx(app: web.Application) -> AsyncIterator[None]:
    from server.bootstrap import bootstrap

    cfg = app[CONFIG]
    engine = make_engine(cfg.database_url, echo=cfg.database.echo, busy_timeout=cfg.database.busy_timeout)
    try:
        await migrate(engine)
    except DBAPIError as exc:
        await engine.dispose()
        where = make_url(cfg.database_url).render_as_string(hide_password=True)
        reason = " ".join(str(exc.orig or exc).split())[:200]
        raise StartupError(f"database {where}: cannot open or update it ({reason})") from None
    app[ENGINE] = engine
    app[DB] = make_sessionmaker(engine)
    password = await bootstrap(app[DB])
    if password:
        app[FIRST_PASSWORD] = password
    yield
    await engine.dispose()


async def _bus_ctx(app: web.Application) -> AsyncIterator[None]:
    cfg = app[CONFIG]
    if cfg.bus.kind == "redis":
        bus = RedisBus(cfg.bus.redis_url)
        await bus.ping()
        app[BUS] = bus
    else:
        app[BUS] = MemoryBus()
    yield
    await app[BUS].close()


def create_app(config: Config) -> web.Application:
    """create_app: the whole Taphuan web application for `config`."""
    app = web.Application(
        client_max_size=config.limits.max_body_bytes,
        middlewares=[forwarded_middleware(config), request_id_middleware, error_middleware, auth_middleware,
                     csrf_middleware],
    )
    app.on_response_prepare.append(security_headers)
    app[CONFIG] = config
    app[LOGIN_LIMITER] = LoginLimiter(config.auth.login_failures_per_minute, config.auth.login_ip_failures_per_minute)
    sharedlimits.setup(app, config)  # with Redis: the login and socket limits of every node counted together
    app[PASSWORDS] = PasswordPool(config.auth.hash_threads, config.auth.hash_queue)
    app[I18N] = Translations()
    metrics = Metrics()
    app[METRICS] = metrics
    app[REGISTRY] = metrics.registry

    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        context_processors=[template_context, aiohttp_jinja2.request_processor],
    )
    setup_jinja(app, env)
    app[aiohttp_jinja2.static_root_key] = "/static"

    app.cleanup_ctx.append(_data_ctx)
    app.cleanup_ctx.append(_db_ctx)
    app.cleanup_ctx.append(_bus_ctx)
    app.cleanup_ctx.append(passwords_ctx)

    health.setup(app)
    setup_api(app)
    pages.setup(app)
    signalling.setup(app)
    cluster.setup(app, config)  # with Redis: which node holds each meeting's room (after live: reads its rooms)
    cascade.setup(app, config)  # and one meeting across nodes (after the cluster: it needs its node id)
    broadcast.setup(app)  # before the recorders: its cleanup context ends the broadcasts after they stopped
    recordings.setup(app)  # after live: its cleanup context stops the recorders before the rooms
    hls.setup(app)  # the live broadcast's audience side: /hls/ files, access and public links (issue 19)
    meetingbus.setup(app)  # chat, polls and viewers' questions reach the meeting's sockets on every node (bus)
    reminders.setup(app)  # regional-meeting deadline reminders, in the background
    app.router.add_static("/static/", WEB_DIR / "static", name="static", append_version=True)
    app.router.add_get("/favicon.ico", _favicon)  # browsers and bots ask for it at the root
    return app


async def _favicon(request: web.Request) -> web.FileResponse:
    """_favicon: the site's icon (web/static/favicon.ico), cached for a day."""
    return web.FileResponse(WEB_DIR / "static" / "favicon.ico", headers={"Cache-Control": "public, max-age=86400"})
