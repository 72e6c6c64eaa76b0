"""The one Protocol every runtime driver (thread, process, kubernetes) implements,
and the record a driver is handed to start an instance. No I/O here.

The worker's reconciler decides *what* runs; a driver only makes it so and reports
how it is going. Drivers never call back into the scheduler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import msgspec

from fnworker.runtimes.instance.package_limits import PackageLimits
from fnworker.scheduler.records import (
    FunctionAuthSpec,
    FunctionRecord,
    InstanceId,
    InstanceStatusData,
)


class ClientSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How an instance reaches the broker (the worker's own broker settings)."""

    service_url: str
    auth_plugin: str | None = None
    auth_params: str | None = None
    tls_trust_certs_file_path: str | None = None
    tls_allow_insecure_connection: bool = False
    tls_hostname_verification: bool = False
    operation_timeout_seconds: int = 30


class InstanceSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a driver needs to run instance ``index`` of ``function``.

    ``package_path`` is a local copy of the function's package (.py, .zip or .whl)
    that belongs to this instance start and may be unpacked next to it.
    """

    instance: InstanceId
    index: int
    function: FunctionRecord
    package_path: Path
    worker_id: str
    client: ClientSettings
    secrets_provider: str = "clear-text"
    cluster_name: str = "standalone"
    package_limits: PackageLimits = PackageLimits()
    """The worker's maxPackageUnpackedBytes / maxPackageFiles / maxModuleParseBytes,
    enforced again when the instance unpacks and checks its package."""


class InstanceMetrics(msgspec.Struct, kw_only=True, rename="camel"):
    """Counters of one instance (Pulsar's FunctionInstanceStats metrics)."""

    received_total: int = 0
    processed_successfully_total: int = 0
    system_exceptions_total: int = 0
    user_exceptions_total: int = 0
    avg_process_latency: float | None = None
    last_invocation: int | None = None
    user_metrics: dict[str, float] = {}
    stalled_seconds: float = 0.0
    """How long the instance has made no progress although it has input (stuck in a
    message, not connected, or input not delivered); 0 while healthy. fnworker's own
    (runtimes/instance/progress.py), exported as ``pulsar_function_stalled_seconds``."""


class RuntimeDriver(Protocol):
    """Starts, stops and reports on function instances of one runtime kind."""

    name: str

    async def start(self, spec: InstanceSpec) -> None:
        """Start the instance; returns once it is starting (errors show in status)."""
        ...

    async def stop(self, instance: InstanceId) -> None:
        """Stop the instance gracefully; a no-op if it is not running."""
        ...

    async def restart(self, instance: InstanceId) -> None:
        """Stop and start the instance again with the same spec."""
        ...

    def status(self, instance: InstanceId) -> InstanceStatusData | None:
        """Current status, or None if this driver does not know the instance."""
        ...

    def metrics(self, instance: InstanceId) -> InstanceMetrics | None:
        """Current counters, or None if this driver does not know the instance."""
        ...

    def instances(self) -> set[InstanceId]:
        """Every instance this driver currently holds (running or failed)."""
        ...

    async def aclose(self) -> None:
        """Stop every instance and release shared resources (clients, threads)."""
        ...


class RuntimeCallError(Exception):
    """A call a runtime made on the worker's behalf failed; ``str()`` is one sentence."""


class FunctionAuthProvider(Protocol):
    """Keeps the credentials a function was submitted with where its instances read
    them (Pulsar's FunctionAuthProvider). Raises RuntimeCallError."""

    async def cache_auth(
        self, function: FunctionRecord, token: str | None
    ) -> FunctionAuthSpec | None:
        """Store ``token`` for ``function``; what its record keeps (None: no token)."""
        ...

    async def clean_up(self, function: FunctionRecord) -> None:
        """Remove what ``cache_auth`` stored for ``function``."""
        ...
