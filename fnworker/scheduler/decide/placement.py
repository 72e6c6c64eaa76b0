"""Placement: which live worker runs which function instance. Pure; no I/O, no clock.

Pulsar's ``RoundRobinScheduler`` rebuilt as named stages over frozen records:
**reconcile** (what is kept, removed, orphaned or new) -> **rank/select**
(fewest instances, or least weighted load) -> **plan** (a complete assignment
plus only the moves that change something). The stages' algorithms live in
``placement_strategies``; this module holds the records and the entry points.

Placement is *sticky*: an instance already on a live worker stays there. Only
new instances and those whose worker is gone are placed. Balance is restored
only when asked (``plan_rebalance``), with the fewest moves for round-robin.
Ties are broken by worker id, then instance id, so results are deterministic.

``plan_placement``, ``plan_rebalance`` and ``plan_drain`` are the reference
semantics, O(total instances) per call. ``PlacementIndex`` (``placement_index``)
keeps the same decisions up to date event by event for the leader, at a cost that
grows with what changed rather than with the cluster.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from operator import attrgetter
from typing import Literal

import msgspec

from fnworker.scheduler.decide.placement_strategies import (
    Reconciliation,
    Triple,
    duplicate_ids,
    fill_by_count,
    fill_by_load,
    rebalance_moves,
    reconcile,
    unit_lookup,
    unit_map,
    weight_loads,
)

Strategy = Literal["roundrobin", "leastloaded"]
Reason = Literal["new", "worker-lost", "removed", "rebalance", "drain", "join"]
STRATEGIES: tuple[Strategy, ...] = ("roundrobin", "leastloaded")


class InstanceDemand(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One function instance that should run, e.g. ``tenant/ns/name:0``.

    ``weight`` is its share of a worker (e.g. the function's cpu). Least-loaded
    balances the sum of weights; round-robin counts instances and ignores it.
    (``gc=False``: only a string and a number, so never part of a cycle; this
    keeps 100,000 of them from triggering garbage collections.)
    """

    instance: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        """Reject weights that would corrupt load sums (negative, NaN, infinite)."""
        if not (self.weight >= 0.0 and math.isfinite(self.weight)):
            raise ValueError(
                f"weight of {self.instance!r} must be finite and >= 0, got {self.weight}"
            )


class Move(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One change of an instance's worker, with a machine-readable reason.

    ``source`` is None for an instance placed for the first time (or placed after
    waiting unplaced); ``target`` is None when its assignment goes away (removed,
    or its worker was lost and no worker is left). ``gc=False`` as for
    ``InstanceDemand``: strings only, and a plan from nothing makes 100,000.
    """

    instance: str
    source: str | None
    target: str | None
    reason: Reason


class Placement(msgspec.Struct, frozen=True, kw_only=True):
    """A complete plan: every placed instance's worker, and the moves that lead there.

    Applying ``moves`` to the input assignment gives ``assignment``
    (see ``apply_moves``). ``unplaced`` lists demanded instances that have no
    worker because no live worker exists.
    """

    assignment: dict[str, str]
    moves: tuple[Move, ...] = ()
    unplaced: tuple[str, ...] = ()


_instance_of = attrgetter("instance")
_weight_of = attrgetter("weight")


def plan_placement(
    demands: Sequence[InstanceDemand],
    workers: Sequence[str],
    current: Mapping[str, str],
    strategy: Strategy,
) -> Placement:
    """Place every demanded instance, keeping each one already on a live worker.

    * an instance in ``current`` on a worker in ``workers`` stays there;
    * an instance in ``current`` but not in ``demands`` is removed (``removed``);
    * an instance in ``current`` on a worker not in ``workers`` is placed again
      (``worker-lost``), all such instances first and in id order;
    * an instance absent from ``current`` is placed (``new``), in demand order;
    * each placed instance goes to the worker with the smallest
      ``(instance count, worker id)`` for round-robin or ``(weight sum, worker id)``
      for least-loaded, counting what was kept and placed before it. Weight sums
      are exact integers (``WEIGHT_UNITS``); when every demand has the same
      positive weight, least-loaded is round-robin exactly and is planned so.

    With no workers nothing is placed and nothing crashes: every demanded
    instance is omitted from ``assignment`` and listed in ``unplaced``, and each
    orphan's assignment is dropped with a ``worker-lost`` move whose target is
    None. Instance ids in ``demands`` must be unique (ValueError otherwise).
    Cost O(A + U log W) for A demands and U placed instances.
    """
    check_strategy(strategy)
    ids = list(map(_instance_of, demands))
    units = unit_map(ids, map(_weight_of, demands)) if strategy == "leastloaded" else None
    if units is None:
        return _place(ids, {}, workers, current, "roundrobin")
    return _place(ids, units, workers, current, "leastloaded")


def check_strategy(strategy: str) -> None:
    """Fail on a strategy name this module does not know."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown placement strategy {strategy!r}; expected one of {STRATEGIES}")


def _place(
    ids: list[str],
    units: Mapping[str, int],
    workers: Sequence[str],
    current: Mapping[str, str],
    strategy: Strategy,
) -> Placement:
    """``plan_placement`` on plain ids; least-loaded needs every id's weight in ``units``."""
    live = dict.fromkeys(workers)
    found = reconcile(ids, current, live)
    to_place = [instance for instance, _ in found.orphaned] + found.fresh
    targets: list[str] = []
    if to_place and live:
        targets = _select(to_place, found, current, live, units, strategy)
    placement = _plan(current, found, targets)
    if not current:
        _check_unique(ids, placement)
    return placement


def _select(
    to_place: Sequence[str],
    found: Reconciliation,
    current: Mapping[str, str],
    live: Collection[str],
    units: Mapping[str, int],
    strategy: Strategy,
) -> list[str]:
    """Rank and select: a live worker for each instance to place, given what each keeps."""
    if strategy == "roundrobin":
        return fill_by_count(to_place, {worker: found.counts.get(worker, 0) for worker in live})
    loads = weight_loads(live, current, units.get)
    return fill_by_load(to_place, loads, units.__getitem__)


def _plan(current: Mapping[str, str], found: Reconciliation, targets: Sequence[str]) -> Placement:
    """The complete assignment and the moves from ``current`` to it.

    ``targets`` covers every orphaned-then-fresh instance, or is empty when no
    worker is live (then orphans lose their assignment and all wait unplaced).
    """
    assignment = dict(current)
    moves = [Move(instance=i, source=w, target=None, reason="removed") for i, w in found.removed]
    for instance, _ in found.removed if targets else found.removed + found.orphaned:
        del assignment[instance]
    if not targets:
        moves += [
            Move(instance=i, source=w, target=None, reason="worker-lost") for i, w in found.orphaned
        ]
        unplaced = tuple([i for i, _ in found.orphaned] + found.fresh)
        return Placement(assignment=assignment, moves=tuple(moves), unplaced=unplaced)
    lost = len(found.orphaned)
    fresh_targets = targets[lost:] if lost else targets
    moves += [
        Move(instance=i, source=w, target=t, reason="worker-lost")
        for (i, w), t in zip(found.orphaned, targets, strict=False)
    ]
    moves += [
        Move(instance=i, source=None, target=t, reason="new")
        for i, t in zip(found.fresh, fresh_targets, strict=True)
    ]
    assignment.update(zip([i for i, _ in found.orphaned], targets, strict=False))
    assignment.update(zip(found.fresh, fresh_targets, strict=True))
    return Placement(assignment=assignment, moves=tuple(moves))


def _check_unique(ids: Sequence[str], placement: Placement) -> None:
    """Fail when ``ids`` repeat; for a plan from nothing the result's size tells."""
    placed = len(set(placement.unplaced)) if placement.unplaced else len(placement.assignment)
    if placed != len(ids):
        raise duplicate_ids(ids)


def plan_rebalance(
    current: Mapping[str, str],
    workers: Sequence[str],
    strategy: Strategy,
    weights: Mapping[str, float] | None = None,
) -> Placement:
    """Even out the load with few moves (reason ``rebalance``); nothing else changes.

    Round-robin: the fewest moves after which instance counts differ by at most
    one. Least-loaded: greedy moves (heaviest instance from the most to the least
    loaded worker) until loads differ by at most the largest instance weight.
    ``weights`` (default 1.0 each) is read only by least-loaded. Instances in
    ``current`` on a worker not in ``workers`` are first placed again as
    ``plan_placement`` would (``worker-lost``; a later rebalance move of the same
    instance only changes that move's target); with no live worker they are
    dropped and listed in ``unplaced``.
    """
    check_strategy(strategy)
    weight_map = checked_weights(weights)
    units = None
    if strategy == "leastloaded":
        units = unit_map(current, (weight_map.get(i, 1.0) for i in current))
    placing: Strategy = "roundrobin" if units is None else "leastloaded"
    settled = _place(list(current), units or {}, workers, current, placing)
    if not workers:
        return settled
    members: dict[str, list[str]] = {worker: [] for worker in workers}
    for instance, worker in settled.assignment.items():
        members[worker].append(instance)
    return _with_moves(settled, rebalance_moves(members, units), "rebalance")


def checked_weights(weights: Mapping[str, float] | None) -> Mapping[str, float]:
    """The weight map, after rejecting negative, NaN or infinite weights."""
    if weights is None:
        return {}
    if all(w >= 0.0 and math.isfinite(w) for w in set(weights.values())):
        return weights
    bad = sorted(i for i, w in weights.items() if not (w >= 0.0 and math.isfinite(w)))
    raise ValueError(f"weights must be finite and >= 0; bad for {bad[:5]}")


def _with_moves(placement: Placement, triples: Sequence[Triple], reason: Reason) -> Placement:
    """``placement`` with more moves applied; an instance that already moved keeps one move."""
    if not triples:
        return placement
    assignment = dict(placement.assignment)
    earlier = {move.instance: n for n, move in enumerate(placement.moves)}
    moves = list(placement.moves)
    for instance, source, target in triples:
        assignment[instance] = target
        if instance in earlier:
            moves[earlier[instance]] = msgspec.structs.replace(
                moves[earlier[instance]], target=target
            )
        else:
            moves.append(Move(instance=instance, source=source, target=target, reason=reason))
    kept = tuple(move for move in moves if move.source != move.target)
    return Placement(assignment=assignment, moves=kept, unplaced=placement.unplaced)


def plan_drain(
    current: Mapping[str, str],
    workers: Sequence[str],
    drained_worker: str,
    strategy: Strategy,
    weights: Mapping[str, float] | None = None,
) -> Placement:
    """Move every instance off ``drained_worker`` onto the other live workers (``drain``).

    Nothing else moves: instances stay put on the other workers, including any on
    workers missing from ``workers`` (use ``plan_placement`` for those). The
    drained instances are placed in id order by the strategy, counting the load
    already on each target. Raises ValueError when the drained worker has
    instances and no other live worker exists (Pulsar answers 400 there).
    """
    check_strategy(strategy)
    weight_map = checked_weights(weights)
    others = [worker for worker in dict.fromkeys(workers) if worker != drained_worker]
    drained = sorted(i for i, worker in current.items() if worker == drained_worker)
    if not drained:
        return Placement(assignment=dict(current))
    if not others:
        raise ValueError(f"cannot drain {drained_worker!r}: no other live worker")
    if strategy == "roundrobin":
        counts = Counter(current.values())
        targets = fill_by_count(drained, {worker: counts.get(worker, 0) for worker in others})
    else:
        unit_of = unit_lookup(weight_map)
        targets = fill_by_load(drained, weight_loads(others, current, unit_of), unit_of)
    moves = [(i, drained_worker, t) for i, t in zip(drained, targets, strict=True)]
    return _with_moves(Placement(assignment=dict(current)), moves, "drain")


def apply_moves(current: Mapping[str, str], moves: Iterable[Move]) -> dict[str, str]:
    """The assignment after applying ``moves`` to ``current``, in order."""
    result = dict(current)
    for move in moves:
        if move.target is None:
            result.pop(move.instance, None)
        else:
            result[move.instance] = move.target
    return result
