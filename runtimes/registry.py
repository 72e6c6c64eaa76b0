"""Chooses the runtime driver by name; the one place that maps config to a driver.
No I/O until the chosen driver is used."""

from __future__ import annotations

from pathlib import Path

from fnworker.runtimes.driver import ClientSettings, RuntimeDriver
from fnworker.scheduler.worker_config import ConfigError, RuntimeFactoryConfig

AVAILABLE = ("thread", "process")


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
) -> RuntimeDriver:
    """The driver for runtime ``name``; a clear ConfigError for one not available.

    ``state_dir`` is the worker's state directory (the process runtime keeps its
    pid files under it)."""
    if name == "thread":
        from fnworker.runtimes.thread import ThreadRuntime

        from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader

        spreader = ConsumerIdSpreader(worker_id, consumer_id_slots) if consumer_id_slots else None
        return ThreadRuntime(
            thread_group_name=factory.thread_group_name,
            client_settings=client,
            consumer_ids=spreader,
        )
    if name == "process":
        from fnworker.runtimes.process import ProcessRuntime, settings_from_factory

        return ProcessRuntime(settings_from_factory(factory, state_dir))
    check_available(name)
    raise AssertionError(f"runtime {name} is listed as available but has no driver")
