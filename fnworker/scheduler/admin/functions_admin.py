"""The worker's answers to the REST API (implements ``FunctionsAdmin``): a thin facade
that hands each request to the service for its job: ``FunctionReads`` (what is stored),
``FunctionWrites`` (register, update, delete, start/stop/restart), ``PackageService``
(packages), ``StatusService`` (status and stats), ``TriggerService`` (trigger, with its
own client), ``UploadService`` (files uploaded by path) and ``FleetAdmin`` (the fleet:
assignments, rebalance, drain).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fnworker.coordination.backend import CoordinationBackend
from fnworker.runtimes.driver import FunctionAuthProvider, RuntimeDriver
from fnworker.scheduler.admin.fleet_admin import DrainStatus, FleetAdmin, InstanceOnWorker
from fnworker.scheduler.admin.function_credentials import FunctionCredentials
from fnworker.scheduler.admin.function_reads import FunctionReads
from fnworker.scheduler.admin.function_writes import FunctionWrites
from fnworker.scheduler.admin.package_service import PackageService
from fnworker.scheduler.admin.package_store import PackageStore
from fnworker.scheduler.admin.state_service import StateService
from fnworker.scheduler.admin.status_service import StatusService
from fnworker.scheduler.admin.trigger_service import TriggerService
from fnworker.scheduler.admin.upload_service import UploadService
from fnworker.scheduler.decide.admission_limits import AdmissionMemo
from fnworker.scheduler.model.admin_records import FunctionStats, PackageSource
from fnworker.scheduler.model.instances import ClientSettings, InstanceMetrics
from fnworker.scheduler.model.records import (
    FunctionConfig,
    FunctionRecord,
    FunctionStatus,
    InstanceStatusData,
    WorkerInfo,
)


class WorkerFunctionsAdmin:
    """Serves the functions and worker endpoints from one worker's point of view."""

    def __init__(
        self,
        *,
        me: WorkerInfo,
        backend: CoordinationBackend,
        driver: RuntimeDriver,
        packages: PackageStore,
        scratch_dir: Path,
        client_settings: ClientSettings,
        max_package_bytes: int,
        fleet: FleetAdmin,
        admission: AdmissionMemo,
        auth_provider: FunctionAuthProvider | None = None,
    ) -> None:
        self.me = me
        self.backend = backend
        self.driver = driver
        self.fleet = fleet
        self.ready = False
        self.reads = FunctionReads(backend, admission.limits)
        self.packages = PackageService(
            backend=backend,
            store=packages,
            scratch_dir=scratch_dir,
            max_package_bytes=max_package_bytes,
            limits=admission.limits.package,
        )
        self.writes = FunctionWrites(
            reads=self.reads,
            backend=backend,
            packages=self.packages,
            credentials=FunctionCredentials(auth_provider),
            fleet=fleet,
            admission=admission,
        )
        self.status = StatusService(me=me, reads=self.reads, fleet=fleet, admission=admission)
        self.triggers = TriggerService(self.reads, client_settings)
        self.state = StateService(self.reads, backend)
        self.uploads = UploadService(backend)
        self.writes.on_deleted = self.state.clear
        self.writes.runtime_check = driver.admission_problem

    # -- reads -------------------------------------------------------------

    def get_function(self, tenant: str, namespace: str, name: str) -> FunctionRecord:
        """The stored function, or 404."""
        return self.reads.record(tenant, namespace, name)

    def list_functions(self, tenant: str, namespace: str) -> list[str]:
        """Names of the functions in one namespace, sorted."""
        return self.reads.list_functions(tenant, namespace)

    def package_path(self, tenant: str, namespace: str, name: str) -> tuple[Path, str]:
        """The stored package of a function and its original file name."""
        return self.packages.package_path(self.reads.record(tenant, namespace, name))

    async def package_file(self, tenant: str, namespace: str, name: str) -> tuple[Path, str]:
        """As ``package_path``, fetched from the broker when this worker holds no copy."""
        record = self.reads.record(tenant, namespace, name)
        if record.package is not None:
            await self.packages.hold_stored(record)
        return self.packages.package_path(record)

    # -- writes ------------------------------------------------------------

    async def register(
        self,
        tenant: str,
        namespace: str,
        name: str,
        config: FunctionConfig,
        source: PackageSource,
        auth_token: str | None = None,
    ) -> FunctionRecord:
        """Validate, store the package and write version 1 of a new function."""
        return await self.writes.register(tenant, namespace, name, config, source, auth_token)

    async def update(
        self,
        tenant: str,
        namespace: str,
        name: str,
        config: FunctionConfig,
        source: PackageSource,
        auth_token: str | None = None,
    ) -> FunctionRecord:
        """Merge an update into the stored function and write the next version."""
        return await self.writes.update(tenant, namespace, name, config, source, auth_token)

    async def deregister(self, tenant: str, namespace: str, name: str) -> None:
        """Delete a function; its instances stop and its packages are removed."""
        await self.writes.deregister(tenant, namespace, name)

    async def start(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        """Mark one instance (or all) RUNNING; the owner starts it."""
        await self.writes.set_states(tenant, namespace, name, index, "RUNNING")

    async def stop(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        """Mark one instance (or all) STOPPED; the owner stops it."""
        await self.writes.set_states(tenant, namespace, name, index, "STOPPED")

    async def restart(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        """Restart instances where they run; no metadata changes."""
        await self.writes.restart(tenant, namespace, name, index)

    # -- status, stats, trigger --------------------------------------------

    async def function_status(self, tenant: str, namespace: str, name: str) -> FunctionStatus:
        """Status of every instance of a function."""
        return await self.status.function_status(tenant, namespace, name)

    async def instance_status(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceStatusData:
        """Status of one instance."""
        return await self.status.instance_status(tenant, namespace, name, index)

    async def function_stats(self, tenant: str, namespace: str, name: str) -> FunctionStats:
        """Counters of every instance, with totals."""
        return await self.status.function_stats(tenant, namespace, name)

    async def instance_stats(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceMetrics:
        """Counters of one instance."""
        return await self.status.instance_stats(tenant, namespace, name, index)

    async def trigger(
        self, tenant: str, namespace: str, name: str, value: bytes, topic: str | None
    ) -> bytes | None:
        """Send ``value`` to the function's input and return its output."""
        return await self.triggers.trigger(tenant, namespace, name, value, topic)

    async def get_state(self, tenant: str, namespace: str, name: str, key: str) -> Any:
        """One key of the function's state in Pulsar's FunctionState shape, or 404."""
        return await self.state.get(tenant, namespace, name, key)

    async def put_state(
        self, tenant: str, namespace: str, name: str, key: str, body: bytes
    ) -> None:
        """Store a value sent as Pulsar's FunctionState JSON."""
        await self.state.put(tenant, namespace, name, key, body)

    async def store_upload(self, root: Path, path: str, data: Path) -> None:
        """Make ``data`` the content of ``path`` for the fleet (``root``: local copies)."""
        await self.uploads.store(root, path, data)

    async def uploaded_file(self, root: Path, path: str) -> Path:
        """This worker's copy of the latest content uploaded at ``path``, or 404."""
        return await self.uploads.file_for(root, path)

    # -- the fleet (passed through) ----------------------------------------

    def cluster(self) -> list[WorkerInfo]:
        """Every live worker."""
        return list(self.backend.membership().members)

    def leader(self) -> WorkerInfo | None:
        """The current leader, if one is known."""
        return self.backend.membership().leader

    def is_leader(self) -> bool:
        """True when this worker is the fleet's leader."""
        return self.fleet.leading()

    async def assignments(self) -> dict[str, list[str]]:
        """``{workerId: [instanceId, ...]}`` over the whole fleet (from the leader)."""
        return await self.fleet.assignments()

    async def rebalance(self) -> None:
        """Even out instances across the fleet."""
        await self.fleet.rebalance()

    async def drain(self, worker_id: str | None) -> None:
        """Move every instance off a worker."""
        await self.fleet.drain(worker_id)

    async def drain_status(self, worker_id: str | None) -> DrainStatus:
        """How the last drain of a worker went."""
        return await self.fleet.drain_status(worker_id)

    def local_instances(self) -> list[InstanceOnWorker]:
        """The instances this worker holds, with their counters."""
        return self.fleet.local_instances()

    def is_ready(self) -> bool:
        """True once the worker has joined its fleet."""
        return self.ready

    async def aclose(self) -> None:
        """Close the forwarding and trigger clients."""
        await self.fleet.forwarder.aclose()
        await self.triggers.aclose()
