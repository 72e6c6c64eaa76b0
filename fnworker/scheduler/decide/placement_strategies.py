"""The stages behind ``placement.py``: reconcile, rank-and-select, rebalance.

Pure and I/O-free. These functions work on plain dicts and lists (instance and
worker ids as strings, loads as numbers) and return findings, chosen workers or
``(instance, source, target)`` triples; ``placement.py`` turns those into
records. Ties are always broken by worker id and then instance id, so no result
depends on hash order or on the iteration order of a mapping. ``LoadHeap`` is
the one mutable helper, for the incremental ``PlacementIndex``.

Two load measures exist:

* **count** (round-robin, Pulsar's ``RoundRobinScheduler``): every instance weighs 1.
* **load** (least-loaded): every instance weighs its demand weight (e.g. cpu),
  summed exactly as whole millionths (``WEIGHT_UNITS``).
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from itertools import compress, filterfalse, repeat

import msgspec

Triple = tuple[str, str, str]
"""One planned move: ``(instance, source worker, target worker)``."""


WEIGHT_UNITS = 1_000_000
"""Least-loaded adds weights as whole millionths (cpu 0.1 = 100,000 units): integer
sums are exact, so a load never depends on the order of additions and a long-lived
``PlacementIndex`` never drifts from a fresh plan. Weights below 0.5e-6 count as 0."""


def weight_units(weight: float) -> int:
    """A weight in whole millionths (see ``WEIGHT_UNITS``)."""
    return round(weight * WEIGHT_UNITS)


def unit_map(ids: Iterable[str], weights: Iterable[float]) -> dict[str, int] | None:
    """instance -> weight in units, or None when all weigh the same positive amount.

    With one weight w > 0 every load is count x w, so least load and fewest
    instances pick the same worker, and round-robin's rebalance (the fewest moves
    to counts within one) also meets least-loaded's bound of one weight: the
    caller then plans by count. Converts each distinct weight only once.
    """
    listed = list(weights)
    table = {weight: weight_units(weight) for weight in set(listed)}
    if uniform(table.values()):
        return None
    return dict(zip(ids, map(table.__getitem__, listed), strict=True))


def uniform(units: Iterable[int]) -> bool:
    """True when the weights are all one and the same positive amount."""
    sizes = set(units)
    return len(sizes) == 1 and sizes.pop() > 0


def units_of_map(weights: Mapping[str, float]) -> dict[str, int]:
    """instance -> weight in units, converting each distinct weight only once."""
    table = {weight: weight_units(weight) for weight in set(weights.values())}
    return dict(zip(weights.keys(), map(table.__getitem__, weights.values()), strict=True))


def unit_lookup(weights: Mapping[str, float]) -> Callable[[str], int]:
    """A function giving an instance's weight in units, 1.0 when not listed."""
    get, one = units_of_map(weights).get, WEIGHT_UNITS
    return lambda instance: get(instance, one)


def rebalance_moves(
    members: Mapping[str, Collection[str]], units: Mapping[str, int] | None
) -> list[Triple]:
    """Rebalance moves: by count, or by weight units when ``units`` is given.

    ``members`` maps each live worker to its instances; ``units`` (when given)
    holds every instance's weight in units.
    """
    if units is None:
        return rebalance_by_count(members)
    loads = {worker: sum(map(units.__getitem__, ids)) for worker, ids in members.items()}
    heaviest = max(units.values(), default=0)
    return rebalance_by_load(members, loads, units.__getitem__, heaviest)


class Reconciliation(msgspec.Struct, frozen=True, kw_only=True):
    """The reconcile stage's verdict on the current assignment."""

    removed: list[tuple[str, str]]
    """``(instance, worker)`` in the assignment but no longer demanded."""
    orphaned: list[tuple[str, str]]
    """``(instance, lost worker)`` demanded but on a worker that is not live; id order."""
    fresh: list[str]
    """Demanded instances with no assignment, in demand order."""
    counts: dict[str, int]
    """Instances per worker (any worker) once the removed ones are gone."""


def reconcile(
    ids: Sequence[str], current: Mapping[str, str], live: Collection[str]
) -> Reconciliation:
    """Split the work into removed, orphaned and fresh instances.

    Touches every instance of the cluster, so it uses C-level passes only
    (sets, filters, a Counter) and no per-instance Python code. Raises
    ValueError on duplicate ids, except when ``current`` is empty: then every id
    is fresh and the caller sees duplicates for free in the assignment's size.
    """
    if not current:
        return Reconciliation(removed=[], orphaned=[], fresh=list(ids), counts={})
    demanded = set(ids)
    if len(demanded) != len(ids):
        raise duplicate_ids(ids)
    fresh: list[str] = []
    removed: list[tuple[str, str]] = []
    if len(demanded) != len(current) or not demanded.issuperset(current):
        fresh = list(filterfalse(current.__contains__, ids))
        if len(ids) - len(fresh) != len(current):
            removed = [(i, current[i]) for i in filterfalse(demanded.__contains__, current)]
    counts = Counter(current.values())
    lost = {worker for worker in counts if worker not in live}
    orphaned: list[tuple[str, str]] = []
    if lost:
        candidates = compress(current.keys(), map(lost.__contains__, current.values()))
        orphaned = sorted((i, current[i]) for i in candidates if i in demanded)
    for _, worker in removed:
        counts[worker] -= 1
    return Reconciliation(removed=removed, orphaned=orphaned, fresh=fresh, counts=dict(counts))


def duplicate_ids(ids: Iterable[str]) -> ValueError:
    """The error for demands that name an instance more than once."""
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)[:5]
    return ValueError(f"duplicate instance ids in demands, e.g. {duplicates}")


def weight_loads(
    workers: Iterable[str],
    current: Mapping[str, str],
    weight_of: Callable[[str], float | None],
) -> dict[str, float]:
    """Each worker's weight sum in ``current``, skipping instances weighing None."""
    loads = dict.fromkeys(workers, 0.0)
    for instance, worker in current.items():
        if worker in loads:
            weight = weight_of(instance)
            if weight is not None:
                loads[worker] += weight
    return loads


def fill_by_count(instances: Sequence[str], counts: Mapping[str, int]) -> list[str]:
    """The target of each instance when each in turn goes to the smallest ``(count, id)``.

    Equivalent to placing one instance at a time on the worker with the fewest
    instances (ties: smallest worker id), but done a whole level at a time
    ("water filling"): at count level L every worker with count <= L takes one
    instance, in id order. Cost O(U + W log W) with U instances and W workers.
    ``counts`` must not be empty; it is not modified.
    """
    order = sorted(counts.items(), key=lambda item: (item[1], item[0]))
    targets: list[str] = []
    active: list[str] = []
    level, joined, remaining = order[0][1], 0, len(instances)
    while remaining:
        while joined < len(order) and order[joined][1] <= level:
            insort(active, order[joined][0])
            joined += 1
        span = order[joined][1] - level if joined < len(order) else remaining
        rounds = min(span, remaining // len(active))
        if rounds == 0:
            targets.extend(active[:remaining])
            break
        targets.extend(active * rounds)
        remaining -= rounds * len(active)
        level += rounds
    return targets


def fill_by_load(
    instances: Sequence[str], loads: Mapping[str, float], weight_of: Callable[[str], float]
) -> list[str]:
    """The target of each instance when each in turn goes to the smallest ``(load, id)``.

    Greedy list scheduling with a heap: O(U log W). ``loads`` must not be empty;
    it is not modified.
    """
    heap = [(load, worker) for worker, load in loads.items()]
    heapq.heapify(heap)
    replace = heapq.heapreplace
    targets: list[str] = []
    append = targets.append
    for instance in instances:
        load, worker = heap[0]
        append(worker)
        replace(heap, (load + weight_of(instance), worker))
    return targets


def rebalance_by_count(members: Mapping[str, Collection[str]]) -> list[Triple]:
    """The fewest moves that leave every worker's count within one of every other's.

    ``members`` maps each live worker to its instances. The final counts are fixed
    first: with T instances on W workers, the ``T % W`` fullest workers (ties:
    smaller id) may keep ``T // W + 1``, every other worker ``T // W``. Only the
    surplus above those caps moves, which is the minimum any balanced result
    needs. Surplus leaves each donor starting from its largest instance ids and
    fills recipients emptiest first (ties: smaller id). Cost O(W log W + k log k)
    for the donors' k instances; independent of the total instance count.
    """
    if not members:
        return []
    ranked = sorted(members, key=lambda worker: (-len(members[worker]), worker))
    base, extra = divmod(sum(len(members[worker]) for worker in ranked), len(ranked))
    caps = {worker: base + (rank < extra) for rank, worker in enumerate(ranked)}
    donations = _surplus(members, caps, ranked)
    recipients = sorted(
        (w for w in ranked if len(members[w]) < caps[w]), key=lambda w: (len(members[w]), w)
    )
    slots = (
        w for worker in recipients for w in repeat(worker, caps[worker] - len(members[worker]))
    )
    return [
        (instance, source, target)
        for (instance, source), target in zip(donations, slots, strict=False)
    ]


def _surplus(
    members: Mapping[str, Collection[str]], caps: Mapping[str, int], ranked: Sequence[str]
) -> Iterator[tuple[str, str]]:
    """Each donor's instances above its cap, as ``(instance, donor)``, largest ids first."""
    for worker in ranked:
        excess = len(members[worker]) - caps[worker]
        if excess > 0:
            for instance in sorted(members[worker], reverse=True)[:excess]:
                yield instance, worker


def rebalance_by_load(
    members: Mapping[str, Collection[str]],
    loads: Mapping[str, float],
    weight_of: Callable[[str], float],
    max_weight: float,
) -> list[Triple]:
    """Moves that bring the spread of loads (max - min) down to at most ``max_weight``.

    Repeatedly moves the heaviest instance (ties: largest id) of the most loaded
    worker to the least loaded one (ties: smaller ids), as Pulsar's rebalance does
    with counts. Each such move strictly lowers the sum of squared loads, so the
    loop ends. Greedy, not guaranteed minimal for mixed weights. An instance that
    moves twice appears once, from its first source to its last target; one that
    comes back home does not appear. Cost O(moves x (log W + k)) for donors' k.
    """
    current = dict(loads)
    low = [(load, worker) for worker, load in current.items()]
    high = [(-load, worker) for worker, load in current.items()]
    heapq.heapify(low)
    heapq.heapify(high)
    pools: dict[str, list[tuple[float, str]]] = {}
    origin: dict[str, str] = {}
    final: dict[str, str] = {}
    while len(current) > 1:
        least, poorest = _valid_top(low, current, 1.0)
        most, richest = _valid_top(high, current, -1.0)
        if -most - least <= max_weight:
            break
        weight, instance = _pool(pools, members, richest, weight_of).pop()
        origin.setdefault(instance, richest)
        final[instance] = poorest
        _pool(pools, members, poorest, weight_of)
        insort(pools[poorest], (weight, instance))
        _shift(current, low, high, richest, -weight)
        _shift(current, low, high, poorest, weight)
    return [(i, origin[i], target) for i, target in final.items() if origin[i] != target]


def _valid_top(
    heap: list[tuple[float, str]], current: Mapping[str, float], sign: float
) -> tuple[float, str]:
    """The heap's top after discarding entries whose load is out of date."""
    while sign * current[heap[0][1]] != heap[0][0]:
        heapq.heappop(heap)
    return heap[0]


def _pool(
    pools: dict[str, list[tuple[float, str]]],
    members: Mapping[str, Collection[str]],
    worker: str,
    weight_of: Callable[[str], float],
) -> list[tuple[float, str]]:
    """The worker's instances sorted by ``(weight, id)``, built on first use."""
    pool = pools.get(worker)
    if pool is None:
        pool = pools[worker] = sorted((weight_of(i), i) for i in members[worker])
    return pool


def _shift(
    current: dict[str, float],
    low: list[tuple[float, str]],
    high: list[tuple[float, str]],
    worker: str,
    delta: float,
) -> None:
    """Change one worker's load by ``delta`` and record it in both heaps."""
    current[worker] += delta
    heapq.heappush(low, (current[worker], worker))
    heapq.heappush(high, (-current[worker], worker))


class LoadHeap:
    """Live workers' loads with the least loaded one at hand, for incremental placement.

    A lazy min-heap of ``(load, worker id)``: every change pushes a fresh entry and
    out-of-date ones are skipped when they reach the top, so each operation is
    O(log W) amortised; the heap is rebuilt (O(W)) once stale entries outnumber
    live ones. Mutable, but pure: no I/O, no clock.
    """

    def __init__(self, loads: Mapping[str, float]) -> None:
        """Start from each live worker's current load."""
        self.loads: dict[str, float] = dict(loads)
        self._heap: list[tuple[float, str]] = []
        self._rebuild()

    def take(self, delta: float) -> str | None:
        """Add ``delta`` to the smallest ``(load, id)`` worker and return it; None if none."""
        heap, loads = self._heap, self.loads
        while heap:
            load, worker = heap[0]
            if loads.get(worker) == load:
                loads[worker] = load + delta
                heapq.heapreplace(heap, (load + delta, worker))
                return worker
            heapq.heappop(heap)
        return None

    def change(self, worker: str, delta: float) -> None:
        """Add ``delta`` (may be negative) to a live worker's load."""
        self.loads[worker] += delta
        heapq.heappush(self._heap, (self.loads[worker], worker))
        if len(self._heap) > 2 * len(self.loads) + 64:
            self._rebuild()

    def add_worker(self, worker: str, load: float = 0) -> None:
        """Make ``worker`` live with ``load``."""
        self.loads[worker] = load
        heapq.heappush(self._heap, (load, worker))

    def remove_worker(self, worker: str) -> None:
        """Forget ``worker``; its heap entries become stale."""
        del self.loads[worker]

    def _rebuild(self) -> None:
        """One entry per live worker, nothing stale."""
        self._heap = [(load, worker) for worker, load in self.loads.items()]
        heapq.heapify(self._heap)
