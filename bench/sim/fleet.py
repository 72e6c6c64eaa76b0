"""A fleet of simulated workers in ONE process on the memory coordination backend.

No broker and no threads: every worker is a pair of anyio tasks sharing one
``MemoryCluster``. Each worker runs the real ``pump_events`` over its own event
stream, applying ``AssignmentsChanged`` to a real ``LocalAssignments`` (term
fenced), exactly as ``worker_service`` wires it; the worker that leads also runs
the real ``lead()`` loop (``plan_assignments`` on every wake-up, publishing only
what changed). No runtime and no reconciler run: this is the control plane only.

The hooks the benchmark needs are thin subclasses that only record times:
``ObservedAssignments`` (when a worker's table last changed) and
``RecordingCoordination`` (when the leader published, and how many records).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from bench.sim.instant_cluster import MemoryCluster, MemoryCoordination
from fnworker.coordination.backend import (
    AssignmentsChanged,
    CoordinationEvent,
    FunctionsChanged,
    MembershipChanged,
    VersionConflict,
)
from fnworker.scheduler.admin.leader_control import Wakeup
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    InstanceId,
    WorkerId,
    WorkerInfo,
)
from fnworker.scheduler.worker.worker_loops import LocalAssignments, lead, pump_events

STRATEGY = "roundrobin"


class ObservedAssignments(LocalAssignments):
    """The real ``LocalAssignments``, plus the time it last changed."""

    def __init__(self) -> None:
        super().__init__()
        self.changed_at = 0.0

    def apply(self, event: AssignmentsChanged) -> bool:
        """Apply as the worker does; remember when something changed."""
        applied = super().apply(event)
        if applied and (event.assigned or event.unassigned):
            self.changed_at = time.perf_counter()
        return applied


class RecordingCoordination(MemoryCoordination):
    """The real ``MemoryCoordination``, plus a log of the leader's writes."""

    def __init__(self, cluster: MemoryCluster) -> None:
        super().__init__(cluster)
        self.publishes: list[tuple[float, float, int, int]] = []
        """(start, end, assigned, unassigned) of every ``publish_assignments`` call."""

    async def publish_assignments(
        self, term: int, assigned: Sequence[Assignment], unassigned: Sequence[InstanceId]
    ) -> None:
        """Publish as usual and log the call."""
        start = time.perf_counter()
        await super().publish_assignments(term, assigned, unassigned)
        self.publishes.append((start, time.perf_counter(), len(assigned), len(unassigned)))


@dataclass
class SimWorker:
    """One simulated worker: its handle, event stream, own table and wake-ups."""

    info: WorkerInfo
    backend: RecordingCoordination
    events: MemoryObjectReceiveStream[CoordinationEvent]
    mine: ObservedAssignments = field(default_factory=ObservedAssignments)
    leader_wakeup: Wakeup = field(default_factory=Wakeup)
    reconcile_wakeup: Wakeup = field(default_factory=Wakeup)
    leads: bool = False
    alive: bool = True


def worker_info(index: int) -> WorkerInfo:
    """The id, host and port of simulated worker ``index``."""
    return WorkerInfo(worker_id=WorkerId(f"worker-{index:04d}"), worker_hostname="sim", port=index)


def function_records(count: int, parallelism: int) -> list[FunctionRecord]:
    """``count`` functions of ``parallelism`` instances each, at version 1."""
    return [
        FunctionRecord(
            fqfn=Fqfn(f"tenant/ns/fn{f:05d}"),
            version=1,
            config=FunctionConfig(
                tenant="tenant", namespace="ns", name=f"fn{f:05d}", parallelism=parallelism
            ),
        )
        for f in range(count)
    ]


def write_functions_batched(cluster: MemoryCluster, records: Iterable[FunctionRecord]) -> None:
    """``MemoryCoordination.write_function`` for many records, with ONE event for all.

    The same version check (each record must be the stored version + 1) and the
    same store; every member gets one ``FunctionsChanged`` listing every record
    instead of one event per record.
    """
    written = []
    for record in records:
        current = cluster.functions.get(record.fqfn)
        actual = current.version if current else 0
        if actual != record.version - 1:
            raise VersionConflict(record.fqfn, record.version - 1, actual)
        cluster.functions[record.fqfn] = record
        written.append(record)
    cluster.broadcast(FunctionsChanged(changed=tuple(written)))


def remove_members_at_once(cluster: MemoryCluster, ids: Iterable[WorkerId]) -> None:
    """``MemoryCluster.remove_member`` for many workers declared dead together.

    The same removals (each stream closed, so that worker's pump ends) and the
    same election, but one ``MembershipChanged`` for all of them instead of one
    per worker, as the pulsar backend's liveness sweep (``leader_tick``) reports
    every worker it declares dead in one event.
    """
    for worker_id in ids:
        cluster.members.pop(worker_id, None)
        stream = cluster.streams.pop(worker_id, None)
        if isinstance(stream, MemoryObjectSendStream):
            stream.close()
    cluster.elect()
    cluster.broadcast(MembershipChanged(view=cluster.view()))


class Fleet:
    """Many simulated workers sharing one ``MemoryCluster``, all in one task group."""

    def __init__(self, group: TaskGroup) -> None:
        self.group = group
        self.cluster = MemoryCluster()
        self.workers: dict[WorkerId, SimWorker] = {}

    async def join(self, count: int) -> None:
        """Join ``count`` workers one by one; the first one leads and runs ``lead()``."""
        for index in range(len(self.workers), len(self.workers) + count):
            info = worker_info(index)
            backend = RecordingCoordination(self.cluster)
            events = await backend.join(info)
            assert isinstance(events, MemoryObjectReceiveStream)  # read by idle()
            worker = SimWorker(info=info, backend=backend, events=events)
            worker.leads = self.cluster.leader == info.worker_id
            self.workers[info.worker_id] = worker
            self.group.start_soon(self.run_worker, worker)

    async def run_worker(self, worker: SimWorker) -> None:
        """The real pump (and, on the leader, the real leader loop) until the stream ends."""
        async with anyio.create_task_group() as group:
            if worker.leads:
                group.start_soon(lead, worker.backend, worker.info, STRATEGY, worker.leader_wakeup)
            await pump_events(
                worker.events, worker.mine, worker.leader_wakeup, worker.reconcile_wakeup
            )
            group.cancel_scope.cancel()

    def leader(self) -> SimWorker:
        """The worker that leads now."""
        return self.workers[WorkerId(str(self.cluster.leader))]

    def live(self) -> list[SimWorker]:
        """Workers still in the cluster."""
        return [w for w in self.workers.values() if w.alive]

    def victims(self, count: int) -> list[WorkerId]:
        """``count`` live workers spread evenly over the fleet, never the leader."""
        leader_id = self.leader().info.worker_id
        live = [w.info.worker_id for w in self.live() if w.info.worker_id != leader_id]
        step = max(1, len(live) // max(1, count))
        return live[step // 2 :: step][:count]

    def kill(self, ids: Sequence[WorkerId]) -> None:
        """Workers die and one liveness sweep declares them all dead: one membership change."""
        for worker_id in ids:
            self.workers[worker_id].alive = False
        remove_members_at_once(self.cluster, ids)

    def kill_one_by_one(self, ids: Sequence[WorkerId]) -> None:
        """Workers leave one after another (``leave()`` is ``remove_member``): one
        membership change per worker, all before any pump runs."""
        for worker_id in ids:
            self.workers[worker_id].alive = False
            self.cluster.remove_member(worker_id)

    def idle(self) -> bool:
        """True when nothing is left to do: every live pump is parked on an empty stream
        and no leader pass is pending. Checked between task steps, so no task is half
        way through an event (a stream's item handed straight to a parked receiver
        shows as that receiver no longer waiting)."""
        for worker in self.workers.values():
            if not worker.alive:
                continue
            stats = worker.events.statistics()
            if stats.current_buffer_used or stats.tasks_waiting_receive != 1:
                return False
            # A set, unconsumed wake-up means lead() has a pass still to run.
            if worker.leads and worker.leader_wakeup._event.is_set():
                return False
        return True

    async def settle(self, timeout: float, poll: float = 0.005) -> float:
        """Wait until the fleet is idle (at most ``timeout`` s); when it was seen idle."""
        with anyio.fail_after(timeout):
            while True:
                await anyio.sleep(poll)
                if self.idle():
                    return time.perf_counter()

    def table(self) -> Mapping[InstanceId, Assignment]:
        """The leader's table (the leader's view of every assignment)."""
        return self.leader().backend.assignments()

    def check(self) -> dict[str, Any]:
        """Does every live worker hold exactly its part of the leader's table?"""
        tables: dict[WorkerId, dict[InstanceId, Assignment]] = defaultdict(dict)
        for instance, assignment in self.table().items():
            tables[assignment.worker][instance] = assignment
        live = self.live()
        live_ids = {w.info.worker_id for w in live}
        counts = [len(tables.get(w.info.worker_id, {})) for w in live]
        return {
            "live_workers": len(live),
            "workers_matching_leader": sum(
                1 for w in live if w.mine.by_instance == tables.get(w.info.worker_id, {})
            ),
            "instances_assigned": sum(counts),
            "instances_on_dead_workers": sum(
                len(held) for worker, held in tables.items() if worker not in live_ids
            ),
            "min_per_worker": min(counts, default=0),
            "max_per_worker": max(counts, default=0),
        }

    def snapshot(self) -> dict[InstanceId, tuple[WorkerId, int]]:
        """instance -> (worker, version) of the leader's table, for diffs."""
        return {i: (a.worker, a.version) for i, a in self.table().items()}
