"""Chooses the runtime driver by name; the one place that maps config to a driver.
No I/O until the chosen driver is used."""

from __future__ import annotations

from fnworker.runtimes.driver import ClientSettings, RuntimeDriver
from fnworker.scheduler.worker_config import ConfigError, RuntimeFactoryConfig

AVAILABLE = ("thread",)


def check_available(name: str) -> None:
    """Raise ConfigError naming the key when the selected runtime is not provided."""
    if name not in AVAILABLE:
        raise ConfigError(
            f"functionRuntimeFactoryClassName selects the {name} runtime, which this version of "
            f"fnworker does not provide yet; expected one of: {', '.join(AVAILABLE)}"
        )


def create_driver(
    name: str, factory: RuntimeFactoryConfig, client: ClientSettings
) -> RuntimeDriver:
    """The driver for runtime ``name``; a clear ConfigError for one not available."""
    if name == "thread":
        from fnworker.runtimes.thread import ThreadRuntime

        return ThreadRuntime(thread_group_name=factory.thread_group_name, client_settings=client)
    check_available(name)
    raise AssertionError(f"runtime {name} is listed as available but has no driver")
