"""The worker's answers to the REST API (implements ``FunctionsAdmin``): checks a
request, stores packages, writes function records through the coordination
backend and reads status from the runtime driver. Does I/O at those edges only;
the decisions themselves are the pure validators it calls.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio
import msgspec
import pulsar
import structlog

from fnworker.coordination.backend import CoordinationBackend, VersionConflict
from fnworker.runtimes.broker_client import make_client
from fnworker.runtimes.driver import FunctionAuthProvider, RuntimeCallError, RuntimeDriver
from fnworker.runtimes.instance.loader import PackageError, check_package
from fnworker.scheduler.admin.fleet_admin import DrainStatus, FleetAdmin, InstanceOnWorker
from fnworker.scheduler.admin.package_fetch import fetch_package, file_name_of
from fnworker.scheduler.admin.package_store import PackageStore
from fnworker.scheduler.admin.trigger import trigger_and_wait
from fnworker.scheduler.decide.admission_limits import AdmissionMemo, fleet_problem
from fnworker.scheduler.decide.function_validation import (
    input_topics,
    merge_update,
    validate_new_function,
)
from fnworker.scheduler.decide.status_view import function_stats, function_status, not_running
from fnworker.scheduler.model.admin_records import FunctionStats, PackageSource
from fnworker.scheduler.model.errors import ApiError, bad_request, conflict, not_found
from fnworker.scheduler.model.instances import ClientSettings, InstanceMetrics, PackageLimits
from fnworker.scheduler.model.records import (
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    FunctionStatus,
    InstanceState,
    InstanceStatusData,
    PackageRef,
    WorkerInfo,
    fqfn_of,
    instance_id_of,
)

log = structlog.get_logger("fnworker.admin")

TRIGGER_TIMEOUT_S = 10.0


def now_ms() -> int:
    """Wall-clock time in milliseconds, as Pulsar's records carry it."""
    return int(time.time() * 1000)


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
        self.fleet = fleet
        self.auth_provider = auth_provider
        self.me = me
        self.backend = backend
        self.driver = driver
        self.packages = packages
        self.scratch_dir = scratch_dir
        self.client_settings = client_settings
        self.max_package_bytes = max_package_bytes
        self.admission = admission
        self.limits = admission.limits
        self.ready = False
        self._client: pulsar.Client | None = None

    # -- reading -----------------------------------------------------------

    def record(self, tenant: str, namespace: str, name: str) -> FunctionRecord:
        """The stored function, or 404."""
        fqfn = fqfn_of(tenant, namespace, name)
        record = self.backend.functions().get(fqfn)
        if record is None:
            raise not_found(f"Function {fqfn} doesn't exist")
        return record

    def get_function(self, tenant: str, namespace: str, name: str) -> FunctionRecord:
        """The stored function, or 404."""
        return self.record(tenant, namespace, name)

    def list_functions(self, tenant: str, namespace: str) -> list[str]:
        """Names of the functions in one namespace, sorted."""
        prefix = f"{tenant}/{namespace}/"
        return sorted(f[len(prefix) :] for f in self.backend.functions() if f.startswith(prefix))

    # -- writing -----------------------------------------------------------

    async def register(
        self,
        tenant: str,
        namespace: str,
        name: str,
        config: FunctionConfig,
        source: PackageSource,
        auth_token: str | None = None,
    ) -> FunctionRecord:
        """Validate, store the package (and the submitter's token, with a function auth
        provider) and write version 1 of a new function."""
        fqfn = fqfn_of(tenant, namespace, name)
        if fqfn in self.backend.functions():
            raise conflict(f"Function {fqfn} already exists")
        validated = validate_new_function(
            tenant, namespace, name, config, package_name(source, config), self.limits
        )
        self.check_fleet_room(validated, fqfn)
        package = await self.store_package(fqfn, 1, source, validated)
        if package is None:
            raise bad_request("a package is required: send a 'data' file part or a 'url' part")
        record = FunctionRecord(
            fqfn=fqfn,
            version=1,
            config=validated,
            package=package,
            create_time_ms=now_ms(),
            update_time_ms=now_ms(),
        )
        record = await self.with_auth(record, auth_token)
        try:
            await self.write(record, expected_version=0)
        except ApiError:
            await self.forget_auth(record)
            raise
        log.info("function registered", function=fqfn, parallelism=record.parallelism())
        return record

    async def update(
        self,
        tenant: str,
        namespace: str,
        name: str,
        config: FunctionConfig,
        source: PackageSource,
        auth_token: str | None = None,
    ) -> FunctionRecord:
        """Merge an update into the stored function and write the next version (the
        function's stored token is replaced by the updater's, or removed without one)."""
        existing = self.record(tenant, namespace, name)
        merged = merge_update(existing.config, config, self.limits)
        validated = validate_new_function(
            tenant,
            namespace,
            name,
            merged,
            package_name(source, config) or existing_name(existing),
            self.limits,
        )
        self.check_fleet_room(validated, existing.fqfn)
        version = existing.version + 1
        package = await self.store_package(existing.fqfn, version, source, validated)
        if package is None and existing.package is not None:
            stored = existing.package
            await self.hold_stored(existing)
            await anyio.to_thread.run_sync(
                check_stored,
                self.packages.path_of(stored),
                validated.class_name,
                stored.original_file_name,
                self.limits.package,
            )
        record = msgspec.structs.replace(
            existing,
            version=version,
            config=validated,
            package=package or existing.package,
            update_time_ms=now_ms(),
        )
        record = await self.with_auth(record, auth_token)
        try:
            await self.write(record, expected_version=existing.version)
        except ApiError:
            await self.forget_auth(record)
            raise
        if existing.auth is not None and existing.auth != record.auth:
            await self.forget_auth(existing)
        log.info("function updated", function=existing.fqfn, version=version)
        return record

    def check_fleet_room(self, config: FunctionConfig, fqfn: Fqfn) -> None:
        """400 when the function's parallelism would take the fleet past maxFleetInstances
        (its own current instances, on an update, make room)."""
        others = self.admission.admitted_instances(self.backend.functions(), leave_out=fqfn)
        problem = fleet_problem(config, others, self.limits)
        if problem is not None:
            raise bad_request(problem)

    async def hold_stored(self, record: FunctionRecord) -> None:
        """Make sure this worker has the record's stored package: fetch it when another
        worker stored it; 409 when it is gone (a concurrent update replaced it)."""
        assert record.package is not None
        path = self.packages.path_of(record.package)
        if path.exists():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            await self.backend.fetch_package(record.package, path)
        except Exception as error:
            raise conflict(
                f"the package of {record.fqfn} version {record.version} is no longer stored "
                f"({error}); a concurrent update replaced it: reload the function and retry, "
                "or send the package with the update"
            ) from None

    async def with_auth(self, record: FunctionRecord, token: str | None) -> FunctionRecord:
        """The record naming where the provider stored ``token`` (unchanged without one)."""
        if self.auth_provider is None:
            return record
        try:
            auth = await self.auth_provider.cache_auth(record, token)
        except RuntimeCallError as error:
            raise ApiError(
                500, f"storing the credentials of function {record.fqfn} failed: {error}"
            ) from None
        return msgspec.structs.replace(record, auth=auth)

    async def forget_auth(self, record: FunctionRecord) -> None:
        """Remove the credentials stored for a record that was not written, or that a
        newer version replaced (best effort: a leftover Secret is logged, not fatal)."""
        if self.auth_provider is None or record.auth is None:
            return
        try:
            await self.auth_provider.clean_up(record)
        except RuntimeCallError as error:
            log.warning(
                "removing unused credentials failed", function=record.fqfn, error=str(error)
            )

    async def deregister(self, tenant: str, namespace: str, name: str) -> None:
        """Delete a function; its instances stop and its packages are removed."""
        existing = self.record(tenant, namespace, name)
        try:
            await self.backend.delete_function(existing.fqfn, existing.version)
        except VersionConflict as error:
            raise conflict(str(error)) from error
        self.packages.prune(existing.fqfn, keep=None)
        log.info("function deleted", function=existing.fqfn)

    async def start(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        """Mark one instance (or all) RUNNING; the owner starts it."""
        await self.set_states(tenant, namespace, name, index, "RUNNING")

    async def stop(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        """Mark one instance (or all) STOPPED; the owner stops it."""
        await self.set_states(tenant, namespace, name, index, "STOPPED")

    async def set_states(
        self, tenant: str, namespace: str, name: str, index: int | None, state: InstanceState
    ) -> None:
        """Write a new version whose instance states say which instances run."""
        existing = self.record(tenant, namespace, name)
        indexes = self.indexes(existing, index)
        states = dict(existing.instance_states)
        for i in indexes:
            if state == "RUNNING":
                states.pop(i, None)
            else:
                states[i] = state
        record = msgspec.structs.replace(
            existing, version=existing.version + 1, instance_states=states, update_time_ms=now_ms()
        )
        await self.write(record, expected_version=existing.version)

    async def restart(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        """Restart instances this worker runs; no metadata changes."""
        existing = self.record(tenant, namespace, name)
        for i in self.indexes(existing, index):
            await self.fleet.restart_instance(instance_id_of(existing.fqfn, i))

    async def write(self, record: FunctionRecord, expected_version: int) -> None:
        """Write a record; a concurrent change answers 409."""
        try:
            await self.backend.write_function(record, expected_version)
        except VersionConflict as error:
            raise conflict(str(error)) from error

    async def store_package(
        self, fqfn: Fqfn, version: int, source: PackageSource, config: FunctionConfig
    ) -> PackageRef | None:
        """Fetch the request's package, check the class is in it, and store it."""
        with tempfile.TemporaryDirectory(dir=self.scratch_dir) as scratch:
            located = await self.locate(source, config, Path(scratch))
            if located is None:
                return None
            path, file_name = located
            await anyio.to_thread.run_sync(
                check_stored, path, config.class_name, file_name, self.limits.package
            )
            ref = await anyio.to_thread.run_sync(self.packages.save, fqfn, version, path, file_name)
            return await self.backend.store_package(ref, self.packages.path_of(ref))

    async def locate(
        self, source: PackageSource, config: FunctionConfig, scratch: Path
    ) -> tuple[Path, str] | None:
        """The local file holding the request's package and its original name."""
        if source.upload is not None:
            return source.upload.path, source.upload.file_name
        url = source.url or (config.py if config.py and "://" in config.py else None)
        if url is None:
            return None
        name = file_name_of(url)
        return await fetch_package(url, scratch / "package", self.max_package_bytes), name

    # -- status, stats, trigger -------------------------------------------

    def indexes(self, record: FunctionRecord, index: int | None) -> list[int]:
        """The instance indexes a request names; 400 for one that does not exist. All of
        them are at most maxFunctionParallelism (a stored record over the limit cannot
        make a request walk a billion instances)."""
        if index is None:
            return list(range(min(record.parallelism(), self.limits.max_parallelism)))
        if not 0 <= index < record.parallelism():
            raise not_found(
                f"instance id {index} is not valid for {record.fqfn}; "
                f"expected 0 to {record.parallelism() - 1}"
            )
        return [index]

    async def local_status(self, record: FunctionRecord, index: int) -> InstanceStatusData:
        """One instance's status, from whichever worker runs it; failed, with the reason,
        for a function over an admission limit (it is not run)."""
        problem = self.admission.problem(record)
        if problem is not None:
            return not_running(f"not run: {problem}", self.me.worker_id)
        if record.state_of(index) == "STOPPED":
            return not_running("instance is stopped", self.me.worker_id)
        return await self.fleet.instance_status(instance_id_of(record.fqfn, index))

    async def function_status(self, tenant: str, namespace: str, name: str) -> FunctionStatus:
        """Status of every instance of a function."""
        record = self.record(tenant, namespace, name)
        return function_status(
            [await self.local_status(record, i) for i in self.indexes(record, None)]
        )

    async def instance_status(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceStatusData:
        """Status of one instance."""
        record = self.record(tenant, namespace, name)
        return await self.local_status(record, self.indexes(record, index)[0])

    async def local_metrics(self, record: FunctionRecord, index: int) -> InstanceMetrics:
        """One instance's counters, from whichever worker runs it (none for a function
        over an admission limit: it is not run)."""
        if self.admission.problem(record) is not None:
            return InstanceMetrics()
        return await self.fleet.instance_metrics(instance_id_of(record.fqfn, index))

    async def function_stats(self, tenant: str, namespace: str, name: str) -> FunctionStats:
        """Counters of every instance, with totals."""
        record = self.record(tenant, namespace, name)
        return function_stats(
            [await self.local_metrics(record, i) for i in self.indexes(record, None)]
        )

    async def instance_stats(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceMetrics:
        """Counters of one instance."""
        record = self.record(tenant, namespace, name)
        return await self.local_metrics(record, self.indexes(record, index)[0])

    async def trigger(
        self, tenant: str, namespace: str, name: str, value: bytes, topic: str | None
    ) -> bytes | None:
        """Send ``value`` to the function's input and return its output (408 on timeout;
        409 at once when every instance is stopped: no output can come)."""
        record = self.record(tenant, namespace, name)
        size = record.parallelism()
        states = record.instance_states.items()
        if sum(1 for i, state in states if state == "STOPPED" and i < size) >= size:
            raise conflict(
                f"every instance of {record.fqfn} is stopped, so no output can come; "
                "expected it started first (POST .../start)"
            )
        inputs = [t for t, is_pattern in input_topics(record.config).items() if not is_pattern]
        if not inputs:
            raise bad_request(f"{record.fqfn} reads a topics pattern; trigger needs a 'topic' part")
        if topic is not None and topic not in inputs:
            raise bad_request(
                f"topic '{topic}' is not an input of {record.fqfn}; its inputs are {inputs}"
            )
        target = topic or inputs[0]
        client = self.client()
        try:
            return await anyio.to_thread.run_sync(
                trigger_and_wait, client, target, record.config.output, value, TRIGGER_TIMEOUT_S
            )
        except TimeoutError as error:
            raise ApiError(
                408, f"no output from {record.fqfn} within {TRIGGER_TIMEOUT_S:.0f} s"
            ) from error

    def client(self) -> pulsar.Client:
        """The worker's own broker client for admin work such as trigger."""
        if self._client is None:
            self._client = make_client(self.client_settings)
        return self._client

    def package_path(self, tenant: str, namespace: str, name: str) -> tuple[Path, str]:
        """The stored package of a function and its original file name."""
        record = self.record(tenant, namespace, name)
        if record.package is None:
            raise not_found(f"Function {record.fqfn} has no stored package")
        return self.packages.path_of(record.package), record.package.original_file_name

    # -- the fleet ---------------------------------------------------------

    def cluster(self) -> list[WorkerInfo]:
        """Every live worker."""
        return list(self.backend.membership().members)

    def leader(self) -> WorkerInfo | None:
        """The current leader, if one is known."""
        return self.backend.membership().leader

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
        """Close the admin client."""
        await self.fleet.forwarder.aclose()
        if self._client is not None:
            client, self._client = self._client, None
            await anyio.to_thread.run_sync(client.close)


def package_name(source: PackageSource, config: FunctionConfig) -> str | None:
    """The file name of the package a request brings, if any."""
    if source.upload is not None:
        return source.upload.file_name
    if source.url:
        return file_name_of(source.url)
    return file_name_of(config.py) if config.py else None


def existing_name(record: FunctionRecord) -> str | None:
    """The file name of a function's stored package."""
    return record.package.original_file_name if record.package else None


def check_stored(path: Path, class_name: str | None, file_name: str, limits: PackageLimits) -> None:
    """Answer 400 when the package is over a limit or does not define ``class_name``
    (without running it)."""
    try:
        check_package(path, class_name or "", file_name, limits)
    except PackageError as error:
        raise bad_request(str(error)) from error
