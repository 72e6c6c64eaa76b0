"""The leader's pass (``worker_loops.leader_pass``, what ``lead()`` runs on every
wake-up) on the in-memory backend: a drain's moves are published and counted with
reason ``drain`` on the ``fnworker_assignment_changes_total`` counter of /metrics.
No fleet, no processes: two members of one ``MemoryCluster``.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.sim.instant_cluster import MemoryCluster, MemoryCoordination
from fnworker.scheduler.admin.leader_control import LeaderControl, Wakeup
from fnworker.scheduler.decide.assignment_plan import CHANGE_REASONS
from fnworker.scheduler.decide.leader_plan import LeaderPlanner
from fnworker.scheduler.model.prometheus import (
    AssignmentChangeCounter,
    metrics_registry,
    render,
)
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord, WorkerInfo
from fnworker.scheduler.worker.worker_loops import leader_pass

pytestmark = pytest.mark.anyio

LEADER = WorkerInfo(worker_id="w1", worker_hostname="localhost", port=1)
OTHER = WorkerInfo(worker_id="w2", worker_hostname="localhost", port=2)


def changes_on_metrics(counter: AssignmentChangeCounter) -> dict[str, float]:
    """``{reason: value}`` of fnworker_assignment_changes_total as /metrics renders it."""
    text = render(metrics_registry([], "test-cluster", counter)).decode()
    return {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "fnworker_assignment_changes"
        for sample in family.samples
        if sample.name == "fnworker_assignment_changes_total"
    }


async def test_a_drains_moves_are_counted_with_reason_drain() -> None:
    cluster = MemoryCluster()
    leader, other = MemoryCoordination(cluster), MemoryCoordination(cluster)
    await leader.join(LEADER)
    await other.join(OTHER)
    for name in ("a", "b", "c"):
        config = FunctionConfig(parallelism=4)
        await leader.write_function(
            FunctionRecord(fqfn=Fqfn(f"t/n/{name}"), version=1, config=config), 0
        )
    control, planner = LeaderControl(Wakeup()), LeaderPlanner()
    counter = AssignmentChangeCounter(CHANGE_REASONS)
    await leader_pass(leader, LEADER, "roundrobin", control, planner, changes=counter)
    on_other = [i for i, a in leader.assignments().items() if a.worker == "w2"]
    assert len(on_other) == 6
    assert changes_on_metrics(counter) == dict.fromkeys(CHANGE_REASONS, 0.0) | {"new": 12.0}

    control.request_drain("w2")
    await leader_pass(leader, LEADER, "roundrobin", control, planner, changes=counter)

    assert {a.worker for a in leader.assignments().values()} == {"w1"}
    counted = changes_on_metrics(counter)
    assert counted["drain"] == len(on_other)
    assert counted["worker_lost"] == 0
    assert control.drains == {"w2": "SUCCESS"}
