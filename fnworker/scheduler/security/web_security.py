"""Builds the REST API's security settings from a validated ``WorkerConfig``. Does
I/O only to read the token key (a file or an environment variable).

``load_web_security`` raises ``ConfigError`` with one sentence naming the key when
a key cannot be read or does not fit; the sentence never contains key material.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fnworker.scheduler.security.key_material import load_public_key, read_key_bytes
from fnworker.scheduler.security.policy import AccessPolicy, policy_of
from fnworker.scheduler.security.tokens import (
    MIN_SECRET_BYTES,
    TokenVerifier,
    public_algorithms,
    secret_algorithms,
)
from fnworker.scheduler.settings.security_checks import (
    TLS_PROVIDER,
    TOKEN_PROVIDER,
    token_property,
    token_property_key,
)
from fnworker.scheduler.settings.worker_config import ConfigError, WorkerConfig


@dataclass(frozen=True)
class WebSecurity:
    """How the REST API authenticates and authorizes callers.

    ``token`` verifies bearer tokens (AuthenticationProviderToken); ``tls_roles``
    takes the role from a verified client certificate's common name
    (AuthenticationProviderTls); ``authenticate_metrics`` keeps ``/metrics`` behind
    authentication (``authenticateMetricsEndpoint``).
    """

    authentication_enabled: bool = False
    token: TokenVerifier | None = None
    tls_roles: bool = False
    authenticate_metrics: bool = True
    policy: AccessPolicy = field(default_factory=AccessPolicy)


OPEN = WebSecurity()
"""No authentication, no authorization: the worker's default, as in Pulsar."""


def load_web_security(config: WorkerConfig, environ: Mapping[str, str]) -> WebSecurity:
    """The settings in force; reads the token key when the token provider is enabled."""
    enabled = config.authentication_enabled
    providers = config.authentication_providers if enabled else ()
    return WebSecurity(
        authentication_enabled=enabled,
        token=token_verifier(config, environ) if TOKEN_PROVIDER in providers else None,
        tls_roles=TLS_PROVIDER in providers,
        authenticate_metrics=config.authenticate_metrics_endpoint,
        policy=policy_of(
            enabled=config.authorization_enabled,
            super_users=config.super_user_roles,
            proxy_roles=config.proxy_roles,
            tenant_admins=config.tenant_admin_roles,
            namespace_roles=config.namespace_function_roles,
        ),
    )


def token_verifier(config: WorkerConfig, environ: Mapping[str, str]) -> TokenVerifier:
    """The verifier for ``tokenSecretKey`` (preferred, as in Pulsar) or ``tokenPublicKey``."""
    secret = token_property(config, "tokenSecretKey")
    public = token_property(config, "tokenPublicKey")
    # The properties come from YAML untyped, as Pulsar's do; TokenVerifier takes them as given.
    common: dict[str, Any] = {
        "role_claim": token_property(config, "tokenAuthClaim") or "sub",
        "audience_claim": token_property(config, "tokenAudienceClaim") or None,
        "audience": token_property(config, "tokenAudience") or None,
    }
    if secret:
        setting = token_property_key(config, "tokenSecretKey")
        key = read_key_bytes(setting, str(secret), environ)
        if len(key) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"{setting} holds a key of {len(key)} bytes; expected at least "
                f"{MIN_SECRET_BYTES} bytes (256 bits) for HS256."
            )
        return TokenVerifier(key=key, algorithms=secret_algorithms(key), **common)
    if not public:
        raise ConfigError(
            f"{token_property_key(config, 'tokenSecretKey')} is not set; expected a key when "
            "AuthenticationProviderToken is enabled, or properties.tokenPublicKey."
        )
    setting = token_property_key(config, "tokenPublicKey")
    public_key = load_public_key(setting, read_key_bytes(setting, str(public), environ))
    chosen = token_property(config, "tokenPublicAlg")
    algorithms = public_algorithms(public_key, chosen)
    if algorithms is None:
        raise ConfigError(
            f"{token_property_key(config, 'tokenPublicAlg')} = {chosen!r} does not fit the "
            f"{type(public_key).__name__} in {setting}; expected an algorithm of that key type."
        )
    return TokenVerifier(key=public_key, algorithms=algorithms, **common)
