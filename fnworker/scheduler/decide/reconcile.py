"""A worker's decision, as a pure function: from its own assignments, the
functions it knows and what its runtime runs now, which instances to start,
stop or replace with a newer version. No I/O.

An instance runs the newest function version this worker has seen. When an
assignment names a version newer than the metadata seen so far, the instance is
left as it is until the metadata catches up (the records travel separately).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    split_instance_id,
)


class StartInstance(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Start an instance that is not running."""

    instance: InstanceId
    function: FunctionRecord


class ReplaceInstance(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Stop an instance running an older version and start the new one."""

    instance: InstanceId
    function: FunctionRecord


class StopInstance(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Stop an instance that is no longer wanted here (unassigned, stopped, deleted)."""

    instance: InstanceId
    reason: str


RuntimeAction = StartInstance | ReplaceInstance | StopInstance


def awaits_metadata(assignment: Assignment, functions: Mapping[Fqfn, FunctionRecord]) -> bool:
    """True when the assignment names a version this worker has not seen yet."""
    record = functions.get(split_instance_id(assignment.instance)[0])
    return record is not None and record.version < assignment.version


def record_to_run(
    assignment: Assignment, functions: Mapping[Fqfn, FunctionRecord]
) -> FunctionRecord | None:
    """The function record an assignment should run, or None if it should not run."""
    fqfn, index = split_instance_id(assignment.instance)
    record = functions.get(fqfn)
    if record is None or index >= record.parallelism() or record.state_of(index) == "STOPPED":
        return None
    return record


def reconcile(
    mine: Mapping[InstanceId, Assignment],
    functions: Mapping[Fqfn, FunctionRecord],
    running: Mapping[InstanceId, int],
) -> list[RuntimeAction]:
    """The actions that make the runtime match this worker's assignments."""
    actions: list[RuntimeAction] = [
        StopInstance(instance=instance, reason="unassigned")
        for instance in running
        if instance not in mine
    ]
    for instance, assignment in mine.items():
        if awaits_metadata(assignment, functions):
            continue
        wanted = record_to_run(assignment, functions)
        current = running.get(instance)
        if wanted is None:
            if current is not None:
                actions.append(StopInstance(instance=instance, reason="stopped or deleted"))
        elif current is None:
            actions.append(StartInstance(instance=instance, function=wanted))
        elif current != wanted.version:
            actions.append(ReplaceInstance(instance=instance, function=wanted))
    return actions
