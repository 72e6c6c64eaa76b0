"""The leader's pass (``worker_loops.leader_pass``, what ``lead()`` runs on every
wake-up) on the in-memory backend, which runs the production fleet protocol: a drain's
moves are published and counted with reason ``drain`` on the
``fnworker_assignment_changes_total`` counter of /metrics. No processes: two members
of one ``MemoryCluster`` with short timings.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fnworker.scheduler.admin.leader_control import LeaderControl, Wakeup
from fnworker.scheduler.decide.assignment_plan import CHANGE_REASONS
from fnworker.scheduler.decide.auto_rebalance import RebalancePolicy
from fnworker.scheduler.decide.leader_plan import LeaderPlanner
from fnworker.scheduler.model.prometheus import (
    AssignmentChangeCounter,
    metrics_registry,
    render,
)
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord
from fnworker.scheduler.worker.worker_loops import leader_pass
from tests.unit.test_memory_backend import fleet, join, leader_of, until

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
    async with fleet() as (group, cluster):
        first = await join(group, cluster, "w1")
        await until(lambda: leader_of(first) == "w1", "w1 leads")
        await join(group, cluster, "w2")
        await until(lambda: len(first.backend.membership().members) == 2, "w1 sees w2")
        leader = first.backend
        me = next(m for m in leader.membership().members if m.worker_id == "w1")
        for name in ("a", "b", "c"):
            config = FunctionConfig(parallelism=4)
            await leader.write_function(
                FunctionRecord(fqfn=Fqfn(f"t/n/{name}"), version=1, config=config), 0
            )
        control, planner = LeaderControl(Wakeup()), LeaderPlanner()
        counter = AssignmentChangeCounter(CHANGE_REASONS)
        await leader_pass(leader, me, "roundrobin", control, planner, changes=counter)
        on_other = [i for i, a in leader.assignments().items() if a.worker == "w2"]
        assert len(on_other) == 6
        assert changes_on_metrics(counter) == dict.fromkeys(CHANGE_REASONS, 0.0) | {"new": 12.0}

        control.request_drain("w2")
        await leader_pass(leader, me, "roundrobin", control, planner, changes=counter)

        assert {a.worker for a in leader.assignments().values()} == {"w1"}
        counted = changes_on_metrics(counter)
        assert counted["drain"] == len(on_other)
        assert counted["worker_lost"] == 0
        assert control.drains == {"w2": "SUCCESS"}


async def test_a_joined_workers_share_moves_automatically_with_reason_join() -> None:
    """The automatic rebalance runs inside the leader's pass: once w3 has been seen
    for the settle time (``now`` is an argument), the pass moves its fair share onto
    it and counts the moves with reason ``join``."""
    async with fleet() as (group, cluster):
        first = await join(group, cluster, "w1")
        await until(lambda: leader_of(first) == "w1", "w1 leads")
        await join(group, cluster, "w2")
        await until(lambda: len(first.backend.membership().members) == 2, "w1 sees w2")
        leader = first.backend
        me = next(m for m in leader.membership().members if m.worker_id == "w1")
        config = FunctionConfig(parallelism=6)
        await leader.write_function(FunctionRecord(fqfn=Fqfn("t/n/f"), version=1, config=config), 0)
        control, planner = LeaderControl(Wakeup()), LeaderPlanner()
        counter = AssignmentChangeCounter(CHANGE_REASONS)
        policy = RebalancePolicy()

        async def run_pass(now: float) -> None:
            await leader_pass(
                leader, me, "roundrobin", control, planner, None, counter, policy, now
            )

        await run_pass(0.0)
        await join(group, cluster, "w3")
        await until(lambda: len(leader.membership().members) == 3, "w1 sees w3")
        await run_pass(10.0)
        assert planner.wake_at == 10.0 + policy.settle_s, "w3 must settle first"
        assert "w3" not in {a.worker for a in leader.assignments().values()}
        await run_pass(10.0 + policy.settle_s)
        per_worker = [a.worker for a in leader.assignments().values()]
        assert sorted(per_worker.count(w) for w in ("w1", "w2", "w3")) == [2, 2, 2]
        counted = changes_on_metrics(counter)
        assert (counted["new"], counted["join"], counted["rebalance"]) == (6.0, 2.0, 0.0)
