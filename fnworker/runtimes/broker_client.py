"""Creates the Pulsar clients the worker and its instances use, with the configured
authentication and TLS, and checks a ``pulsar+ssl://`` broker's TLS handshake so a
misconfiguration is one clear sentence instead of a client timeout.

``client_options`` is pure (the keyword arguments for ``pulsar.Client`` and its
asyncio twin); ``make_client`` builds a client (lazy, it does not connect);
``tls_problem`` does network I/O.

Authentication (``ClientSettings.auth_plugin`` / ``auth_params``):
``AuthenticationToken`` with ``token:<jwt>`` or ``file:///path`` (re-read whenever
the client connects, so a rotated token file is picked up); ``AuthenticationTls``
with ``tlsCertFile:...,tlsKeyFile:...``; other plugins by name.
"""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any, TypeAlias
from urllib.parse import urlparse

import pulsar

from fnworker.scheduler.model.instances import ClientSettings
from fnworker.scheduler.settings.client_credentials import (
    CredentialError,
    PluginCredential,
    TlsCredential,
    TokenCredential,
    parse_credentials,
    read_token,
)
from fnworker.scheduler.settings.tls import client_context
from fnworker.scheduler.settings.worker_config import ConfigError

AUTH_SETTING = "brokerClientAuthenticationParameters (or clientAuthenticationParameters)"
TLS_SCHEMES = ("pulsar+ssl", "https")

ClientLogger: TypeAlias = "logging.Logger | pulsar.FileLogger | pulsar.ConsoleLogger"


def client_logger() -> pulsar.ConsoleLogger:
    """The C++ client's own console logger at WARN.

    A Python logger would make the C++ client call into Python for every log line
    (DEBUG included) before filtering: measured 20-50 % of the consume-publish-ack
    loop's throughput, and upstream reports GIL deadlocks with it. The C++ logger
    filters before anything reaches Python.
    """
    return pulsar.ConsoleLogger(pulsar.LoggerLevel.Warn)


def uses_tls(service_url: str) -> bool:
    """Whether the URL asks for TLS (``pulsar+ssl://``, ``https://``)."""
    return urlparse(service_url).scheme in TLS_SCHEMES


def with_tls_scheme(service_url: str, use_tls: bool) -> str:
    """``pulsar://`` becomes ``pulsar+ssl://`` when the deprecated ``useTls`` is true."""
    if use_tls and service_url.startswith("pulsar://"):
        return "pulsar+ssl://" + service_url.removeprefix("pulsar://")
    return service_url


def authentication_of(settings: ClientSettings) -> pulsar.Authentication | None:
    """The client authentication the settings name, or None."""
    credential = parse_credentials(settings.auth_plugin, settings.auth_params, setting=AUTH_SETTING)
    if isinstance(credential, TokenCredential):
        if credential.file is None:
            return pulsar.AuthenticationToken(credential.token or "")
        return pulsar.AuthenticationToken(lambda: read_token(credential, AUTH_SETTING))
    if isinstance(credential, TlsCredential):
        return pulsar.AuthenticationTLS(credential.cert_file, credential.key_file)
    if isinstance(credential, PluginCredential):
        return pulsar.Authentication(credential.plugin, credential.params)
    return None


def credential_problem(settings: ClientSettings) -> str | None:
    """A sentence when the authentication parameters cannot work (unparsable, or a token
    file that cannot be read), else None. Reads a token file; never returns a token."""
    try:
        credential = parse_credentials(
            settings.auth_plugin, settings.auth_params, setting=AUTH_SETTING
        )
        if isinstance(credential, TokenCredential):
            read_token(credential, AUTH_SETTING)
    except CredentialError as error:
        return str(error)
    return None


def client_options(settings: ClientSettings) -> dict[str, Any]:
    """Keyword arguments for ``pulsar.Client`` (authentication aside)."""
    return {
        "operation_timeout_seconds": settings.operation_timeout_seconds,
        "use_tls": uses_tls(settings.service_url),
        "tls_trust_certs_file_path": settings.tls_trust_certs_file_path or None,
        "tls_allow_insecure_connection": settings.tls_allow_insecure_connection,
        "tls_validate_hostname": settings.tls_hostname_verification,
    }


def make_client(settings: ClientSettings, logger: ClientLogger | None = None) -> pulsar.Client:
    """A sync client for ``settings`` (construction is lazy and does not connect)."""
    return pulsar.Client(
        settings.service_url,
        authentication=authentication_of(settings),
        logger=logger or client_logger(),
        **client_options(settings),
    )


def tls_problem(settings: ClientSettings, timeout: float = 5.0) -> str | None:
    """A sentence saying why a ``pulsar+ssl://`` broker's TLS handshake fails, else None.

    None also when the URL is not TLS or the broker cannot be reached at all (it may
    still be starting; the client retries). Only the first host of a list is probed.
    """
    if not uses_tls(settings.service_url):
        return None
    host, port = _first_address(settings.service_url)
    try:
        context = client_context(
            trust_certs_file=settings.tls_trust_certs_file_path,
            allow_insecure=settings.tls_allow_insecure_connection,
            verify_hostname=settings.tls_hostname_verification,
            what="tlsTrustCertsFilePath",
        )
    except ConfigError as error:
        return str(error)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    return _handshake_problem(context, raw, settings.service_url, host)


def _handshake_problem(
    context: ssl.SSLContext, raw: socket.socket, url: str, host: str
) -> str | None:
    """Run the TLS handshake on a connected socket and explain a failure."""
    try:
        with context.wrap_socket(raw, server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as error:
        return (
            f"the broker at {url} presented a certificate this worker does not trust "
            f"({error.verify_message}); expected tlsTrustCertsFilePath (or "
            "brokerClientTrustCertsFilePath) to name the CA that signed it"
        )
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        return (
            f"the broker at {url} did not complete a TLS handshake ({reason}); expected a "
            "pulsar+ssl:// URL to name the broker's TLS port (brokerServicePortTls, usually "
            "6651), or a pulsar:// URL for a plain port"
        )
    finally:
        raw.close()


def _first_address(service_url: str) -> tuple[str, int]:
    """Host and port of the first broker in ``scheme://host1:port1,host2:port2``."""
    rest = service_url.split("://", 1)[1]
    first = rest.split(",", 1)[0].split("/", 1)[0]
    host, _, port = first.rpartition(":")
    if not host:
        return first, 6651
    return host.strip("[]"), int(port)
