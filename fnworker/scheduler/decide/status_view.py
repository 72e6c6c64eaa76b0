"""Builds the status and stats answers of the REST API from per-instance data,
in Pulsar's shapes. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from fnworker.scheduler.model.admin_records import FunctionStats, InstanceStats
from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.records import FunctionStatus, InstanceStatus, InstanceStatusData


def not_running(reason: str, worker_id: str = "") -> InstanceStatusData:
    """The status of an instance this worker does not run, with the reason why."""
    return InstanceStatusData(running=False, error=reason, worker_id=worker_id)


def function_status(per_instance: Sequence[InstanceStatusData]) -> FunctionStatus:
    """FunctionStatus for instances 0..n-1, given each instance's status in order."""
    return FunctionStatus(
        num_instances=len(per_instance),
        num_running=sum(1 for status in per_instance if status.running),
        instances=[
            InstanceStatus(instance_id=index, status=status)
            for index, status in enumerate(per_instance)
        ],
    )


def function_stats(per_instance: Sequence[InstanceMetrics]) -> FunctionStats:
    """FunctionStats: totals over instances, latency weighted by messages processed."""
    processed = sum(m.processed_successfully_total for m in per_instance)
    weighted = sum(
        (m.avg_process_latency or 0.0) * m.processed_successfully_total for m in per_instance
    )
    invocations = [m.last_invocation for m in per_instance if m.last_invocation]
    return FunctionStats(
        received_total=sum(m.received_total for m in per_instance),
        processed_successfully_total=processed,
        system_exceptions_total=sum(m.system_exceptions_total for m in per_instance),
        user_exceptions_total=sum(m.user_exceptions_total for m in per_instance),
        avg_process_latency=weighted / processed if processed else None,
        last_invocation=max(invocations) if invocations else None,
        instances=[
            InstanceStats(instance_id=index, metrics=metrics)
            for index, metrics in enumerate(per_instance)
        ],
    )
