"""Fleet convergence at 1,000 workers, driven by the real fleet protocol (issue 15
point 6; formerly issue 3 point 7 and issue 7 scenario b on an instant stand-in).

Every simulated worker is a ``NodeState`` stepped by the pure protocol's
``step(state, input, now)``; the leader's planning pass is the real
``LeaderPlanner`` (placement, then the automatic rebalance); topics are lists read
through cursors; one simulated clock (``bench/sim/protocol_fleet.py``: the scenario
simulator of ``tests/protocol/sim.py``, made to scale). Default timings: heartbeat
200 ms, dead timeout 1 s, lease renew 150 ms, lease timeout 600 ms; default
rebalance policy. Records are delivered without delay; instances start at once.

Per size (workers; 100 instances per worker as functions x parallelism 10):

0. formation: every worker starts at t = 0; ``leader`` = every worker names the same
   leader, which leads; ``members`` = every worker's view has every worker.
1. register every function at once; ``placed`` = the leader's table places every
   instance; ``applied`` (= ``observed_s``) = every worker holds exactly its part.
2. kill 10 % of the workers at once (never the leader); ``declared`` = the leader's
   view is without them; ``placed`` = its table has every instance and none on them;
   ``applied``.
3. kill 1 worker (not the leader); the same times.
4. kill the leader: ``leader`` = the survivors agree on a new one; ``placed``; ``applied``.
5. a worker joins: ``member``; ``first`` = it has an instance in the table;
   ``balanced`` = the leader's hysteresis sees nothing to even out, and applied.
6. idle: ``--idle`` simulated seconds with nothing happening.

Every time is SIMULATED seconds from the action (checked every 10 ms of simulated
time), i.e. what the protocol's timers and passes cost, not CPU. ``cpu_s`` is the
real CPU time (``time.process_time``) the simulation spent, minus the bench's own
checks; ``cpu per sim s`` divides it by the simulated seconds: how expensive the
protocol's steps are at that size (one process does every worker's work, so it is
the fleet's total). ``steps`` counts ``step`` calls by input. Idle is measured
twice: heartbeats read by the leader only (the Pulsar backend now) and by every
worker (before: O(workers^2) deliveries, ignored by non-leaders).

Run: ``.venv/bin/python bench/fleet_bench.py [--quick] [--sizes 10,100,1000]``;
writes ``bench/results/fleet.json`` (``fleet-quick.json`` with ``--quick``). Exit 1
if a correctness check fails (the simulator's safety checks, every instance held
once at the end of each scenario), never because of a time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine, results_dir  # noqa: E402
from bench.sim.fleet import CHECK_EVERY, CLUSTER, PARALLELISM, Fleet, name_of  # noqa: E402
from tests.protocol.sim import SafetyViolation  # noqa: E402

LIMIT_S = 60.0
"""Simulated seconds a scenario may take before it counts as not converged."""
FULL_SIZES = (10, 100, 300, 1000)
QUICK_SIZES = (10, 50)


def scenario(
    name: str, times: dict[str, float | None], cost: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One result row; ``observed_s`` is the time every worker applied the outcome."""
    observed = times.get("applied", times.get("balanced"))
    return {"scenario": name, "observed_s": observed, "times_s": times, **cost, **extra}


def run_size(
    workers: int, per_worker: int, idle_s: float, log: Callable[[str], None]
) -> dict[str, Any]:
    """Every scenario on one fresh fleet of ``workers``."""
    fleet = Fleet(workers, per_worker)
    sim = fleet.sim
    rows: list[dict[str, Any]] = []
    for index in range(1, workers + 1):
        sim.start(name_of(index), CLUSTER)
    times, cost = fleet.until(
        {"leader": lambda: fleet.agreed() is not None, "members": fleet.everyone_sees_everyone},
        LIMIT_S,
    )
    rows.append(scenario("0 formation", times, cost))
    for index in range(fleet.functions):
        sim.add_function(f"f{index}", PARALLELISM, CLUSTER)
    times, cost = fleet.until({"placed": fleet.placed, "applied": fleet.applied}, LIMIT_S)
    sim.check_quiet()
    rows.append(scenario(f"1 register {fleet.total:,} instances", times, cost))
    rows.append({"scenario": "6 idle, leader reads heartbeats", **fleet.idle(idle_s, False)})
    rows.append(
        {"scenario": "6b idle, every worker reads heartbeats", **fleet.idle(min(idle_s, 1.0), True)}
    )
    killed = max(1, workers // 10)
    rows.append(kill(fleet, f"2 kill {killed} workers", killed))
    rows.append(kill(fleet, "3 kill 1 worker", 1))
    rows.append(kill_leader(fleet))
    rows.append(join(fleet, name_of(workers + 1)))
    for row in rows:
        spent = f"cpu {row['cpu_s']} s, {row['cpu_per_sim_s']} per sim s"
        log(f"{workers:>5} workers  {row['scenario']:<40} {row.get('times_s', '')}  {spent}")
    return {"workers": workers, "instances": fleet.total, "killed": killed, "results": rows}


def kill(fleet: Fleet, name: str, count: int) -> dict[str, Any]:
    """SIGKILL ``count`` non-leaders at once."""
    leader = fleet.agreed()
    victims = [n for n in fleet.names() if n != leader][::-1][:count]
    moved = sum(fleet.counts().get(v, 0) for v in victims)
    for victim in victims:
        fleet.sim.kill(victim)

    def declared() -> bool:
        view = fleet.leader_view()
        return not view & set(victims)

    times, cost = fleet.until(
        {"declared": declared, "placed": fleet.placed, "applied": fleet.applied}, LIMIT_S
    )
    fleet.sim.check_quiet()
    return scenario(name, times, cost, moved=moved)


def kill_leader(fleet: Fleet) -> dict[str, Any]:
    """SIGKILL the leader."""
    old = fleet.agreed()
    assert old is not None
    moved = fleet.counts().get(old, 0)
    fleet.sim.kill(old)
    times, cost = fleet.until(
        {
            "leader": lambda: fleet.agreed() not in (None, old),
            "placed": fleet.placed,
            "applied": fleet.applied,
        },
        LIMIT_S,
    )
    fleet.sim.check_quiet()
    return scenario("4 kill the leader", times, cost, moved=moved)


def join(fleet: Fleet, name: str) -> dict[str, Any]:
    """One more worker; time until it has its share."""
    before = dict(fleet.table() or {})
    moves = len(fleet.sim.moves)
    fleet.sim.start(name, CLUSTER)
    times, cost = fleet.until(
        {
            "member": lambda: name in fleet.leader_view(),
            "first": lambda: fleet.counts().get(name, 0) > 0,
            "balanced": lambda: fleet.counts().get(name, 0) > 0 and fleet.balanced(),
        },
        LIMIT_S,
    )
    fleet.sim.check_quiet()
    after = fleet.table() or {}
    moved = sum(1 for i, a in after.items() if i in before and before[i].worker != a.worker)
    counts = fleet.counts()
    return scenario(
        "5 a worker joins",
        times,
        cost,
        moved=moved,
        moves_published=len(fleet.sim.moves) - moves,
        new_count=counts.get(name, 0),
        fair_share=fleet.total // len(fleet.sim.workers),
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"sizes {QUICK_SIZES}, 20 instances per worker"
    )
    parser.add_argument("--sizes", default=None, help="comma-separated worker counts")
    parser.add_argument("--per-worker", type=int, default=None, help="instances per worker")
    parser.add_argument("--idle", type=float, default=None, help="simulated idle seconds")
    args = parser.parse_args()
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else list(QUICK_SIZES if args.quick else FULL_SIZES)
    )
    per_worker = args.per_worker or (20 if args.quick else 100)
    idle_s = args.idle or (2.0 if args.quick else 5.0)
    started = datetime.now(UTC)
    wall = time.monotonic()
    runs: list[dict[str, Any]] = []
    failure = None
    try:
        for workers in sizes:
            runs.append(run_size(workers, per_worker, idle_s, log))
    except SafetyViolation as violation:
        failure = f"safety: {violation}"
    largest = runs[-1] if runs else {"workers": 0, "instances": 0, "killed": 0, "results": []}
    report = {
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "driven_by": "the protocol's step (bench/sim/protocol_fleet.py over tests/protocol/sim.py)",
        "check_every_sim_s": CHECK_EVERY,
        "setup": {
            "workers": largest["workers"],
            "instances": largest["instances"],
            "killed": largest["killed"],
            "per_worker": per_worker,
            "parallelism": PARALLELISM,
        },
        "results": largest["results"],
        "sizes": runs,
        "failure": failure,
        "wall_s": round(time.monotonic() - wall, 1),
    }
    out = results_dir() / ("fleet-quick.json" if args.quick else "fleet.json")
    out.write_text(json.dumps(report, indent=2))
    print_table(runs)
    print(f"\ncorrectness checks: {'FAILED: ' + failure if failure else 'all passed'}")
    print(f"total {report['wall_s']} s; results written to {out}")
    return 1 if failure else 0


HEADER = ("workers", "scenario", "sim s", "cpu s", "cpu/sim s", "steps/sim s", "times (sim s)")


def print_table(runs: list[dict[str, Any]]) -> None:
    """Simulated times and the CPU they cost, per size."""
    line = "{:>7} {:<40} {:>7} {:>7} {:>9} {:>11}  {}"
    print("\n" + line.format(*HEADER))
    for run in runs:
        for row in run["results"]:
            times = row.get("times_s", {})
            shown = " ".join(f"{k} {'-' if v is None else v}" for k, v in times.items())
            cells = (row["sim_s"], row["cpu_s"], row["cpu_per_sim_s"], row["steps_per_sim_s"])
            print(line.format(run["workers"], row["scenario"], *map(str, cells), shown))


if __name__ == "__main__":
    sys.exit(main())
