"""Chooses the runtime driver by name; the one place that maps config to a driver.
No I/O until the chosen driver is used."""

from __future__ import annotations

from pathlib import Path

from fnworker.runtimes.driver import ClientSettings, RuntimeDriver
from fnworker.scheduler.worker_config import ConfigError, RuntimeFactoryConfig, WorkerConfig

AVAILABLE = ("thread", "process", "kubernetes")


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
    consumer_id_slots: int = 0,
    config: WorkerConfig | None = None,
) -> RuntimeDriver:
    """The driver for runtime ``name``; a clear ConfigError for one not available.

    ``state_dir`` is the worker's state directory (the process runtime keeps its
    pid files under it). ``config`` is the whole worker config, which the kubernetes
    runtime needs (its URLs, secrets configurator, customizer); without it a config
    holding only ``factory`` is assumed."""
    if name == "thread":
        from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader
        from fnworker.runtimes.thread import ThreadRuntime

        spreader = ConsumerIdSpreader(worker_id, consumer_id_slots) if consumer_id_slots else None
        return ThreadRuntime(
            thread_group_name=factory.thread_group_name,
            client_settings=client,
            consumer_ids=spreader,
        )
    if name == "process":
        from fnworker.runtimes.process import ProcessRuntime, settings_from_factory

        return ProcessRuntime(settings_from_factory(factory, state_dir))
    if name == "kubernetes":
        from fnworker.runtimes.kubernetes.driver import from_worker_config
        from fnworker.runtimes.kubernetes.errors import ManifestError

        whole = config or WorkerConfig(function_runtime_factory_configs=factory)
        try:
            return from_worker_config(whole, worker_id=worker_id)
        except ManifestError as error:
            raise ConfigError(str(error)) from None
    check_available(name)
    raise AssertionError(f"runtime {name} is listed as available but has no driver")
