"""The operations the REST API offers, as a Protocol the worker service implements.

The API layer (fnworker/scheduler/api/) parses HTTP into these calls and renders their
results; it never reaches into coordination or runtimes itself. Every method
raises ``ApiError`` for a request the caller got wrong. No I/O here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from fnworker.scheduler.model.admin_records import FunctionStats, PackageSource
from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.records import (
    FunctionConfig,
    FunctionRecord,
    FunctionStatus,
    InstanceStatusData,
    WorkerInfo,
)


class FunctionsAdmin(Protocol):
    """What a worker can be asked to do for functions and about the fleet."""

    async def register(
        self,
        tenant: str,
        namespace: str,
        name: str,
        config: FunctionConfig,
        source: PackageSource,
        auth_token: str | None = None,
    ) -> FunctionRecord: ...

    async def update(
        self,
        tenant: str,
        namespace: str,
        name: str,
        config: FunctionConfig,
        source: PackageSource,
        auth_token: str | None = None,
    ) -> FunctionRecord: ...

    async def deregister(self, tenant: str, namespace: str, name: str) -> None: ...

    def get_function(self, tenant: str, namespace: str, name: str) -> FunctionRecord: ...

    def list_functions(self, tenant: str, namespace: str) -> list[str]: ...

    async def function_status(self, tenant: str, namespace: str, name: str) -> FunctionStatus: ...

    async def instance_status(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceStatusData: ...

    async def function_stats(self, tenant: str, namespace: str, name: str) -> FunctionStats: ...

    async def instance_stats(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceMetrics: ...

    async def start(self, tenant: str, namespace: str, name: str, index: int | None) -> None: ...

    async def stop(self, tenant: str, namespace: str, name: str, index: int | None) -> None: ...

    async def restart(self, tenant: str, namespace: str, name: str, index: int | None) -> None: ...

    async def trigger(
        self, tenant: str, namespace: str, name: str, value: bytes, topic: str | None
    ) -> bytes | None: ...

    def package_path(self, tenant: str, namespace: str, name: str) -> tuple[Path, str]:
        """The stored package file and its original file name (for download)."""
        ...

    async def package_file(self, tenant: str, namespace: str, name: str) -> tuple[Path, str]:
        """As ``package_path``, fetched from the broker when this worker holds no copy."""
        ...

    async def get_state(self, tenant: str, namespace: str, name: str, key: str) -> Any: ...

    async def store_upload(self, root: Path, path: str, data: Path) -> None:
        """Make ``data`` the content of ``path`` for the fleet (``root``: local copies)."""
        ...

    async def uploaded_file(self, root: Path, path: str) -> Path:
        """This worker's copy of the latest content uploaded at ``path``, or 404."""
        ...

    async def put_state(
        self, tenant: str, namespace: str, name: str, key: str, body: bytes
    ) -> None: ...

    def cluster(self) -> list[WorkerInfo]: ...

    def leader(self) -> WorkerInfo | None: ...

    def is_leader(self) -> bool:
        """True when this worker is the fleet's leader."""
        ...

    async def assignments(self) -> dict[str, list[str]]: ...

    async def rebalance(self) -> None: ...

    async def drain(self, worker_id: str | None) -> None: ...

    async def drain_status(self, worker_id: str | None) -> Any: ...

    def local_instances(self) -> list[Any]: ...

    def is_ready(self) -> bool: ...
