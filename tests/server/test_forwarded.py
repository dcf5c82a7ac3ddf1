"""Tests of server.forwarded: forwarded headers believed from server.trusted_proxies only (real app, real HTTP),
and the same-origin rule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from server.app import create_app
from server.auth import client_ip, cookie_secure
from server.config import Config, ConfigError
from server.forwarded import origin_tuple, same_origin


async def _whoami(request: web.Request) -> web.Response:
    """A handler showing the request as the application sees it."""
    return web.json_response({"ip": client_ip(request), "scheme": request.scheme, "host": request.host,
                              "secure": cookie_secure(request), "same_origin": same_origin(request)})


async def _client(aiohttp_client: Any, config: Config) -> Any:
    app = create_app(config)
    app.router.add_get("/test/whoami", _whoami)
    return await aiohttp_client(app)


async def _seen(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    resp = await client.get("/test/whoami", headers=headers)
    assert resp.status == 200
    return dict(await resp.json())


SPOOF = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
         "Forwarded": 'for="[2001:db8::1]";proto=https;host=evil.example'}


async def test_without_trusted_proxies_nobody_is_believed(aiohttp_client: Any,
                                                          make_config: Callable[..., Config]) -> None:
    client = await _client(aiohttp_client, make_config())
    seen = await _seen(client, SPOOF)
    assert seen["ip"] == "127.0.0.1" and seen["scheme"] == "http" and not seen["secure"]
    assert seen["host"] == f"127.0.0.1:{client.port}"


async def test_an_untrusted_peer_is_not_believed(aiohttp_client: Any, make_config: Callable[..., Config]) -> None:
    client = await _client(aiohttp_client, make_config(server__trusted_proxies=["10.0.0.0/8", "::1"]))
    seen = await _seen(client, SPOOF)
    assert (seen["ip"], seen["scheme"]) == ("127.0.0.1", "http")


async def test_a_trusted_proxy_gives_the_clients_address_scheme_and_host(aiohttp_client: Any,
                                                                         make_config: Callable[..., Config]) -> None:
    client = await _client(aiohttp_client, make_config(server__trusted_proxies=["127.0.0.1", "10.1.0.0/16"]))
    nginx = {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "taphuan.example.vn",
             "Origin": "https://taphuan.example.vn"}
    assert await _seen(client, nginx) == {"ip": "198.51.100.4", "scheme": "https", "host": "taphuan.example.vn",
                                          "secure": True, "same_origin": True}
    # what the client wrote itself, left of what the trusted proxies appended, is not believed
    seen = await _seen(client, {"X-Forwarded-For": "6.6.6.6, 198.51.100.4, 10.1.2.3"})
    assert seen["ip"] == "198.51.100.4" and seen["scheme"] == "http"
    # a chain of proxies appending their own view: the outermost trusted one's entry counts
    seen = await _seen(client, {"X-Forwarded-For": "198.51.100.4, 10.1.2.3", "X-Forwarded-Proto": "https, http"})
    assert (seen["ip"], seen["scheme"]) == ("198.51.100.4", "https")
    # RFC 7239 Forwarded, preferred to X-Forwarded-*; an IPv6 client with its port
    seen = await _seen(client, {"Forwarded": 'for="[2001:db8::7]:4711";proto=https;host=taphuan.example.vn',
                                "X-Forwarded-For": "203.0.113.9"})
    assert (seen["ip"], seen["scheme"], seen["host"]) == ("2001:db8::7", "https", "taphuan.example.vn")
    # an address that is not one ("unknown", an obfuscated name) stops the search: the proxy's own stays
    seen = await _seen(client, {"X-Forwarded-For": "unknown"})
    assert seen["ip"] == "127.0.0.1"
    # a proxy that only says the scheme
    seen = await _seen(client, {"X-Forwarded-Proto": "https"})
    assert (seen["ip"], seen["scheme"], seen["secure"]) == ("127.0.0.1", "https", True)


async def test_the_public_url_is_an_origin_of_this_server(aiohttp_client: Any,
                                                          make_config: Callable[..., Config]) -> None:
    client = await _client(aiohttp_client, make_config(server__public_url="https://taphuan.example.vn/"))
    for origin, same in [("https://taphuan.example.vn", True), ("https://taphuan.example.vn:443", True),
                         ("http://taphuan.example.vn", False), ("https://taphuan.example.vn:8443", False),
                         (f"http://127.0.0.1:{client.port}", True), ("https://evil.example", False),
                         ("null", False), ("", False)]:
        assert (await _seen(client, {"Origin": origin} if origin else {}))["same_origin"] is same, origin


def test_origins_are_compared_by_scheme_host_and_port() -> None:
    assert origin_tuple("https://Taphuan.Example.VN") == ("https", "taphuan.example.vn", 443)
    assert origin_tuple("http://[::1]:8080/") == ("http", "::1", 8080)
    for bad in ("null", "file://", "taphuan.example.vn", "http://h:99999", "javascript:alert(1)"):
        assert origin_tuple(bad) is None, bad


def test_trusted_proxies_must_be_addresses_or_networks(make_config: Callable[..., Config]) -> None:
    assert make_config(server__trusted_proxies=["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"])
    with pytest.raises(ConfigError) as info:
        make_config(server__trusted_proxies=["127.0.0.1", "nginx.local"])
    assert "server.trusted_proxies" in str(info.value) and "nginx.local" in str(info.value)
