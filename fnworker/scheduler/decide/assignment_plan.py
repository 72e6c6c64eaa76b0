"""The leader's decision, as a pure function: given every function, the live
workers and the current assignments, which assignment records must be written.

Only what changed is written: an instance that stays on its worker at the same
function version produces no record. A version change on the same worker is
written too, because that is how an update reaches the instance's owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import msgspec

from fnworker.scheduler.decide.placement import InstanceDemand, plan_placement
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    WorkerId,
    instance_id_of,
)


class AssignmentChanges(msgspec.Struct, frozen=True, kw_only=True):
    """The records a leader writes for one plan."""

    assigned: tuple[Assignment, ...] = ()
    unassigned: tuple[InstanceId, ...] = ()

    def is_empty(self) -> bool:
        """True when the plan changes nothing."""
        return not self.assigned and not self.unassigned


def demands_of(functions: Iterable[FunctionRecord]) -> list[InstanceDemand]:
    """Every instance every function asks for, weighted by its cpu request."""
    demands = []
    for record in functions:
        weight = record.config.resources.cpu if record.config.resources else 1.0
        for index in range(record.parallelism()):
            demands.append(
                InstanceDemand(instance=instance_id_of(record.fqfn, index), weight=weight)
            )
    return demands


def plan_assignments(
    functions: Mapping[Fqfn, FunctionRecord],
    workers: Sequence[WorkerId],
    current: Mapping[InstanceId, Assignment],
    term: int,
    strategy: str,
) -> AssignmentChanges:
    """Place every instance sticky-first and return only the records that differ."""
    placement = plan_placement(
        demands_of(functions.values()),
        workers,
        {instance: a.worker for instance, a in current.items()},
        strategy,  # type: ignore[arg-type]
    )
    versions = {fqfn: record.version for fqfn, record in functions.items()}
    assigned = []
    for instance, worker in placement.assignment.items():
        version = versions[Fqfn(instance.rpartition(":")[0])]
        previous = current.get(InstanceId(instance))
        if previous is None or previous.worker != worker or previous.version != version:
            assigned.append(
                Assignment(
                    instance=InstanceId(instance),
                    worker=WorkerId(worker),
                    version=version,
                    term=term,
                )
            )
    unassigned = [i for i in current if i not in placement.assignment]
    return AssignmentChanges(assigned=tuple(assigned), unassigned=tuple(unassigned))
