"""Builds the status and stats answers of the REST API from per-instance data,
in Pulsar's shapes. Pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Sequence

from fnworker.scheduler.model.admin_records import FunctionStats, InstanceStats
from fnworker.scheduler.model.instances import InstanceMetrics, WindowMetrics
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
    """FunctionStats as Pulsar's ``calculateOverall``: counts summed over instances, the
    latency the mean of the instances that report one, the latest invocation; the same
    for the ``1min`` block."""
    invocations = [m.last_invocation for m in per_instance if m.last_invocation]
    totals = summed_window(per_instance)
    return FunctionStats(
        received_total=totals.received_total,
        processed_successfully_total=totals.processed_successfully_total,
        system_exceptions_total=totals.system_exceptions_total,
        user_exceptions_total=totals.user_exceptions_total,
        avg_process_latency=totals.avg_process_latency,
        one_minute=summed_window([m.one_minute for m in per_instance]),
        last_invocation=max(invocations) if invocations else None,
        instances=[
            InstanceStats(instance_id=index, metrics=metrics)
            for index, metrics in enumerate(per_instance)
        ],
    )


def summed_window(parts: Sequence[WindowMetrics | InstanceMetrics]) -> WindowMetrics:
    """Counts summed; the latency the mean over the parts that report one (None if
    none does), as Pulsar's FunctionStatsImpl aggregates both totals and ``1min``."""
    latencies = [p.avg_process_latency for p in parts if p.avg_process_latency is not None]
    return WindowMetrics(
        received_total=sum(p.received_total for p in parts),
        processed_successfully_total=sum(p.processed_successfully_total for p in parts),
        system_exceptions_total=sum(p.system_exceptions_total for p in parts),
        user_exceptions_total=sum(p.user_exceptions_total for p in parts),
        avg_process_latency=sum(latencies) / len(latencies) if latencies else None,
    )
