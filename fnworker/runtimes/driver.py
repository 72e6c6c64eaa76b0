"""The one Protocol every runtime driver (thread, process, kubernetes) implements,
and the record a driver is handed to start an instance. No I/O here.

The worker's reconciler decides *what* runs; a driver only makes it so and reports
how it is going. Drivers never call back into the scheduler. Every long-lived task of
a driver lives under its ``run``, which the worker starts in its root task group.
"""

from __future__ import annotations

from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from fnworker.scheduler.model.instances import InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import (
    FunctionAuthSpec,
    FunctionRecord,
    InstanceId,
    InstanceStatusData,
)


class RuntimeDriver(Protocol):
    """Starts, stops and reports on function instances of one runtime kind."""

    name: str

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the driver's background tasks until cancelled (or ``aclose``); report
        ``task_status.started()`` once ready. The worker runs it in its root task group."""
        ...

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

    def admission_problem(self, function: FunctionRecord) -> str | None:
        """At submission: one sentence when this runtime could not run ``function``
        (Pulsar's RuntimeFactory.doAdmissionChecks), else None."""
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
