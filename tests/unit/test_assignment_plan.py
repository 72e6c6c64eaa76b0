"""The leader's plan: only changed assignments are written, sticky, fenced by term."""

from __future__ import annotations

import msgspec

from fnworker.scheduler.decide.assignment_plan import plan_assignments
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    InstanceId,
    WorkerId,
)

WORKERS = [WorkerId("w1"), WorkerId("w2")]


def function(name: str, parallelism: int, version: int = 1) -> FunctionRecord:
    fqfn = Fqfn(f"public/default/{name}")
    return FunctionRecord(
        fqfn=fqfn, version=version, config=FunctionConfig(parallelism=parallelism)
    )


def apply(current: dict[InstanceId, Assignment], plan) -> dict[InstanceId, Assignment]:  # type: ignore[no-untyped-def]
    table = dict(current)
    for instance in plan.unassigned:
        table.pop(instance)
    table.update({a.instance: a for a in plan.assigned})
    return table


def test_new_function_is_placed_and_replanning_changes_nothing() -> None:
    functions = {f.fqfn: f for f in [function("a", 3), function("b", 1)]}
    plan = plan_assignments(functions, WORKERS, {}, term=4, strategy="roundrobin")
    assert len(plan.assigned) == 4 and not plan.unassigned
    assert {a.term for a in plan.assigned} == {4}
    counts = {w: sum(1 for a in plan.assigned if a.worker == w) for w in WORKERS}
    assert sorted(counts.values()) == [2, 2]
    table = apply({}, plan)
    assert plan_assignments(functions, WORKERS, table, term=4, strategy="roundrobin").is_empty()


def test_update_rewrites_each_instance_on_its_worker_with_the_new_version() -> None:
    v1 = function("a", 2)
    table = apply({}, plan_assignments({v1.fqfn: v1}, WORKERS, {}, 1, "roundrobin"))
    v2 = msgspec.structs.replace(v1, version=2)
    plan = plan_assignments({v2.fqfn: v2}, WORKERS, table, 1, "roundrobin")
    assert {(a.instance, a.worker) for a in plan.assigned} == {
        (a.instance, a.worker) for a in table.values()
    }
    assert {a.version for a in plan.assigned} == {2}


def test_deleted_function_is_unassigned() -> None:
    a = function("a", 2)
    table = apply({}, plan_assignments({a.fqfn: a}, WORKERS, {}, 1, "roundrobin"))
    plan = plan_assignments({}, WORKERS, table, 1, "roundrobin")
    assert sorted(plan.unassigned) == sorted(table) and not plan.assigned


def test_only_the_lost_workers_instances_move() -> None:
    functions = {f.fqfn: f for f in [function("a", 4), function("b", 4)]}
    table = apply({}, plan_assignments(functions, WORKERS + [WorkerId("w3")], {}, 1, "roundrobin"))
    lost = [i for i, a in table.items() if a.worker == "w3"]
    plan = plan_assignments(functions, WORKERS, table, 2, "roundrobin")
    assert sorted(a.instance for a in plan.assigned) == sorted(lost)
    assert all(a.worker in WORKERS for a in plan.assigned)


def test_no_workers_means_nothing_is_assigned() -> None:
    a = function("a", 2)
    assert plan_assignments({a.fqfn: a}, [], {}, 1, "roundrobin").is_empty()
