"""How the CLI reaches a secured worker: pulsar-admin's ``--auth-plugin``,
``--auth-params``, ``--tls-trust-cert-path``, ``--tls-allow-insecure`` and
``--tls-enable-hostname-verification``, turned into request headers and an SSL
context. Reads a token file or certificate files when the flags name them.

Token authentication sends ``Authorization: Bearer <token>``; TLS authentication
(``AuthenticationTls`` with ``tlsCertFile:...,tlsKeyFile:...``) presents a client
certificate. Hostname verification is on unless turned off explicitly (pulsar-admin
leaves it off by default; fnworker prefers the safe side).
"""

from __future__ import annotations

import ssl

import msgspec

from fnworker.scheduler.cli.function_config import CliError
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

AUTH_PLUGIN_ENV = "FNWORKER_AUTH_PLUGIN"
AUTH_PARAMS_ENV = "FNWORKER_AUTH_PARAMS"
TRUST_CERT_ENV = "FNWORKER_TLS_TRUST_CERT_PATH"


class Connection(msgspec.Struct, frozen=True, kw_only=True):
    """The security flags of one CLI call."""

    auth_plugin: str | None = None
    auth_params: str | None = None
    tls_trust_cert_path: str | None = None
    tls_allow_insecure: bool = False
    tls_hostname_verification: bool = True

    def __repr__(self) -> str:  # never print the parameters
        return f"Connection(auth_plugin={self.auth_plugin!r}, auth_params='<redacted>')"


def request_headers(connection: Connection) -> dict[str, str]:
    """``Authorization: Bearer <token>`` for token authentication, else nothing."""
    credential = _credential(connection)
    if isinstance(credential, TokenCredential):
        try:
            return {"Authorization": "Bearer " + read_token(credential, "--auth-params")}
        except CredentialError as error:
            raise CliError(str(error)) from None
    if isinstance(credential, PluginCredential):
        raise CliError(
            f"--auth-plugin {credential.plugin} is not supported by the fnworker CLI; expected "
            "org.apache.pulsar.client.impl.auth.AuthenticationToken or AuthenticationTls"
        )
    return {}


def ssl_context(connection: Connection) -> ssl.SSLContext:
    """The context for ``https://`` admin URLs: trust, verification and a client cert."""
    credential = _credential(connection)
    tls = credential if isinstance(credential, TlsCredential) else None
    try:
        return client_context(
            trust_certs_file=connection.tls_trust_cert_path,
            allow_insecure=connection.tls_allow_insecure,
            verify_hostname=connection.tls_hostname_verification,
            cert_file=tls.cert_file if tls else None,
            key_file=tls.key_file if tls else None,
        )
    except ConfigError as error:
        raise CliError(str(error)) from None


def _credential(
    connection: Connection,
) -> TokenCredential | TlsCredential | PluginCredential | None:
    """What ``--auth-plugin`` and ``--auth-params`` describe."""
    try:
        return parse_credentials(
            connection.auth_plugin, connection.auth_params, setting="--auth-params"
        )
    except CredentialError as error:
        raise CliError(str(error)) from None
