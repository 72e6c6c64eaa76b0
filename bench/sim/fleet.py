"""One fleet of the protocol simulator (``bench/sim/protocol_fleet.py``) and what
``bench/fleet_bench.py`` waits for: one leader everyone names, everyone seeing
everyone, every instance placed, every worker holding its part, a balanced table;
with the simulated time each took and the real CPU the simulation spent."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from bench.sim.protocol_fleet import ScaleSim
from fnworker.coordination.protocol import leads, membership_of, table_of
from fnworker.scheduler.decide.auto_rebalance import imbalanced

CHECK_EVERY = 0.01
"""Simulated seconds between two checks of the conditions."""
PARALLELISM = 10
CLUSTER = "east"


def name_of(index: int) -> str:
    """Worker ids w0001, w0002, ..."""
    return f"w{index:04d}"


class Fleet:
    """One simulated fleet and the conditions the scenarios wait for."""

    def __init__(self, workers: int, per_worker: int) -> None:
        self.sim = ScaleSim()
        self.total = workers * per_worker
        self.functions = self.total // PARALLELISM
        self.check_cpu = 0.0
        self.table_counts: tuple[int, Counter[str]] = (0, Counter())

    def names(self) -> list[str]:
        return list(self.sim.workers)

    def leader(self) -> str | None:
        """The one worker that leads, if exactly one does."""
        leading = [w.name for w in self.sim.workers.values() if leads(w.state)]
        return leading[0] if len(leading) == 1 else None

    def agreed(self) -> str | None:
        """The leader when every worker names it."""
        leader = self.leader()
        if leader is None:
            return None
        for worker in self.sim.workers.values():
            view = membership_of(worker.state).leader
            if view is None or view.worker_id != leader:
                return None
        return leader

    def everyone_sees_everyone(self) -> bool:
        """Every worker's view of the fleet has exactly the live workers."""
        live = set(self.sim.workers)
        return all(
            {m.worker_id for m in membership_of(w.state).members} == live
            for w in self.sim.workers.values()
        )

    def leader_view(self) -> set[str]:
        """The members in the leader's view (empty while none leads)."""
        leader = self.leader()
        if leader is None:
            return set()
        return {m.worker_id for m in membership_of(self.sim.workers[leader].state).members}

    def table(self) -> Any:
        leader = self.leader()
        return None if leader is None else table_of(self.sim.workers[leader].state)

    def counts(self) -> Counter[str]:
        """Instances per worker in the leader's table (cached per table)."""
        table = self.table()
        if table is None:
            return Counter()
        if self.table_counts[0] != id(table):
            self.table_counts = (id(table), Counter(a.worker for a in table.values()))
        return self.table_counts[1]

    def placed(self) -> bool:
        """Every instance in the leader's table, each on a live worker."""
        table = self.table()
        if table is None or len(table) != self.total:
            return False
        return set(self.counts()) <= set(self.sim.workers)

    def applied(self) -> bool:
        """Placed, and every worker holds exactly its part of the table."""
        if not self.placed():
            return False
        counts = self.counts()
        workers = self.sim.workers.values()
        if any(len(w.state.mine.held) != counts.get(w.name, 0) for w in workers):
            return False
        table = self.table()
        return all(table[i].worker == w.name for w in workers for i in w.state.mine.held)

    def balanced(self) -> bool:
        """Applied, and not uneven enough for the leader's hysteresis to move anything."""
        counts = [self.counts().get(n, 0) for n in self.sim.workers]
        return self.applied() and not imbalanced(self.sim.policy, counts)

    # -- running -----------------------------------------------------------------

    def until(
        self, conditions: dict[str, Callable[[], bool]], limit: float
    ) -> tuple[dict[str, float | None], dict[str, Any]]:
        """Advance until every condition held once (or ``limit`` simulated seconds);
        the simulated time of each, and the cost."""
        gc.collect()
        t0, cpu0, steps0 = self.sim.now, time.process_time(), self.sim.inputs.copy()
        checks0 = self.check_cpu
        times: dict[str, float | None] = dict.fromkeys(conditions)
        while True:
            started = time.process_time()
            for name, condition in conditions.items():
                if times[name] is None and condition():
                    times[name] = round(self.sim.now - t0, 4)
            self.check_cpu += time.process_time() - started
            if all(t is not None for t in times.values()) or self.sim.now - t0 >= limit:
                break
            self.sim.advance(CHECK_EVERY)
        return times, self.cost(t0, cpu0, steps0, checks0)

    def idle(self, seconds: float, every_worker_reads_heartbeats: bool) -> dict[str, Any]:
        """The cost of ``seconds`` simulated seconds where nothing happens."""
        self.sim.every_worker_reads_heartbeats = every_worker_reads_heartbeats
        gc.collect()
        t0, cpu0, steps0 = self.sim.now, time.process_time(), self.sim.inputs.copy()
        self.sim.advance(seconds)
        self.sim.every_worker_reads_heartbeats = False
        return self.cost(t0, cpu0, steps0, self.check_cpu)

    def cost(self, t0: float, cpu0: float, steps0: Counter[str], checks0: float) -> dict[str, Any]:
        """CPU and steps since a start, per simulated second."""
        sim_s = self.sim.now - t0
        cpu = time.process_time() - cpu0 - (self.check_cpu - checks0)
        steps = self.sim.inputs - steps0
        total = sum(steps.values())
        return {
            "sim_s": round(sim_s, 4),
            "cpu_s": round(cpu, 4),
            "cpu_per_sim_s": round(cpu / sim_s, 4) if sim_s else None,
            "steps": total,
            "steps_per_sim_s": round(total / sim_s) if sim_s else None,
            "steps_by_input": dict(steps.most_common()),
        }
