"""The Kubernetes secrets configurator: a function's ``secrets`` map becomes
environment variables read from Kubernetes Secrets. Pure, no I/O.

Pulsar's KubernetesSecretsProviderConfigurator shape, one entry per secret::

    secrets:
      DB_PASSWORD: {path: database-credentials, key: password}

becomes ``env: [{name: DB_PASSWORD, valueFrom: {secretKeyRef: {name:
database-credentials, key: password}}}]`` in the function's container. In the pod
the instance uses the ``environment`` secrets provider, so
``context.get_secret("DB_PASSWORD")`` returns the variable's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.names import RFC1123_SUBDOMAIN

SECRETS_PROVIDER = "environment"
"""The in-pod provider that reads what this configurator puts in the environment."""

CONFIGURATOR_NAMES = (
    "kubernetes",
    (
        "org.apache.pulsar.functions.secretsproviderconfigurator."
        "KubernetesSecretsProviderConfigurator"
    ),
)

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+")
_SHAPE = "{path: <Secret name>, key: <field of the Secret>}"


def selects_kubernetes_secrets(class_name: str | None) -> bool:
    """Whether secretsProviderConfiguratorClassName names this configurator."""
    return class_name in CONFIGURATOR_NAMES


def secret_env(secrets: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The container env entries for ``secrets``, sorted by variable name."""
    return [_env_entry(name, secrets[name]) for name in sorted(secrets)]


def check_secrets(secrets: Mapping[str, Any]) -> None:
    """Raise ManifestError (one sentence) if any entry of ``secrets`` has a bad shape."""
    secret_env(secrets)


def _env_entry(name: str, value: Any) -> dict[str, Any]:
    """One ``env`` entry reading ``value``'s Secret field into variable ``name``."""
    if not _ENV_NAME.fullmatch(name):
        raise ManifestError(
            f"secrets key '{name}' is not a valid environment variable name; expected "
            "letters, digits and '_', not starting with a digit"
        )
    if not isinstance(value, Mapping) or set(value) != {"path", "key"}:
        raise ManifestError(
            f"secrets.{name} is {_show(value)}; the Kubernetes secrets configurator expects "
            f"{_SHAPE}"
        )
    path, key = value["path"], value["key"]
    if not isinstance(path, str) or len(path) > 253 or not RFC1123_SUBDOMAIN.fullmatch(path):
        raise ManifestError(
            f"secrets.{name}.path {_show(path)} is not a valid Secret name; expected lowercase "
            "letters, digits, '-' and '.', starting and ending with a letter or digit"
        )
    if not isinstance(key, str) or len(key) > 253 or not _SECRET_KEY.fullmatch(key):
        raise ManifestError(
            f"secrets.{name}.key {_show(key)} is not a valid Secret field; expected letters, "
            "digits, '-', '_' or '.'"
        )
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": path, "key": key}}}


def _show(value: Any) -> str:
    """A short rendering of a user's value for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
