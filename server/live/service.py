"""server.live.service: the live side's state: the SFU's lifetime and the table of open connections.

Who owns what:
- `Live` (one per app, under `LIVE`) owns the `Sfu`, the table of open signalling connections and their quota
  per login and per address (`SocketQuota`; with Redis, server.sharedlimits' RedisSocketQuota counts every node's
  sockets). SocketQuota is changed only from the event loop, without awaits in between, so it needs no lock.
- Each `server.live.connection.Connection` owns its WebSocket and its participant in a room; the room's
  mailbox task owns the media state (see sfu/room.py).
- A bus listener task closes connections whose login was revoked elsewhere (logout, second PC).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from server.bus import BUS
from server.config import CONFIG, Config, udp_range
from server.metrics import METRICS
from sfu.config import SfuConfig
from sfu.sfu import Sfu

if TYPE_CHECKING:
    from server.live.connection import Connection

log = logging.getLogger("taphuan.live")


def sfu_config(config: Config) -> SfuConfig:
    """sfu_config: the SFU's settings from config.yaml."""
    s = config.sfu
    return SfuConfig(
        ice_addresses=list(s.ice_addresses),
        udp_ports=udp_range(s.udp_ports),
        compiled_fanout=s.compiled_fanout,
        allocation=s.allocation,
        publish_bitrate=s.publish_bitrate,
        receive_wait=s.receive_wait_ms / 1000,
        receive_wait_above=s.receive_wait_above,
        announce_address=s.announce_address or None,
        grid_slots=s.grid_slots,
        max_participants_per_room=s.max_participants_per_room,
        max_participants=s.max_participants,
        room_grace_seconds=s.room_grace_seconds,
        resume_seconds=s.resume_seconds,
        keyframe_min_interval=s.keyframe_min_interval,
        switch_keyframe_interval=s.switch_keyframe_interval,
        max_sdp_bytes=config.limits.max_sdp_bytes,
        video_codec=s.video_codec,
    )


@dataclass(frozen=True)
class Refusal:
    """Refusal: why a new signalling WebSocket is refused: the `closed` reason, its words, the metric's label."""

    reason: str
    message: str
    label: str


def cooldown_refusal(left: float) -> Refusal:
    """cooldown_refusal: a login cooling down after a flood, `left` s more."""
    return Refusal("flooding", f"Kết nối vừa bị đóng vì gửi quá nhiều tin nhắn; hãy thử lại sau {left:.0f} giây. / "
                               f"Closed for flooding: try again in {left:.0f} s.", "cooldown")


def login_refusal(per_login: int) -> Refusal:
    """login_refusal: a login with its quota of sockets open."""
    return Refusal("too-many-connections", f"Tài khoản này đã mở {per_login} kết nối; hãy đóng bớt các thẻ khác. / "
                                           f"This login already has {per_login} connections open: close other tabs.",
                   "login")


def ip_refusal(per_ip: int) -> Refusal:
    """ip_refusal: an address with its quota of sockets open."""
    return Refusal("too-many-connections", f"Địa chỉ này đã mở {per_ip} kết nối. / This address already has "
                                           f"{per_ip} connections open.", "ip")


class Quota(Protocol):
    """Quota: what the WebSocket handler asks: SocketQuota in one process, or server.sharedlimits'
    RedisSocketQuota counting every node's sockets together."""

    async def take(self, login_id: str, ip: str) -> Refusal | None: ...

    async def give_back(self, login_id: str, ip: str) -> None: ...

    async def cool_down(self, login_id: str) -> None: ...


class SocketQuota:
    """SocketQuota: the signalling WebSockets open per login and per client address, and the logins cooling down
    after one of their connections was closed for flooding (limits.ws_*; changed only on the event loop)."""

    def __init__(self, per_login: int, per_ip: int, cooldown: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_login, self.per_ip, self.cooldown, self.clock = per_login, per_ip, cooldown, clock
        self.by_login: collections.Counter[str] = collections.Counter()
        self.by_ip: collections.Counter[str] = collections.Counter()
        self.cooling: dict[str, float] = {}  # login id -> end of its cool-down (clock time)

    async def take(self, login_id: str, ip: str) -> Refusal | None:
        """SocketQuota.take: count a new socket of this login and address in, or say why it is refused."""
        until = self.cooling.get(login_id)
        if until is not None:
            left = until - self.clock()
            if left > 0:
                return cooldown_refusal(left)
            del self.cooling[login_id]
        if self.by_login[login_id] >= self.per_login:
            return login_refusal(self.per_login)
        if self.by_ip[ip] >= self.per_ip:
            return ip_refusal(self.per_ip)
        self.by_login[login_id] += 1
        self.by_ip[ip] += 1
        return None

    async def give_back(self, login_id: str, ip: str) -> None:
        """SocketQuota.give_back: a socket counted in by `take` closed."""
        for table, key in ((self.by_login, login_id), (self.by_ip, ip)):
            table[key] -= 1
            if table[key] <= 0:
                del table[key]

    async def cool_down(self, login_id: str) -> None:
        """SocketQuota.cool_down: one of this login's connections flooded: refuse its new sockets for a while."""
        now = self.clock()
        for other in [k for k, until in self.cooling.items() if until <= now]:
            del self.cooling[other]
        if self.cooldown > 0:
            self.cooling[login_id] = now + self.cooldown


class Live:
    """Live: the SFU and the open signalling connections of this process."""

    def __init__(self, config: Config, quota: Quota | None = None) -> None:
        self.sfu = Sfu(sfu_config(config))
        self.connections: set[Connection] = set()
        limits = config.limits
        self.quota: Quota = quota or SocketQuota(limits.ws_connections_per_login, limits.ws_connections_per_ip,
                                                 limits.ws_flood_cooldown_seconds)
        # Lobby: meeting id -> lobby id -> waiting connection (see server.live.lobby).
        self.lobby: dict[int, dict[str, Connection]] = {}
        # Who was removed from a meeting's room ("user:<id>" or "login:<id>"): they wait in the lobby next time.
        self.removed: dict[int, set[str]] = {}
        # Who has been in a meeting's room (same keys): they come back into it without the lobby, locked or not.
        self.entered: dict[int, set[str]] = {}

    def in_meeting(self, meeting_id: int) -> list[Connection]:
        """Live.in_meeting: the joined connections of one meeting's room."""
        return [c for c in self.connections if c.meeting_id == meeting_id and c.participant_id]

    def by_participant(self, meeting_id: int, participant_id: str) -> Connection | None:
        """Live.by_participant: the connection of one participant, if it is connected."""
        for c in self.connections:
            if c.meeting_id == meeting_id and c.participant_id == participant_id:
                return c
        return None

    def by_login(self, login_ids: set[str]) -> list[Connection]:
        """Live.by_login: open connections made with any of these logins."""
        return [c for c in self.connections if c.ident.login_id in login_ids]

    def by_user_in_meeting(self, user_id: int, meeting_id: int) -> list[Connection]:
        """Live.by_user_in_meeting: open connections of one account in one meeting."""
        return [c for c in self.connections
                if c.ident.user_id == user_id and c.meeting_id == meeting_id and c.participant_id]

    async def close_all(self, reason: str) -> None:
        """Live.close_all: tell every connection why, close it, and wait until the sockets are closed (a bounded
        time each)."""
        connections = list(self.connections)
        await asyncio.gather(*(c.close(reason) for c in connections), return_exceptions=True)
        await asyncio.gather(*(c.wait_closed() for c in connections), return_exceptions=True)


async def _listen_logins(app: web.Application) -> None:
    sub = await app[BUS].subscribe("logins")
    try:
        async for message in sub:
            if message.get("type") != "login-revoked":
                continue
            ids = {str(i) for i in message.get("login_ids", [])}
            reason = str(message.get("reason", "logout"))
            for conn in app[LIVE].by_login(ids):
                asyncio.create_task(conn.close(reason))
    finally:
        await sub.close()


async def live_ctx(app: web.Application) -> AsyncIterator[None]:
    """live_ctx: the cleanup context that owns `Live` (the SFU) and the login-revocation listener."""
    live = Live(app[CONFIG], app.get(SOCKET_QUOTA))
    app[LIVE] = live
    metrics = app[METRICS]
    metrics.rooms.set_function(lambda: sum(1 for room in live.sfu.rooms.values() if not room.closed))
    metrics.participants.set_function(live.sfu.participant_count)
    metrics.forwarded_packets.read = lambda: live.sfu.forwarded()[0]
    metrics.forwarded_bytes.read = lambda: live.sfu.forwarded()[1]
    listener = asyncio.create_task(_listen_logins(app), name="live-logins")
    yield
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listener
    await live.close_all("server-shutdown")
    await live.sfu.close()


async def on_shutdown(app: web.Application) -> None:
    """on_shutdown: tell every open connection the server is going away, before the sockets are cut."""
    live = app.get(LIVE)
    if live is not None:
        await live.close_all("server-shutdown")


LIVE: web.AppKey[Live] = web.AppKey("live")
SOCKET_QUOTA: web.AppKey[Quota] = web.AppKey("socket_quota")  # set by server.sharedlimits with Redis
