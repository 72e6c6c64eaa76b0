"""Flag pieces several ``fnworker`` command groups share: value types (a JSON object,
pulsar-admin's ``true|false``), parent parsers, and the connection flags
(``--admin-url`` with pulsar-admin's authentication and TLS flags). Builds argparse
parsers only; no I/O."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from typing import Any

from fnworker.scheduler.cli.admin_client import ADMIN_URL_ENV
from fnworker.scheduler.cli.connection import (
    AUTH_PARAMS_ENV,
    AUTH_PLUGIN_ENV,
    TRUST_CERT_ENV,
    Connection,
)


def json_object(text: str) -> dict[str, Any]:
    """A flag value that must be a JSON object."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"'{text}' is not valid; expected a JSON object such as '{{\"key\": \"value\"}}'"
        )
    return value


def boolean(text: str) -> bool:
    """``true`` or ``false``, as pulsar-admin's arity-1 booleans."""
    lowered = text.lower()
    if lowered not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"'{text}' is not valid; expected true or false")
    return lowered == "true"


def parent(add: Callable[[argparse.ArgumentParser], object]) -> argparse.ArgumentParser:
    """A parent parser holding a group of flags shared by several actions."""
    parser = argparse.ArgumentParser(add_help=False)
    add(parser)
    return parser


def connection_parent(admin_url: str, environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """The parent parser of every command that calls a worker's REST API."""
    return parent(lambda p: add_connection_flags(p, admin_url, environ))


def add_connection_flags(
    parser: argparse.ArgumentParser, admin_url: str, environ: Mapping[str, str]
) -> None:
    """--admin-url and pulsar-admin's authentication and TLS flags."""
    add = parser.add_argument
    add(
        "--admin-url",
        default=admin_url,
        help=f"the worker's REST API, http(s):// (default {admin_url}, env {ADMIN_URL_ENV})",
    )
    add(
        "--auth-plugin",
        default=environ.get(AUTH_PLUGIN_ENV),
        help="org.apache.pulsar.client.impl.auth.AuthenticationToken or AuthenticationTls "
        f"(env {AUTH_PLUGIN_ENV})",
    )
    add(
        "--auth-params",
        default=environ.get(AUTH_PARAMS_ENV),
        help="token:<jwt> or file:///path/to/token; tlsCertFile:/c.pem,tlsKeyFile:/k.pem for "
        f"AuthenticationTls (env {AUTH_PARAMS_ENV})",
    )
    add(
        "--tls-trust-cert-path",
        default=environ.get(TRUST_CERT_ENV),
        help=f"CA certificates (PEM) to trust for https:// (env {TRUST_CERT_ENV})",
    )
    add(
        "--tls-allow-insecure",
        action="store_true",
        help="accept any server certificate (no verification at all)",
    )
    add(
        "--tls-enable-hostname-verification",
        type=boolean,
        nargs="?",
        const=True,
        default=True,
        metavar="true|false",
        help="check the server certificate names the host (default true)",
    )


def connection_of(args: argparse.Namespace) -> Connection:
    """The security flags of a command that calls a worker."""
    return Connection(
        auth_plugin=args.auth_plugin or None,
        auth_params=args.auth_params or None,
        tls_trust_cert_path=args.tls_trust_cert_path or None,
        tls_allow_insecure=args.tls_allow_insecure,
        tls_hostname_verification=args.tls_enable_hostname_verification,
    )
