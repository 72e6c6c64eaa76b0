"""Fleet convergence benchmark of the control plane (issue 3 point 7, issue 7 scenario b).

1,000 simulated workers in ONE process on the memory coordination backend (see
``bench/sim/fleet.py``): every worker runs the real ``pump_events`` into a real
``LocalAssignments``; the leader also runs the real ``lead()`` loop. Scenarios:

0. fleet formation: the workers join one by one (each join is broadcast to every
   member: ~W^2/2 membership events). No goal.
1. register 10,000 functions x parallelism 10 in one batched write, and time until
   EVERY worker's ``LocalAssignments`` equals its part of the leader's table.
   Goal: under 10 s.
2. 10 % of the workers (100, never the leader) die and are declared dead in one
   sweep (one membership change, as the pulsar leader's liveness sweep reports
   them); time until their instances are re-planned, published and applied by
   the new owners. Goal: under 3 s.
3. one more worker dies; the same measurement. No goal.
2b. (first run only) 100 more workers leave one by one (``remove_member`` each,
   what ``leave()`` does): 100 membership changes in one burst. Goal as for 2.

Each run builds a fleet from scratch; ``--runs`` runs (default 3) give the
medians. Timing: ``t0`` just before the write or the removals. Each worker's
``LocalAssignments`` records when it last changed; once the fleet is idle (every
live pump parked on an empty stream, no leader pass pending) every worker's table
is checked against the leader's, and ``observed`` = the latest change of any
worker minus ``t0``: when the last worker reached its final, verified table (an
upper bound if its last event changed nothing). ``published`` is when the
leader's last ``publish_assignments`` of the scenario returned.

Records: ``MemoryCluster.assignment_records_delivered`` counts the assignment
records delivered to workers; ``per change`` divides it by the instances whose
assignment changed. ``full-table reads`` is instances x workers, what the fleet
would read if every worker re-read the whole table on every change.

Batched registration: ``write_function`` broadcasts one ``FunctionsChanged`` per
record (10,000 x 1,000 = 10 M metadata events here). ``write_functions_batched``
does the same checks and stores with one event for all records. ``--unbatched``
adds a row that registers 1/10 of the functions one by one through
``write_function`` to measure that path (slow: tens of seconds at full size).

Run: ``.venv/bin/python bench/fleet_bench.py [--quick] [--runs N] [--unbatched]``;
writes ``bench/results/fleet.json`` (``fleet-quick.json`` with ``--quick``). The
exit status is 1 when a correctness check fails (never because of a timing).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import structlog

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import results_dir
from bench.sim.fleet import (
    STRATEGY,
    Fleet,
    function_records,
    write_functions_batched,
)
from fnworker.scheduler.model.records import InstanceId, WorkerId

GOAL_REGISTER_S = 10.0
GOAL_KILL_S = 3.0


@dataclass(frozen=True)
class Sizes:
    """One run's sizes; ``kill`` workers die in scenarios 2 and 2b."""

    workers: int
    functions: int
    parallelism: int
    kill: int
    settle_timeout_s: float = 60.0

    @property
    def instances(self) -> int:
        """Instances the functions ask for in total."""
        return self.functions * self.parallelism


FULL = Sizes(workers=1_000, functions=10_000, parallelism=10, kill=100)
QUICK = Sizes(workers=100, functions=100, parallelism=10, kill=10, settle_timeout_s=30.0)


def changed_instances(
    before: Mapping[InstanceId, tuple[WorkerId, int]],
    after: Mapping[InstanceId, tuple[WorkerId, int]],
) -> set[InstanceId]:
    """Instances added, removed, moved or re-versioned between two tables."""
    changed = {i for i, v in after.items() if before.get(i) != v}
    return changed | {i for i in before if i not in after}


async def measure(
    fleet: Fleet, sizes: Sizes, name: str, act: Callable[[], Any], dead: Sequence[WorkerId] = ()
) -> dict[str, Any]:
    """Run ``act()`` at t0, wait until the fleet settles, check it, report times and records."""
    leader = fleet.leader()
    workers_before = len(fleet.live())
    before = fleet.snapshot()
    delivered_before = fleet.cluster.assignment_records_delivered
    publishes_before = len(leader.backend.publishes)
    gc.collect()
    t0 = time.perf_counter()
    act()
    settled_at = await fleet.settle(sizes.settle_timeout_s)
    publishes = leader.backend.publishes[publishes_before:]
    after = fleet.snapshot()
    changed = changed_instances(before, after)
    delivered = fleet.cluster.assignment_records_delivered - delivered_before
    changed_at = [w.mine.changed_at for w in fleet.live() if w.mine.changed_at > t0]
    row = {
        "scenario": name,
        "published_s": round(publishes[-1][1] - t0, 4) if publishes else None,
        "first_publish_s": round(publishes[0][0] - t0, 4) if publishes else None,
        "observed_s": round(max(changed_at) - t0, 4) if changed_at else None,
        "settled_s": round(settled_at - t0, 4),
        "leader_publishes": len(publishes),
        "records_published": sum(p[2] + p[3] for p in publishes),
        "instances_changed": len(changed),
        "records_delivered": delivered,
        "records_per_change": round(delivered / len(changed), 4) if changed else None,
        "full_table_reads": len(after) * workers_before,
        "workers_changed": len(changed_at),
        **fleet.check(),
    }
    if dead:
        dead_set = set(dead)
        on_dead = {i for i, (worker, _) in before.items() if worker in dead_set}
        moved = {i for i in after if before.get(i, (None, 0))[0] != after[i][0]}
        row |= {
            "dead_workers": len(dead),
            "instances_on_dead": len(on_dead),
            "moved": len(moved),
            "only_dead_moved": moved == on_dead,
        }
    return row


def checks_pass(row: dict[str, Any], sizes: Sizes) -> bool:
    """The correctness facts of one scenario row (never a timing)."""
    ok = (
        row["workers_matching_leader"] == row["live_workers"]
        and row["instances_on_dead_workers"] == 0
    )
    if not row["scenario"].startswith("0 "):
        ok = ok and row["instances_assigned"] == sizes.instances
        ok = ok and row["max_per_worker"] - row["min_per_worker"] <= 1
        # Every changed instance is delivered once, to its new owner (a dead old
        # owner has no stream, so nothing is delivered to it).
        ok = ok and row["records_delivered"] == row["instances_changed"]
    if "only_dead_moved" in row:
        ok = ok and row["only_dead_moved"] and row["moved"] == row["instances_on_dead"]
    return bool(ok)


async def one_run(
    sizes: Sizes, run: int, progress: bool = True, one_by_one: bool = False
) -> list[dict[str, Any]]:
    """Build a fleet from scratch and run scenarios 0-3 (and 2b when ``one_by_one``)."""
    rows: list[dict[str, Any]] = []
    records = function_records(sizes.functions, sizes.parallelism)

    def say(row: dict[str, Any]) -> None:
        rows.append(row)
        if progress:
            seconds = row.get("observed_s") or row["settled_s"]
            print(
                f"  run {run}: {row['scenario']:<30} {seconds:8.3f} s,"
                f" {row['records_delivered']:>7,} records delivered,"
                f" checks {'ok' if checks_pass(row, sizes) else 'FAILED'}",
                flush=True,
            )

    async with anyio.create_task_group() as group:
        fleet = Fleet(group)
        gc.collect()
        t0 = time.perf_counter()
        await fleet.join(sizes.workers)
        joined = time.perf_counter()
        settled = await fleet.settle(sizes.settle_timeout_s)
        say(
            {
                "scenario": "0 fleet formation",
                "join_s": round(joined - t0, 4),
                "settled_s": round(settled - t0, 4),
                "records_delivered": fleet.cluster.assignment_records_delivered,
                "membership_events": sizes.workers * (sizes.workers + 1) // 2,
                **fleet.check(),
            }
        )
        say(
            await measure(
                fleet,
                sizes,
                "1 register + place + observe",
                lambda: write_functions_batched(fleet.cluster, records),
            )
        )
        dead = fleet.victims(sizes.kill)
        say(
            await measure(
                fleet, sizes, f"2 kill {len(dead)} workers", lambda: fleet.kill(dead), dead
            )
        )
        one = fleet.victims(1)
        say(await measure(fleet, sizes, "3 kill 1 worker", lambda: fleet.kill(one), one))
        if one_by_one:
            more = fleet.victims(sizes.kill)
            say(
                await measure(
                    fleet,
                    sizes,
                    f"2b kill {len(more)} one by one",
                    lambda: fleet.kill_one_by_one(more),
                    more,
                )
            )
        group.cancel_scope.cancel()
    return rows


async def unbatched_run(sizes: Sizes) -> dict[str, Any]:
    """Scenario 1 with one ``write_function`` call per function (metadata fan-out cost)."""
    records = function_records(sizes.functions, sizes.parallelism)
    async with anyio.create_task_group() as group:
        fleet = Fleet(group)
        await fleet.join(sizes.workers)
        await fleet.settle(sizes.settle_timeout_s)
        writer = fleet.leader().backend

        async def write_all() -> None:
            for record in records:
                await writer.write_function(record, 0)

        row = await measure(
            fleet, sizes, "1u register one by one", lambda: group.start_soon(write_all)
        )
        row["metadata_events"] = sizes.functions * sizes.workers
        group.cancel_scope.cancel()
    return row


def median_rows(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per scenario: the median of every number over the runs it ran in (``runs``),
    with every run's value for the times; other values as they were (a list if
    they differed)."""
    by_scenario: dict[str, list[dict[str, Any]]] = {}
    for run_rows in runs:
        for row in run_rows:
            by_scenario.setdefault(row["scenario"], []).append(row)
    merged = []
    for rows in by_scenario.values():
        out: dict[str, Any] = {"scenario": rows[0]["scenario"], "runs": len(rows)}
        for key, value in rows[0].items():
            values = [r[key] for r in rows]
            numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numbers:
                out[key] = statistics.median(values)
                if key.endswith("_s"):
                    out[f"{key}_runs"] = values
            elif key != "scenario":
                out[key] = value if all(v == value for v in values) else values
        merged.append(out)
    return merged


def goal_of(scenario: str) -> float | None:
    """The goal in seconds of a scenario, if it has one."""
    if scenario.startswith("1 "):
        return GOAL_REGISTER_S
    if scenario.startswith(("2 ", "2b ")):
        return GOAL_KILL_S
    return None


def seconds(value: Any) -> str:
    """A time for the table."""
    return "-" if value is None else f"{value:.3f}"


def print_table(rows: list[dict[str, Any]], sizes: Sizes) -> None:
    """The medians as a fixed-width table, goals beside the measured values."""
    print(
        f"\n{sizes.workers:,} workers, {sizes.functions:,} functions x {sizes.parallelism}"
        f" = {sizes.instances:,} instances, strategy {STRATEGY}; medians over 'runs'\n"
    )
    print(
        f"{'scenario':30} {'runs':>4} {'published s':>11} {'observed s':>10} {'goal s':>6}"
        f" {'met':>3} {'changed':>8} {'delivered':>9} {'per chg':>7} {'full-table reads':>16}"
        f" {'moved':>7}"
    )
    for row in rows:
        if row["scenario"].startswith("0 "):
            print(
                f"{row['scenario']:30} {row['runs']:>4} {'-':>11} {row['settled_s']:10.3f}"
                f" {'-':>6} {'-':>3} {'-':>8} {row['records_delivered']:>9,} {'-':>7} {'-':>16}"
                f" {'-':>7}  ({row['membership_events']:,.0f} membership events; 'observed' ="
                " all consumed)"
            )
            continue
        goal = goal_of(row["scenario"])
        observed = row["observed_s"]
        met = "-" if goal is None else ("yes" if observed is not None and observed < goal else "NO")
        per = "-" if row["records_per_change"] is None else f"{row['records_per_change']:.2f}"
        print(
            f"{row['scenario']:30} {row['runs']:>4} {seconds(row['published_s']):>11}"
            f" {seconds(observed):>10} {'-' if goal is None else f'< {goal:.0f}':>6} {met:>3}"
            f" {row['instances_changed']:>8,.0f} {row['records_delivered']:>9,.0f} {per:>7}"
            f" {row['full_table_reads']:>16,.0f}"
            f" {'-' if 'moved' not in row else format(row['moved'], ',.0f'):>7}"
        )


def machine() -> dict[str, Any]:
    """nproc, Python version and CPU model."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "python": platform.python_version(), "cpu": model}


def run_bench(
    sizes: Sizes,
    runs: int,
    *,
    unbatched: Sizes | None = None,
    progress: bool = True,
    one_by_one: bool = True,
) -> dict[str, Any]:
    """Every run of every scenario: medians, each run's rows, the checks and the setup.

    Scenario 2b runs in the first run only (at full size it takes far longer than
    the others).
    """
    all_runs = []
    for run in range(1, runs + 1):
        all_runs.append(anyio.run(one_run, sizes, run, progress, one_by_one and run == 1))
        gc.collect()
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {
            "workers": sizes.workers,
            "functions": sizes.functions,
            "parallelism": sizes.parallelism,
            "instances": sizes.instances,
            "killed": sizes.kill,
            "runs": runs,
            "strategy": STRATEGY,
            "registration": "batched: one FunctionsChanged event for all records",
            "goals_s": {"register": GOAL_REGISTER_S, "kill_10_percent": GOAL_KILL_S},
        },
        "checks_pass": all(checks_pass(row, sizes) for rows in all_runs for row in rows),
        "results": median_rows(all_runs),
        "runs": all_runs,
    }
    if unbatched is not None:
        row = anyio.run(unbatched_run, unbatched)
        report["checks_pass"] = report["checks_pass"] and checks_pass(row, unbatched)
        report["unbatched"] = {
            "setup": {
                "workers": unbatched.workers,
                "functions": unbatched.functions,
                "parallelism": unbatched.parallelism,
            },
            "result": row,
        }
    return report


def quiet_logs() -> None:
    """Drop the leader's info lines (one per plan) so the table stays readable."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    """Parse options, run, print the table and write the JSON; 1 if a check failed."""
    parser = argparse.ArgumentParser(description="Fleet convergence benchmark (memory backend).")
    parser.add_argument("--quick", action="store_true", help="100 workers x 1,000 instances")
    parser.add_argument("--runs", type=int, default=None, help="fleets built (default 3, quick 1)")
    parser.add_argument(
        "--unbatched", action="store_true", help="also register 1/10 of the functions one by one"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    runs = args.runs or (1 if args.quick else 3)
    unbatched = None
    if args.unbatched:
        unbatched = Sizes(
            workers=sizes.workers,
            functions=sizes.functions // 10,
            parallelism=sizes.parallelism,
            kill=0,
            settle_timeout_s=120.0,
        )
    quiet_logs()
    print(f"fleet bench: {sizes.workers:,} workers, {sizes.instances:,} instances, {runs} run(s)")
    started = time.perf_counter()
    report = run_bench(sizes, runs, unbatched=unbatched)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print_table(report["results"], sizes)
    if unbatched is not None:
        row = report["unbatched"]["result"]
        print(
            f"\n1u unbatched: {unbatched.functions:,} functions x {unbatched.parallelism}"
            f" registered one write_function each on {unbatched.workers:,} workers"
            f" ({row['metadata_events']:,} metadata events): observed {seconds(row['observed_s'])}"
            f" s, published {seconds(row['published_s'])} s,"
            f" {row['records_delivered']:,} records delivered"
        )
    print(f"\ncorrectness checks: {'all passed' if report['checks_pass'] else 'FAILED'}")
    out = results_dir() / ("fleet-quick.json" if args.quick else "fleet.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total {report['wall_s']} s; results written to {out}")
    return 0 if report["checks_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
