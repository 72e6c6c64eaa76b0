"""Reads secret and public keys the way Pulsar's token settings name them. Does I/O
(a file or an environment variable), nothing else.

A setting such as ``properties.tokenSecretKey`` is one of:

- ``file:///path/to/key``: the raw bytes of the file (``pulsar tokens create-secret-key``
  writes raw bytes; a public key file is DER or PEM);
- ``data:;base64,<base64>`` (or ``data:,<text>``): the bytes of a data URL;
- ``env:NAME``: the base64 value of the environment variable NAME;
- anything else: the key itself, in base64.

Errors are ``ConfigError`` sentences that name the setting and never contain the key.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

from fnworker.scheduler.settings.worker_config import ConfigError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def read_key_bytes(setting: str, value: str, environ: Mapping[str, str]) -> bytes:
    """The key bytes a ``file:``, ``data:``, ``env:`` or base64 setting names."""
    if value.startswith("file:"):
        return _read_file(setting, value)
    if value.startswith("data:"):
        return _read_data_url(setting, value)
    if value.startswith("env:"):
        name = value.removeprefix("env:")
        if name not in environ:
            raise ConfigError(
                f"{setting} names the environment variable {name}, which is not set; "
                "expected it to hold the key in base64."
            )
        return _base64(setting, environ[name], f"the environment variable {name}")
    return _base64(setting, value, "the value")


def _read_file(setting: str, value: str) -> bytes:
    """The bytes of a ``file:`` URL (``file:///abs`` or ``file:/abs``)."""
    path = Path(unquote(urlparse(value).path))
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"{setting} names the file {path}, which cannot be read ({error.strerror}); "
            "expected a readable key file."
        ) from None


def _read_data_url(setting: str, value: str) -> bytes:
    """The bytes of ``data:[<type>][;base64],<data>``."""
    header, comma, data = value.removeprefix("data:").partition(",")
    if not comma:
        raise ConfigError(
            f"{setting} is a data URL without a comma; expected data:;base64,<base64 key>."
        )
    if header.split(";")[-1] == "base64":
        return _base64(setting, data, "the data URL")
    return unquote(data).encode()


def _base64(setting: str, text: str, what: str) -> bytes:
    """Decode standard or URL-safe base64, padding optional."""
    cleaned = "".join(text.split())
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{setting}: {what} is not valid base64; expected file:///path, "
            "data:;base64,<base64>, env:VARIABLE or the key in base64."
        ) from None


def load_public_key(setting: str, raw: bytes) -> PublicKey:
    """An RSA or EC public key from DER (as Pulsar writes it) or PEM bytes."""
    try:
        key = load_pem_public_key(raw) if raw.lstrip().startswith(b"-----") else None
        key = key or load_der_public_key(raw)
    except ValueError:
        raise ConfigError(
            f"{setting} is not a public key; expected an RSA or EC public key in DER or PEM."
        ) from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(f"{setting} is a {type(key).__name__}; expected an RSA or EC public key.")
    return key
