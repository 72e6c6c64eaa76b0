"""The automatic rebalance's pure decision (``decide/auto_rebalance.py``): time is an
argument, so each guard (settle, hysteresis, interval, cap, cooldown, the periodic
check, the on-join switch) is checked at exact instants. The fleet-level behaviour
is in tests/protocol/scenarios/join_*.txt and tests/fleet/test_auto_rebalance.py."""

from __future__ import annotations

import msgspec

from fnworker.scheduler.decide.auto_rebalance import (
    RebalanceMemory,
    RebalancePolicy,
    decide_rebalance,
    even_out,
    imbalanced,
    note_moves,
    observe_workers,
    policy_of,
)
from fnworker.scheduler.decide.placement import Move
from fnworker.scheduler.settings.worker_config import WorkerConfig

POLICY = RebalancePolicy(check_every_s=0)


def members(**counts: int) -> dict[str, list[str]]:
    """``w1=3`` -> {"w1": ["w1-0", "w1-1", "w1-2"]}."""
    return {worker: [f"{worker}-{i}" for i in range(n)] for worker, n in counts.items()}


def joined(policy: RebalancePolicy, at: float, *workers: str) -> RebalanceMemory:
    """Memory after a first look at w1, w2 at 0 and ``workers`` joining at ``at``."""
    memory = observe_workers(policy, RebalanceMemory(), ["w1", "w2"], 0.0)
    memory = msgspec.structs.replace(memory, owed=None)
    return observe_workers(policy, memory, ["w1", "w2", *workers], at)


def test_a_joined_worker_gets_its_fair_share_once_settled() -> None:
    memory = joined(POLICY, 10.0, "w3")
    fleet = members(w1=3, w2=3, w3=0)
    waiting = decide_rebalance(POLICY, memory, fleet, 11.0)
    assert waiting.moves == () and waiting.wake_at == 12.0
    done = decide_rebalance(POLICY, memory, fleet, 12.0)
    assert done.reason == "join"
    assert sorted(done.moves) == [("w1-2", "w1", "w3"), ("w2-2", "w2", "w3")]
    assert done.memory.owed is None and done.wake_at is None


def test_join_rebalancing_off_moves_nothing() -> None:
    policy = RebalancePolicy(check_every_s=0, on_join=False)
    memory = joined(policy, 10.0, "w3")
    assert memory.owed is None
    assert decide_rebalance(policy, memory, members(w1=3, w2=3, w3=0), 60.0).moves == ()


def test_hysteresis_needs_both_the_spread_and_the_ratio() -> None:
    assert not imbalanced(POLICY, [2, 1, 1])  # spread 1
    assert imbalanced(POLICY, [2, 1, 0])  # spread 2, 100 % of the busiest
    assert not imbalanced(POLICY, [101, 99, 100])  # spread 2, 2 % of the busiest
    assert imbalanced(POLICY, [10, 8])  # spread 2, 20 %
    assert not imbalanced(RebalancePolicy(min_ratio=0.25), [10, 8])
    assert not imbalanced(RebalancePolicy(min_spread=3), [2, 1, 0])
    memory = joined(POLICY, 0.0, "w3")
    below = decide_rebalance(POLICY, memory, members(w1=101, w2=100, w3=99), 5.0)
    assert below.moves == () and below.memory.owed is None
    # A spread of 1 is as even as counts get: done, whatever min_spread says.
    loose = RebalancePolicy(check_every_s=0, min_spread=1, min_ratio=0.0)
    fair = decide_rebalance(loose, joined(loose, 0.0, "w3"), members(w1=2, w2=1, w3=1), 5.0)
    assert fair.moves == () and fair.memory.owed is None and fair.wake_at is None


def test_the_cap_and_the_interval_spread_a_big_join_over_passes() -> None:
    policy = RebalancePolicy(check_every_s=0, max_moves=2, min_interval_s=3.0)
    memory = joined(policy, 0.0, "w3")
    fleet = members(w1=6, w2=6, w3=0)
    first = decide_rebalance(policy, memory, fleet, 2.0)
    assert len(first.moves) == 2 and first.memory.owed == "join" and first.wake_at == 5.0
    too_soon = decide_rebalance(policy, first.memory, fleet, 4.0)
    assert too_soon.moves == () and too_soon.wake_at == 5.0
    later = decide_rebalance(policy, first.memory, members(w1=5, w2=5, w3=2), 5.0)
    assert len(later.moves) == 2 and later.memory.owed is None


def test_an_instance_moved_recently_is_not_moved_again() -> None:
    memory = joined(POLICY, 0.0, "w3")
    fleet = {"w1": ["a", "b", "c"], "w2": ["d", "e", "f"], "w3": []}
    memory = note_moves(memory, [Move(instance="c", source="w3", target="w1", reason="join")], 1.0)
    first = decide_rebalance(POLICY, memory, fleet, 2.0)
    assert sorted(first.moves) == [("b", "w1", "w3"), ("f", "w2", "w3")]
    # Everything movable is cooling: nothing moves; look again when the first cools.
    cooling = note_moves(
        memory,
        [Move(instance=i, source="w9", target="w1", reason="worker-lost") for i in "abdef"],
        1.5,
    )
    stuck = decide_rebalance(POLICY, cooling, fleet, 2.0)
    assert stuck.moves == () and stuck.memory.owed == "join" and stuck.wake_at == 31.05
    # A placement (no source) is not a move.
    placed = note_moves(memory, [Move(instance="x", source=None, target="w1", reason="new")], 1)
    assert "x" not in placed.moved_at


def test_the_periodic_check_runs_every_rebalance_check_freq_sec() -> None:
    policy = RebalancePolicy(check_every_s=600, on_join=False)
    memory = observe_workers(policy, RebalanceMemory(), ["w1", "w2"], 0.0)
    fleet = members(w1=6, w2=0)
    early = decide_rebalance(policy, memory, fleet, 599.0)
    assert early.moves == () and early.wake_at == 600.0
    due = decide_rebalance(policy, memory, fleet, 600.0)
    assert due.reason == "rebalance" and len(due.moves) == 3 and due.wake_at == 1200.0


def test_even_out_moves_only_the_surplus() -> None:
    needed, moves = even_out(members(w1=5, w2=4, w3=0), {}, 100)
    assert needed == 3 and len(moves) == 3
    assert {target for _, _, target in moves} == {"w3"}


def test_the_policy_comes_from_the_config() -> None:
    config = WorkerConfig(
        rebalance_on_join_enabled=False,
        rebalance_check_freq_sec=60,
        rebalance_max_moves_per_pass=7,
        rebalance_move_cooldown_ms=5000,
    )
    policy = policy_of(config)
    assert (policy.on_join, policy.check_every_s, policy.max_moves, policy.cooldown_s) == (
        False,
        60.0,
        7,
        5.0,
    )
    assert policy_of(WorkerConfig()) == RebalancePolicy(check_every_s=-1.0)
