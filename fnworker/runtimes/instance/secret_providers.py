"""The secrets providers a function's ``context.get_secret`` goes through, chosen
by name: ``clear-text`` (Pulsar's ClearTextSecretsProvider: the configured value
is the secret) and ``environment`` (Pulsar's EnvironmentBasedSecretsProvider: the
secret is the environment variable named like the secret). Reads the process
environment; nothing else.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from fnworker.runtimes.instance.package_layout import PackageError


class SecretsProvider(Protocol):
    """Turns a secret's name and its configured value into the secret."""

    def provide_secret(self, secret_name: str, path_to_secret: Any) -> Any: ...


class ClearTextSecretsProvider:
    """The configured value is the secret itself."""

    def provide_secret(self, secret_name: str, path_to_secret: Any) -> Any:
        """Return the configured value unchanged."""
        return path_to_secret


class EnvironmentSecretsProvider:
    """The secret is the worker's environment variable named ``secret_name``."""

    def provide_secret(self, secret_name: str, path_to_secret: Any) -> Any:
        """Return the environment variable, or None if it is not set."""
        return os.environ.get(secret_name)


PROVIDERS: dict[str, type[SecretsProvider]] = {
    "clear-text": ClearTextSecretsProvider,
    "ClearTextSecretsProvider": ClearTextSecretsProvider,
    "environment": EnvironmentSecretsProvider,
    "EnvironmentBasedSecretsProvider": EnvironmentSecretsProvider,
}


def secrets_provider_named(name: str) -> SecretsProvider:
    """The provider for ``clear-text``/``environment`` (or Pulsar's class names)."""
    short = name.rsplit(".", 1)[-1]
    try:
        return PROVIDERS[short]()
    except KeyError:
        raise PackageError(
            f"secrets provider '{name}' is not known; expected clear-text or environment"
        ) from None
