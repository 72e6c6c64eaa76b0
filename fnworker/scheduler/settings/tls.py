"""SSL contexts: the worker's HTTPS server (``workerPortTls``) and the clients that
talk TLS (the CLI, the broker probe). Reads certificate files; nothing else.

Server, from ``functions_worker.yml``:

- ``tlsCertificateFilePath`` + ``tlsKeyFilePath``: the worker's certificate chain and key;
- ``tlsTrustCertsFilePath``: the CA that signs client certificates; with it, clients
  may present a certificate (read by AuthenticationProviderTls), and with
  ``tlsRequireTrustedClientCertOnConnect: true`` they must;
- ``webServiceTlsProtocols`` (``TLSv1.2``, ``TLSv1.3``) bounds the versions; the
  default minimum is TLS 1.2. ``webServiceTlsCiphers`` takes OpenSSL cipher names.

Every problem is a ``ConfigError`` naming the key and the file, never a key's content.
"""

from __future__ import annotations

import ssl
from typing import Final

from fnworker.scheduler.settings.worker_config import ConfigError, WorkerConfig

PROTOCOLS: Final = {
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def server_context(config: WorkerConfig) -> ssl.SSLContext:
    """The context the HTTPS site on ``workerPortTls`` serves with."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(context, config.tls_certificate_file_path, config.tls_key_file_path)
    if config.tls_trust_certs_file_path:
        _load_trust(context, "tlsTrustCertsFilePath", config.tls_trust_certs_file_path)
        context.verify_mode = (
            ssl.CERT_REQUIRED
            if config.tls_require_trusted_client_cert_on_connect
            else ssl.CERT_OPTIONAL
        )
    _bound_protocols(context, config.web_service_tls_protocols)
    if config.web_service_tls_ciphers:
        try:
            context.set_ciphers(":".join(config.web_service_tls_ciphers))
        except ssl.SSLError:
            raise ConfigError(
                f"webServiceTlsCiphers = {list(config.web_service_tls_ciphers)!r} is not valid; "
                "expected OpenSSL cipher names such as ECDHE-RSA-AES128-GCM-SHA256."
            ) from None
    return context


def _load_chain(context: ssl.SSLContext, cert: str | None, key: str | None) -> None:
    """The server's certificate chain and private key."""
    if not cert or not key:
        raise ConfigError(
            "tlsCertificateFilePath and tlsKeyFilePath must both be set to serve TLS; "
            "expected the paths of a PEM certificate chain and its private key."
        )
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as error:
        which = "tlsCertificateFilePath" if error.filename in (None, cert) else "tlsKeyFilePath"
        raise ConfigError(f"{which}: {error.filename or cert} does not exist.") from None
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(
            f"tlsCertificateFilePath {cert} and tlsKeyFilePath {key} are not a PEM certificate "
            f"chain and its private key ({_short(error)})."
        ) from None


def _load_trust(context: ssl.SSLContext, key: str, path: str) -> None:
    """CA certificates to trust."""
    try:
        context.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError) as error:
        raise ConfigError(
            f"{key}: {path} cannot be read as PEM CA certificates ({_short(error)})."
        ) from None


def _bound_protocols(context: ssl.SSLContext, protocols: tuple[str, ...]) -> None:
    """Minimum and maximum TLS versions from ``webServiceTlsProtocols``."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not protocols:
        return
    unknown = [name for name in protocols if name not in PROTOCOLS]
    if unknown:
        raise ConfigError(
            f"webServiceTlsProtocols = {list(protocols)!r} is not valid; "
            f"expected a list of {', '.join(PROTOCOLS)}."
        )
    versions = sorted(PROTOCOLS[name] for name in protocols)
    context.minimum_version, context.maximum_version = versions[0], versions[-1]


def client_context(
    *,
    trust_certs_file: str | None = None,
    allow_insecure: bool = False,
    verify_hostname: bool = True,
    cert_file: str | None = None,
    key_file: str | None = None,
    what: str = "--tls-trust-cert-path",
) -> ssl.SSLContext:
    """A client context: trusts ``trust_certs_file`` (else the system CAs), optionally
    presents a client certificate; ``allow_insecure`` turns verification off."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if trust_certs_file:
        _load_trust(context, what, trust_certs_file)
    if allow_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.check_hostname = verify_hostname
    if cert_file and key_file:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (ssl.SSLError, OSError) as error:
            raise ConfigError(
                f"the client certificate {cert_file} and key {key_file} cannot be loaded "
                f"({_short(error)})."
            ) from None
    return context


def _short(error: BaseException) -> str:
    """An OS or SSL error as a short phrase."""
    return getattr(error, "strerror", None) or getattr(error, "reason", None) or str(error)
