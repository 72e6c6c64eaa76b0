"""The contract between a worker and its coordination backend (memory or pulsar),
and the events a backend reports. No I/O here.

A backend carries three things for one cluster: function metadata (versioned,
every worker sees every function), membership and leadership (terms numbered,
exactly one leader), and assignments (the leader writes, each worker receives
only its own, fenced by term). It reports every change as an event on one
stream per worker; the worker never polls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from anyio.abc import ObjectReceiveStream, TaskStatus

from fnworker.coordination.events import (
    AssignmentsChanged,
    CoordinationEvent,
    FunctionsChanged,
    MembershipChanged,
    MembershipView,
    VersionConflict,
)
from fnworker.coordination.uploads import UploadRecord
from fnworker.scheduler.model.function_state import StateRecord, StateTable
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    PackageRef,
    WorkerInfo,
)

__all__ = [
    "AssignmentsChanged",
    "CoordinationBackend",
    "CoordinationEvent",
    "GracefulHandOff",
    "FunctionsChanged",
    "MembershipChanged",
    "MembershipView",
    "VersionConflict",
]


class CoordinationBackend(Protocol):
    """One worker's handle on the cluster's coordination state."""

    async def run(
        self, me: WorkerInfo, *, task_status: TaskStatus[ObjectReceiveStream[CoordinationEvent]]
    ) -> None:
        """Join the fleet as ``me``, hand over the event stream, and stay until cancelled.

        The first events describe the current state: every function, the
        membership, and this worker's assignments. Cancelling leaves the fleet
        cleanly so the leader can move this worker's instances at once.
        """
        ...

    async def write_function(self, record: FunctionRecord, expected_version: int) -> None:
        """Store ``record`` if the stored version is ``expected_version`` (0 = absent)."""
        ...

    async def delete_function(self, fqfn: Fqfn, expected_version: int) -> None:
        """Delete the function if its stored version is ``expected_version``."""
        ...

    def functions(self) -> Mapping[Fqfn, FunctionRecord]:
        """This worker's current view of every function."""
        ...

    def membership(self) -> MembershipView:
        """This worker's current view of the fleet."""
        ...

    def assignments(self) -> Mapping[InstanceId, Assignment]:
        """The whole fleet's assignments as last written by a leader."""
        ...

    async def publish_assignments(
        self, term: int, assigned: Sequence[Assignment], unassigned: Sequence[InstanceId]
    ) -> None:
        """Leader only: write what changed; ignored everywhere if ``term`` is stale."""
        ...

    async def store_package(self, ref: PackageRef, path: Path) -> PackageRef:
        """Make a locally stored package reachable by every worker; the ref to record."""
        ...

    async def fetch_package(self, ref: PackageRef, target: Path) -> None:
        """Copy a package stored by another worker to ``target`` on this one."""
        ...

    async def read_state(self, fqfn: Fqfn, incarnation: int) -> StateTable:
        """The state of ``fqfn``'s incarnation as its state topic holds it now."""
        ...

    async def write_state(self, fqfn: Fqfn, record: StateRecord) -> None:
        """Append one record to ``fqfn``'s state topic."""
        ...

    async def store_upload(self, path: str, file: Path, sha256: str) -> UploadRecord:
        """Make ``file`` (this worker's copy of what was uploaded at ``path``) the
        latest upload of ``path`` for every worker; the index record written."""
        ...

    async def uploads(self) -> Mapping[str, UploadRecord]:
        """The latest upload of every path, as the uploads index holds it now."""
        ...

    async def fetch_upload(self, record: UploadRecord) -> bytes:
        """The content of an upload stored by any worker."""
        ...


@runtime_checkable
class GracefulHandOff(Protocol):
    """A backend that can hand a stopping worker's instances over first
    (docs/coordination.md, "Graceful stop: hand-off"); both protocol backends can."""

    async def hand_off(self, timeout: float) -> bool | None:
        """Move this worker's instances to the others and wait until each runs there
        (at most ``timeout`` seconds); True when all were handed over, None when
        there was no hand-off (alone, or ``timeout`` 0)."""
        ...

    def awaiting_start(self) -> frozenset[InstanceId]:
        """Instances handed over to this worker whose running it has not confirmed."""
        ...

    def confirm_running(self, instances: Sequence[InstanceId]) -> None:
        """The runtime runs these instances here now."""
        ...
