"""The worker's reconcile decision: start, replace and stop exactly what differs."""

from __future__ import annotations

from fnworker.scheduler.decide.reconcile import (
    ReplaceInstance,
    StartInstance,
    StopInstance,
    reconcile,
)
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    InstanceId,
    WorkerId,
)

FQFN = Fqfn("public/default/f")


def record(
    version: int, parallelism: int = 2, stopped: dict[int, str] | None = None
) -> FunctionRecord:
    return FunctionRecord(
        fqfn=FQFN,
        version=version,
        config=FunctionConfig(parallelism=parallelism, class_name="m.C", inputs=["in"]),
        instance_states=stopped or {},  # type: ignore[arg-type]
    )


def assigned(index: int, version: int) -> tuple[InstanceId, Assignment]:
    instance = InstanceId(f"{FQFN}:{index}")
    return instance, Assignment(instance=instance, worker=WorkerId("w1"), version=version, term=1)


def test_starts_assigned_instances_that_are_not_running() -> None:
    mine = dict([assigned(0, 1), assigned(1, 1)])
    actions = reconcile(mine, {FQFN: record(1)}, {})
    assert sorted(a.instance for a in actions if isinstance(a, StartInstance)) == [
        f"{FQFN}:0",
        f"{FQFN}:1",
    ]


def test_nothing_to_do_when_runtime_matches() -> None:
    mine = dict([assigned(0, 1), assigned(1, 1)])
    running = {InstanceId(f"{FQFN}:0"): 1, InstanceId(f"{FQFN}:1"): 1}
    assert reconcile(mine, {FQFN: record(1)}, running) == []


def test_newer_version_replaces_running_instance() -> None:
    mine = dict([assigned(0, 2)])
    actions = reconcile(mine, {FQFN: record(2, parallelism=1)}, {InstanceId(f"{FQFN}:0"): 1})
    assert actions == [ReplaceInstance(instance=InstanceId(f"{FQFN}:0"), function=record(2, 1))]


def test_waits_when_assignment_is_newer_than_known_metadata() -> None:
    mine = dict([assigned(0, 3)])
    assert reconcile(mine, {FQFN: record(2, parallelism=1)}, {InstanceId(f"{FQFN}:0"): 2}) == []


def test_unassigned_instances_are_stopped() -> None:
    actions = reconcile({}, {FQFN: record(1)}, {InstanceId(f"{FQFN}:1"): 1})
    assert actions == [StopInstance(instance=InstanceId(f"{FQFN}:1"), reason="unassigned")]


def test_stopped_and_deleted_instances_are_stopped() -> None:
    mine = dict([assigned(0, 2), assigned(1, 2)])
    running = {InstanceId(f"{FQFN}:0"): 1, InstanceId(f"{FQFN}:1"): 1}
    stopped = reconcile(mine, {FQFN: record(2, stopped={1: "STOPPED"})}, running)
    assert StopInstance(instance=InstanceId(f"{FQFN}:1"), reason="stopped or deleted") in stopped
    deleted = reconcile(mine, {}, running)
    assert {a.instance for a in deleted if isinstance(a, StopInstance)} == set(running)
