"""An instant stand-in for the coordination backend, for the control-plane benches
and the leader-pass tests only: one ``MemoryCluster`` shared by simulated workers
in one process, where joining, leaving, leadership and delivery happen at once.

It is NOT the fleet protocol: the product's memory backend
(fnworker/coordination/memory.py) runs the real protocol over in-memory topics,
with its timers. This stand-in measures and tests what sits above the backend
(the leader's planning pass, the event pump, the per-worker tables) at 1,000
workers without simulating heartbeats and leases. Leadership goes to the
earliest-joined live member; each change of leader starts a new term, and
assignments written with an older term are ignored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
from anyio.abc import ObjectReceiveStream, TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from fnworker.coordination.backend import (
    AssignmentsChanged,
    CoordinationEvent,
    FunctionsChanged,
    MembershipChanged,
    MembershipView,
    VersionConflict,
)
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    PackageRef,
    WorkerId,
    WorkerInfo,
)


class MemoryCluster:
    """The shared state of one cluster and the event streams of its members."""

    def __init__(self) -> None:
        self.functions: dict[Fqfn, FunctionRecord] = {}
        self.members: dict[WorkerId, WorkerInfo] = {}
        self.term = 0
        self.leader: WorkerId | None = None
        self.assignments: dict[InstanceId, Assignment] = {}
        self.streams: dict[WorkerId, MemoryObjectSendStream[CoordinationEvent]] = {}
        self.assignment_records_delivered = 0

    def view(self) -> MembershipView:
        """The current membership as every member sees it."""
        leader = self.members.get(self.leader) if self.leader else None
        return MembershipView(term=self.term, leader=leader, members=tuple(self.members.values()))

    def broadcast(self, event: CoordinationEvent) -> None:
        """Deliver one event to every member."""
        for stream in list(self.streams.values()):
            self.send(stream, event)

    def send(
        self, stream: MemoryObjectSendStream[CoordinationEvent], event: CoordinationEvent
    ) -> None:
        """Deliver one event; a member whose stream is closed simply misses it."""
        try:
            stream.send_nowait(event)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    def elect(self) -> None:
        """Give leadership to the earliest-joined member if the leader is gone."""
        if self.leader in self.members:
            return
        self.leader = next(iter(self.members), None)
        self.term += 1

    def remove_member(self, worker: WorkerId) -> None:
        """Drop a member (left or declared dead) and elect a new leader if needed."""
        self.members.pop(worker, None)
        stream = self.streams.pop(worker, None)
        if stream is not None:
            stream.close()
        self.elect()
        self.broadcast(MembershipChanged(view=self.view()))

    def apply_assignments(
        self, term: int, assigned: Sequence[Assignment], unassigned: Sequence[InstanceId]
    ) -> bool:
        """Apply a leader's write if its term is current; tell each worker its part."""
        if term != self.term:
            return False
        per_worker: dict[WorkerId, tuple[list[Assignment], list[InstanceId]]] = defaultdict(
            lambda: ([], [])
        )
        for instance in unassigned:
            previous = self.assignments.pop(instance, None)
            if previous is not None:
                per_worker[previous.worker][1].append(instance)
        for assignment in assigned:
            previous = self.assignments.get(assignment.instance)
            if previous is not None and previous.worker != assignment.worker:
                per_worker[previous.worker][1].append(assignment.instance)
            self.assignments[assignment.instance] = assignment
            per_worker[assignment.worker][0].append(assignment)
        for worker, (mine, gone) in per_worker.items():
            stream = self.streams.get(worker)
            if stream is not None:
                self.assignment_records_delivered += len(mine) + len(gone)
                self.send(
                    stream,
                    AssignmentsChanged(term=term, assigned=tuple(mine), unassigned=tuple(gone)),
                )
        return True

    def assignments_of(self, worker: WorkerId) -> tuple[Assignment, ...]:
        """Every assignment currently held by one worker."""
        return tuple(a for a in self.assignments.values() if a.worker == worker)


class MemoryCoordination:
    """One worker's handle on a ``MemoryCluster`` (implements CoordinationBackend)."""

    def __init__(self, cluster: MemoryCluster) -> None:
        self.cluster = cluster
        self.me: WorkerInfo | None = None

    async def run(
        self, me: WorkerInfo, *, task_status: TaskStatus[ObjectReceiveStream[CoordinationEvent]]
    ) -> None:
        """Join, hand over the event stream, and leave when cancelled."""
        stream = await self.join(me)
        try:
            task_status.started(stream)
            await anyio.sleep_forever()
        finally:
            await self.leave()

    async def store_package(self, ref: PackageRef, path: Path) -> PackageRef:
        """Every member shares this process's disk: nothing to do."""
        return ref

    async def fetch_package(self, ref: PackageRef, target: Path) -> None:
        """Never needed in one process: the package is already on this disk."""
        raise FileNotFoundError(f"package {ref.path} is not in the local store")

    async def join(self, me: WorkerInfo) -> ObjectReceiveStream[CoordinationEvent]:
        """Become a member and receive the current state as the first events."""
        cluster = self.cluster
        self.me = me
        send, receive = anyio.create_memory_object_stream[CoordinationEvent](math.inf)
        old = cluster.streams.pop(me.worker_id, None)
        if old is not None:
            old.close()
        cluster.streams[me.worker_id] = send
        cluster.members[me.worker_id] = me
        cluster.elect()
        cluster.send(send, FunctionsChanged(changed=tuple(cluster.functions.values())))
        cluster.send(
            send,
            AssignmentsChanged(term=cluster.term, assigned=cluster.assignments_of(me.worker_id)),
        )
        cluster.broadcast(MembershipChanged(view=cluster.view()))
        return receive

    async def leave(self) -> None:
        """Leave the cluster; the leader re-plans this worker's instances at once."""
        if self.me is not None and self.me.worker_id in self.cluster.members:
            self.cluster.remove_member(self.me.worker_id)

    async def write_function(self, record: FunctionRecord, expected_version: int) -> None:
        """Store a function version if nobody else changed it meanwhile."""
        current = self.cluster.functions.get(record.fqfn)
        actual = current.version if current else 0
        if actual != expected_version:
            raise VersionConflict(record.fqfn, expected_version, actual)
        self.cluster.functions[record.fqfn] = record
        self.cluster.broadcast(FunctionsChanged(changed=(record,)))

    async def delete_function(self, fqfn: Fqfn, expected_version: int) -> None:
        """Delete a function if nobody else changed it meanwhile."""
        current = self.cluster.functions.get(fqfn)
        actual = current.version if current else 0
        if actual != expected_version:
            raise VersionConflict(fqfn, expected_version, actual)
        del self.cluster.functions[fqfn]
        self.cluster.broadcast(FunctionsChanged(deleted=(fqfn,)))

    def functions(self) -> Mapping[Fqfn, FunctionRecord]:
        """Every function in the cluster."""
        return self.cluster.functions

    def membership(self) -> MembershipView:
        """The current members and leader."""
        return self.cluster.view()

    def assignments(self) -> Mapping[InstanceId, Assignment]:
        """The whole cluster's assignments."""
        return self.cluster.assignments

    async def publish_assignments(
        self, term: int, assigned: Sequence[Assignment], unassigned: Sequence[InstanceId]
    ) -> None:
        """Write the leader's changes; silently ignored when ``term`` is stale."""
        self.cluster.apply_assignments(term, assigned, unassigned)
