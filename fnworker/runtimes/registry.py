"""Chooses the runtime driver by name; the one place that maps config to a driver.
No I/O until the chosen driver is used."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from fnworker.runtimes.driver import RuntimeDriver
from fnworker.scheduler.model.instances import ClientSettings
from fnworker.scheduler.settings.worker_config import (
    ConfigError,
    RuntimeFactoryConfig,
    WorkerConfig,
)

if TYPE_CHECKING:
    from fnworker.runtimes.kubernetes.auth_provider import KubernetesSecretsTokenAuthProvider

AVAILABLE = ("thread", "process", "kubernetes")
TOKEN_PROVIDER_CLASS: Final = "org.apache.pulsar.functions.auth.KubernetesSecretsTokenAuthProvider"
TOKEN_PROVIDERS: Final = frozenset({TOKEN_PROVIDER_CLASS, "kubernetes-secrets-token"})


def check_available(name: str) -> None:
    """Raise ConfigError naming the key when the selected runtime is not provided."""
    if name not in AVAILABLE:
        raise ConfigError(
            f"functionRuntimeFactoryClassName selects the {name} runtime, which this version of "
            f"fnworker does not provide yet; expected one of: {', '.join(AVAILABLE)}"
        )


def create_driver(
    name: str,
    factory: RuntimeFactoryConfig,
    client: ClientSettings,
    *,
    state_dir: Path = Path("state"),
    worker_id: str = "",
    config: WorkerConfig | None = None,
) -> RuntimeDriver:
    """The driver for runtime ``name``; a clear ConfigError for one not available.

    ``state_dir`` is the worker's state directory (the process runtime keeps its
    pid files under it). ``config`` is the whole worker config, which the kubernetes
    runtime needs (its URLs, secrets configurator, customizer); without it a config
    holding only ``factory`` is assumed. The thread runtime spreads consumer ids over
    ``client.consumer_id_slots`` slots (the pulsar-lite workaround the worker decided on
    at start; 0 = none)."""
    if name == "thread":
        from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader
        from fnworker.runtimes.thread import ThreadRuntime

        slots = client.consumer_id_slots
        spreader = ConsumerIdSpreader(worker_id, slots) if slots else None
        return ThreadRuntime(
            thread_group_name=factory.thread_group_name,
            client_settings=client,
            consumer_ids=spreader,
            stop_timeout_seconds=float(factory.grace_period_seconds),
        )
    if name == "process":
        from fnworker.runtimes.process.driver import ProcessRuntime
        from fnworker.runtimes.process.settings import settings_from_factory

        return ProcessRuntime(settings_from_factory(factory, state_dir))
    if name == "kubernetes":
        from fnworker.runtimes.kubernetes.errors import ManifestError
        from fnworker.runtimes.kubernetes.factory import from_worker_config

        whole = config or WorkerConfig(function_runtime_factory_configs=factory)
        try:
            return from_worker_config(whole, worker_id=worker_id)
        except ManifestError as error:
            raise ConfigError(str(error)) from None
    check_available(name)
    raise AssertionError(f"runtime {name} is listed as available but has no driver")


def create_auth_provider(
    config: WorkerConfig, runtime: str, driver: RuntimeDriver
) -> KubernetesSecretsTokenAuthProvider | None:
    """The function auth provider the config selects (None: functions carry no token)."""
    if not selects_token_provider(config, runtime):
        return None
    from fnworker.runtimes.kubernetes.auth_provider import KubernetesSecretsTokenAuthProvider
    from fnworker.runtimes.kubernetes.driver import KubernetesRuntime
    from fnworker.scheduler.settings.worker_config import broker_client_settings

    if not isinstance(driver, KubernetesRuntime):
        raise TypeError(f"the kubernetes runtime has a {type(driver).__name__} driver")
    ca = read_ca(broker_client_settings(config).trust_certs_file_path or "")
    return KubernetesSecretsTokenAuthProvider(driver, ca)


def selects_token_provider(config: WorkerConfig, runtime: str) -> bool:
    """Whether ``functionAuthProviderClassName`` (with the runtime) asks for the Kubernetes
    secrets token provider; ConfigError naming the key for a value fnworker lacks.

    As in Pulsar, an empty value means this provider on the Kubernetes runtime when
    authentication is on; the thread and process runtimes run instances with the
    worker's own credentials and take no provider."""
    name = config.function_auth_provider_class_name or ""
    if name and name not in TOKEN_PROVIDERS:
        raise ConfigError(
            f"functionAuthProviderClassName {name!r} is not available; expected empty or "
            f"{TOKEN_PROVIDER_CLASS} (alias kubernetes-secrets-token)"
        )
    if name and runtime != "kubernetes":
        raise ConfigError(
            f"functionAuthProviderClassName {name!r} applies to the Kubernetes runtime only, and "
            f"this worker runs the {runtime} runtime; remove the key"
        )
    return runtime == "kubernetes" and config.authentication_enabled


def read_ca(path: str) -> bytes | None:
    """The cluster CA the pods should trust (``brokerClientTrustCertsFilePath`` or
    ``tlsTrustCertsFilePath``), None when unset; ConfigError when unreadable."""
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise ConfigError(
            f"the trust certificate file {path!r} (brokerClientTrustCertsFilePath or "
            f"tlsTrustCertsFilePath), which function pods would trust, cannot be read: "
            f"{error.strerror}"
        ) from None
