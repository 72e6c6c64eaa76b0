"""Security settings that are valid alone but not together, found before the worker
starts. Pure, no I/O: reading the key files happens in ``settings``.

Each problem is ``(key, value, expected)``; ``config_validation`` turns them into
Violations. A value that could be a secret is never returned, only ``<redacted>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from fnworker.scheduler.settings.worker_config import WorkerConfig, web_tls_enabled

TOKEN_PROVIDER: Final = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
TLS_PROVIDER: Final = "org.apache.pulsar.broker.authentication.AuthenticationProviderTls"
PROVIDERS: Final = (TOKEN_PROVIDER, TLS_PROVIDER)
REDACTED: Final = "<redacted>"
# The public-key algorithms Pulsar's AuthenticationProviderToken accepts (tokens.py uses them).
RSA_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS: Final = ("ES256", "ES384", "ES512")
_NAME = re.compile(r"[-=:.\w]+", re.ASCII)

Problem = tuple[str, Any, str]


def token_property(config: WorkerConfig, name: str) -> Any:
    """``properties[<tokenSettingPrefix><name>]``, as Pulsar reads token settings."""
    prefix = config.properties.get("tokenSettingPrefix") or ""
    return config.properties.get(f"{prefix}{name}")


def token_property_key(config: WorkerConfig, name: str) -> str:
    """The dotted key of a token setting, for messages."""
    prefix = config.properties.get("tokenSettingPrefix") or ""
    return f"properties.{prefix}{name}"


def security_problems(config: WorkerConfig) -> Iterator[Problem]:
    """Every inconsistent security setting, in key order."""
    yield from _authentication_problems(config)
    if config.authorization_enabled and not config.authentication_enabled:
        yield (
            "authorizationEnabled",
            True,
            "false unless authenticationEnabled is true (authorization needs the caller's role)",
        )
    if config.authentication_enabled and TOKEN_PROVIDER in config.authentication_providers:
        yield from _token_problems(config)
    yield from _role_map_problems(config)
    if config.tls_require_trusted_client_cert_on_connect and not config.tls_trust_certs_file_path:
        yield (
            "tlsTrustCertsFilePath",
            config.tls_trust_certs_file_path,
            (
                "the CA file that signs client certificates when "
                "tlsRequireTrustedClientCertOnConnect is true"
            ),
        )


def _authentication_problems(config: WorkerConfig) -> Iterator[Problem]:
    """Providers fnworker implements, and what each needs."""
    if not config.authentication_enabled:
        return
    expected = "a list of " + " and/or ".join(PROVIDERS)
    for provider in config.authentication_providers:
        if provider not in PROVIDERS:
            yield ("authenticationProviders", provider, expected + " (fnworker implements these)")
    tls_ready = web_tls_enabled(config) and bool(config.tls_trust_certs_file_path)
    if TLS_PROVIDER in config.authentication_providers and not tls_ready:
        yield (
            "authenticationProviders",
            TLS_PROVIDER,
            (
                "AuthenticationProviderTls only with tlsEnabled, workerPortTls and "
                "tlsTrustCertsFilePath set (it reads the role from the client certificate)"
            ),
        )


def _token_problems(config: WorkerConfig) -> Iterator[Problem]:
    """A key must be configured; the algorithm and audience settings must make sense."""
    secret = token_property(config, "tokenSecretKey")
    public = token_property(config, "tokenPublicKey")
    if not secret and not public:
        yield (
            token_property_key(config, "tokenSecretKey"),
            None,
            (
                "a key (file:///path, data:;base64,..., env:VARIABLE or base64) when "
                "AuthenticationProviderToken is enabled, or properties.tokenPublicKey"
            ),
        )
    for name, value in (("tokenSecretKey", secret), ("tokenPublicKey", public)):
        if value is not None and not isinstance(value, str):
            yield (token_property_key(config, name), REDACTED, "a string")
    algorithm = token_property(config, "tokenPublicAlg")
    if algorithm is not None and algorithm not in (*RSA_ALGORITHMS, *EC_ALGORITHMS):
        yield (
            token_property_key(config, "tokenPublicAlg"),
            algorithm,
            "one of " + ", ".join((*RSA_ALGORITHMS, *EC_ALGORITHMS)),
        )
    if token_property(config, "tokenAudienceClaim") and not token_property(config, "tokenAudience"):
        yield (
            token_property_key(config, "tokenAudience"),
            None,
            "the audience naming this worker when tokenAudienceClaim is set",
        )


def _role_map_problems(config: WorkerConfig) -> Iterator[Problem]:
    """Tenant and namespace names in tenantAdminRoles and namespaceFunctionRoles."""
    for tenant in config.tenant_admin_roles:
        if not _NAME.fullmatch(tenant):
            yield (
                f"tenantAdminRoles.{tenant}",
                tenant,
                "a tenant name of letters, digits and -=:._ mapped to a list of roles",
            )
    for namespace in config.namespace_function_roles:
        parts = namespace.split("/")
        if len(parts) != 2 or not all(_NAME.fullmatch(part) for part in parts):
            yield (
                f"namespaceFunctionRoles.{namespace}",
                namespace,
                "a namespace of the form tenant/namespace mapped to a list of roles",
            )
