"""The placement kept up to date event by event, for the leader's hot path: the same
decisions as ``placement.plan_placement`` and ``plan_rebalance`` at a cost that grows
with what changed, not with the cluster. Mutable, but pure: no I/O, no clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from itertools import repeat

from fnworker.scheduler.decide.placement import (
    InstanceDemand,
    Move,
    Placement,
    Reason,
    Strategy,
    check_strategy,
    checked_weights,
)
from fnworker.scheduler.decide.placement_strategies import (
    WEIGHT_UNITS,
    LoadHeap,
    rebalance_by_count,
    rebalance_by_load,
    uniform,
    units_of_map,
    weight_units,
)


class PlacementIndex:
    """The placement kept up to date event by event, for the leader's hot path.

    Holds the assignment, each live worker's instances (insertion-ordered) and a
    ``LoadHeap``; mutable, but pure: no I/O, no clock, no randomness. Each method
    returns the moves it made and costs O(changed x log W) (``rebalance``:
    O(W log W + moves)), never O(total instances). Decisions follow the same rules
    as ``plan_placement``: sticky, each placed instance to the smallest
    ``(load, worker id)``, a lost worker's instances re-placed in id order.

    * ``add_worker`` never moves running instances: a new worker only gets new
      or re-placed work (and any instances waiting unplaced); call ``rebalance``
      to spread existing load onto it.
    * With no live worker, added or orphaned instances wait in ``unplaced()``
      and are placed by the next ``add_worker``.
    * Known instances passed to ``add_instances`` again stay where they are
      (a weight change needs remove then add); unknown ids are ignored by
      ``remove_instances`` and unknown workers by ``remove_worker``.
    """

    def __init__(
        self,
        workers: Iterable[str],
        strategy: Strategy,
        assignment: Mapping[str, str] | None = None,
        *,
        weights: Mapping[str, float] | None = None,
        unplaced: Iterable[str] = (),
    ) -> None:
        """Index ``assignment`` (every worker in it must be in ``workers``). O(A)."""
        check_strategy(strategy)
        self._by_count = strategy == "roundrobin"
        self._weight_units = units_of_map(checked_weights(weights))
        self._assign: dict[str, str] = dict(assignment or {})
        self._on: dict[str, dict[str, None]] = {worker: {} for worker in workers}
        members = self._on
        try:
            for instance, worker in self._assign.items():
                members[worker][instance] = None
        except KeyError:
            raise ValueError(f"{instance!r} is on {worker!r}, which is not a live worker") from None
        self._pending: dict[str, Reason] = dict.fromkeys(unplaced, "new")
        self._sizes: Counter[int] = Counter()
        if not self._by_count:
            self._sizes.update(map(self._weight_units.get, self._assign, repeat(WEIGHT_UNITS)))
            self._sizes.update(map(self._weight_units.get, self._pending, repeat(WEIGHT_UNITS)))
        self._loads = LoadHeap({w: self._sum(ids) for w, ids in self._on.items()})

    @classmethod
    def from_placement(
        cls,
        placement: Placement,
        workers: Iterable[str],
        strategy: Strategy,
        weights: Mapping[str, float] | None = None,
    ) -> PlacementIndex:
        """An index of ``placement`` (its unplaced instances wait for a worker)."""
        return cls(
            workers, strategy, placement.assignment, weights=weights, unplaced=placement.unplaced
        )

    def add_instances(self, demands: Iterable[InstanceDemand]) -> list[Move]:
        """Place each new instance in order (reason ``new``)."""
        moves: list[Move] = []
        for demand in demands:
            instance = demand.instance
            if instance in self._assign or instance in self._pending:
                continue
            units = weight_units(demand.weight)
            if units != WEIGHT_UNITS:
                self._weight_units[instance] = units
            else:
                self._weight_units.pop(instance, None)
            if not self._by_count:
                self._sizes[units] += 1
            target = self._place(instance, "new")
            if target is not None:
                moves.append(Move(instance=instance, source=None, target=target, reason="new"))
        return moves

    def remove_instances(self, instances: Iterable[str]) -> list[Move]:
        """Drop instances (reason ``removed``); waiting ones go without a move."""
        moves: list[Move] = []
        for instance in instances:
            worker = self._assign.pop(instance, None)
            if worker is not None:
                del self._on[worker][instance]
                self._loads.change(worker, -self._step(instance))
                moves.append(Move(instance=instance, source=worker, target=None, reason="removed"))
            elif self._pending.pop(instance, None) is None:
                continue
            self._forget(instance)
        return moves

    def remove_worker(self, worker: str, reason: Reason = "worker-lost") -> list[Move]:
        """Take ``worker`` out and re-place its instances in id order.

        ``reason`` is ``worker-lost`` or, for a drain, ``drain``; a drain with no
        other live worker raises ValueError, as ``plan_drain`` does.
        """
        if worker not in self._on:
            return []
        if reason == "drain" and self._on[worker] and len(self._on) == 1:
            raise ValueError(f"cannot drain {worker!r}: no other live worker")
        return self.remove_workers({worker: reason})

    def remove_workers(self, reasons: Mapping[str, Reason]) -> list[Move]:
        """Take several workers out at once, then re-place all their instances in id
        order (as ``plan_placement`` places the orphans of every lost worker), each move
        with its worker's reason (``worker-lost`` or ``drain``). Unknown workers are
        ignored; with no live worker left the instances wait in ``unplaced()``."""
        gone = [worker for worker in reasons if worker in self._on]
        orphans: list[tuple[str, str]] = []
        for worker in gone:
            orphans.extend((instance, worker) for instance in self._on.pop(worker))
            self._loads.remove_worker(worker)
        orphans.sort()
        moves = []
        for instance, worker in orphans:
            del self._assign[instance]
            target = self._place(instance, reasons[worker])
            moves.append(
                Move(instance=instance, source=worker, target=target, reason=reasons[worker])
            )
        return moves

    def set_weight(self, instance: str, weight: float) -> None:
        """Change a placed instance's weight in place (it does not move; its worker's
        load changes), as a fresh plan would count it. Unknown instances are ignored."""
        worker = self._assign.get(instance)
        if worker is None and instance not in self._pending:
            return
        old = self._weight_units.get(instance, WEIGHT_UNITS)
        new = weight_units(weight)
        if new == old:
            return
        if new != WEIGHT_UNITS:
            self._weight_units[instance] = new
        else:
            del self._weight_units[instance]
        if self._by_count:
            return
        self._sizes[old] -= 1
        if not self._sizes[old]:
            del self._sizes[old]
        self._sizes[new] += 1
        if worker is not None:
            self._loads.change(worker, new - old)

    def add_worker(self, worker: str) -> list[Move]:
        """Make ``worker`` live; only instances waiting unplaced move (onto it)."""
        if worker in self._on:
            return []
        self._on[worker] = {}
        self._loads.add_worker(worker, 0)
        waiting, self._pending = self._pending, {}
        moves = []
        for instance, reason in waiting.items():
            target = self._place(instance, reason)
            moves.append(Move(instance=instance, source=None, target=target, reason=reason))
        return moves

    def rebalance(self, *, by_count: bool = False) -> list[Move]:
        """``plan_rebalance``'s moves for the indexed placement, applied. ``by_count``
        evens out instance counts whatever the strategy (``plan_rebalance`` without
        weights, which is what the leader's rebalance asks for)."""
        if by_count or self._by_count or uniform(self._sizes):
            triples = rebalance_by_count(self._on)
        else:
            heaviest = max(self._sizes, default=0)
            triples = rebalance_by_load(self._on, self._loads.loads, self._step, heaviest)
        for instance, source, target in triples:
            del self._on[source][instance]
            self._loads.change(source, -self._step(instance))
            self._attach(instance, target)
        return [Move(instance=i, source=s, target=t, reason="rebalance") for i, s, t in triples]

    def relocate(self, triples: Iterable[tuple[str, str, str]], reason: Reason) -> list[Move]:
        """Apply moves decided elsewhere (``(instance, source, target)``, e.g. an
        automatic rebalance's) with ``reason``; a triple whose instance is not on its
        source or whose target is not live is skipped."""
        moves: list[Move] = []
        for instance, source, target in triples:
            if self._assign.get(instance) != source or target not in self._on:
                continue
            del self._on[source][instance]
            self._loads.change(source, -self._step(instance))
            self._attach(instance, target)
            moves.append(Move(instance=instance, source=source, target=target, reason=reason))
        return moves

    def members(self) -> Mapping[str, Collection[str]]:
        """Each live worker's instances, read-only and live (no copy: O(1))."""
        return self._on

    def assignment_of(self, instance: str) -> str | None:
        """The worker running ``instance``, or None."""
        return self._assign.get(instance)

    def instances_on(self, worker: str) -> tuple[str, ...]:
        """The instances on ``worker`` in the order they arrived (empty if unknown)."""
        return tuple(self._on.get(worker, ()))

    def load_of(self, worker: str) -> float:
        """A live worker's load: its instance count, or its weight sum."""
        load = self._loads.loads[worker]
        return load if self._by_count else load / WEIGHT_UNITS

    def workers(self) -> tuple[str, ...]:
        """The live workers, in the order they were added."""
        return tuple(self._on)

    def unplaced(self) -> tuple[str, ...]:
        """Instances waiting for a live worker."""
        return tuple(self._pending)

    def snapshot(self) -> dict[str, str]:
        """A copy of the whole assignment, instance -> worker. O(A)."""
        return dict(self._assign)

    def _place(self, instance: str, reason: Reason) -> str | None:
        """Put ``instance`` on the least loaded worker, or make it wait with ``reason``."""
        target = self._loads.take(self._step(instance))
        if target is None:
            self._pending[instance] = reason
            return None
        self._assign[instance] = target
        self._on[target][instance] = None
        return target

    def _attach(self, instance: str, worker: str) -> None:
        """Record ``instance`` on ``worker`` and add its load."""
        self._assign[instance] = worker
        self._on[worker][instance] = None
        self._loads.change(worker, self._step(instance))

    def _forget(self, instance: str) -> None:
        """Drop what the index remembers about a removed instance's weight."""
        units = self._weight_units.pop(instance, WEIGHT_UNITS)
        if not self._by_count:
            self._sizes[units] -= 1
            if not self._sizes[units]:
                del self._sizes[units]

    def _step(self, instance: str) -> int:
        """What the instance adds to a worker's load: 1 by count, else its weight units."""
        return 1 if self._by_count else self._weight_units.get(instance, WEIGHT_UNITS)

    def _sum(self, members: Collection[str]) -> int:
        """The load of a set of instances."""
        if self._by_count:
            return len(members)
        return sum(map(self._weight_units.get, members, repeat(WEIGHT_UNITS)))
