"""Automatic rebalancing on real worker processes (issue 15 point 1): a worker that
joins a running fleet gets its fair share within a few seconds without any operator
call, and the moves are logged and counted with reason ``join``; with
``rebalanceOnJoinEnabled: false`` it gets nothing. The decisions themselves are
tested on the pure protocol (tests/protocol/scenarios/join_*.txt).
"""

from __future__ import annotations

import time

from tests.fleet.conftest import (
    Fleet,
    FleetWorker,
    eventually,
    holders,
    leader_seen_by_all,
    register,
)

INSTANCES = 6
FAIR_SHARE_WITHIN = 15.0
"""Seconds from the joiner being seen by all to every worker running its 2: the
settle time (2 s), one pass, instance starts, on a loaded 2-core machine."""


def running_per_worker(workers: list[FleetWorker]) -> dict[str, int]:
    """Worker -> how many instances its runtime runs right now (each held once)."""
    counts = dict.fromkeys((w.name for w in workers), 0)
    for instance, owners in holders(workers).items():
        assert len(owners) == 1, f"{instance} runs on {owners}"
        counts[owners[0]] += 1
    return counts


def join_moves_counted(worker: FleetWorker) -> float:
    """fnworker_assignment_changes_total{reason="join"} on ``worker``'s /metrics."""
    text = worker.get("/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith("fnworker_assignment_changes_total") and 'reason="join"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def two_workers_running_six(fleet: Fleet, **extra: object) -> list[FleetWorker]:
    """w1 (the leader) and w2, each running 3 of 6 single-instance functions."""
    workers = [fleet.start("w1", **extra)]
    eventually(lambda: leader_seen_by_all(workers), 60, "w1 leads")
    workers.append(fleet.start("w2", **extra))
    eventually(lambda: leader_seen_by_all(workers), 60, "w1 and w2 see each other")
    for index in range(INSTANCES):
        register(workers[0], f"j{index}")
    eventually(
        lambda: running_per_worker(workers) == {"w1": 3, "w2": 3}, 60, "3 instances run on each"
    )
    return workers


def test_a_joining_worker_gets_its_fair_share_without_a_rebalance_call(fleet: Fleet) -> None:
    workers = two_workers_running_six(fleet)
    workers.append(fleet.start("w3"))
    eventually(lambda: leader_seen_by_all(workers), 60, "all three see each other")
    seen = time.monotonic()
    eventually(
        lambda: running_per_worker(workers) == {"w1": 2, "w2": 2, "w3": 2},
        FAIR_SHARE_WITHIN,
        "each of the three runs 2",
    )
    took = time.monotonic() - seen
    assert join_moves_counted(workers[0]) == 2, "the leader counts 2 moves with reason join"
    moved = [line for line in workers[0].log().splitlines() if "instance moved" in line]
    assert len(moved) == 2 and all("reason='join'" in line for line in moved), moved
    # Balanced: nothing more moves afterwards (watched over a window).
    stable_until = time.monotonic() + 4.0
    while time.monotonic() < stable_until:
        assert running_per_worker(workers) == {"w1": 2, "w2": 2, "w3": 2}
        time.sleep(0.5)
    assert join_moves_counted(workers[0]) == 2
    print(f"fair share {took:.1f} s after the joiner was seen")


def test_with_join_rebalancing_off_a_joining_worker_gets_nothing(fleet: Fleet) -> None:
    workers = two_workers_running_six(fleet, rebalanceOnJoinEnabled=False)
    workers.append(fleet.start("w3", rebalanceOnJoinEnabled=False))
    eventually(lambda: leader_seen_by_all(workers), 60, "all three see each other")
    watch_until = time.monotonic() + 6.0
    while time.monotonic() < watch_until:
        assert running_per_worker(workers) == {"w1": 3, "w2": 3, "w3": 0}
        time.sleep(0.5)
    assert join_moves_counted(workers[0]) == 0
