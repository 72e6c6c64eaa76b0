"""The flags of ``fnworker functions localrun`` beyond a function's details: how the
instances reach the broker, with pulsar-admin's localrun names. Builds argparse
parsers only; no I/O."""

from __future__ import annotations

import argparse

from fnworker.scheduler.model.instances import DEFAULT_FUNCTIONS_NAMESPACE

DEFAULT_BROKER_SERVICE_URL = "pulsar://localhost:6650"
"""pulsar-admin localrun's default."""


def add_localrun_flags(parser: argparse.ArgumentParser) -> None:
    """--broker-service-url, the client's authentication and TLS flags, and state."""
    add = parser.add_argument
    add(
        "--broker-service-url",
        default=DEFAULT_BROKER_SERVICE_URL,
        help=f"the broker, pulsar:// or pulsar+ssl:// (default {DEFAULT_BROKER_SERVICE_URL})",
    )
    add(
        "--web-service-url",
        help="accepted for pulsar-admin scripts; not used (localrun reads --py from disk)",
    )
    add(
        "--client-auth-plugin",
        help="org.apache.pulsar.client.impl.auth.AuthenticationToken or AuthenticationTls",
    )
    add("--client-auth-params", help="token:<jwt>, file:///path/to/token, or the TLS files")
    add("--use-tls", action="store_true", help="connect with TLS (pulsar+ssl://)")
    add("--tls-allow-insecure", action="store_true", help="accept any broker certificate")
    add(
        "--hostname-verification-enabled",
        action="store_true",
        help="check the broker certificate names the host",
    )
    add("--tls-trust-cert-path", help="CA certificates (PEM) to trust for the broker")
    add(
        "--instance-id-offset",
        type=int,
        default=0,
        help="number the instances from this index (default 0)",
    )
    add(
        "--state-storage-service-url",
        help="accepted for pulsar-admin scripts; fnworker keeps state on the broker instead",
    )
    add(
        "--state-namespace",
        default=DEFAULT_FUNCTIONS_NAMESPACE,
        help="the namespace of the function's state topic: the cluster's "
        f"pulsarFunctionsNamespace (default {DEFAULT_FUNCTIONS_NAMESPACE})",
    )
