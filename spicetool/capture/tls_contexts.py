"""TLS contexts for the proxy: toward the client (our certificate) and toward a TLS server.

ssl.SSLContext loads certificates only from files, so a generated one is written to a private
temporary directory for the load and removed right after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import ssl
import tempfile
from pathlib import Path


class TlsSetupError(Exception):
    """A certificate, key or CA file cannot be used (one line, for the user)."""


def self_signed(hosts: list[str], days: int = 30) -> tuple[bytes, bytes]:
    """A fresh self-signed certificate (PEM) and its key (PEM), valid for `hosts` (names or IPs)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "spicetool record")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # CA:TRUE so clients can be given this very file as their CA (spicy --spice-ca-file).
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def fingerprint(cert_pem: bytes) -> str:
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    return hashlib.sha256(der).hexdigest()


def server_context(cert: str | None, key: str | None, hosts: list[str]) -> tuple[ssl.SSLContext, bytes]:
    """The context that faces the client; returns it and the certificate PEM it presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if cert:
        try:
            ctx.load_cert_chain(cert, key)
            return ctx, Path(cert).read_bytes()
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(f"cannot use certificate {cert}" + (f" / key {key}" if key else "")
                                + f": {getattr(exc, 'strerror', None) or exc}") from None
    cert_pem, key_pem = self_signed(hosts)
    with tempfile.TemporaryDirectory(prefix="spicetool-tls-") as d:
        os.chmod(d, 0o700)
        cert_path, key_path = Path(d, "cert.pem"), Path(d, "key.pem")
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        ctx.load_cert_chain(str(cert_path), str(key_path))
    return ctx, cert_pem


def client_context(ca: str | None) -> ssl.SSLContext:
    """The context toward a TLS server: verified against `ca` when given, otherwise not verified
    (the usual case: a test server with its own self-signed certificate)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        try:
            ctx.load_verify_locations(ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(f"cannot use CA file {ca}: {getattr(exc, 'strerror', None) or exc}") from None
        ctx.check_hostname = False  # SPICE servers are reached by address; the CA check is what matters
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def set_keylog(ctx: ssl.SSLContext, path: str) -> None:
    """Append the secrets of every connection made with ctx to `path` (NSS key log format)."""
    try:
        with open(path, "a"):  # fail now, in one line, rather than at the first handshake
            pass
        ctx.keylog_filename = path
    except OSError as exc:
        raise TlsSetupError(f"cannot write the key log {path}: {exc.strerror or exc}") from None
