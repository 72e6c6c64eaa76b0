"""What a Pulsar client authentication plugin and its parameters mean, for the
worker's broker client and for the CLI. ``parse_credentials`` is pure;
``read_token`` reads a token file when the parameters name one.

Plugins and parameters, as Pulsar's Java client reads them:

- ``org.apache.pulsar.client.impl.auth.AuthenticationToken`` (or ``token``):
  ``token:<jwt>``, ``file:///path/to/token``, ``{"token": "<jwt>"}`` or the bare token;
- ``org.apache.pulsar.client.impl.auth.AuthenticationTls`` (or ``tls``):
  ``tlsCertFile:/path,tlsKeyFile:/path`` or ``{"tlsCertFile": ..., "tlsKeyFile": ...}``;
- any other plugin is handed to the client library by name, parameters unchanged.

Error messages name the setting and never contain the parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final
from urllib.parse import unquote, urlparse

import msgspec

TOKEN_PLUGINS: Final = ("org.apache.pulsar.client.impl.auth.AuthenticationToken", "token")
TLS_PLUGINS: Final = ("org.apache.pulsar.client.impl.auth.AuthenticationTls", "tls")


class CredentialError(ValueError):
    """Parameters that do not fit their plugin; the message names the setting only."""


class TokenCredential(msgspec.Struct, frozen=True, kw_only=True, tag="token"):
    """A token given inline, or the path of a file holding it (read on every use)."""

    token: str | None = None
    file: str | None = None

    def __repr__(self) -> str:  # never print the token
        return f"TokenCredential(file={self.file!r}, token={'<redacted>' if self.token else None})"


class TlsCredential(msgspec.Struct, frozen=True, kw_only=True, tag="tls"):
    """A client certificate and its private key."""

    cert_file: str
    key_file: str


class PluginCredential(msgspec.Struct, frozen=True, kw_only=True, tag="plugin"):
    """Another plugin, passed to the client library as named."""

    plugin: str
    params: str

    def __repr__(self) -> str:
        return f"PluginCredential(plugin={self.plugin!r}, params='<redacted>')"


Credential = TokenCredential | TlsCredential | PluginCredential


def parse_credentials(plugin: str | None, params: str | None, *, setting: str) -> Credential | None:
    """The credential a plugin and its parameters describe; None without a plugin."""
    if not plugin:
        return None
    params = (params or "").strip()
    if plugin in TOKEN_PLUGINS:
        return _token(params, setting)
    if plugin in TLS_PLUGINS:
        return _tls(params, setting)
    return PluginCredential(plugin=plugin, params=params)


def _token(params: str, setting: str) -> TokenCredential:
    """``token:``, ``file:``, a JSON object with ``token``, or the bare token."""
    if params.startswith("token:"):
        token = params.removeprefix("token:").strip()
    elif params.startswith("file:"):
        return TokenCredential(file=unquote(urlparse(params).path))
    elif params.startswith("{"):
        token = str(_json_object(params, setting).get("token") or "")
    else:
        token = params
    if not token:
        raise CredentialError(
            f'{setting} holds no token; expected token:<jwt>, file:///path or {{"token": ...}}'
        )
    return TokenCredential(token=token)


def _tls(params: str, setting: str) -> TlsCredential:
    """``tlsCertFile:...,tlsKeyFile:...`` or the same as a JSON object."""
    if params.startswith("{"):
        values = {k: str(v) for k, v in _json_object(params, setting).items()}
    else:
        values = dict(part.split(":", 1) for part in params.split(",") if ":" in part)
    cert, key = values.get("tlsCertFile"), values.get("tlsKeyFile")
    if not cert or not key:
        raise CredentialError(
            f"{setting} does not name tlsCertFile and tlsKeyFile; expected "
            "tlsCertFile:/path/cert.pem,tlsKeyFile:/path/key.pem"
        )
    return TlsCredential(cert_file=cert.strip(), key_file=key.strip())


def _json_object(params: str, setting: str) -> dict[str, object]:
    """Parameters given as a JSON object."""
    try:
        value = json.loads(params)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise CredentialError(f"{setting} starts with '{{' but is not a JSON object")
    return value


def read_token(credential: TokenCredential, setting: str) -> str:
    """The token, read from its file when it has one (so a rotated file is picked up)."""
    if credential.file is None:
        return credential.token or ""
    try:
        token = Path(credential.file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise CredentialError(
            f"{setting} names the token file {credential.file}, which cannot be read ({reason})"
        ) from None
    if not token:
        raise CredentialError(f"{setting} names the token file {credential.file}, which is empty")
    return token
