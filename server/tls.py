"""server.tls: the SSL context for `serve`: configured files or a generated self-signed certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.config import Config, TlsConfig


def self_signed(folder: Path, hostnames: list[str]) -> tuple[Path, Path]:
    """self_signed: create (once) a self-signed certificate for `hostnames` in `folder`."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = folder / "self-signed.crt", folder / "self-signed.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hostnames + ["localhost", "127.0.0.1"]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "taphuan")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(key, hashes.SHA256()))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def enabled(config: Config) -> bool:
    """enabled: whether the server itself serves HTTPS (`server.tls` is not "off")."""
    return config.server.tls != "off"


def ssl_context(config: Config) -> ssl.SSLContext | None:
    """ssl_context: None for plain HTTP, else a server context for the configured certificate."""
    tls = config.server.tls
    if not enabled(config):
        return None
    if isinstance(tls, TlsConfig):
        cert, key = Path(tls.cert), Path(tls.key)
    else:
        hosts = [config.server.host] if config.server.host not in ("0.0.0.0", "::", "") else []
        cert, key = self_signed(config.data_path / "tls", hosts)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx
