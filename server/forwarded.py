"""server.forwarded: forwarded headers from trusted proxies only, and the same-origin rule of cookie logins.

`forwarded_middleware(config)` is the outermost middleware. When the request's peer is one of
`server.trusted_proxies` (addresses or networks; default none) it believes the proxy's headers — `Forwarded`
(RFC 7239) when present, else `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` — and hands the
rest of the application a request whose `remote`, `scheme` and `host` are the client's. From any other peer
those headers are ignored: `request.remote` is the peer, `request.scheme` what the connection is.
`server.auth.client_ip` (login limits, audit log, login rows) is therefore never what a client claims.

In a chain of proxies the client is the rightmost address that is not a trusted proxy: a client may prepend
whatever it likes to `X-Forwarded-For`, only what trusted proxies appended is believed. The scheme and host
are taken from the entry the outermost trusted proxy wrote (the last one when a proxy overwrites them).

`same_origin(request)`: the request's `Origin` header names this server, scheme, host and port: the origin of
the request as the client made it (after the above), or that of `server.public_url`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from server.config import CONFIG, Config

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def networks(values: Sequence[str]) -> tuple[Network, ...]:
    """networks: `server.trusted_proxies` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """_address: an address from a header or a peer: `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`; else None."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def trusted(address: str | None, nets: tuple[Network, ...]) -> bool:
    """trusted: is `address` (a peer or a hop) within one of the trusted proxies' networks?"""
    addr = _address(address or "") if nets else None
    return addr is not None and any(addr in net for net in nets)


def _hops(request: web.Request) -> list[dict[str, str]]:
    """_hops: what the proxies said about each hop, first (the client's side) to last: from `Forwarded` when
    present, else from the X-Forwarded-* headers (lists separated by commas)."""
    if request.headers.get("Forwarded"):
        return [dict(elem) for elem in request.forwarded]
    fors = [v.strip() for v in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if v.strip()]
    protos = [v.strip() for v in request.headers.get("X-Forwarded-Proto", "").split(",") if v.strip()]
    hosts = [v.strip() for v in request.headers.get("X-Forwarded-Host", "").split(",") if v.strip()]
    count = max(len(fors), len(protos), len(hosts))
    hops: list[dict[str, str]] = [{} for _ in range(count)]
    for name, values in (("for", fors), ("proto", protos), ("host", hosts)):
        for i, value in enumerate(values):  # aligned on the right: the last proxy's entry is the last
            hops[count - len(values) + i][name] = value
    return hops


def client_view(request: web.Request, nets: tuple[Network, ...]) -> tuple[str, str, str] | None:
    """client_view: (remote, scheme, host) as the client made the request, when the peer is a trusted proxy
    that said something; None otherwise (the request stands as it came)."""
    if not trusted(request.remote, nets):
        return None
    hops = _hops(request)
    if not hops:
        return None
    remote, scheme, host = request.remote or "", request.scheme, request.host
    for hop in reversed(hops):
        proto = hop.get("proto", "").lower()
        if proto in ("http", "https"):
            scheme = proto
        if hop.get("host"):
            host = hop["host"]
        addr = _address(hop.get("for", ""))
        if addr is None:
            break  # "unknown", an obfuscated name, garbage: nothing further left is believed
        remote = str(addr)
        if not any(addr in net for net in nets):
            break
    return remote, scheme, host


def forwarded_middleware(config: Config) -> Middleware:
    """forwarded_middleware: the middleware believing forwarded headers from `server.trusted_proxies` only."""
    nets = networks(config.server.trusted_proxies)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        view = client_view(request, nets) if nets else None
        if view is not None:
            remote, scheme, host = view
            request = request.clone(remote=remote, scheme=scheme, host=host)
        return await handler(request)

    return middleware


def origin_tuple(text: str) -> tuple[str, str, int] | None:
    """origin_tuple: (scheme, host, port) of an origin or URL, the port made explicit; None if it has none."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def own_origins(request: web.Request) -> set[tuple[str, str, int]]:
    """own_origins: the origins this server answers as: the request's own (scheme and host as the client made
    it) and `server.public_url`'s when set."""
    found = set()
    for text in (f"{request.scheme}://{request.host}", request.app[CONFIG].server.public_url):
        origin = origin_tuple(text) if text else None
        if origin is not None:
            found.add(origin)
    return found


def same_origin(request: web.Request) -> bool:
    """same_origin: the request carries an `Origin` header naming this server (scheme, host and port)."""
    origin = origin_tuple(request.headers.get("Origin", ""))
    return origin is not None and origin in own_origins(request)
