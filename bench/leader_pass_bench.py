"""Benchmark of the leader's pass through the real code path: ``worker_loops.leader_pass``
(what ``lead()`` runs on every wake-up) with its ``LeaderPlanner`` on the in-memory
backend, 100,000 instances (10,000 functions x 10) on 1,000 workers.

Rows (each: ``WARMUP`` untimed, then ``RUNS`` timed passes; median and min; a full
``gc.collect()`` before each timed pass, outside the timing):

* first pass: plan from nothing and build the index (a new leader's first pass);
* idle pass: a wake-up that changes nothing;
* 1 worker lost (a member removed), 1 worker joined (nothing moves);
* 1 function updated (next version: its 10 instances re-written in place);
* 1 function registered (10 new instances);
* drain of 1 worker (its ~100 instances move, reason drain);
* 1 worker joined and settled: the automatic rebalance moves its fair share onto it
  (reason join, at most ``rebalanceMaxMovesPerPass``; every pass runs with the shipped
  rebalance settings, at a fixed time until this row moves the clock past the settle);
* for comparison, the old pass: ``plan_assignments`` from nothing after 1 worker lost.

Each timed pass covers everything the leader does: read membership and functions,
the admission filter, plan, publish to the memory backend (which applies the records
to its table; no member streams are attached, so nothing is delivered), settle
drains. After every pass the bench checks that the planner's table is the backend's
and that the reference ``plan_assignments`` finds nothing left to change (exit 1
otherwise), and that the counted reasons match the scenario.

    .venv/bin/python bench/leader_pass_bench.py [--quick]

``--quick``: 1,000 functions x 10 on 100 workers, 1 warm-up and 3 runs, writes
``leader-pass-quick.json`` (else ``leader-pass.json``) in ``bench/results/``
(``FNWORKER_BENCH_RESULTS`` elsewhere).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import structlog

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine, results_dir
from bench.sim.instant_cluster import MemoryCluster, MemoryCoordination
from fnworker.scheduler.admin.leader_control import LeaderControl, Wakeup
from fnworker.scheduler.decide.admission_limits import AdmissionMemo, FunctionLimits
from fnworker.scheduler.decide.assignment_plan import CHANGE_REASONS, plan_assignments
from fnworker.scheduler.decide.auto_rebalance import RebalancePolicy, observe_workers
from fnworker.scheduler.decide.leader_plan import LeaderPlanner
from fnworker.scheduler.model.prometheus import AssignmentChangeCounter
from fnworker.scheduler.model.records import (
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    WorkerId,
    WorkerInfo,
)
from fnworker.scheduler.worker.worker_loops import leader_pass

STRATEGY = "roundrobin"


class Bench:
    """One leader on a ``MemoryCluster`` with every other member present but silent."""

    def __init__(self, functions: int, workers: int) -> None:
        self.cluster = MemoryCluster()
        self.infos = [
            WorkerInfo(worker_id=f"w{i:04d}", worker_hostname="bench", port=i)
            for i in range(workers)
        ]
        for info in self.infos:
            self.cluster.members[WorkerId(info.worker_id)] = info
        self.cluster.leader = WorkerId(self.infos[0].worker_id)
        self.cluster.term = 1
        self.me = self.infos[0]
        self.backend = MemoryCoordination(self.cluster)
        self.backend.me = self.me
        for n in range(functions):
            self.register(n)
        self.control = LeaderControl(Wakeup())
        self.admission = AdmissionMemo(FunctionLimits())
        self.planner = LeaderPlanner()
        self.counter = AssignmentChangeCounter(CHANGE_REASONS)
        self.next_function = functions
        self.next_worker = workers
        self.drains = 0
        self.held = 0
        """What the worker lost or drained last held (the moves its pass must make)."""
        self.policy = RebalancePolicy()
        self.now = 0.0
        """The passes' time (the automatic rebalance's clock): fixed unless a row moves it."""

    def register(self, n: int) -> None:
        """Store function ``n`` (parallelism 10) as a write would."""
        fqfn = Fqfn(f"bench/ns/f{n:06d}")
        self.cluster.functions[fqfn] = FunctionRecord(
            fqfn=fqfn, version=1, config=FunctionConfig(parallelism=10)
        )

    async def run_pass(self) -> dict[str, int]:
        """One leader pass; the reasons it counted."""
        before = dict(self.counter.counts)
        await leader_pass(
            self.backend,
            self.me,
            STRATEGY,
            self.control,
            self.planner,
            self.admission,
            self.counter,
            self.policy,
            self.now,
        )
        return {
            r: c - before.get(r, 0) for r, c in self.counter.counts.items() if c != before.get(r, 0)
        }

    def check(self) -> None:
        """The backend holds the planner's table, and nothing is left to change."""
        table = self.backend.assignments()
        workers = self.control.eligible(tuple(self.cluster.members.values()))
        if self.planner.index is not None and self.planner.table != table:
            raise SystemExit("FAIL: the planner's table is not the backend's")
        left = plan_assignments(self.cluster.functions, workers, table, 1, STRATEGY)
        if not left.is_empty():
            raise SystemExit(f"FAIL: the reference plan still changes {len(left.assigned)}")

    # -- the changes before each timed pass -------------------------------------

    def lose_worker(self) -> None:
        """Remove a member (never the leader)."""
        victim = self.infos.pop(len(self.infos) // 2)
        del self.cluster.members[WorkerId(victim.worker_id)]
        self.held = self.holding(victim.worker_id)

    def join_worker(self) -> None:
        """A new member."""
        info = WorkerInfo(worker_id=f"w{self.next_worker:04d}", worker_hostname="bench", port=0)
        self.next_worker += 1
        self.infos.append(info)
        self.cluster.members[WorkerId(info.worker_id)] = info

    def join_and_settle(self) -> None:
        """A new member that the last pass saw, and time past its settle and the interval."""
        self.join_worker()
        workers = self.control.eligible(tuple(self.cluster.members.values()))
        self.planner.memory = observe_workers(self.policy, self.planner.memory, workers, self.now)
        self.now += 60.0

    def update_function(self) -> None:
        """The next version of one function."""
        fqfn = next(iter(self.cluster.functions))
        old = self.cluster.functions[fqfn]
        self.cluster.functions[fqfn] = msgspec.structs.replace(old, version=old.version + 1)

    def add_function(self) -> None:
        """One more function."""
        self.register(self.next_function)
        self.next_function += 1

    def drain_worker(self) -> None:
        """Drain a member with instances (not the leader)."""
        self.drains += 1
        target = self.infos[len(self.infos) // 3 + self.drains].worker_id
        self.control.drains.clear()
        self.control.request_drain(target)
        self.held = self.holding(target)

    def holding(self, worker_id: str) -> int:
        """How many instances a worker holds now."""
        return sum(1 for a in self.cluster.assignments.values() if a.worker == worker_id)

    def forget(self) -> None:
        """A new leader: no table, a fresh planner."""
        self.cluster.assignments.clear()
        self.planner = LeaderPlanner()

    def old_pass_after_loss(self) -> Callable[[], Awaitable[dict[str, int]]]:
        """The previous leader pass: plan_assignments from nothing, then publish."""

        async def run() -> dict[str, int]:
            workers = self.control.eligible(tuple(self.cluster.members.values()))
            changes = plan_assignments(
                self.admission.admitted(self.cluster.functions),
                workers,
                self.backend.assignments(),
                1,
                STRATEGY,
            )
            await self.backend.publish_assignments(1, changes.assigned, changes.unassigned)
            self.planner.forget()
            return changes.reason_counts()

        return run


async def timed_row(
    bench: Bench,
    name: str,
    prepare: Callable[[], None],
    warmup: int,
    runs: int,
    expect: Callable[[dict[str, int]], bool],
    run: Callable[[], Awaitable[dict[str, int]]] | None = None,
) -> dict[str, Any]:
    """``prepare`` then one timed pass, ``warmup + runs`` times; checked every time."""
    times, counted = [], {}
    for n in range(warmup + runs):
        prepare()
        gc.collect()
        start = time.perf_counter()
        counted = await (run or bench.run_pass)()
        elapsed = (time.perf_counter() - start) * 1000
        bench.check()
        if not expect(counted):
            raise SystemExit(f"FAIL: {name}: unexpected changes {counted}")
        if n >= warmup:
            times.append(elapsed)
    line = {
        "scenario": name,
        "median_ms": round(statistics.median(times), 3),
        "min_ms": round(min(times), 3),
        "runs_ms": [round(t, 3) for t in times],
        "changes": counted,
    }
    print(f"{name:52} {line['median_ms']:9.2f} {line['min_ms']:9.2f}  {counted}", flush=True)
    return line


async def scenarios(functions: int, workers: int, warmup: int, runs: int) -> list[dict[str, Any]]:
    """Every row, in an order where each starts from a settled fleet."""
    bench = Bench(functions, workers)
    instances = functions * 10

    print(f"{'scenario':52} {'median ms':>9} {'min ms':>9}  changes", flush=True)
    rows = [
        await timed_row(
            bench, "first pass (plan from nothing + index build)", bench.forget, warmup, runs,
            lambda c: c == {"new": instances},
        ),
        await timed_row(
            bench, "idle pass (nothing changed)", lambda: None, warmup, runs, lambda c: c == {}
        ),
        await timed_row(
            bench, "1 worker lost", bench.lose_worker, warmup, runs,
            lambda c: c == {"worker_lost": bench.held},
        ),
        await timed_row(
            bench, "1 worker joined", bench.join_worker, warmup, runs, lambda c: c == {}
        ),
        await timed_row(
            bench, "1 function updated (10 instances)", bench.update_function, warmup, runs,
            lambda c: c == {"update": 10},
        ),
        await timed_row(
            bench, "1 function registered (10 instances)", bench.add_function, warmup, runs,
            lambda c: c == {"new": 10},
        ),
        await timed_row(
            bench, "drain of 1 worker", bench.drain_worker, warmup, runs,
            lambda c: c == {"drain": bench.held},
        ),
        await timed_row(
            bench, "1 worker joined + settled (automatic rebalance)", bench.join_and_settle,
            warmup, runs, lambda c: set(c) == {"join"} and c["join"] <= bench.policy.max_moves,
        ),
    ]  # fmt: skip
    bench.planner.forget()
    await bench.run_pass()  # settle on a fresh index before the comparison row
    rows.append(
        await timed_row(
            bench, "old pass: plan_assignments from nothing, 1 lost", bench.lose_worker, warmup,
            runs, lambda c: c == {"worker_lost": bench.held}, bench.old_pass_after_loss(),
        )
    )  # fmt: skip
    return rows


def main() -> None:
    """Run the rows, print them and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 fn x 10 on 100 workers")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    functions, workers, warmup, runs = (1_000, 100, 1, 3) if args.quick else (10_000, 1_000, 2, 5)
    rows = anyio.run(scenarios, functions, workers, warmup, runs)
    out = results_dir() / ("leader-pass-quick.json" if args.quick else "leader-pass.json")
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "setup": {
            "functions": functions,
            "parallelism": 10,
            "workers": workers,
            "warmup": warmup,
            "runs": runs,
            "strategy": STRATEGY,
            "quick": args.quick,
        },
        "results": rows,
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
