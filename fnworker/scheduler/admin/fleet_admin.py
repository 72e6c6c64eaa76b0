"""The fleet side of the admin: answers about one instance from whichever worker
runs it, fleet-wide answers from the leader, and the leader's operations
(rebalance, drain). Does I/O through the Forwarder and the runtime driver.
"""

from __future__ import annotations

from collections import defaultdict

import msgspec

from fnworker.coordination.backend import CoordinationBackend
from fnworker.runtimes.driver import RuntimeDriver
from fnworker.scheduler.admin.forwarding import Forwarder, may_forward
from fnworker.scheduler.admin.leader_control import LeaderControl
from fnworker.scheduler.decide.status_view import not_running
from fnworker.scheduler.model.errors import bad_request, conflict, unavailable
from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.records import (
    InstanceId,
    InstanceStatusData,
    WorkerInfo,
    split_fqfn,
    split_instance_id,
)


class DrainStatus(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pulsar's LongRunningProcessStatus for a drain."""

    status: str
    last_error: str = ""


class InstanceOnWorker(msgspec.Struct, kw_only=True):
    """One instance this worker holds (``/admin/v2/worker-stats/functionsmetrics``)."""

    name: str
    running: bool
    metrics: InstanceMetrics


class FleetAdmin:
    """Finds the worker that can answer, and answers when that worker is this one."""

    def __init__(
        self,
        me: WorkerInfo,
        backend: CoordinationBackend,
        driver: RuntimeDriver,
        control: LeaderControl,
        forwarder: Forwarder,
    ) -> None:
        self.me = me
        self.backend = backend
        self.driver = driver
        self.control = control
        self.forwarder = forwarder

    def leading(self) -> bool:
        """True when this worker is the fleet's leader."""
        leader = self.backend.membership().leader
        return leader is not None and leader.worker_id == self.me.worker_id

    def leader_or_503(self) -> WorkerInfo:
        """The leader, or 503 while none is known."""
        leader = self.backend.membership().leader
        if leader is None:
            raise unavailable("no leader is known yet; expected one within a second, retry")
        return leader

    def owner_of(self, instance: InstanceId) -> WorkerInfo | None:
        """The worker to ask about an instance: its owner (leader's view) or the leader."""
        assignment = self.backend.assignments().get(instance)
        members = {m.worker_id: m for m in self.backend.membership().members}
        if assignment is not None:
            return members.get(assignment.worker)
        return None if self.leading() else self.backend.membership().leader

    async def instance_status(self, instance: InstanceId) -> InstanceStatusData:
        """An instance's status from this worker if it runs it, else from its owner."""
        status = self.driver.status(instance)
        if status is not None:
            return status
        target = self.owner_of(instance)
        if target is None or target.worker_id == self.me.worker_id or not may_forward():
            reason = (
                "instance is not running on this worker"
                if target
                else "instance is not assigned to a worker yet"
            )
            return not_running(reason, target.worker_id if target else "")
        return await self.forwarder.call(
            "GET", target, instance_path(instance, "status"), InstanceStatusData
        )

    async def instance_metrics(self, instance: InstanceId) -> InstanceMetrics:
        """An instance's counters from the worker that runs it (zero if none does)."""
        metrics = self.driver.metrics(instance)
        if metrics is not None:
            return metrics
        target = self.owner_of(instance)
        if target is None or target.worker_id == self.me.worker_id or not may_forward():
            return InstanceMetrics()
        return await self.forwarder.call(
            "GET", target, instance_path(instance, "stats"), InstanceMetrics
        )

    async def restart_instance(self, instance: InstanceId) -> None:
        """Restart an instance where it runs."""
        if instance in self.driver.instances():
            await self.driver.restart(instance)
            return
        target = self.owner_of(instance)
        if target is not None and target.worker_id != self.me.worker_id and may_forward():
            await self.forwarder.call("POST", target, instance_path(instance, "restart"), bytes)

    async def assignments(self) -> dict[str, list[str]]:
        """``{workerId: [instanceId, ...]}`` from the leader's table."""
        if not self.leading() and may_forward():
            return await self.forwarder.call(
                "GET", self.leader_or_503(), "/admin/v2/worker/assignments", dict[str, list[str]]
            )
        table: dict[str, list[str]] = defaultdict(list)
        for assignment in self.backend.assignments().values():
            table[assignment.worker].append(assignment.instance)
        return {worker: sorted(instances) for worker, instances in table.items()}

    async def rebalance(self) -> None:
        """Even out instances across workers (done by the leader). As Pulsar's
        WorkerImpl answers: too few workers is 400; a drain already running is 409,
        an unknown or lone worker to drain 400."""
        if not self.leading():
            if may_forward():
                await self.forwarder.call(
                    "PUT", self.leader_or_503(), "/admin/v2/worker/rebalance", bytes
                )
            return
        if len(self.backend.membership().members) < 2:
            raise bad_request("rebalance needs at least 2 workers in the fleet; there is 1")
        self.control.request_rebalance()

    async def drain(self, worker_id: str | None) -> None:
        """Move every instance off ``worker_id`` (this worker when None) and keep it empty."""
        target_id = worker_id or self.me.worker_id
        if not self.leading():
            if may_forward():
                path = f"/admin/v2/worker/leader/drain?workerId={target_id}"
                await self.forwarder.call("PUT", self.leader_or_503(), path, bytes)
            return
        members = {m.worker_id for m in self.backend.membership().members}
        if target_id not in members:
            raise bad_request(
                f"workerId '{target_id}' is not a live worker; expected one of {sorted(members)}"
            )
        if len(members) < 2:
            raise bad_request("drain needs at least 2 workers in the fleet; there is 1")
        if "RUNNING" in self.control.drains.values():
            raise conflict("a drain is already in progress; retry when it has finished")
        self.control.request_drain(target_id)

    async def drain_status(self, worker_id: str | None) -> DrainStatus:
        """The status of the last drain of ``worker_id`` (this worker when None)."""
        target_id = worker_id or self.me.worker_id
        if not self.leading() and may_forward():
            path = f"/admin/v2/worker/leader/drain?workerId={target_id}"
            return await self.forwarder.call("GET", self.leader_or_503(), path, DrainStatus)
        return DrainStatus(status=self.control.drains.get(target_id, "NOT_RUN"))

    def local_instances(self) -> list[InstanceOnWorker]:
        """Every instance this worker's runtime holds, with its counters."""
        held = []
        for instance in sorted(self.driver.instances()):
            status = self.driver.status(instance)
            held.append(
                InstanceOnWorker(
                    name=instance,
                    running=bool(status and status.running),
                    metrics=self.driver.metrics(instance) or InstanceMetrics(),
                )
            )
        return held


def instance_path(instance: InstanceId, action: str) -> str:
    """The REST path of one instance's ``action`` (status, stats, restart)."""
    fqfn, index = split_instance_id(instance)
    tenant, namespace, name = split_fqfn(fqfn)
    return f"/admin/v3/functions/{tenant}/{namespace}/{name}/{index}/{action}"
