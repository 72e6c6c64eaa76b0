"""Key material for the security tests, made fresh in a temporary folder with
``cryptography``: a CA, a server certificate for localhost/127.0.0.1, client
certificates whose common name is a role, an untrusted second CA, and token keys
(an HMAC secret, RSA and EC key pairs) with a signer. Nothing is checked in."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Pem:
    """A certificate and its key, written as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Certs:
    """Everything a TLS test needs, as files."""

    ca: Path
    server: Pem
    client: Pem
    other_client: Pem
    untrusted_ca: Path
    untrusted_server: Pem


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, key: PrivateKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def _write(folder: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> Pem:
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Pem(cert=cert_path, key=key_path)


class Authority:
    """A certificate authority that issues server and client certificates."""

    def __init__(self, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            _builder(name, _name(name), self.key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, folder: Path, stem: str, common_name: str, *, server: bool) -> Pem:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = _builder(common_name, self.cert.subject, key).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if server:
            names: list[x509.GeneralName] = [
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return _write(folder, stem, builder.sign(self.key, hashes.SHA256()), key)


def make_certs(folder: Path, *, client_role: str = "admin", other_role: str = "guest") -> Certs:
    """A CA with a server and two client certificates, and an untrusted CA."""
    folder.mkdir(parents=True, exist_ok=True)
    trusted, untrusted = Authority("fnworker test CA"), Authority("someone else's CA")
    return Certs(
        ca=trusted.write(folder / "ca.pem"),
        server=trusted.issue(folder, "server", "localhost", server=True),
        client=trusted.issue(folder, "client", client_role, server=False),
        other_client=trusted.issue(folder, "other-client", other_role, server=False),
        untrusted_ca=untrusted.write(folder / "untrusted-ca.pem"),
        untrusted_server=untrusted.issue(folder, "untrusted-server", "localhost", server=True),
    )


# --- token keys --------------------------------------------------------------------


def new_secret() -> bytes:
    """A 256-bit HMAC secret, as ``pulsar tokens create-secret-key`` makes."""
    return secrets.token_bytes(32)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_der(key: PrivateKey) -> bytes:
    """The public key as Pulsar's ``tokens create-key-pair`` writes it (DER)."""
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(
    key: bytes | PrivateKey,
    subject: str | None = "admin",
    *,
    algorithm: str = "HS256",
    expires_in: float | None = 3600,
    **claims: Any,
) -> str:
    """A token for ``subject`` (None: no ``sub``), expiring ``expires_in`` seconds from now."""
    body: dict[str, Any] = dict(claims)
    if subject is not None:
        body["sub"] = subject
    if expires_in is not None:
        body["exp"] = int(time.time() + expires_in)
    return jwt.encode(body, key, algorithm=algorithm)
