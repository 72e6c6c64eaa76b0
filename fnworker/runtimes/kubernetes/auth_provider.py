"""The Kubernetes secrets token auth provider (Pulsar's
``KubernetesSecretsTokenAuthProvider``): the token a function was created or updated
with is kept in a Secret ``<job>-auth-<random>`` in the function's namespace (with the
cluster CA as ``ca.pem`` when the worker has one), which its pods mount at
``/etc/auth``. The function's record keeps only the Secret's name
(``FunctionAuthSpec``), so no token ever travels on the coordination topics.

The worker that serves the create/update request stores a new Secret (random
suffix, as Pulsar's ``pf-secret-xxxxx``) before the record is written (as Pulsar's
``cacheAuthData`` does); the admin removes the previous one once the new record is
written, or the new one if the write lost. The driver deletes the current one with
the StatefulSet when the function is deleted. An update without a token leaves the
function without a Secret (Pulsar does the same). Calls go through the driver's
client, rate limit and retries.
"""

from __future__ import annotations

import secrets
from typing import Final

import structlog

from fnworker.runtimes.kubernetes.api_calls import KubernetesError
from fnworker.runtimes.kubernetes.driver import KubernetesRuntime
from fnworker.runtimes.kubernetes.manifests import AuthMaterial, auth_secret, job_identity
from fnworker.scheduler.model.records import FunctionAuthSpec, FunctionRecord

log = structlog.get_logger("fnworker.runtime.kubernetes.auth")

NAME_ATTEMPTS: Final = 3


class KubernetesSecretsTokenAuthProvider:
    """Stores a function's token in a Secret its pods mount; removes it when asked."""

    def __init__(self, runtime: KubernetesRuntime, ca_pem: bytes | None = None) -> None:
        self.runtime = runtime
        self.ca_pem = ca_pem

    async def cache_auth(
        self, function: FunctionRecord, token: str | None
    ) -> FunctionAuthSpec | None:
        """A new Secret ``<job>-auth-<random>`` holding ``token`` (and the CA); None
        without a token. Each call makes its own Secret, so a request that loses a race
        (409 on the record) removes only its own."""
        if not token:
            return None
        identity = job_identity(function, self.runtime.settings, self.runtime.customizer)
        for _attempt in range(NAME_ATTEMPTS):
            suffix = secrets.token_hex(4)
            secret = auth_secret(identity, AuthMaterial(token, self.ca_pem), suffix)
            name, namespace = secret["metadata"]["name"], identity.namespace
            try:
                await self.runtime.call(
                    "create", "secrets", namespace, name, "create_namespaced_secret",
                    namespace, secret,
                )  # fmt: skip
            except KubernetesError as error:
                if error.code == 409:
                    continue
                raise
            log.info("function token stored", function=function.fqfn, secret=name)
            return FunctionAuthSpec(secret_name=name, with_ca=self.ca_pem is not None)
        raise KubernetesError(
            f"creating a Secret for the token of {function.fqfn} failed: {NAME_ATTEMPTS} "
            "random names were all taken", 409
        )  # fmt: skip

    async def clean_up(self, function: FunctionRecord) -> None:
        """Delete the Secret the function's record names, if any (gone already is fine)."""
        if function.auth is None:
            return
        namespace = job_identity(function, self.runtime.settings, self.runtime.customizer).namespace
        name = function.auth.secret_name
        await self.runtime.delete("secrets", namespace, name)
        log.info("function token removed", function=function.fqfn, secret=name)
