"""server.csp: the Content-Security-Policy of every response, and the per-route exceptions that widen it.

The policy allows scripts, styles, images, media, fonts, frames and connections from the server's own origin
only (plus its WebSocket, spelled out for browsers that do not count ws/wss as 'self'); no inline script or
style, no plugins, no <base>, forms post only here, and no page may be framed. A route that truly needs more
declares it once, by route name, with `allow(app, name, directive=(sources…))`: e.g. the file of a PDF
material, which its own page shows in a frame, allows `frame-ancestors 'self'`. Nothing else is widened.
"""

from __future__ import annotations

import re

from aiohttp import web

BASE: dict[str, tuple[str, ...]] = {
    "default-src": ("'self'",),
    "script-src": ("'self'",),
    "style-src": ("'self'",),
    "img-src": ("'self'",),
    "media-src": ("'self'",),
    "font-src": ("'self'",),
    "connect-src": ("'self'",),
    "frame-src": ("'self'",),
    "worker-src": ("'self'",),
    "object-src": ("'none'",),
    "base-uri": ("'none'",),
    "form-action": ("'self'",),
    "frame-ancestors": ("'none'",),
}
# A Host header safe to repeat inside the header (name or [IPv6], optional port): anything else is left out.
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_SOURCE = re.compile(r"^(?:'[a-z-]+'|[a-z][a-z0-9+.-]*:|https?://[A-Za-z0-9.*:-]+|\*)$")


def allow(app: web.Application, route: str, **directives: tuple[str, ...]) -> None:
    """allow: widen the policy of the route named `route` (keyword `frame_ancestors` is `frame-ancestors`).

    The given sources replace a `'none'` and are added to anything else; unknown directives or odd sources are
    refused at start-up (a typo must not silently leave a page broken or a hole open).
    """
    routes = app.setdefault(ROUTES, {})
    extra = routes.setdefault(route, {})
    for key, sources in directives.items():
        name = key.replace("_", "-")
        if name not in BASE:
            raise ValueError(f"unknown CSP directive {name!r}")
        bad = [s for s in sources if not _SOURCE.match(s)]
        if bad or not sources:
            raise ValueError(f"CSP {name}: not a source list: {sources!r}")
        extra[name] = tuple(dict.fromkeys(extra.get(name, ()) + tuple(sources)))


def policy(request: web.Request) -> str:
    """policy: the Content-Security-Policy header value for `request` (the base, widened for its route)."""
    directives = dict(BASE)
    host = request.host
    if _HOST.match(host):
        directives["connect-src"] += (f"ws://{host}", f"wss://{host}")
    route = request.match_info.route.name if request.match_info.route is not None else None
    for name, sources in request.app.get(ROUTES, {}).get(route or "", {}).items():
        kept = tuple(s for s in directives[name] if s != "'none'")
        directives[name] = tuple(dict.fromkeys(kept + sources))
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def frame_ancestors_self(header: str) -> bool:
    """frame_ancestors_self: whether a policy lets the server's own pages frame the response."""
    match = re.search(r"(?:^|;)\s*frame-ancestors ([^;]*)", header)
    return match is not None and "'self'" in match.group(1).split()


ROUTES: web.AppKey[dict[str, dict[str, tuple[str, ...]]]] = web.AppKey("csp_routes")
