"""Status and counters of a function's instances, each from whichever worker runs it;
an instance that is stopped or over an admission limit answers for itself here.
"""

from __future__ import annotations

from fnworker.scheduler.admin.fleet_admin import FleetAdmin
from fnworker.scheduler.admin.function_reads import FunctionReads
from fnworker.scheduler.decide.admission_limits import AdmissionMemo
from fnworker.scheduler.decide.status_view import function_stats, function_status, not_running
from fnworker.scheduler.model.admin_records import FunctionStats
from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.records import (
    FunctionRecord,
    FunctionStatus,
    InstanceStatusData,
    WorkerInfo,
    instance_id_of,
)


class StatusService:
    """Answers status and stats requests for one function or one instance."""

    def __init__(
        self, *, me: WorkerInfo, reads: FunctionReads, fleet: FleetAdmin, admission: AdmissionMemo
    ) -> None:
        self.me = me
        self.reads = reads
        self.fleet = fleet
        self.admission = admission

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
        record = self.reads.record(tenant, namespace, name)
        return function_status(
            [await self.local_status(record, i) for i in self.reads.indexes(record, None)]
        )

    async def instance_status(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceStatusData:
        """Status of one instance."""
        record = self.reads.record(tenant, namespace, name)
        return await self.local_status(record, self.reads.indexes(record, index)[0])

    async def local_metrics(self, record: FunctionRecord, index: int) -> InstanceMetrics:
        """One instance's counters, from whichever worker runs it (none for a function
        over an admission limit: it is not run)."""
        if self.admission.problem(record) is not None:
            return InstanceMetrics()
        return await self.fleet.instance_metrics(instance_id_of(record.fqfn, index))

    async def function_stats(self, tenant: str, namespace: str, name: str) -> FunctionStats:
        """Counters of every instance, with totals."""
        record = self.reads.record(tenant, namespace, name)
        return function_stats(
            [await self.local_metrics(record, i) for i in self.reads.indexes(record, None)]
        )

    async def instance_stats(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceMetrics:
        """Counters of one instance."""
        record = self.reads.record(tenant, namespace, name)
        return await self.local_metrics(record, self.reads.indexes(record, index)[0])
