"""Placement core: unit tests for the rules, property tests for the guarantees.

Covers ``fnworker.scheduler.decide.placement`` (pure plans and ``PlacementIndex``) and
the algorithms in ``placement_strategies``. No I/O; the whole file runs in a
few seconds.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fnworker.scheduler.decide.placement import (
    InstanceDemand,
    Move,
    Placement,
    Strategy,
    apply_moves,
    plan_drain,
    plan_placement,
    plan_rebalance,
)
from fnworker.scheduler.decide.placement_index import PlacementIndex
from fnworker.scheduler.decide.placement_strategies import fill_by_count, fill_by_load, weight_units

RR: Strategy = "roundrobin"
LL: Strategy = "leastloaded"
BOTH = pytest.mark.parametrize("strategy", [RR, LL])


def demand(*ids: str, weight: float = 1.0) -> list[InstanceDemand]:
    """Demands for ``ids``, all with one weight."""
    return [InstanceDemand(instance=i, weight=weight) for i in ids]


def instances(function: str, parallelism: int) -> list[str]:
    """Pulsar-style instance ids ``tenant/ns/<function>:<n>``."""
    return [f"t/ns/{function}:{n}" for n in range(parallelism)]


def counts(assignment: Mapping[str, str], workers: Sequence[str]) -> dict[str, int]:
    """Instances per worker, every worker listed."""
    found = Counter(assignment.values())
    return {worker: found.get(worker, 0) for worker in workers}


def loads(
    assignment: Mapping[str, str], workers: Sequence[str], weights: Mapping[str, float]
) -> dict[str, int]:
    """Weight sum per worker in exact units (millionths), every worker listed."""
    result = dict.fromkeys(workers, 0)
    for instance, worker in assignment.items():
        result[worker] += weight_units(weights.get(instance, 1.0))
    return result


def heaviest(weights: Mapping[str, float]) -> int:
    """The largest weight, in units (0 when there is none)."""
    return weight_units(max(weights.values(), default=0.0))


def spread(values: Mapping[str, float]) -> float:
    """max - min of the values (0 when empty)."""
    return max(values.values()) - min(values.values()) if values else 0


def minimal_rebalance_moves(worker_counts: Sequence[int]) -> int:
    """Lower bound on moves to reach counts within one: surplus over T//W, minus the +1 slots."""
    base, extra = divmod(sum(worker_counts), len(worker_counts))
    above = [c for c in worker_counts if c > base]
    return sum(c - base for c in above) - min(extra, len(above))


# ---------------------------------------------------------------- unit tests: schedule


def test_new_instance_goes_to_the_worker_with_fewest_instances() -> None:
    """Pulsar's RoundRobinScheduler: an unassigned instance joins the least-counted worker."""
    current = {"t/ns/f1:0": "worker-1"}
    placement = plan_placement(
        demand("t/ns/f1:0", "t/ns/f2:0"), ["worker-1", "worker-2"], current, RR
    )
    assert placement.assignment == {"t/ns/f1:0": "worker-1", "t/ns/f2:0": "worker-2"}
    assert placement.moves == (
        Move(instance="t/ns/f2:0", source=None, target="worker-2", reason="new"),
    )


def test_parallelism_spreads_round_robin_counting_existing_instances() -> None:
    """Three new instances on two workers, one already busy: counts end 2 and 2."""
    current = {"t/ns/f1:0": "worker-1"}
    wanted = demand("t/ns/f1:0", *instances("f2", 3))
    placement = plan_placement(wanted, ["worker-1", "worker-2"], current, RR)
    assert placement.assignment == {
        "t/ns/f1:0": "worker-1",
        "t/ns/f2:0": "worker-2",
        "t/ns/f2:1": "worker-1",
        "t/ns/f2:2": "worker-2",
    }


def test_ties_go_to_the_smallest_worker_id_whatever_the_input_order() -> None:
    """Equal counts: worker id order decides, not the order workers are listed in."""
    wanted = demand(*instances("f", 4))
    a = plan_placement(wanted, ["w-c", "w-a", "w-b"], {}, RR)
    b = plan_placement(wanted, ["w-b", "w-c", "w-a"], {}, RR)
    assert a == b
    assert [a.assignment[i] for i in instances("f", 4)] == ["w-a", "w-b", "w-c", "w-a"]


def test_placement_is_sticky_even_when_unbalanced() -> None:
    """Instances on live workers never move in a plan; only new work balances."""
    current = dict.fromkeys(instances("f", 4), "w-a")
    placement = plan_placement(demand(*instances("f", 6)), ["w-a", "w-b"], current, RR)
    assert {i: placement.assignment[i] for i in current} == current
    assert [m.target for m in placement.moves] == ["w-b", "w-b"]


def test_least_loaded_uses_weights_and_round_robin_ignores_them() -> None:
    """A heavy instance counts as its weight for least-loaded, as one for round-robin."""
    current = {"t/ns/heavy:0": "w-a", "t/ns/a:0": "w-b", "t/ns/b:0": "w-b"}
    wanted = [
        InstanceDemand(instance="t/ns/heavy:0", weight=4.0),
        *demand("t/ns/a:0", "t/ns/b:0", "t/ns/c:0"),
    ]
    assert plan_placement(wanted, ["w-a", "w-b"], current, LL).assignment["t/ns/c:0"] == "w-b"
    assert plan_placement(wanted, ["w-a", "w-b"], current, RR).assignment["t/ns/c:0"] == "w-a"


def test_deleted_instances_are_removed_and_nothing_else_moves() -> None:
    """An instance no longer demanded leaves with a ``removed`` move."""
    current = {"t/ns/f:0": "w-a", "t/ns/f:1": "w-b", "t/ns/g:0": "w-a"}
    placement = plan_placement(demand("t/ns/f:0", "t/ns/f:1"), ["w-a", "w-b"], current, RR)
    assert placement.assignment == {"t/ns/f:0": "w-a", "t/ns/f:1": "w-b"}
    assert placement.moves == (
        Move(instance="t/ns/g:0", source="w-a", target=None, reason="removed"),
    )


def test_lost_worker_instances_are_replaced_in_id_order() -> None:
    """Orphans of a lost worker go, in id order, to the least-counted live workers."""
    current = {"t/ns/f:0": "w-a", "t/ns/f:1": "w-b", "t/ns/f:2": "w-gone", "t/ns/f:3": "w-gone"}
    placement = plan_placement(demand(*instances("f", 4)), ["w-a", "w-b"], current, RR)
    assert placement.moves == (
        Move(instance="t/ns/f:2", source="w-gone", target="w-a", reason="worker-lost"),
        Move(instance="t/ns/f:3", source="w-gone", target="w-b", reason="worker-lost"),
    )


@BOTH
def test_no_workers_leaves_everything_unplaced_without_crashing(strategy: Strategy) -> None:
    """No live worker: an empty assignment, orphans dropped, everything listed unplaced."""
    current = {"t/ns/f:0": "w-gone", "t/ns/old:0": "w-gone"}
    placement = plan_placement(demand("t/ns/f:0", "t/ns/f:1"), [], current, strategy)
    assert placement.assignment == {}
    assert placement.unplaced == ("t/ns/f:0", "t/ns/f:1")
    assert set(placement.moves) == {
        Move(instance="t/ns/old:0", source="w-gone", target=None, reason="removed"),
        Move(instance="t/ns/f:0", source="w-gone", target=None, reason="worker-lost"),
    }
    assert plan_placement([], [], {}, strategy) == Placement(assignment={})


def test_invalid_inputs_are_rejected() -> None:
    """Duplicate ids (with or without a current assignment), bad weights, unknown strategy."""
    with pytest.raises(ValueError, match="duplicate"):
        plan_placement(demand("t/ns/f:0", "t/ns/f:0"), ["w-a"], {}, RR)
    with pytest.raises(ValueError, match="duplicate"):
        plan_placement(demand("t/ns/f:0", "t/ns/f:0"), [], {}, RR)
    with pytest.raises(ValueError, match="duplicate"):
        plan_placement(demand("t/ns/f:0", "t/ns/f:0"), ["w-a"], {"t/ns/g:0": "w-a"}, LL)
    with pytest.raises(ValueError, match="weight"):
        InstanceDemand(instance="t/ns/f:0", weight=-1.0)
    with pytest.raises(ValueError, match="weight"):
        InstanceDemand(instance="t/ns/f:0", weight=float("nan"))
    with pytest.raises(ValueError, match="strategy"):
        plan_placement([], ["w-a"], {}, "random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights"):
        plan_rebalance({}, ["w-a"], LL, {"t/ns/f:0": float("inf")})


# ---------------------------------------------------------------- unit tests: drain, rebalance


def test_drain_moves_only_the_drained_workers_instances() -> None:
    """Drained instances go, in id order, to the least-counted others; nothing else moves."""
    current = {
        "t/ns/f:0": "w-a",
        "t/ns/f:1": "w-a",
        "t/ns/f:2": "w-a",
        "t/ns/f:3": "w-b",
        "t/ns/f:4": "w-c",
    }
    placement = plan_drain(current, ["w-a", "w-b", "w-c", "w-d"], "w-a", RR)
    assert {m.instance for m in placement.moves} == {"t/ns/f:0", "t/ns/f:1", "t/ns/f:2"}
    assert all(m.reason == "drain" and m.source == "w-a" for m in placement.moves)
    assert counts(placement.assignment, ["w-a", "w-b", "w-c", "w-d"]) == {
        "w-a": 0,
        "w-b": 2,
        "w-c": 2,
        "w-d": 1,
    }


def test_drain_refuses_when_no_other_worker_is_left() -> None:
    """Like Pulsar's 400: a drain needs somewhere to go; an empty drain is a no-op."""
    with pytest.raises(ValueError, match="no other live worker"):
        plan_drain({"t/ns/f:0": "w-a"}, ["w-a"], "w-a", RR)
    assert plan_drain({"t/ns/f:0": "w-a"}, ["w-a"], "w-b", RR).moves == ()


def test_rebalance_is_minimal_and_moves_largest_ids_first() -> None:
    """[5, 0, 0]: caps 2/2/1, so exactly three moves: the donor's largest ids, emptiest
    recipient first and filled to its cap (ties by id)."""
    current = dict.fromkeys(instances("f", 5), "w-a")
    placement = plan_rebalance(current, ["w-a", "w-b", "w-c"], RR)
    assert [(m.instance, m.target) for m in placement.moves] == [
        ("t/ns/f:4", "w-b"),
        ("t/ns/f:3", "w-b"),
        ("t/ns/f:2", "w-c"),
    ]
    assert all(m.reason == "rebalance" for m in placement.moves)
    assert plan_rebalance(placement.assignment, ["w-a", "w-b", "w-c"], RR).moves == ()


def test_rebalance_after_a_join_moves_at_most_a_fair_share() -> None:
    """G2: a worker that joins gets about total/N instances, no more moves than that."""
    workers = [f"w-{n}" for n in range(4)]
    start = plan_placement(demand(*instances("f", 40)), workers, {}, RR)
    placement = plan_rebalance(start.assignment, [*workers, "w-new"], RR)
    assert len(placement.moves) == 8
    assert {m.target for m in placement.moves} == {"w-new"}


def test_least_loaded_rebalance_reaches_one_max_weight() -> None:
    """Weighted rebalance stops once loads differ by at most the heaviest instance."""
    weights = {"t/ns/big:0": 3.0, "t/ns/big:1": 3.0}
    current = dict.fromkeys(["t/ns/big:0", "t/ns/big:1", *instances("f", 4)], "w-a")
    placement = plan_rebalance(current, ["w-a", "w-b"], LL, weights)
    assert spread(loads(placement.assignment, ["w-a", "w-b"], weights)) <= heaviest(weights)
    assert placement.moves[0] == Move(
        instance="t/ns/big:1", source="w-a", target="w-b", reason="rebalance"
    )


def test_rebalance_first_replaces_orphans_with_one_move_each() -> None:
    """An orphan placed then rebalanced appears once, as ``worker-lost``."""
    current = {**dict.fromkeys(instances("f", 4), "w-a"), "t/ns/g:0": "w-gone"}
    placement = plan_rebalance(current, ["w-a", "w-b"], RR)
    assert Counter(m.instance for m in placement.moves).most_common(1)[0][1] == 1
    assert apply_moves(current, placement.moves) == placement.assignment
    assert max(counts(placement.assignment, ["w-a", "w-b"]).values()) == 3


def test_least_loaded_rebalance_counts_unlisted_weights_as_one() -> None:
    """Without a weight map every instance weighs 1.0, also when re-placing an orphan."""
    current = {
        "t/ns/f:0": "w-a",
        "t/ns/f:1": "w-a",
        "t/ns/f:2": "w-b",
        "t/ns/f:3": "w-c",
        "t/ns/a:0": "w-gone",
    }
    placement = plan_rebalance(current, ["w-a", "w-b", "w-c"], LL)
    assert placement.moves == (
        Move(instance="t/ns/a:0", source="w-gone", target="w-b", reason="worker-lost"),
    )


# ---------------------------------------------------------------- unit tests: PlacementIndex


def test_index_add_worker_moves_nothing_until_rebalance() -> None:
    """New workers only get new work; ``rebalance`` is explicit."""
    index = PlacementIndex.from_placement(
        plan_placement(demand(*instances("f", 6)), ["w-a", "w-b"], {}, RR), ["w-a", "w-b"], RR
    )
    assert index.add_worker("w-c") == []
    assert [m.target for m in index.add_instances(demand("t/ns/g:0"))] == ["w-c"]
    assert len(index.rebalance()) == 1
    assert sorted(counts(index.snapshot(), index.workers()).values()) == [2, 2, 3]


def test_index_waits_without_workers_and_places_on_the_next_worker() -> None:
    """Losing the last worker parks its instances; the next worker takes them."""
    index = PlacementIndex(["w-a"], RR, {"t/ns/f:0": "w-a"})
    assert index.remove_worker("w-a") == [
        Move(instance="t/ns/f:0", source="w-a", target=None, reason="worker-lost")
    ]
    assert index.add_instances(demand("t/ns/f:1")) == []
    assert index.unplaced() == ("t/ns/f:0", "t/ns/f:1")
    assert index.add_worker("w-b") == [
        Move(instance="t/ns/f:0", source=None, target="w-b", reason="worker-lost"),
        Move(instance="t/ns/f:1", source=None, target="w-b", reason="new"),
    ]
    assert index.snapshot() == {"t/ns/f:0": "w-b", "t/ns/f:1": "w-b"}
    assert index.unplaced() == ()


def test_index_queries_and_idempotent_events() -> None:
    """Lookups, and repeated or unknown events that change nothing."""
    index = PlacementIndex(["w-a", "w-b"], LL, {"t/ns/f:0": "w-a"}, weights={"t/ns/f:0": 2.0})
    assert index.add_instances(demand("t/ns/f:0", "t/ns/g:0")) == [
        Move(instance="t/ns/g:0", source=None, target="w-b", reason="new")
    ]
    assert index.assignment_of("t/ns/f:0") == "w-a" and index.assignment_of("nope") is None
    assert index.instances_on("w-b") == ("t/ns/g:0",) and index.instances_on("nope") == ()
    assert index.load_of("w-a") == 2.0
    assert index.remove_instances(["nope"]) == [] and index.remove_worker("nope") == []
    assert index.add_worker("w-a") == []
    assert index.remove_instances(["t/ns/f:0"]) == [
        Move(instance="t/ns/f:0", source="w-a", target=None, reason="removed")
    ]
    assert index.load_of("w-a") == 0.0


def test_index_weight_sums_are_exact_after_many_events() -> None:
    """Loads are integer millionths: ten times 0.1 is 1.0 and back to exactly 0 (floats drift)."""
    index = PlacementIndex(["w-a"], LL)
    for round_ in range(20):
        ids = [f"t/ns/f{round_}:{n}" for n in range(10)]
        index.add_instances(demand(*ids, weight=0.1))
        assert index.load_of("w-a") == 1.0
        index.remove_instances(ids)
        assert index.load_of("w-a") == 0.0


def test_index_drain_uses_the_drain_reason_and_needs_another_worker() -> None:
    """``remove_worker(..., reason="drain")`` mirrors ``plan_drain``."""
    current = {"t/ns/f:0": "w-a", "t/ns/f:1": "w-a", "t/ns/f:2": "w-b"}
    index = PlacementIndex(["w-a", "w-b", "w-c"], RR, current)
    assert index.remove_worker("w-a", reason="drain") == list(
        plan_drain(current, ["w-a", "w-b", "w-c"], "w-a", RR).moves
    )
    lonely = PlacementIndex(["w-a"], RR, {"t/ns/f:0": "w-a"})
    with pytest.raises(ValueError, match="no other live worker"):
        lonely.remove_worker("w-a", reason="drain")


def test_index_rejects_an_assignment_to_an_unknown_worker() -> None:
    """The index is built from a valid placement: every worker must be live."""
    with pytest.raises(ValueError, match="not a live worker"):
        PlacementIndex(["w-a"], RR, {"t/ns/f:0": "w-gone"})


def test_least_loaded_with_one_weight_is_round_robin_exactly() -> None:
    """One weight w > 0: loads are count x w, so the greedy heap picks what counting picks."""
    current = {"t/ns/old:0": "w-b", "t/ns/old:1": "w-b", "t/ns/old:2": "w-c"}
    fresh = [f"t/ns/f:{n}" for n in range(50)]
    wanted = demand(*current, *fresh, weight=0.1)
    workers = ["w-c", "w-a", "w-b", "w-d"]
    units = {"w-a": 0, "w-b": 200_000, "w-c": 100_000, "w-d": 0}
    by_heap = fill_by_load(fresh, units, lambda _: 100_000)
    assert by_heap == fill_by_count(fresh, {"w-a": 0, "w-b": 2, "w-c": 1, "w-d": 0})
    placement = plan_placement(wanted, workers, current, LL)
    assert [placement.assignment[i] for i in fresh] == by_heap
    assert placement == plan_placement(wanted, workers, current, RR)


# ---------------------------------------------------------------- property tests

WORKER_POOL = [f"w{n}" for n in range(8)]
INSTANCE_POOL = [f"t/ns/f{f}:{n}" for f in range(8) for n in range(4)]
WEIGHTS = [0.1, 0.25, 0.3, 1.0, 2.0]  # 0.1 and 0.3 have no exact float sums
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


Scenario = tuple[list[InstanceDemand], list[str], dict[str, str]]
Event = tuple[Any, ...]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Random demands, live workers, and a current assignment that may mention dead workers."""
    workers = draw(st.lists(st.sampled_from(WORKER_POOL), unique=True, max_size=6))
    ids = draw(st.lists(st.sampled_from(INSTANCE_POOL), unique=True, max_size=24))
    demands = [InstanceDemand(instance=i, weight=draw(st.sampled_from(WEIGHTS))) for i in ids]
    known = draw(st.lists(st.sampled_from(INSTANCE_POOL), unique=True, max_size=24))
    current = {i: draw(st.sampled_from(WORKER_POOL)) for i in known}
    return demands, workers, current


def weights_of(demands: Sequence[InstanceDemand]) -> dict[str, float]:
    """instance -> weight."""
    return {d.instance: d.weight for d in demands}


def assert_valid(
    placement: Placement,
    demands: Sequence[InstanceDemand],
    workers: Sequence[str],
    current: Mapping[str, str],
    sticky: bool = True,
) -> None:
    """Property (a) and the plan's bookkeeping: each demanded instance once on a live worker."""
    wanted = [d.instance for d in demands]
    if workers:
        assert sorted(placement.assignment) == sorted(wanted)
        assert set(placement.assignment.values()) <= set(workers)
        assert placement.unplaced == ()
    else:
        assert placement.assignment == {}
        assert sorted(placement.unplaced) == sorted(wanted)
    assert apply_moves(current, placement.moves) == placement.assignment
    assert len({m.instance for m in placement.moves}) == len(placement.moves)
    kept = {i: w for i, w in current.items() if i in placement.assignment and w in workers}
    assert not sticky or all(placement.assignment[i] == w for i, w in kept.items()), "sticky"


@FAST
@given(scenarios(), st.sampled_from([RR, LL]))
def test_every_demanded_instance_is_on_exactly_one_live_worker(
    scenario: Scenario, strategy: Strategy
) -> None:
    """(a) valid and sticky, whatever the current assignment holds."""
    demands, workers, current = scenario
    assert_valid(plan_placement(demands, workers, current, strategy), demands, workers, current)


@FAST
@given(scenarios(), st.sampled_from([RR, LL]), st.randoms(use_true_random=False))
def test_replanning_an_unchanged_cluster_changes_nothing(
    scenario: Scenario, strategy: Strategy, rnd: random.Random
) -> None:
    """(b) a plan of a plan is a no-op; and input order of workers/current does not matter."""
    demands, workers, current = scenario
    first = plan_placement(demands, workers, current, strategy)
    again = plan_placement(demands, workers, first.assignment, strategy)
    assert again.moves == () and again.assignment == first.assignment
    shuffled_workers, items = list(workers), list(current.items())
    rnd.shuffle(shuffled_workers)
    rnd.shuffle(items)
    assert (
        plan_placement(demands, shuffled_workers, dict(items), strategy).assignment
        == first.assignment
    )


@FAST
@given(scenarios(), st.sampled_from([RR, LL]), st.data())
def test_losing_a_worker_moves_only_its_instances(
    scenario: Scenario, strategy: Strategy, data: st.DataObject
) -> None:
    """(c) after one worker goes, exactly its instances move, all as ``worker-lost``."""
    demands, workers, current = scenario
    if not workers:
        return
    before = plan_placement(demands, workers, current, strategy)
    gone = data.draw(st.sampled_from(workers))
    remaining = [w for w in workers if w != gone]
    after = plan_placement(demands, remaining, before.assignment, strategy)
    assert {m.instance for m in after.moves} == {
        i for i, w in before.assignment.items() if w == gone
    }
    assert all(m.reason == "worker-lost" and m.source == gone for m in after.moves)
    assert_valid(after, demands, remaining, before.assignment)


@FAST
@given(scenarios(), st.sampled_from([RR, LL]))
def test_placement_from_nothing_is_balanced(scenario: Scenario, strategy: Strategy) -> None:
    """(d) round-robin from nothing: counts within one; least-loaded: loads within one
    max weight."""
    demands, workers, _ = scenario
    placement = plan_placement(demands, workers, {}, strategy)
    if strategy == RR:
        assert spread(counts(placement.assignment, workers)) <= 1
    else:
        weights = weights_of(demands)
        assert spread(loads(placement.assignment, workers, weights)) <= heaviest(weights)


@FAST
@given(scenarios(), st.sampled_from([RR, LL]))
def test_rebalance_is_balanced_valid_and_minimal_for_round_robin(
    scenario: Scenario, strategy: Strategy
) -> None:
    """Rebalance meets its bound; round-robin uses exactly the minimum number of moves."""
    demands, workers, current = scenario
    if not workers:
        return
    weights = weights_of(demands)
    settled = plan_placement(demands, workers, current, strategy)
    placement = plan_rebalance(settled.assignment, workers, strategy, weights)
    assert_valid(placement, demands, workers, settled.assignment, sticky=False)
    assert all(m.reason == "rebalance" for m in placement.moves)
    if strategy == RR:
        before = list(counts(settled.assignment, workers).values())
        assert spread(counts(placement.assignment, workers)) <= 1
        assert len(placement.moves) == minimal_rebalance_moves(before)
    else:
        assert spread(loads(placement.assignment, workers, weights)) <= heaviest(weights)


@FAST
@given(scenarios(), st.sampled_from([RR, LL]), st.data())
def test_drain_moves_only_the_drained_workers_instances_property(
    scenario: Scenario, strategy: Strategy, data: st.DataObject
) -> None:
    """Drain empties one worker onto the others and touches nothing else."""
    demands, workers, current = scenario
    if len(workers) < 2:
        return
    settled = plan_placement(demands, workers, current, strategy).assignment
    drained = data.draw(st.sampled_from(workers))
    placement = plan_drain(settled, workers, drained, strategy, weights_of(demands))
    assert {m.instance for m in placement.moves} == {i for i, w in settled.items() if w == drained}
    assert drained not in placement.assignment.values()
    assert apply_moves(settled, placement.moves) == placement.assignment


@FAST
@given(scenarios(), st.sampled_from([RR, LL]), st.data())
def test_index_worker_loss_and_additions_equal_plan_placement(
    scenario: Scenario, strategy: Strategy, data: st.DataObject
) -> None:
    """The index decides exactly as ``plan_placement`` for a lost worker and for new work."""
    demands, workers, current = scenario
    if not workers:
        return
    weights = weights_of(demands)
    half = len(demands) // 2
    start = plan_placement(demands[:half], workers, current, strategy)
    index = PlacementIndex.from_placement(start, workers, strategy, weights)
    gone = data.draw(st.sampled_from(workers))
    remaining = [w for w in workers if w != gone]
    lost = plan_placement(demands[:half], remaining, start.assignment, strategy)
    assert index.remove_worker(gone) == list(lost.moves)
    grown = plan_placement(demands, remaining, lost.assignment, strategy)
    assert index.add_instances(demands[half:]) == list(grown.moves)
    assert index.snapshot() == grown.assignment


EVENTS = st.one_of(
    st.tuples(
        st.just("add"),
        st.lists(st.sampled_from(INSTANCE_POOL), unique=True, max_size=10),
        st.sampled_from(WEIGHTS),
    ),
    st.tuples(st.just("remove"), st.lists(st.sampled_from(INSTANCE_POOL), unique=True, max_size=6)),
    st.tuples(st.just("lose"), st.sampled_from(WORKER_POOL)),
    st.tuples(st.just("join"), st.sampled_from(WORKER_POOL)),
    st.tuples(st.just("rebalance")),
)


def check_index_step(
    index: PlacementIndex, event: Event, model: dict[str, float], strategy: Strategy
) -> None:
    """Apply one event to the index and compare with the pure functions.

    ``model`` is the set of demanded instances with their weights, kept in step.
    """
    before, workers = index.snapshot(), list(index.workers())
    kind = event[0]
    if kind == "add":
        fresh = [i for i in event[1] if i not in model]
        model.update(dict.fromkeys(fresh, event[2]))
        moves = index.add_instances(demand(*fresh, weight=event[2]))
    elif kind == "remove":
        for instance in event[1]:
            model.pop(instance, None)
        moves = index.remove_instances(event[1])
    elif kind == "lose":
        workers = [w for w in workers if w != event[1]]
        moves = index.remove_worker(event[1])
    elif kind == "join":
        workers = list(dict.fromkeys([*workers, event[1]]))
        had_workers = bool(index.workers())
        moves = index.add_worker(event[1])
        assert had_workers is False or moves == [], "a join moves nothing"
    else:
        moves = index.rebalance()
    after = index.snapshot()
    demands = [InstanceDemand(instance=i, weight=w) for i, w in model.items()]
    assert apply_moves(before, moves) == after
    if kind == "rebalance":
        assert moves == list(plan_rebalance(before, workers, strategy, model).moves)
    else:
        expected = plan_placement(demands, workers, before, strategy)
        assert after == expected.assignment, "index and plan_placement agree"
        assert set(index.unplaced()) == set(expected.unplaced)
    if kind == "lose":
        assert {m.instance for m in moves} == {i for i, w in before.items() if w == event[1]}
    assert_valid(Placement(assignment=after, unplaced=index.unplaced()), demands, workers, after)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from([RR, LL]),
    st.lists(st.sampled_from(WORKER_POOL), unique=True, min_size=1, max_size=6),
    st.lists(EVENTS, max_size=25),
)
def test_index_event_sequences_agree_with_the_pure_plans(
    strategy: Strategy, workers: list[str], events: list[Event]
) -> None:
    """(e) every event keeps the index valid and equal to what the pure plans decide."""
    index = PlacementIndex(workers, strategy)
    model: dict[str, float] = {}
    for event in events:
        check_index_step(index, event, model, strategy)
    moves = index.rebalance()
    assert all(m.reason == "rebalance" for m in moves)
    live = list(index.workers())
    if strategy == RR:
        assert spread(counts(index.snapshot(), live)) <= 1
    else:
        assert spread(loads(index.snapshot(), live, model)) <= heaviest(model)
