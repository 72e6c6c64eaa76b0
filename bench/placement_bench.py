"""Benchmark of the placement core (anchors G1 and G2); prints a table, writes JSON.

Plans 100,000 instances (10,000 functions x 10) onto 1,000 workers from nothing,
then re-plans after one worker dies, with the pure ``plan_placement`` and with
``PlacementIndex``, and rebalances after one worker joins. Every scenario runs
``WARMUP`` times untimed and then ``RUNS`` times; the median (and the min, since
the machine is noisy) is reported. A full ``gc.collect()`` runs before each timed
run, outside the timing, so one run's garbage is not charged to the next. Every
result is checked (balance, moved instances, index == pure plan). Bounded (a few
seconds), deterministic inputs, no network. The only I/O is writing
``bench/results/placement.json``.

The full run adds a sweep (round-robin, plan from nothing and index re-plan after
one loss, at 1,000 / 10,000 / 100,000 / 300,000 instances on 1,000 workers) for
the scaling plot of ``bench/report.py``. ``--quick`` runs 1,000 functions x 10 on
100 workers, 1 warm-up and 3 runs, no sweep (well under a second of work) and
writes ``placement-quick.json``.

    .venv/bin/python bench/placement_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import results_dir
from fnworker.scheduler.decide.placement import (
    InstanceDemand,
    Move,
    Placement,
    Strategy,
    plan_placement,
    plan_rebalance,
)
from fnworker.scheduler.decide.placement_index import PlacementIndex

FUNCTIONS, PARALLELISM, WORKERS, WARMUP, RUNS = 10_000, 10, 1_000, 2, 5
GOAL_FULL_MS, GOAL_REPLAN_MS = 50.0, 5.0
SWEEP_FUNCTIONS = (100, 1_000, 10_000, 30_000)


def make_demands(weights: tuple[float, ...]) -> list[InstanceDemand]:
    """10,000 functions x 10 instances; function f weighs ``weights[f % len(weights)]``."""
    return [
        InstanceDemand(instance=f"tenant/ns/fn{f:05d}:{n}", weight=weights[f % len(weights)])
        for f in range(FUNCTIONS)
        for n in range(PARALLELISM)
    ]


WORKER_IDS = [f"worker-{w:04d}" for w in range(WORKERS)]
LOST = WORKER_IDS[WORKERS // 2]
SURVIVORS = [w for w in WORKER_IDS if w != LOST]


def configure(functions: int, workers: int, warmup: int, runs: int) -> None:
    """Set the sizes every scenario reads (the module constants), e.g. for ``--quick``."""
    global FUNCTIONS, WORKERS, WARMUP, RUNS, WORKER_IDS, LOST, SURVIVORS
    FUNCTIONS, WORKERS, WARMUP, RUNS = functions, workers, warmup, runs
    WORKER_IDS = [f"worker-{w:04d}" for w in range(WORKERS)]
    LOST = WORKER_IDS[WORKERS // 2]
    SURVIVORS = [w for w in WORKER_IDS if w != LOST]


def timed(action: Callable[[], Any]) -> tuple[float, list[float], Any]:
    """Median and all wall times (ms) of ``action()``, after the warm-up runs."""
    return timed_with(lambda _: action(), lambda: None)


def timed_with(
    action: Callable[[Any], Any], setup: Callable[[], Any]
) -> tuple[float, list[float], Any]:
    """Like ``timed`` but each run acts on a fresh ``setup()``, which is not timed."""
    samples, result = [], None
    for run in range(WARMUP + RUNS):
        prepared = setup()
        gc.collect()
        start = time.perf_counter()
        result = action(prepared)
        elapsed = (time.perf_counter() - start) * 1000
        if run >= WARMUP:
            samples.append(elapsed)
    return statistics.median(samples), samples, result


def check_full(placement: Placement, strategy: Strategy) -> None:
    """The plan from nothing places everything on every worker; round-robin within one."""
    per_worker = Counter(placement.assignment.values())
    assert len(placement.assignment) == FUNCTIONS * PARALLELISM
    assert len(per_worker) == WORKERS
    if strategy == "roundrobin":
        assert max(per_worker.values()) - min(per_worker.values()) <= 1


def lost_instances(placement: Placement) -> set[str]:
    """The instances the lost worker was running."""
    return {i for i, w in placement.assignment.items() if w == LOST}


def row(
    name: str, strategy: Strategy, runs: list[float], goal: float | None, moves: int | None
) -> dict[str, Any]:
    """One result line: median and min of the runs, the goal, how many instances moved."""
    median = statistics.median(runs)
    return {
        "scenario": name,
        "strategy": strategy,
        "median_ms": round(median, 3),
        "min_ms": round(min(runs), 3),
        "runs_ms": [round(r, 3) for r in runs],
        "goal_ms": goal,
        "meets_goal": None if goal is None else median <= goal,
        "moves": moves,
        "moved_fraction": None if moves is None else round(moves / (FUNCTIONS * PARALLELISM), 5),
    }


def scenarios_for(
    strategy: Strategy, label: str, demands: list[InstanceDemand]
) -> list[dict[str, Any]]:
    """Full plan, pure re-plan after one loss, index build and index re-plan."""
    _, full_runs, full = timed(lambda: plan_placement(demands, WORKER_IDS, {}, strategy))
    check_full(full, strategy)
    _, replan_runs, replan = timed(
        lambda: plan_placement(demands, SURVIVORS, full.assignment, strategy)
    )
    assert {m.instance for m in replan.moves} == lost_instances(full), "only the lost worker's"
    weights = {d.instance: d.weight for d in demands}

    def fresh_index() -> PlacementIndex:
        return PlacementIndex.from_placement(full, WORKER_IDS, strategy, weights)

    _, build_runs, _ = timed(fresh_index)
    _, index_runs, index_moves = timed_with(lambda index: index.remove_worker(LOST), fresh_index)
    assert index_moves == list(replan.moves), "index and pure re-plan decide the same"
    return [
        row(f"{label}: plan from nothing", strategy, full_runs, GOAL_FULL_MS, len(full.moves)),
        row(
            f"{label}: re-plan, 1 worker lost, pure",
            strategy,
            replan_runs,
            GOAL_REPLAN_MS,
            len(replan.moves),
        ),
        row(f"{label}: PlacementIndex build (once)", strategy, build_runs, None, None),
        row(
            f"{label}: re-plan, 1 worker lost, index",
            strategy,
            index_runs,
            GOAL_REPLAN_MS,
            len(index_moves),
        ),
    ]


def join_scenarios(demands: list[InstanceDemand]) -> list[dict[str, Any]]:
    """Round-robin rebalance after a 1,001st worker joins, pure and with the index."""
    full = plan_placement(demands, WORKER_IDS, {}, "roundrobin")
    grown = [*WORKER_IDS, "worker-new"]
    _, pure_runs, pure = timed(lambda: plan_rebalance(full.assignment, grown, "roundrobin"))

    def joined(index: PlacementIndex) -> list[Move]:
        return index.add_worker("worker-new") + index.rebalance()

    _, index_runs, moves = timed_with(
        joined, lambda: PlacementIndex.from_placement(full, WORKER_IDS, "roundrobin")
    )
    assert moves == list(pure.moves) and {m.target for m in moves} == {"worker-new"}
    return [
        row(
            "roundrobin: rebalance, 1 worker joined, pure",
            "roundrobin",
            pure_runs,
            None,
            len(moves),
        ),
        row(
            "roundrobin: rebalance, 1 worker joined, index",
            "roundrobin",
            index_runs,
            None,
            len(moves),
        ),
    ]


def machine() -> dict[str, Any]:
    """nproc, Python version and CPU model, as the README's Machine line shows them."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "python": platform.python_version(), "cpu": model}


def print_table(rows: list[dict[str, Any]]) -> None:
    """The results as a fixed-width table (moved = share of all instances)."""
    header = f"{'scenario':54} {'median ms':>9} {'min ms':>8} {'goal ms':>7} {'ok':>3}"
    print(f"{header} {'moves':>7} {'moved':>6}")
    for line in rows:
        goal = "-" if line["goal_ms"] is None else f"{line['goal_ms']:.0f}"
        ok = "-" if line["meets_goal"] is None else ("yes" if line["meets_goal"] else "NO")
        moves = "-" if line["moves"] is None else str(line["moves"])
        moved = "-" if line["moved_fraction"] is None else f"{line['moved_fraction']:.2%}"
        print(
            f"{line['scenario']:54} {line['median_ms']:9.2f} {line['min_ms']:8.2f} {goal:>7}"
            f" {ok:>3} {moves:>7} {moved:>6}"
        )


def sweep() -> list[dict[str, Any]]:
    """Round-robin plan from nothing and index re-plan at growing sizes (1,000 workers)."""
    points = []
    for functions in SWEEP_FUNCTIONS:
        configure(functions, 1_000, 1, 5)
        demands = make_demands((1.0,))
        full_ms, full_runs, full = timed(
            lambda demands=demands: plan_placement(demands, WORKER_IDS, {}, "roundrobin")
        )
        check_full(full, "roundrobin")
        replan_ms, _, _ = timed_with(
            lambda index: index.remove_worker(LOST),
            lambda full=full: PlacementIndex.from_placement(full, WORKER_IDS, "roundrobin"),
        )
        points.append({
            "instances": functions * PARALLELISM,
            "workers": 1_000,
            "plan_from_nothing_median_ms": round(full_ms, 3),
            "plan_from_nothing_min_ms": round(min(full_runs), 3),
            "index_replan_median_ms": round(replan_ms, 3),
        })  # fmt: skip
        print(
            f"sweep {functions * PARALLELISM:>7,} instances: plan {full_ms:8.2f} ms,"
            f" index re-plan {replan_ms:6.2f} ms",
            flush=True,
        )
    return points


def main() -> None:
    """Run every scenario, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 fn x 10 on 100 workers")
    args = parser.parse_args()
    if args.quick:
        configure(1_000, 100, 1, 3)
    out = results_dir() / ("placement-quick.json" if args.quick else "placement.json")
    rows = scenarios_for("roundrobin", "roundrobin", make_demands((1.0,)))
    rows += join_scenarios(make_demands((1.0,)))
    rows += scenarios_for("leastloaded", "leastloaded w=1", make_demands((1.0,)))
    rows += scenarios_for("leastloaded", "leastloaded w=0.5/1/2", make_demands((0.5, 1.0, 2.0)))
    print_table(rows)
    setup = {
        "warmup": WARMUP,
        "functions": FUNCTIONS,
        "parallelism": PARALLELISM,
        "workers": WORKERS,
        "runs": RUNS,
        "quick": args.quick,
    }
    points = [] if args.quick else sweep()
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": setup,
        "results": rows,
        "sweep": points,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
