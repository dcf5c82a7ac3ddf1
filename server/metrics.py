"""server.metrics: Prometheus counters and gauges, in a registry owned by the application.

Each metric names where it moves. What the SFU knows (rooms, participants, forwarded packets and bytes) is read from
it at each scrape, never counted per packet; recordings by state are read from the database by the /metrics handler
(server.health) just before it renders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

WS_DROP_REASONS = ("binary", "rate-limited", "too-large")


class ReadCounter(Collector):
    """ReadCounter: a counter whose total is read from its owner at each scrape (`read`, 0 until it is set).

    A total that went down for a moment (a room's consumers counted neither as live nor yet as gone while it
    closes) is reported as the highest seen, so the series never looks reset.
    """

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.read: Callable[[], int] = lambda: 0
        self._highest = 0
        registry.register(self)

    def collect(self) -> Iterator[CounterMetricFamily]:
        """ReadCounter.collect: one sample, the total read now."""
        self._highest = max(self._highest, int(self.read()))
        yield CounterMetricFamily(self.name, self.documentation, value=self._highest)

    def describe(self) -> Iterator[CounterMetricFamily]:
        """ReadCounter.describe: the family without reading (registration must not call `read`)."""
        yield CounterMetricFamily(self.name, self.documentation)


class Metrics:
    """Metrics: every metric the server exports at /metrics (one registry per app, no globals)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # every HTTP request, by route (its path template; "unmatched" for none) and response status
        # (server.middlewares.request_id_middleware)
        self.http_requests = Counter("taphuan_http_requests", "HTTP requests served", ["route", "status"],
                                     registry=self.registry)
        # password logins by result: ok, failed, disabled, rate-limited (server.people.accounts.authenticate)
        self.logins = Counter("taphuan_logins", "Login attempts", ["result"], registry=self.registry)
        # open signalling sockets (server.live.signalling.websocket_handler)
        self.ws_connections = Gauge("taphuan_ws_connections", "Open signalling WebSockets",
                                    registry=self.registry)
        # signalling messages not handled, by reason (WS_DROP_REASONS: rate-limited over the rate, binary,
        # too-large) (server.live.connection.Connection.run)
        self.ws_refused = Counter("taphuan_ws_messages_refused", "Signalling messages refused unhandled", ["reason"],
                                  registry=self.registry)
        for reason in WS_DROP_REASONS:
            self.ws_refused.labels(reason)  # exported at 0 from the start: a rate needs a first sample
        # signalling WebSockets refused or closed by a limit: login, ip (too many open), cooldown (after a flood),
        # flooding (closed with 1008) (server.live.signalling), too-slow (did not take its messages: 1013)
        # (server.live.sender)
        self.ws_policy = Counter("taphuan_ws_policy_closes", "Signalling WebSockets refused or closed by a limit",
                                 ["reason"], registry=self.registry)
        # messages on the signalling sockets: received (every frame, text or binary) and sent; call ws_message()
        self.ws_messages = Counter("taphuan_ws_messages", "Signalling WebSocket messages", ["direction"],
                                   registry=self.registry)
        self._ws_in = self.ws_messages.labels(direction="in")
        self._ws_out = self.ws_messages.labels(direction="out")
        # read from the SFU at each scrape (server.live.service.live_ctx)
        self.rooms = Gauge("taphuan_rooms", "Live rooms", registry=self.registry)
        self.participants = Gauge("taphuan_participants", "Participants in live rooms", registry=self.registry)
        self.forwarded_packets = ReadCounter("taphuan_forwarded_packets",
                                             "RTP packets forwarded to subscribers (resends excluded)", self.registry)
        self.forwarded_bytes = ReadCounter("taphuan_forwarded_bytes",
                                           "RTP payload bytes forwarded to subscribers (resends excluded)",
                                           self.registry)
        # recordings in the database by state, set by the /metrics handler (server.health.metrics)
        self.recordings = Gauge("taphuan_recordings", "Recordings by state", ["state"], registry=self.registry)
        # live HLS broadcasts now (read at each scrape), and the frames their workers were too far behind to take
        # (server.live.broadcast)
        self.broadcasts = Gauge("taphuan_broadcasts", "Live HLS broadcasts", registry=self.registry)
        self.broadcast_dropped = Counter("taphuan_broadcast_dropped_frames",
                                         "Frames a live broadcast's worker was too far behind to take",
                                         registry=self.registry)

    def ws_message(self, direction: str) -> None:
        """Metrics.ws_message: one signalling message received (`in`) or sent (`out`)."""
        (self._ws_in if direction == "in" else self._ws_out).inc()


REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
