"""server.live.cluster: several nodes behind one address (with `bus.kind: redis`): on which node a meeting's room lives.

A room's media lives in one process, so each meeting's room is placed on one node and every other node sends the
meeting's browsers there (docs/deploy.md, "Several nodes"). Redis holds the whole state, with leases, so nothing
needs cleaning after a node dies (keys under `taphuan:cluster:`):
- `node:<id>`: the node's heartbeat, JSON {url, rooms, participants, cpu, draining}, written every third of
  `cluster.lease_seconds` with that lease as its expiry: a dead node's disappears within a lease;
- `nodes`: the ids of the nodes seen within a day (the living ones are those with a heartbeat), with `seen`, when
  each was seen last: server.live.nodeset forgets a node whose heartbeat has been gone for a day;
- `room:<meeting id>`: the id of the node owning the meeting's room, set atomically by the first node asked
  (the least loaded living node that is not draining, itself on a tie), with the lease as expiry; the owner
  renews it while the room is open, so it expires when the room ended or the node died, and the next request
  places the meeting again (on a living node);
- `draining:<id>`: set by `taphuan drain`: no new room is placed on the node (cleared when the node starts).

A node learns nothing from the others but these keys: requests for a meeting it does not own are answered with
the owner's address (an HTTP redirect for the live page, the `moved` error for a WebSocket `join`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from server.bus import keep_renewing
from server.config import Config
from server.live.nodeset import SEEN_KEY, forget_dead_nodes, now_ms
from server.live.service import LIVE

log = logging.getLogger("taphuan")
PREFIX = "taphuan:cluster:"
_NETLOC = re.compile(r"^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$")  # safe in a header

# KEYS: the room key; ARGV: candidate node id, lease (ms), heartbeat key prefix. The owner if it is alive, else
# the candidate (now the owner).
_PLACE = """
local owner = redis.call('GET', KEYS[1])
if owner and redis.call('EXISTS', ARGV[3] .. owner) == 1 then return owner end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

# KEYS: room keys of the rooms open here; ARGV: this node's id, lease (ms). Renews the ones this node owns,
# claims the ones nobody owns; returns the keys another node owns now.
_RENEW = """
local lost = {}
for _, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then redis.call('PEXPIRE', key, ARGV[2])
  elseif not owner then redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else table.insert(lost, key) end
end
return lost
"""

# KEYS: room keys; ARGV: this node's id. Deletes the ones this node owns (a clean stop hands its meetings over).
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
end
return 0
"""


@dataclass(frozen=True)
class NodeInfo:
    """NodeInfo: one living node as its last heartbeat describes it."""

    node_id: str
    url: str
    rooms: int = 0
    participants: int = 0
    cpu: float = 0.0
    draining: bool = False


def node_id_of(config: Config) -> str:
    """node_id_of: this node's name (`cluster.node_id`, else the host name)."""
    return config.cluster.node_id or socket.gethostname()


def node_url_of(config: Config) -> str:
    """node_url_of: the public base URL of this node (`cluster.url`, else `server.public_url`; may be empty)."""
    return (config.cluster.url or config.server.public_url).rstrip("/")


def heartbeat_key(node_id: str) -> str:
    """heartbeat_key: the Redis key of a node's heartbeat."""
    return f"{PREFIX}node:{node_id}"


def draining_key(node_id: str) -> str:
    """draining_key: the Redis key `taphuan drain` sets for a node."""
    return f"{PREFIX}draining:{node_id}"


def room_key(meeting_id: int) -> str:
    """room_key: the Redis key naming the owner of a meeting's room."""
    return f"{PREFIX}room:{meeting_id}"


def parse_heartbeat(node_id: str, raw: bytes | str | None) -> NodeInfo | None:
    """parse_heartbeat: the NodeInfo in a heartbeat value (None: absent or unreadable)."""
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        return NodeInfo(node_id, str(data["url"]), int(data["rooms"]), int(data["participants"]),
                        float(data["cpu"]), bool(data["draining"]))
    except (ValueError, KeyError, TypeError):
        return None


class Cluster:
    """Cluster: this node's view of the placement in Redis (see the module's docstring)."""

    def __init__(self, redis: Any, node_id: str, url: str, lease: float) -> None:
        self.redis, self.node_id, self.url, self.lease = redis, node_id, url, lease
        self.draining = False
        self.known: dict[str, NodeInfo] = {}  # the living nodes at the last heartbeat (for Origin checks)
        self._place = redis.register_script(_PLACE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        self._cpu_at = (time.monotonic(), time.process_time())
        self.cpu = 0.0

    async def nodes(self) -> list[NodeInfo]:
        """Cluster.nodes: the living nodes (those with a heartbeat), with `taphuan drain`'s mark read now."""
        members = await self.redis.smembers(PREFIX + "nodes")
        ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in members)
        if not ids:
            return []
        beats = await self.redis.mget([heartbeat_key(i) for i in ids])
        drains = await self.redis.mget([draining_key(i) for i in ids])
        out = []
        for node_id, raw, drain in zip(ids, beats, drains, strict=True):
            info = parse_heartbeat(node_id, raw)
            if info is not None:
                # the mark as it is now: a heartbeat written while it was set says draining until the next one
                out.append(NodeInfo(info.node_id, info.url, info.rooms, info.participants, info.cpu,
                                    drain is not None))
        return out

    def choose(self, nodes: list[NodeInfo]) -> str:
        """Cluster.choose: the node a new room goes to: the least loaded (participants, then rooms, then CPU
        above half the machine) of those not draining (of all, if every one drains), this node on a tie."""
        ready = [n for n in nodes if n.url and not n.draining] or [n for n in nodes if n.url]
        if not ready:
            return self.node_id
        best = min(ready, key=lambda n: (n.participants, n.rooms, n.cpu >= 50, n.node_id != self.node_id))
        return best.node_id

    async def place(self, meeting_id: int) -> NodeInfo | None:
        """Cluster.place: the node owning the meeting's room, placing it first if no living node owns it; None
        when it is this node (or Redis cannot be reached: then the room stays here, as with one node)."""
        try:
            nodes = await self.nodes()
            owner = await self._place(keys=[room_key(meeting_id)],
                                      args=[self.choose(nodes), int(self.lease * 1000), PREFIX + "node:"])
        except Exception:
            log.warning("room placement in Redis failed; the room stays on this node", exc_info=True)
            return None
        owner = owner.decode() if isinstance(owner, bytes) else str(owner)
        if owner == self.node_id:
            return None
        return next((n for n in nodes if n.node_id == owner), None)

    async def owner(self, meeting_id: int) -> NodeInfo | None:
        """Cluster.owner: the living node owning the meeting's room if it is another one (no placement)."""
        raw = await self.redis.get(room_key(meeting_id))
        owner = raw.decode() if isinstance(raw, bytes) else raw
        if owner is None or owner == self.node_id:
            return None
        return next((n for n in await self.nodes() if n.node_id == owner), None)

    @staticmethod
    def url_on(node: NodeInfo, path: str, query: dict[str, str] | None = None, websocket: bool = False) -> str:
        """Cluster.url_on: `path` on `node`'s public address, with `node=<id>` in the query (what an nginx in
        front routes on, docs/deploy.md); ws(s):// for a WebSocket."""
        base = node.url
        if websocket:
            base = "ws" + base[4:] if base.startswith("http") else base
        return f"{base}{path}?{urlencode({**(query or {}), 'node': node.node_id})}"

    async def origin_ok(self, origin: str | None) -> bool:
        """Cluster.origin_ok: is `origin` a page of one of the living nodes (a page of node B may open node A's
        socket)? The nodes of the last heartbeat, read again from Redis when it names none of them."""
        if not origin:
            return False

        def known() -> bool:
            for node in self.known.values():
                u = urlsplit(node.url)
                if u.scheme and origin.rstrip("/") == f"{u.scheme}://{u.netloc}":
                    return True
            return False

        if known():
            return True
        with contextlib.suppress(Exception):  # Redis away: only the nodes already known
            self.known = {n.node_id: n for n in await self.nodes()}
        return known()

    def restart_cpu(self) -> None:
        """Cluster.restart_cpu: measure this process's CPU from now on."""
        self._cpu_at = (time.monotonic(), time.process_time())
        self.cpu = 0.0

    def _cpu_now(self) -> float:
        wall, used = time.monotonic(), time.process_time()
        then_wall, then_used = self._cpu_at
        self._cpu_at = (wall, used)
        if wall > then_wall:
            self.cpu = 100.0 * (used - then_used) / (wall - then_wall) / (os.cpu_count() or 1)
        return self.cpu

    async def heartbeat(self, open_meetings: list[int], participants: int) -> None:
        """Cluster.heartbeat: publish this node's load, renew the leases of the rooms open here."""
        self.draining = await self.redis.exists(draining_key(self.node_id)) > 0
        beat = {"url": self.url, "rooms": len(open_meetings), "participants": participants,
                "cpu": round(self._cpu_now(), 1), "draining": self.draining}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(PREFIX + "nodes", self.node_id)
            pipe.set(heartbeat_key(self.node_id), json.dumps(beat), px=int(self.lease * 1000))
            pipe.hset(SEEN_KEY, self.node_id, now_ms())
            await pipe.execute()
        forgotten = await forget_dead_nodes(self.redis)
        if forgotten:
            log.info("nodes without a heartbeat for a day, forgotten: %s", forgotten)
        if open_meetings:
            lost = await self._renew(keys=[room_key(m) for m in open_meetings],
                                     args=[self.node_id, int(self.lease * 1000)])
            if lost:
                log.warning("rooms owned by another node meanwhile: %s", [k.decode() for k in lost])
        self.known = {n.node_id: n for n in await self.nodes()}

    async def stop(self, open_meetings: list[int]) -> None:
        """Cluster.stop: a clean stop: no heartbeat any more, this node's rooms free for the others at once."""
        if open_meetings:
            await self._release(keys=[room_key(m) for m in open_meetings], args=[self.node_id])
        await self.redis.delete(heartbeat_key(self.node_id))


async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """cluster_ctx: this node's heartbeat (and leases) every third of the lease while the app runs."""
    from server.live.rooms import open_meetings

    cluster = app[CLUSTER]
    live = app[LIVE]
    await cluster.redis.delete(draining_key(cluster.node_id))  # a node (re)started after a drain takes rooms again
    cluster.restart_cpu()  # its start-up (migrations, templates) is no load
    await cluster.heartbeat(open_meetings(live), live.sfu.participant_count())

    task = asyncio.create_task(keep_renewing(
        cluster.lease / 3, lambda: cluster.heartbeat(open_meetings(live), live.sfu.participant_count()),
        "this node's heartbeat"), name="cluster-heartbeat")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception):
        await cluster.stop(open_meetings(live))
    await cluster.redis.aclose()


async def node_sockets_allowed(request: web.Request, response: web.StreamResponse) -> None:
    """node_sockets_allowed: the live page may open the socket of any living node (`moved` sends it there when
    each node has its own address): their ws(s):// origins join its Content-Security-Policy's connect-src."""
    route = request.match_info.route.name if request.match_info.route is not None else None
    header = response.headers.get("Content-Security-Policy")
    if route != "live" or not header:
        return
    origins = []
    for node in request.app[CLUSTER].known.values():
        u = urlsplit(node.url)
        if u.scheme in ("http", "https") and u.netloc and _NETLOC.match(u.netloc):
            origins.append(f"{'wss' if u.scheme == 'https' else 'ws'}://{u.netloc}")
    if origins:
        response.headers["Content-Security-Policy"] = header.replace(
            "connect-src ", f"connect-src {' '.join(sorted(set(origins)))} ", 1)


def setup(app: web.Application, config: Config) -> None:
    """setup: with `bus.kind: redis` and a public URL for this node, place rooms in Redis (after the live
    context: its heartbeat reads the rooms); otherwise nothing changes."""
    url = node_url_of(config)
    if config.bus.kind != "redis" or not url:
        return
    import redis.asyncio as aioredis

    app[CLUSTER] = Cluster(aioredis.Redis.from_url(config.bus.redis_url), node_id_of(config), url,
                           config.cluster.lease_seconds)
    app.cleanup_ctx.append(cluster_ctx)
    app.on_response_prepare.append(node_sockets_allowed)  # after server.middlewares.security_headers


def cluster_of(app: web.Application) -> Cluster | None:
    """cluster_of: the app's Cluster, or None (one node, or no public URL)."""
    return app.get(CLUSTER)


async def page_elsewhere(request: web.Request, meeting_id: int) -> str | None:
    """page_elsewhere: the URL of this page on the node owning (or now chosen for) the meeting's room, if that is
    another node; None to serve it here."""
    cluster = cluster_of(request.app)
    if cluster is None:
        return None
    owner = await cluster.place(meeting_id)
    if owner is None:
        return None
    query = {k: v for k, v in request.query.items() if k != "node"}
    return cluster.url_on(owner, request.path, query)


async def run_drain(config: Config, limit: float, every: float = 1.0, say_every: float = 30.0) -> int:
    """run_drain: `taphuan drain`: mark this configuration's node draining in Redis (no new room is placed on it),
    then wait until its heartbeat shows no open room (or the node stopped), printing the progress; 0 when drained,
    1 after `limit` seconds with rooms still open (the node stays draining), 2 without Redis."""
    if config.bus.kind != "redis":
        print("taphuan drain: needs bus.kind: redis (several nodes); a single node is upgraded by stopping it",
              flush=True)
        return 2
    import redis.asyncio as aioredis

    node_id = node_id_of(config)
    redis = aioredis.Redis.from_url(config.bus.redis_url)
    try:
        await redis.set(draining_key(node_id), "1")
        print(f"node {node_id}: draining: no new meeting is placed on it", flush=True)
        started = time.monotonic()
        said: tuple[int, int] | None = None
        said_at = 0.0
        while True:
            info = parse_heartbeat(node_id, await redis.get(heartbeat_key(node_id)))
            if info is None:
                print(f"node {node_id}: not running (no heartbeat): drained", flush=True)
                return 0
            if info.rooms == 0:
                print(f"node {node_id}: no room open: drained; stop it now (`taphuan serve` clears the mark)",
                      flush=True)
                return 0
            now = time.monotonic()
            left = limit - (now - started)
            if left <= 0:
                print(f"node {node_id}: still {info.rooms} rooms ({info.participants} participants) after "
                      f"{limit:g} s; it stays draining: run drain again, or stop it (their browsers reconnect "
                      f"to other nodes)", flush=True)
                return 1
            if (info.rooms, info.participants) != said or now - said_at >= say_every:
                print(f"node {node_id}: {info.rooms} rooms, {info.participants} participants still open "
                      f"({left:.0f} s left)", flush=True)
                said, said_at = (info.rooms, info.participants), now
            await asyncio.sleep(min(every, left))
    finally:
        await redis.aclose()


CLUSTER: web.AppKey[Cluster] = web.AppKey("cluster")
