"""server.metrics: Prometheus counters and gauges, in a registry owned by the application."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """Metrics: every metric the server exports at /metrics (one registry per app, no globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # every HTTP request, by response status (server.middlewares.request_id_middleware)
        self.http_requests = Counter("taphuan_http_requests", "HTTP requests served", ["status"],
                                     registry=self.registry)
        # password logins by result: ok, failed, disabled, rate-limited (server.people.accounts.authenticate)
        self.logins = Counter("taphuan_logins", "Login attempts", ["result"], registry=self.registry)
        self.ws_connections = Gauge("taphuan_ws_connections", "Open signalling WebSockets",
                                    registry=self.registry)
        # signalling messages not handled, by reason: rate-limited (over the rate), binary, too-large
        # (server.live.connection.Connection.run)
        self.ws_refused = Counter("taphuan_ws_messages_refused", "Signalling messages refused unhandled", ["reason"],
                                  registry=self.registry)
        # signalling WebSockets refused or closed by a limit: login, ip (too many open), cooldown (after a flood),
        # flooding (closed with 1008) (server.live.signalling)
        self.ws_policy = Counter("taphuan_ws_policy_closes", "Signalling WebSockets refused or closed by a limit",
                                 ["reason"], registry=self.registry)
        # read from the SFU at each scrape (server.live.service.live_ctx)
        self.rooms = Gauge("taphuan_rooms", "Live rooms", registry=self.registry)
        self.participants = Gauge("taphuan_participants", "Participants in live rooms", registry=self.registry)

REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
