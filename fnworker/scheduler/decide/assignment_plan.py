"""The leader's decision, as a pure function: given every function, the live
workers and the current assignments, which assignment records must be written.

Only what changed is written: an instance that stays on its worker at the same
function version produces no record. A version change on the same worker is
written too, because that is how an update reaches the instance's owner.

``plan_assignments`` is the reference, O(total instances) per call; the leader runs
``leader_plan.LeaderPlanner``, which returns the same changes at a cost that grows
with what changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Literal

import msgspec

from fnworker.scheduler.decide.placement import (
    InstanceDemand,
    Move,
    Reason,
    plan_placement,
    plan_rebalance,
)
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    WorkerId,
    instance_id_of,
)

ChangeReason = Literal["new", "update", "worker_lost", "drain", "rebalance", "join", "removed"]
CHANGE_REASONS: tuple[ChangeReason, ...] = (
    "new",
    "update",
    "worker_lost",
    "drain",
    "rebalance",
    "join",
    "removed",
)
"""Why an assignment record was written: placed for the first time (``new``), same
worker with the function's next version (``update``), moved off a worker that left
or died (``worker_lost``; dropped when no live worker is left) or that an operator
drains or that hands its instances off as it stops gracefully (``drain``), moved
to even out the load (``rebalance``: by the operator or the periodic check),
moved onto a worker that joined (``join``), or dropped because
the instance is no longer wanted (``removed``: function deleted or parallelism
lowered)."""

REASON_OF_MOVE: Mapping[Reason, ChangeReason] = {
    "new": "new",
    "worker-lost": "worker_lost",
    "drain": "drain",
    "rebalance": "rebalance",
    "join": "join",
    "removed": "removed",
}


class AssignmentChanges(msgspec.Struct, frozen=True, kw_only=True):
    """The records a leader writes for one plan, and why.

    Every record is one of ``moves`` (an instance placed, moved or dropped, with
    placement's reason) or one of the ``updated`` instances (same worker, new version).
    """

    assigned: tuple[Assignment, ...] = ()
    unassigned: tuple[InstanceId, ...] = ()
    moves: tuple[Move, ...] = ()
    updated: tuple[InstanceId, ...] = ()

    def is_empty(self) -> bool:
        """True when the plan changes nothing."""
        return not self.assigned and not self.unassigned

    def reason_counts(self) -> dict[str, int]:
        """How many records each reason (a ``ChangeReason``) accounts for; reasons with
        none are left out."""
        counts: Counter[str] = Counter(REASON_OF_MOVE[m.reason] for m in self.moves)
        if self.updated:
            counts["update"] += len(self.updated)
        return dict(counts)


def weight_of(record: FunctionRecord) -> float:
    """An instance's share of a worker: the function's cpu request (1.0 when unset)."""
    return record.config.resources.cpu if record.config.resources else 1.0


def demands_of(functions: Iterable[FunctionRecord]) -> list[InstanceDemand]:
    """Every instance every function asks for, weighted by its cpu request."""
    demands = []
    for record in functions:
        weight = weight_of(record)
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
    drained: Collection[str] = (),
) -> AssignmentChanges:
    """Place every instance sticky-first and return only the records that differ.

    ``drained`` names workers an operator drains (left out of ``workers``): their
    instances move with reason ``drain`` instead of ``worker-lost``.
    """
    placement = plan_placement(
        demands_of(functions.values()),
        workers,
        {instance: a.worker for instance, a in current.items()},
        strategy,  # type: ignore[arg-type]
    )
    versions = {fqfn: record.version for fqfn, record in functions.items()}
    assigned = []
    updated = []
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
            if previous is not None and previous.worker == worker:
                updated.append(InstanceId(instance))
    unassigned = [i for i in current if i not in placement.assignment]
    return AssignmentChanges(
        assigned=tuple(assigned),
        unassigned=tuple(unassigned),
        moves=relabel_drains(placement.moves, drained),
        updated=tuple(updated),
    )


def relabel_drains(moves: Iterable[Move], drained: Collection[str]) -> tuple[Move, ...]:
    """The moves, with ``worker-lost`` turned into ``drain`` for drained sources."""
    if not drained:
        return tuple(moves)
    return tuple(
        msgspec.structs.replace(m, reason="drain")
        if m.reason == "worker-lost" and m.source in drained
        else m
        for m in moves
    )


def plan_rebalance_records(
    current: Mapping[InstanceId, Assignment], workers: Sequence[WorkerId], term: int, strategy: str
) -> AssignmentChanges:
    """The records that even out the instance counts with the fewest moves (the
    reference for the leader's rebalance: ``plan_rebalance`` without weights)."""
    placement = plan_rebalance(
        {instance: a.worker for instance, a in current.items()},
        workers,
        strategy,  # type: ignore[arg-type]
    )
    moves = tuple(m for m in placement.moves if m.target is not None)
    assigned = tuple(
        msgspec.structs.replace(
            current[InstanceId(m.instance)], worker=WorkerId(str(m.target)), term=term
        )
        for m in moves
    )
    return AssignmentChanges(assigned=assigned, moves=moves)
