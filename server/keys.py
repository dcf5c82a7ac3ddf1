"""server.keys: every web.AppKey and web.RequestKey in one place (typed shared state, no globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.config import Config

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from server.auth import Identity, LoginLimiter, Secrets
    from server.bus import Bus
    from server.i18n import Translations
    from server.live.netcheck import NetcheckBudget
    from server.live.recordings import Recorders
    from server.live.service import Live
    from server.mail import Mailer
    from server.metrics import Metrics
    from server.openapi import ApiRegistry

CONFIG = web.AppKey("config", Config)
ENGINE = web.AppKey("engine", AsyncEngine)
DB = web.AppKey("db", async_sessionmaker[AsyncSession])
SECRETS: web.AppKey[Secrets] = web.AppKey("secrets")
BUS: web.AppKey[Bus] = web.AppKey("bus")
LOGIN_LIMITER: web.AppKey[LoginLimiter] = web.AppKey("login_limiter")
I18N: web.AppKey[Translations] = web.AppKey("i18n")
REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
API: web.AppKey[ApiRegistry] = web.AppKey("api")
LIVE: web.AppKey[Live] = web.AppKey("live")
RECORDERS: web.AppKey[Recorders] = web.AppKey("recorders")
MAILER: web.AppKey[Mailer] = web.AppKey("mailer")
NETCHECK_BUDGET: web.AppKey[NetcheckBudget] = web.AppKey("netcheck_budget")

# Per-request values (set by middlewares).
IDENTITY: web.RequestKey[Identity] = web.RequestKey("identity")
REQUEST_ID = web.RequestKey("request_id", str)
ANON_CSRF = web.RequestKey("anon_csrf", str)
