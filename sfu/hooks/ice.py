"""ice: the hooks on aioice's Connection: where host candidates are gathered, socket receive buffers, consent.

* ``use_gathering_addresses`` - host candidates on a configured address list (aioice skips 127.0.0.1) and,
  optionally, inside a UDP port range.
* ``receive_buffer`` - a larger SO_RCVBUF for each media socket (a keyframe burst arrives at once).
* ``Consent`` - ICE consent freshness (RFC 7675) on the room's Ticker instead of aioice's task per connection,
  and consent checks answered without aioice's STUN objects (``sfu.stun``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Sequence
from typing import Any

from aioice import ice as aioice_ice
from aioice.candidate import candidate_priority
from aioice.ice import CONSENT_FAILURES, CONSENT_INTERVAL, CandidatePair, Connection
from aiortc.rtcdtlstransport import RTCDtlsTransport

from sfu.stun import BINDING_REQUEST, binding_request, binding_response
from sfu.stun import parse as parse_stun
from sfu.tasks import Ticker, spawn

logger = logging.getLogger(__name__)

RECEIVE_BUFFER = 4 << 20  # bytes asked for each media socket (Linux caps it at net.core.rmem_max, and doubles it)


def ice_connection(dtls: RTCDtlsTransport) -> Connection:
    """ice_connection returns the aioice Connection under a DTLS transport."""
    ice: Any = dtls.transport
    conn: Connection = ice._connection
    return conn


async def _host_candidates_in_range(conn: Any, component: int, addresses: Sequence[str],
                                    ports: tuple[int, int]) -> list[Any]:
    """_host_candidates_in_range binds one UDP socket per address on a free port of `ports` (inclusive)."""
    loop = asyncio.get_running_loop()
    low, high = ports
    span = high - low + 1
    candidates = []
    for address in addresses:
        first = random.randrange(span)
        for i in range(span):
            port = low + (first + i) % span
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: aioice_ice.StunProtocol(conn), local_addr=(address, port))
                break
            except OSError:
                continue
        else:
            logger.warning("no free UDP port in %d-%d on %s", low, high, address)
            continue
        host, bound = transport.get_extra_info("sockname")[:2]
        protocol.local_candidate = aioice_ice.Candidate(
            foundation=aioice_ice.candidate_foundation("host", "udp", host), component=component,
            transport="udp", priority=aioice_ice.candidate_priority(component, "host"), host=host, port=bound,
            type="host")
        conn._protocols.append(protocol)
        candidates.append(protocol.local_candidate)
    return candidates


def use_gathering_addresses(connection: Connection, addresses: Sequence[str],
                            ports: tuple[int, int] | None = None) -> None:
    """use_gathering_addresses makes one aioice Connection gather host candidates on `addresses` only.

    aioice's ``gather_candidates`` asks ``get_host_addresses()``, which never returns 127.0.0.1; this replaces
    the bound method on this instance only, so nothing global changes. With `ports` (low, high), host sockets
    bind inside that UDP range (for firewalls); empty `addresses` then means aioice's default interfaces.
    """
    conn: Any = connection
    chosen = list(addresses) or aioice_ice.get_host_addresses(use_ipv4=conn._use_ipv4, use_ipv6=conn._use_ipv6)

    async def gather_candidates() -> None:
        if conn._local_candidates_start:
            return
        conn._local_candidates_start = True
        if ports is not None:
            results = await asyncio.gather(
                *(_host_candidates_in_range(conn, c, chosen, ports) for c in sorted(conn._components)))
        else:
            results = await asyncio.gather(
                *(conn.get_component_candidates(component=c, addresses=chosen) for c in sorted(conn._components))
            )
        for candidates in results:
            conn._local_candidates += candidates
        conn._local_candidates_end = True

    conn.gather_candidates = gather_candidates


def receive_buffer(transport: Any, size: int = RECEIVE_BUFFER) -> int:
    """receive_buffer raises SO_RCVBUF of a UDP transport's socket; returns the size the kernel granted (0: none).

    A loopback or LAN keyframe burst arrives at once, and the default buffer (212 KB, ~150 media packets)
    drops what a busy event loop has not read yet; those packets are usually gone from the publisher's
    history too by the time a NACK reaches it (aiortc keeps 128).
    """
    info = transport.get_extra_info("socket") if transport is not None else None
    if info is None:
        return 0
    try:
        with socket.socket(fileno=os.dup(info.fileno())) as sock:  # uvloop shows a descriptor only
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
            return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    except (AttributeError, OSError):
        return 0


class Consent:
    """Consent runs ICE consent freshness (RFC 7675) for one aioice Connection with a fraction of its work.

    aioice answers each consent check through its generic STUN objects and runs its own checks in a task per
    connection (a wake-up for the timer and one for the answer); at 20 subscribers that was ~12 % of the SFU's
    CPU. Here, on the selected pair only: a Binding request that is authentic (USERNAME, MESSAGE-INTEGRITY,
    FINGERPRINT) and has no role conflict is answered with the bytes aioice would send (``sfu.stun``), a
    USE-CANDIDATE on the already nominated pair (Chromium's checks carry it) treated as aioice does; and
    ``tick``, a job of the room's Ticker, sends our check every `interval` × 0.8-1.2 and ``received`` takes
    the authentic answer to any of our recent checks (RFC 7675: a response to any request of the last 30 s),
    so an answer that comes after the next check was sent still counts. A check still unanswered when the
    next one is sent is a failure, judged (``_judge``) only after the event loop has read its sockets once
    more: a loop that was busy (a long callback, a starved CPU) and has the answer waiting in a socket buffer
    counts no failure. Consent expires after `CONSENT_FAILURES` failures in a row that also span
    `CONSENT_FAILURES` × `interval` of sending since the last answer (~30 s, as aioice and RFC 7675): the
    number alone is not enough, since a late loop's Ticker may run checks back to back. Everything else
    (other pairs, nominations, role conflicts, errors, unauthenticated requests) still goes to aioice.
    Installed by ``SfuPeerConnection`` in place of ``Connection.query_consent``. Event loop only.
    """

    def __init__(self, conn: Connection, ticker: Ticker, interval: float = CONSENT_INTERVAL) -> None:
        self._conn: Any = conn
        self._ticker = ticker
        self.interval = interval
        self._pending: dict[bytes, float] = {}  # our unanswered checks: transaction id -> when sent (oldest first)
        self._fresh = 0.0  # when consent was last confirmed (or the checks began)
        self.failures = 0  # checks judged unanswered since the last answer
        self.answered = 0  # checks of the peer answered here
        self.checks = 0  # our checks sent
        self.confirmed = 0  # answers to them
        self.expired = False
        self._tasks: set[asyncio.Future[None]] = set()

    async def start(self) -> None:
        """start replaces ``Connection.query_consent`` (aioice runs it once connected): ticks from now on."""
        self._fresh = time.monotonic()
        self._ticker.add(self.tick, self.period)

    def period(self) -> float:
        """period is the time to the next check: `interval` × 0.8-1.2 (aioice's, RFC 7675's)."""
        return self.interval * (0.8 + 0.4 * random.random())

    def tick(self) -> None:
        """tick sends a consent check; the checks before it are judged once the loop has read its sockets."""
        conn = self._conn
        if conn._closing or self.expired:
            self._ticker.remove(self.tick)
            return
        pair: Any = conn._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return
        txid = os.urandom(12)
        data = binding_request(txid, f"{conn.remote_username}:{conn.local_username}",
                               candidate_priority(pair.component, "prflx"), conn.ice_controlling,
                               conn._tie_breaker, conn.remote_password.encode())
        pair.protocol.transport.sendto(data, pair.remote_addr)
        now = time.monotonic()
        pending = self._pending
        pending[txid] = now
        if len(pending) > 2 * CONSENT_FAILURES:
            del pending[next(iter(pending))]  # older than any verdict needs
        self.checks += 1
        # a callback queued by a callback runs after the loop's next read of its sockets (asyncio and uvloop)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._judge, now)

    def _judge(self, sent: float) -> None:
        """_judge counts the checks sent before `sent` still unanswered; expires consent when they are enough."""
        conn = self._conn
        if conn._closing or self.expired:
            return
        self.failures = sum(1 for t in self._pending.values() if t < sent)
        if self.failures >= CONSENT_FAILURES and sent - self._fresh >= CONSENT_FAILURES * self.interval:
            logger.info("ICE consent to send expired (%d checks unanswered in %.1f s)", self.failures,
                        sent - self._fresh)
            self.expired = True
            self._ticker.remove(self.tick)
            spawn(self._tasks, conn.close())

    def received(self, data: bytes, addr: tuple[Any, ...], protocol: Any) -> bool:
        """received takes a STUN datagram if it is consent on the selected pair; False: aioice's path."""
        conn = self._conn
        pair: Any = conn._nominated.get(1)
        if (pair is None or pair.protocol is not protocol or conn._closing or addr[0] != pair.remote_addr[0]
                or addr[1] != pair.remote_addr[1]):
            return False
        msg = parse_stun(data)
        if msg is None:
            return False
        if msg.kind == BINDING_REQUEST:
            controlling = conn.ice_controlling
            renominate = msg.use_candidate and not controlling  # Chromium, controlling, sends it on every check
            if ((renominate and not pair.nominated) or not conn._early_checks_done
                    or pair.state is not CandidatePair.State.SUCCEEDED
                    or (msg.controlling if controlling else msg.controlled)
                    or msg.username != f"{conn.local_username}:{conn.remote_username}".encode()):
                return False  # a nomination, a role conflict, checks still running: aioice decides
            key = conn.local_password.encode()
            if not msg.authentic(key):
                return False  # aioice answers 401
            protocol.transport.sendto(binding_response(msg.transaction_id, pair.remote_addr, key), pair.remote_addr)
            if renominate:  # what aioice's check_incoming does then (nothing changes for the nominated pair)
                pair.remote_nominated = True
                conn.check_complete(pair)
            self.answered += 1
            return True
        sent = self._pending.get(msg.transaction_id)
        if sent is None or not msg.authentic(conn.remote_password.encode()):
            return False  # not ours (aioice's transactions), or not authentic (ignored there too)
        for txid in [txid for txid, t in self._pending.items() if t <= sent]:
            del self._pending[txid]  # this check and the ones before it: consent is fresh
        self._fresh = time.monotonic()
        self.failures = 0
        self.confirmed += 1
        return True
