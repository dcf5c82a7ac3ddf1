"""Tests of server.tls: the self-signed certificate (names, validity, file modes, made once) and the context."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509

from server.config import Config
from server.tls import self_signed, ssl_context


def _names(cert_path: Path) -> tuple[str, list[str], list[str], x509.Certificate]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return str(cn), san.get_values_for_type(x509.DNSName), ips, cert


def test_self_signed_names_every_host_and_localhost(tmp_path: Path) -> None:
    cert_path, key_path = self_signed(tmp_path / "tls", ["taphuan.example.edu.vn", "10.0.0.5", "localhost"])
    cn, dns, ips, cert = _names(cert_path)
    assert cn == "taphuan.example.edu.vn"
    assert dns == ["taphuan.example.edu.vn", "localhost"]  # once each, names as DNS names
    assert ips == ["10.0.0.5", "127.0.0.1"]  # addresses as IP addresses
    now = dt.datetime.now(dt.UTC)
    assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert cert.not_valid_after_utc - now > dt.timedelta(days=800)
    assert cert.issuer == cert.subject
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "tls").stat().st_mode & 0o777) == "0o700"


def test_without_hosts_it_is_for_this_machine(tmp_path: Path) -> None:
    cert_path, _key = self_signed(tmp_path, [])
    cn, dns, ips, _cert = _names(cert_path)
    assert (cn, dns, ips) == ("taphuan", ["localhost"], ["127.0.0.1"])


def test_made_once_then_reused(tmp_path: Path) -> None:
    first = self_signed(tmp_path, ["a.example"])
    pem = first[0].read_bytes(), first[1].read_bytes()
    second = self_signed(tmp_path, ["b.example"])  # browsers that accepted it keep accepting it
    assert second == first and (second[0].read_bytes(), second[1].read_bytes()) == pem
    first[1].unlink()  # half a pair is made again, whole
    third = self_signed(tmp_path, ["b.example"])
    assert _names(third[0])[0] == "b.example" and third[1].exists()


def test_off_is_plain_http(make_config: Callable[..., Config]) -> None:
    assert ssl_context(make_config(**{"server.tls": "off"})) is None


async def _handshake(ctx: ssl.SSLContext, cafile: Path, hostname: str) -> bytes:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        client = ssl.create_default_context(cafile=str(cafile))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=hostname)
        data = await reader.read()
        writer.close()
        return data
    finally:
        server.close()
        await server.wait_closed()


async def test_self_signed_context_serves_the_generated_certificate(make_config: Callable[..., Config]) -> None:
    config = make_config(**{"server.tls": "self-signed", "server.host": "taphuan.example.edu.vn"})
    ctx = ssl_context(config)
    assert ctx is not None
    cert = config.data_path / "tls" / "self-signed.crt"
    assert await _handshake(ctx, cert, "taphuan.example.edu.vn") == b"hello"
    assert await _handshake(ctx, cert, "localhost") == b"hello"
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(ctx, cert, "other.example")


def test_a_wildcard_bind_address_is_not_a_name(make_config: Callable[..., Config]) -> None:
    config = make_config(**{"server.tls": "self-signed", "server.host": "0.0.0.0"})
    ssl_context(config)
    cn, dns, ips, _cert = _names(config.data_path / "tls" / "self-signed.crt")
    assert (cn, dns, ips) == ("taphuan", ["localhost"], ["127.0.0.1"])


async def test_configured_files_are_used(tmp_path: Path, make_config: Callable[..., Config]) -> None:
    cert, key = self_signed(tmp_path / "own", ["own.example"])
    ctx = ssl_context(make_config(**{"server.tls": {"cert": str(cert), "key": str(key)}}))
    assert ctx is not None
    assert await _handshake(ctx, cert, "own.example") == b"hello"
    assert not (tmp_path / "data" / "tls").exists()  # nothing generated
    with pytest.raises(FileNotFoundError):
        ssl_context(make_config(**{"server.tls": {"cert": str(tmp_path / "none.crt"), "key": str(key)}}))
