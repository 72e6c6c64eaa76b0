"""Changing stored functions for the admin: register, update, delete, start/stop (new
record versions) and restart (no metadata change). Checks each request with the pure
validators, then writes through the coordination backend; a concurrent change is 409.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from fnworker.coordination.backend import CoordinationBackend, VersionConflict
from fnworker.scheduler.admin.fleet_admin import FleetAdmin
from fnworker.scheduler.admin.function_credentials import FunctionCredentials
from fnworker.scheduler.admin.function_reads import FunctionReads
from fnworker.scheduler.admin.package_service import (
    PackageService,
    brings_package,
    existing_name,
    package_name,
)
from fnworker.scheduler.decide.admission_limits import AdmissionMemo, fleet_problem
from fnworker.scheduler.decide.function_validation import merge_update, validate_new_function
from fnworker.scheduler.model.admin_records import PackageSource
from fnworker.scheduler.model.errors import ApiError, bad_request, conflict
from fnworker.scheduler.model.records import (
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    InstanceState,
    fqfn_of,
    instance_id_of,
)

log = structlog.get_logger("fnworker.admin")


def now_ms() -> int:
    """Wall-clock time in milliseconds, as Pulsar's records carry it."""
    return int(time.time() * 1000)


class FunctionWrites:
    """Writes the next version of a function for each request that changes it."""

    def __init__(
        self,
        *,
        reads: FunctionReads,
        backend: CoordinationBackend,
        packages: PackageService,
        credentials: FunctionCredentials,
        fleet: FleetAdmin,
        admission: AdmissionMemo,
    ) -> None:
        self.reads = reads
        self.backend = backend
        self.packages = packages
        self.credentials = credentials
        self.fleet = fleet
        self.admission = admission
        self.limits = admission.limits
        self.runtime_check: Callable[[FunctionRecord], str | None] | None = None
        """The runtime's admission check (Kubernetes: the objects must render)."""
        self.on_deleted: Callable[[FunctionRecord], Awaitable[None]] | None = None
        """Called after a delete is stored (the state service clears the state)."""

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
        self.check_runtime(FunctionRecord(fqfn=fqfn, version=1, config=validated))
        package = await self.packages.store_package(fqfn, 1, source, validated)
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
        record = await self.write_with_credentials(record, auth_token, expected_version=0)
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
        function's stored token is replaced by the updater's, or removed without one).
        As Pulsar: a missing function and an update that changes nothing (no config
        field, no package, no credentials to renew) are 400s."""
        existing = self.backend.functions().get(fqfn_of(tenant, namespace, name))
        if existing is None:
            raise bad_request(f"Function {name} doesn't exist")
        merged = merge_update(existing.config, config, self.limits)
        validated = validate_new_function(
            tenant,
            namespace,
            name,
            merged,
            package_name(source, config) or existing_name(existing),
            self.limits,
        )
        if (
            validated == existing.config
            and not brings_package(source, config)
            and not self.credentials.would_change(existing, auth_token)
        ):
            raise bad_request("Update contains no change")
        self.check_fleet_room(validated, existing.fqfn)
        version = existing.version + 1
        self.check_runtime(msgspec.structs.replace(existing, version=version, config=validated))
        package = await self.packages.store_package(existing.fqfn, version, source, validated)
        if package is None and existing.package is not None:
            await self.packages.check_kept(existing, validated.class_name)
        record = msgspec.structs.replace(
            existing,
            version=version,
            config=validated,
            package=package or existing.package,
            update_time_ms=now_ms(),
        )
        record = await self.write_with_credentials(
            record, auth_token, expected_version=existing.version
        )
        if existing.auth is not None and existing.auth != record.auth:
            await self.credentials.forget(existing)
        log.info("function updated", function=existing.fqfn, version=version)
        return record

    async def write_with_credentials(
        self, record: FunctionRecord, token: str | None, expected_version: int
    ) -> FunctionRecord:
        """Store the token's credentials, then write the record naming them; the
        credentials are removed again when the write fails."""
        record = await self.credentials.attach(record, token)
        try:
            await self.write(record, expected_version)
        except ApiError:
            await self.credentials.forget(record)
            raise
        return record

    def check_runtime(self, record: FunctionRecord) -> None:
        """400 with the runtime's sentence when it could not run ``record``."""
        problem = self.runtime_check(record) if self.runtime_check is not None else None
        if problem is not None:
            raise bad_request(problem)

    def check_fleet_room(self, config: FunctionConfig, fqfn: Fqfn) -> None:
        """400 when the function's parallelism would take the fleet past maxFleetInstances
        (its own current instances, on an update, make room)."""
        others = self.admission.admitted_instances(self.backend.functions(), leave_out=fqfn)
        problem = fleet_problem(config, others, self.limits)
        if problem is not None:
            raise bad_request(problem)

    async def deregister(self, tenant: str, namespace: str, name: str) -> None:
        """Delete a function; its instances stop and its packages are removed."""
        existing = self.reads.record(tenant, namespace, name)
        try:
            await self.backend.delete_function(existing.fqfn, existing.version)
        except VersionConflict as error:
            raise conflict(str(error)) from error
        self.packages.prune(existing.fqfn)
        if self.on_deleted is not None:
            await self.on_deleted(existing)
        log.info("function deleted", function=existing.fqfn)

    async def set_states(
        self, tenant: str, namespace: str, name: str, index: int | None, state: InstanceState
    ) -> None:
        """Write a new version whose instance states say which instances run (start and
        stop: the owner starts or stops them); 400 when every instance named is already
        so (starting running instances, stopping stopped ones), as Pulsar answers."""
        existing = self.reads.record(tenant, namespace, name)
        indexes = self.reads.indexes(existing, index)
        if all(existing.state_of(i) == state for i in indexes):
            raise bad_request("Operation not permitted")  # Pulsar's answer: already so
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
        """Restart instances where they run; no metadata changes."""
        existing = self.reads.record(tenant, namespace, name)
        for i in self.reads.indexes(existing, index):
            await self.fleet.restart_instance(instance_id_of(existing.fqfn, i))

    async def write(self, record: FunctionRecord, expected_version: int) -> None:
        """Write a record; a concurrent change answers 409."""
        try:
            await self.backend.write_function(record, expected_version)
        except VersionConflict as error:
            raise conflict(str(error)) from error
