"""The leader's plan kept up to date pass by pass: ``LeaderPlanner.plan`` returns
exactly what ``assignment_plan.plan_assignments`` would for the same inputs, but
works from what changed since its last pass (functions, workers, drains) on a
``PlacementIndex``, so a pass after one worker is lost costs about what that
worker held, not the whole fleet. Mutable, but pure: no I/O, no clock.

It trusts its index only while the inputs are the ones it planned: same term and
strategy, at least one live worker, and a current table equal to what its last
plan left (a C-level dict comparison; the backend keeps the very records the plan
made, so equal entries are the same objects). Anything else (the first pass, a new
term, a publish that was refused, reports merged by take-office, no live worker)
makes it plan from nothing with ``plan_assignments`` and rebuild the index.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from fnworker.scheduler.decide.assignment_plan import (
    AssignmentChanges,
    plan_assignments,
    plan_rebalance_records,
    weight_of,
)
from fnworker.scheduler.decide.auto_rebalance import (
    RebalanceMemory,
    RebalancePolicy,
    check_owed,
    decide_rebalance,
    note_moves,
    observe_workers,
    periodic_check_at,
)
from fnworker.scheduler.decide.placement import (
    STRATEGIES,
    InstanceDemand,
    Move,
    Reason,
)
from fnworker.scheduler.decide.placement_index import PlacementIndex
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    WorkerId,
    instance_id_of,
)


class FunctionDelta:
    """What one pass's function changes ask of the index, in the order a fresh plan
    sees them: instances to drop, weights to change, new instances (demand order),
    and functions whose version changed."""

    def __init__(self) -> None:
        self.removed: list[str] = []
        self.reweighed: list[tuple[str, float]] = []
        self.fresh: list[InstanceDemand] = []
        self.new_versions: list[tuple[FunctionRecord, int]] = []
        """(record, instances kept) for each function whose version changed."""

    def add(self, old: FunctionRecord | None, new: FunctionRecord | None) -> None:
        """Record the change of one function from ``old`` to ``new`` (None: absent)."""
        before = old.parallelism() if old is not None else 0
        after = new.parallelism() if new is not None else 0
        fqfn = (new or old).fqfn  # type: ignore[union-attr]
        self.removed.extend(instance_id_of(fqfn, i) for i in range(after, before))
        if new is None:
            return
        weight = weight_of(new)
        kept = min(before, after)
        if old is not None and weight != weight_of(old):
            self.reweighed.extend((instance_id_of(fqfn, i), weight) for i in range(kept))
        self.fresh.extend(
            InstanceDemand(instance=instance_id_of(fqfn, i), weight=weight)
            for i in range(before, after)
        )
        if old is not None and old.version != new.version and kept:
            self.new_versions.append((new, kept))


class LeaderPlanner:
    """The leader's incremental ``plan_assignments`` (see the module docstring)."""

    def __init__(self) -> None:
        self.index: PlacementIndex | None = None
        self.term = -1
        self.strategy = ""
        self.functions: dict[Fqfn, FunctionRecord] = {}
        self.table: dict[InstanceId, Assignment] = {}
        """The table as this planner's last plan left it."""
        self.full_plans = 0
        """Passes planned from nothing (for tests and the bench)."""
        self.memory = RebalanceMemory()
        """What the automatic rebalance remembers (joins, recent moves, last pass)."""
        self.wake_at: float | None = None
        """When the automatic rebalance wants the next pass (None: on changes only)."""

    def plan(
        self,
        functions: Mapping[Fqfn, FunctionRecord],
        workers: Sequence[WorkerId],
        current: Mapping[InstanceId, Assignment],
        term: int,
        strategy: str,
        drained: Collection[str] = (),
        now: float | None = None,
    ) -> AssignmentChanges:
        """``plan_assignments(functions, workers, current, term, strategy, drained)``,
        from the changes since the last pass when the index can be trusted. With
        ``now``, the moves are remembered for the automatic rebalance's cooldown."""
        changes = self.plan_changes(functions, workers, current, term, strategy, drained)
        if now is not None:
            self.memory = note_moves(self.memory, changes.moves, now)
        return changes

    def plan_changes(
        self,
        functions: Mapping[Fqfn, FunctionRecord],
        workers: Sequence[WorkerId],
        current: Mapping[InstanceId, Assignment],
        term: int,
        strategy: str,
        drained: Collection[str],
    ) -> AssignmentChanges:
        """``plan`` without the bookkeeping of when instances moved."""
        if not self.trusted(workers, current, term, strategy):
            return self.plan_from_nothing(functions, workers, current, term, strategy, drained)
        assert self.index is not None
        delta = self.function_delta(functions)
        moves = self.index.remove_instances(delta.removed)
        for instance, weight in delta.reweighed:
            self.index.set_weight(instance, weight)
        live = set(workers)
        for worker in workers:
            self.index.add_worker(worker)
        lost: dict[str, Reason] = {
            worker: "drain" if worker in drained else "worker-lost"
            for worker in self.index.workers()
            if worker not in live
        }
        moves += self.index.remove_workers(lost)
        moves += self.index.add_instances(delta.fresh)
        self.functions = dict(functions)
        return self.record(moves, delta, term)

    def forget(self) -> None:
        """Drop the index and table (this worker stopped leading); the next plan
        starts from nothing."""
        self.index = None
        self.functions, self.table = {}, {}
        self.memory, self.wake_at = RebalanceMemory(), None

    def auto_rebalance(
        self,
        workers: Sequence[WorkerId],
        current: Mapping[InstanceId, Assignment],
        term: int,
        strategy: str,
        policy: RebalancePolicy,
        now: float,
    ) -> AssignmentChanges:
        """The automatic rebalance's moves this pass (``auto_rebalance.decide_rebalance``:
        onto joined workers, or on the periodic check), applied; sets ``wake_at``. Runs
        only on a trusted index (right after ``plan``); otherwise asks to look again
        soon."""
        self.memory = observe_workers(policy, self.memory, workers, now)
        if not check_owed(policy, self.memory, now):
            self.wake_at = periodic_check_at(policy, self.memory)
            return AssignmentChanges()
        if not self.trusted(workers, current, term, strategy):
            self.wake_at = now + max(policy.settle_s, 0.1)
            return AssignmentChanges()
        assert self.index is not None
        decision = decide_rebalance(policy, self.memory, self.index.members(), now)
        self.memory, self.wake_at = decision.memory, decision.wake_at
        if not decision.moves or decision.reason is None:
            return AssignmentChanges()
        moves = self.index.relocate(decision.moves, decision.reason)
        return self.record(moves, FunctionDelta(), term)

    def rebalance(
        self,
        workers: Sequence[WorkerId],
        current: Mapping[InstanceId, Assignment],
        term: int,
        strategy: str,
        now: float | None = None,
    ) -> AssignmentChanges:
        """``plan_rebalance_records(current, workers, term, strategy)``: even out the
        instance counts with the fewest moves (the operator's rebalance: no hysteresis,
        cap or cooldown; with ``now`` its moves start their cooldown)."""
        if not self.trusted(workers, current, term, strategy) or set(workers) != set(
            self.index.workers()  # type: ignore[union-attr]
        ):
            self.index = None
            changes = plan_rebalance_records(current, workers, term, strategy)
        else:
            assert self.index is not None
            moves = self.index.rebalance(by_count=True)
            changes = self.record(moves, FunctionDelta(), term)
        if now is not None:
            self.memory = note_moves(self.memory, changes.moves, now)
        return changes

    def trusted(
        self,
        workers: Sequence[WorkerId],
        current: Mapping[InstanceId, Assignment],
        term: int,
        strategy: str,
    ) -> bool:
        """True when the index holds exactly ``current`` for this term and strategy."""
        return (
            self.index is not None
            and bool(workers)
            and term == self.term
            and strategy == self.strategy
            and len(current) == len(self.table)
            and current == self.table
        )

    def plan_from_nothing(
        self,
        functions: Mapping[Fqfn, FunctionRecord],
        workers: Sequence[WorkerId],
        current: Mapping[InstanceId, Assignment],
        term: int,
        strategy: str,
        drained: Collection[str],
    ) -> AssignmentChanges:
        """The reference plan; then the index rebuilt on the table it leaves."""
        self.full_plans += 1
        changes = plan_assignments(functions, workers, current, term, strategy, drained)
        self.index = None
        if not workers or strategy not in STRATEGIES:
            return changes
        table = dict(current)
        for instance in changes.unassigned:
            del table[instance]
        table.update((a.instance, a) for a in changes.assigned)
        weights: dict[str, float] = {
            instance_id_of(record.fqfn, i): weight
            for record in functions.values()
            if (weight := weight_of(record)) != 1.0
            for i in range(record.parallelism())
        }
        self.index = PlacementIndex(
            workers,
            strategy,
            {instance: a.worker for instance, a in table.items()},
            weights=weights,
        )
        self.term, self.strategy = term, strategy
        self.functions = dict(functions)
        self.table = table
        return changes

    def function_delta(self, functions: Mapping[Fqfn, FunctionRecord]) -> FunctionDelta:
        """What changed in ``functions`` since the last pass, in their order."""
        delta = FunctionDelta()
        if functions == self.functions:
            return delta
        previous = self.functions
        for fqfn, record in functions.items():
            old = previous.get(fqfn)
            if old is not record:
                delta.add(old, record)
        for fqfn, old in previous.items():
            if fqfn not in functions:
                delta.add(old, None)
        return delta

    def record(self, moves: list[Move], delta: FunctionDelta, term: int) -> AssignmentChanges:
        """The records for ``moves`` and for the new versions of instances that stayed,
        applied to this planner's table."""
        table = self.table
        versions = {fqfn: record.version for fqfn, record in self.functions.items()}
        assigned: list[Assignment] = []
        unassigned: list[InstanceId] = []
        moved = set()
        for move in moves:
            instance = InstanceId(move.instance)
            moved.add(instance)
            if move.target is None:
                unassigned.append(instance)
                table.pop(instance, None)
                continue
            version = versions.get(Fqfn(move.instance.rpartition(":")[0]))
            if version is None or move.reason in ("rebalance", "join"):
                version = table[instance].version
            assignment = Assignment(
                instance=instance, worker=WorkerId(move.target), version=version, term=term
            )
            assigned.append(assignment)
            table[instance] = assignment
        updated: list[InstanceId] = []
        for record, kept in delta.new_versions:
            for i in range(kept):
                instance = instance_id_of(record.fqfn, i)
                if instance in moved:
                    continue
                worker = table[instance].worker
                assignment = Assignment(
                    instance=instance, worker=worker, version=record.version, term=term
                )
                assigned.append(assignment)
                table[instance] = assignment
                updated.append(instance)
        return AssignmentChanges(
            assigned=tuple(assigned),
            unassigned=tuple(unassigned),
            moves=tuple(moves),
            updated=tuple(updated),
        )
