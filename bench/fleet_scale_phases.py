"""The phases of ``bench/fleet_scale_bench.py``: form the fleet, register, a worker
joins, a worker is SIGKILLed, a rolling restart of every worker, and the fleet's
idle cost. Each phase drives real worker processes and times what the polls see
(``bench/fleet_scale_watch.py``)."""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.common import cpu_seconds, rss_kib, smaps_kib, threads_and_fds
from bench.fleet_scale_watch import Gaps, MemoryGuard, Snapshot, Watch, get_json, timed
from fnworker.runtimes.broker_kind import DEFAULT_PULSAR_LITE_SLOTS
from fnworker.runtimes.instance.consumer_ids import slot_of
from fnworker.scheduler.decide.auto_rebalance import RebalancePolicy, imbalanced
from tests.fleet.conftest import Fleet, leader_seen_by_all, register

POLICY = RebalancePolicy()
"""The workers' default automatic rebalance settings (the bench sets none)."""
SETTLE_S = 3.0
"""Quiet time after the last instance started, before the idle measurement begins."""
QUIET_S = 5.0
"""How long the join phase keeps watching after it converged, to see later moves."""


def pick_names(count: int) -> list[str]:
    """Worker ids w1, w2, ..., skipping an id whose pulsar-lite consumer-id slot another
    already has (while free slots remain), so no two workers' consumers can clash."""
    names: list[str] = []
    taken: set[int] = set()
    number = 0
    while len(names) < count:
        number += 1
        name = f"w{number}"
        slot = slot_of(name, DEFAULT_PULSAR_LITE_SLOTS)
        if slot in taken and len(taken) < DEFAULT_PULSAR_LITE_SLOTS:
            continue
        taken.add(slot)
        names.append(name)
    return names


def function_sizes(instances: int, parallelism: int) -> list[int]:
    """The parallelism of each function so that they add up to ``instances``."""
    full, rest = divmod(instances, parallelism)
    return [parallelism] * full + ([rest] if rest else [])


@dataclass
class Run:
    """One fleet going through the phases."""

    fleet: Fleet
    watch: Watch
    guard: MemoryGuard
    args: argparse.Namespace
    log: Callable[[str], None]

    @property
    def total(self) -> int:
        """How many instances the fleet runs."""
        return int(self.args.instances)

    def timed(
        self,
        conditions: dict[str, Callable[[Snapshot], bool]],
        t0: float,
        on_snapshot: Callable[[Snapshot], None] | None = None,
    ) -> tuple[dict[str, float | None], Snapshot]:
        """``fleet_scale_watch.timed`` with this run's poll, limit and guard."""
        return timed(
            self.watch, t0, conditions, self.args.limit, self.args.poll, self.guard, on_snapshot
        )

    def any_url(self) -> str:
        """The admin URL of some live worker."""
        return next(w.admin_url for w in self.fleet.workers.values() if w.process.poll() is None)

    def leader(self) -> str:
        """The leader's id, as some live worker names it."""
        return str(get_json(self.any_url(), "/admin/v2/worker/cluster/leader")["workerId"])

    def member(self, name: str) -> Callable[[Snapshot], bool]:
        """A condition: ``name`` answers and is in the leader's view of the fleet."""

        def check(snap: Snapshot) -> bool:
            if name not in snap.answered:
                return False
            try:
                members = get_json(self.any_url(), "/admin/v2/worker/cluster")
            except Exception:  # noqa: BLE001 - in transition
                return False
            return name in {m["workerId"] for m in members}

        return check

    def settled(self, snap: Snapshot) -> bool:
        """Every instance placed and running exactly once, where placed."""
        return snap.settled(self.total)

    def balanced(self, snap: Snapshot) -> bool:
        """Every instance placed, and the leader's hysteresis sees nothing to even out."""
        if snap.table is None or len(snap.table) != self.total:
            return False
        return not imbalanced(POLICY, list(snap.counts(snap.answered).values()))

    # -- phases ------------------------------------------------------------------

    def form(self, names: list[str]) -> dict[str, Any]:
        """Start the workers; time until all see one leader and each other."""
        t0 = time.monotonic()
        workers = [self.fleet.start(name) for name in names]
        deadline = t0 + 90 + 5 * len(names)
        leader = None
        while leader is None and time.monotonic() < deadline:
            self.guard.check()
            try:
                leader = leader_seen_by_all(workers)
            except Exception:  # noqa: BLE001 - still starting
                leader = None
            time.sleep(0.2)
        if leader is None:
            raise RuntimeError(f"no leader seen by all {len(names)} workers within the limit")
        formed = time.monotonic() - t0
        self.log(f"{len(names)} workers formed a fleet in {formed:.1f} s, leader {leader}")
        return {"s": formed, "leader": leader, "workers": names}

    def registration(self) -> dict[str, Any]:
        """Register the functions; time until all placed and all running."""
        sizes = function_sizes(self.total, self.args.parallelism)
        workers = list(self.fleet.workers.values())

        def one(index: int) -> None:
            self.guard.check()
            worker = workers[index % len(workers)]
            register(worker, f"fs{index}", parallelism=sizes[index])

        t0 = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(len(sizes))))
        registered = time.monotonic() - t0
        self.log(
            f"registered {len(sizes)} functions ({self.total} instances) in {registered:.1f} s"
        )
        times, snap = self.timed(
            {
                "assigned": lambda s: s.table is not None and len(s.table) == self.total,
                "running": self.settled,
            },
            t0,
        )
        self.log(f"registration: {times}")
        if times["running"] is None:
            raise RuntimeError(f"not every instance ran within {self.args.limit} s")
        return {
            "functions": len(sizes),
            "register_calls_s": registered,
            "times_s": times,
            "counts": snap.counts(self.fleet.workers),
        }

    def join(self, name: str) -> dict[str, Any]:
        """One more worker; time to its first instance, to balance, to running."""
        before = self.watch.snapshot().table or {}
        t0 = time.monotonic()
        self.fleet.start(name)
        times, snap = self.timed(
            {
                "first_move": lambda s: s.table is not None and name in s.table.values(),
                "balanced": lambda s: name in s.answered and self.balanced(s),
                "running": lambda s: name in s.answered and self.balanced(s) and self.settled(s),
            },
            t0,
        )
        running_table = dict(snap.table or {})
        end = time.monotonic() + QUIET_S
        while time.monotonic() < end:
            self.guard.check()
            time.sleep(self.args.poll)
        final = self.watch.snapshot()
        table = final.table or running_table
        counts = final.counts(self.fleet.workers)
        result = {
            "worker": name,
            "times_s": times,
            "moved": sum(1 for i, w in table.items() if before.get(i) != w),
            "moved_to_new": sum(1 for w in table.values() if w == name),
            "moved_after_running": sum(1 for i, w in table.items() if running_table.get(i) != w),
            "new_count": counts.get(name, 0),
            "fair_share": self.total // len(counts),
            "counts": counts,
        }
        self.log(f"join of {name}: {result}")
        return result

    def kill(self) -> dict[str, Any]:
        """SIGKILL the non-leader with the most instances; time until they run elsewhere;
        start it again and let the fleet settle."""
        leader = self.leader()
        table = self.watch.snapshot().table or {}
        counts = Counter(table.values())
        victim = max((n for n in counts if n != leader), key=lambda n: (counts[n], n))
        moved = {i for i, w in table.items() if w == victim}
        process = self.fleet.workers[victim].process
        t0 = time.monotonic()
        process.send_signal(signal.SIGKILL)
        times, _ = self.timed(
            {
                "reassigned": lambda s: (
                    s.table is not None
                    and len(s.table) == self.total
                    and victim not in s.table.values()
                ),
                "running": lambda s: moved <= s.running.keys(),
                "settled": self.settled,
            },
            t0,
        )
        process.wait()
        self.log(f"SIGKILL of {victim} ({len(moved)} instances, leader {leader}): {times}")
        t1 = time.monotonic()
        self.fleet.start(victim)
        member = self.member(victim)
        back, _ = self.timed(
            {
                "settled": lambda s: member(s) and self.settled(s),
                "balanced": lambda s: member(s) and self.settled(s) and self.balanced(s),
            },
            t1,
        )
        self.log(f"{victim} started again: {back}")
        return {
            "victim": victim,
            "leader": leader,
            "moved": len(moved),
            "times_s": times,
            "restart_settled_s": back["settled"],
            "restart_balanced_s": back["balanced"],
        }

    def rolling(self) -> dict[str, Any]:
        """SIGTERM, wait for exit, start again, wait until converged: every worker."""
        table = self.watch.snapshot().table or {}
        gaps = Gaps(set(table))
        per: list[dict[str, Any]] = []
        start = time.monotonic()
        for name in sorted(self.fleet.workers, key=lambda n: int(n[1:])):
            per.append(self.restart_one(name, gaps))
        total = time.monotonic() - start
        t1 = time.monotonic()
        after, _ = self.timed({"balanced": self.balanced}, t1, gaps.sample)
        result = {
            "total_s": total,
            "workers": per,
            "balanced_after_s": after["balanced"],
            "gaps": gaps.report(self.args.gap_threshold, self.args.poll),
        }
        self.log(f"rolling restart: total {total:.1f} s, gaps {result['gaps']}")
        return result

    def restart_one(self, name: str, gaps: Gaps) -> dict[str, Any]:
        """One worker of the rolling restart, with every poll feeding ``gaps``."""
        leader = self.leader()
        held = sum(1 for w in (self.watch.snapshot().table or {}).values() if w == name)
        process = self.fleet.workers[name].process
        t0 = time.monotonic()
        process.send_signal(signal.SIGTERM)
        while process.poll() is None and time.monotonic() - t0 < self.args.exit_limit:
            self.guard.check()
            gaps.sample(self.watch.snapshot())
            time.sleep(self.args.poll)
        forced = process.poll() is None
        if forced:
            process.send_signal(signal.SIGKILL)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired as stuck:
            raise RuntimeError(f"{name} did not exit after SIGKILL") from stuck
        exited = time.monotonic() - t0
        self.fleet.start(name)
        member = self.member(name)
        times, _ = self.timed(
            {"member": member, "converged": lambda s: member(s) and self.settled(s)},
            t0,
            gaps.sample,
        )
        result = {
            "worker": name,
            "was_leader": name == leader,
            "held": held,
            "exit_s": exited,
            "exit_forced": forced,
            "member_s": times["member"],
            "converged_s": times["converged"],
        }
        self.log(f"restart of {name}: {result}")
        return result


def idle_cost(
    broker_pid: int, fleet: Fleet, seconds: float, guard: MemoryGuard, log: Callable[[str], None]
) -> dict[str, Any]:
    """CPU of the broker and of each worker over ``seconds`` of idle (nobody polls),
    in % of one core, and each worker's memory, threads and open files."""
    settle_end = time.monotonic() + SETTLE_S
    while time.monotonic() < settle_end:
        guard.check()
        time.sleep(0.2)
    pids = {name: w.process.pid for name, w in fleet.workers.items()}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    broker_before = cpu_seconds(broker_pid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        guard.check()
        time.sleep(min(0.5, max(0.0, seconds - (time.monotonic() - t0))))
    elapsed = time.monotonic() - t0
    workers: dict[str, dict[str, Any]] = {}
    for name, pid in pids.items():
        after, was = cpu_seconds(pid), before[name]
        memory = smaps_kib(pid) or {"rss": rss_kib(pid)}
        threads, fds = threads_and_fds(pid)
        workers[name] = {
            "cpu_percent": None if after is None or was is None else 100 * (after - was) / elapsed,
            **{f"{k}_mib": v / 1024 for k, v in memory.items()},
            "threads": threads,
            "open_files": fds,
        }
    broker_after = cpu_seconds(broker_pid)
    broker_cpu = (
        None
        if broker_after is None or broker_before is None
        else 100 * (broker_after - broker_before) / elapsed
    )
    broker = {
        "cpu_percent": broker_cpu,
        "rss_mib": rss_kib(broker_pid) / 1024,
        "open_files": threads_and_fds(broker_pid)[1],
    }

    def spread(key: str) -> dict[str, float | None]:
        values = [w[key] for w in workers.values() if w.get(key) is not None]
        if not values:
            return {"median": None, "max": None, "sum": None}
        return {"median": statistics.median(values), "max": max(values), "sum": sum(values)}

    cpu = spread("cpu_percent")
    per_worker = None
    if cpu["sum"] is not None and broker_cpu is not None:
        per_worker = (cpu["sum"] + broker_cpu) / len(workers)
    result = {
        "seconds": elapsed,
        "broker": broker,
        "workers": workers,
        "worker_cpu_percent": cpu,
        "worker_rss_mib": spread("rss_mib"),
        "worker_uss_mib": spread("uss_mib"),
        "fleet_cpu_percent_per_worker": per_worker,
    }
    log(f"idle {elapsed:.1f} s: broker {broker_cpu} %, workers {cpu}")
    return result
