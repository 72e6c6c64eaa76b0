"""The process runtime's settings, read from ``functionRuntimeFactoryConfigs``.
No I/O besides resolving paths against the working directory."""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import structlog

from fnworker.runtimes.process.restart_policy import RestartPolicy
from fnworker.scheduler.settings.worker_config import RuntimeFactoryConfig

log = structlog.get_logger("fnworker.runtime.process")


class ProcessSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the process runtime needs besides each instance's spec."""

    log_directory: Path
    state_directory: Path
    python_executable: str = sys.executable
    python_instance_location: Path | None = None
    extra_dependencies_dir: Path | None = None
    stop_grace_seconds: float = 5.0
    poll_interval_seconds: float = 0.5
    request_timeout_seconds: float = 5.0
    missed_polls_before_kill: int = 3
    health_timeout_seconds: float = 15.0
    start_timeout_seconds: float = 60.0
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 5
    restart: RestartPolicy = RestartPolicy()


def settings_from_factory(factory: RuntimeFactoryConfig, state_directory: Path) -> ProcessSettings:
    """ProcessSettings from ``functionRuntimeFactoryConfigs`` (relative paths: the cwd);
    ``gracePeriodSeconds`` bounds each instance's stop, as it bounds a pod's."""
    if factory.java_instance_jar_location:
        log.info("javaInstanceJarLocation is ignored: fnworker runs Python functions only")
    return ProcessSettings(
        log_directory=Path(factory.log_directory or "logs").resolve(),
        state_directory=state_directory.resolve(),
        python_instance_location=optional_path(factory.python_instance_location),
        extra_dependencies_dir=optional_path(factory.extra_function_dependencies_dir),
        stop_grace_seconds=float(factory.grace_period_seconds),
    )


def instance_stop_grace(stop_grace_seconds: float) -> float:
    """How long the instance itself may take to stop after SIGTERM: a little less than
    the supervisor waits before SIGKILL, so it exits by itself and logs why."""
    return stop_grace_seconds - min(1.0, stop_grace_seconds / 2)


def optional_path(value: str | None) -> Path | None:
    """An absolute path, or None for an unset key."""
    return Path(value).resolve() if value else None
