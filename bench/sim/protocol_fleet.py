"""The protocol simulator of ``tests/protocol/sim.py`` made to run 1,000 workers.

``ScaleSim`` IS that simulator (the real ``step`` per worker, the real
``LeaderPlanner`` as the leader's planning pass, topics as lists read through
cursors, one clock, its safety checks); it changes only how the work is found, so
that a step of simulated time costs what the protocol does, not a scan of every
worker:

- time jumps from one wake to the next (a heap of each worker's ``next_wake`` and
  the leaders' planner ``wake_at``) instead of advancing in fixed 25 ms steps, so a
  worker ticks exactly when it asked to, as the real driver sleeps until then;
- a worker reads every record that is new on its topics at once (in topic order)
  instead of one per topic per round, and only workers with unread records are
  visited (a store marks the readers of its topic);
- the heartbeats topic is read only by a worker that leads or is taking office, as
  the Pulsar backend opens that reader (``pulsar_backend``: "only the leader reads
  the heartbeats topic"); ``every_worker_reads_heartbeats=True`` delivers every
  heartbeat to every worker instead (what the backend did before: O(workers²)
  deliveries, which the protocol ignores on a non-leader);
- the inherited loops over ``running()`` (ticks, planning passes, hand-offs) are
  run over only the workers that have something to do.

Records are delivered with no delay (the broker's latency is not simulated).
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from fnworker.coordination.events import MembershipChanged
from fnworker.coordination.protocol import (
    Delivered,
    Emit,
    Input,
    NodeState,
    Tick,
    next_wake,
)
from fnworker.coordination.protocol.messages import ProtocolRecord
from tests.protocol.sim import Sim, SimWorker


class ScaleSim(Sim):
    """``tests.protocol.sim.Sim`` with event-driven time and dirty-set delivery."""

    def __init__(self, *, every_worker_reads_heartbeats: bool = False, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.every_worker_reads_heartbeats = every_worker_reads_heartbeats
        self.wakes: list[tuple[float, int, str]] = []
        self.order = itertools.count()
        self.dirty: set[str] = set()
        self.want_plan: set[str] = set()
        self.office_holders: set[str] = set()
        self.scope: list[SimWorker] | None = None
        self.inputs: Counter[str] = Counter()
        """Steps taken, by input type (``Delivered`` by record type)."""

    # -- the narrowed loops ------------------------------------------------------

    def running(self, cluster: str | None = None) -> list[SimWorker]:
        """The inherited loops' workers: only those in scope while one is set."""
        if self.scope is not None:
            return [w for w in self.scope if self.workers.get(w.name) is w and not w.frozen]
        return [
            w
            for w in self.workers.values()
            if not w.frozen and (cluster is None or w.cluster == cluster)
        ]

    @contextmanager
    def only(self, workers: list[SimWorker]) -> Iterator[None]:
        """Run an inherited loop over ``workers`` only."""
        self.scope = workers
        try:
            yield
        finally:
            self.scope = None

    # -- keeping track of who has something to do --------------------------------

    def start(self, name: str, cluster: str = "east") -> None:
        super().start(name, cluster)
        self.dirty.add(name)
        self.want_plan.add(name)
        self.schedule(self.workers[name])

    def add_function(self, name: str, parallelism: int, cluster: str = "east") -> None:
        super().add_function(name, parallelism, cluster)
        self.want_plan.update(self.workers)

    def feed(self, worker: SimWorker, event: Input) -> None:
        if isinstance(event, Delivered):
            self.inputs[type(event.record).__name__] += 1
        else:
            self.inputs[type(event).__name__] += 1
        before = next_wake(worker.state)
        super().feed(worker, event)
        if self.workers.get(worker.name) is not worker:
            return
        if worker.state.office is not None:
            self.office_holders.add(worker.name)
        else:
            self.office_holders.discard(worker.name)
        if isinstance(event, Tick) or next_wake(worker.state) != before:
            self.schedule(worker)  # after a tick too: one within 1e-9 early may change nothing

    def on_event(self, worker: SimWorker, before: NodeState, cause: Input, emit: Emit) -> None:
        super().on_event(worker, before, cause, emit)
        if isinstance(emit.event, MembershipChanged):
            self.want_plan.add(worker.name)

    def store(self, name: str, key: str, record: ProtocolRecord, incarnation: int) -> None:
        super().store(name, key, record, incarnation)
        kind = key.split("/")[1]
        if kind == "coordinate":
            self.dirty.update(self.workers)
        elif kind == "heartbeats":
            readers = self.workers if self.every_worker_reads_heartbeats else self.office_holders
            self.dirty.update(readers)
        else:
            self.dirty.add(key.split("/")[2])

    def schedule(self, worker: SimWorker) -> None:
        """Remember when ``worker`` next wants a tick."""
        heapq.heappush(self.wakes, (next_wake(worker.state), next(self.order), worker.name))

    # -- stepping ----------------------------------------------------------------

    def tick_due(self) -> None:
        """Tick every worker whose wake has come (once each)."""
        due: dict[str, SimWorker] = {}
        while self.wakes and self.wakes[0][0] <= self.now + 1e-9:
            _, _, name = heapq.heappop(self.wakes)
            worker = self.workers.get(name)
            if worker is not None and next_wake(worker.state) <= self.now + 1e-9:
                due[name] = worker
        if due:
            with self.only(list(due.values())):
                super().tick_due()

    def deliver_round(self) -> bool:
        """Every worker with unread records reads all of them, topic by topic."""
        progressed = False
        dirty, self.dirty = self.dirty, set()
        for name in sorted(dirty):
            worker = self.workers.get(name)
            if worker is None or worker.frozen or name in self.cut:
                continue
            for key in self.reader_keys(worker):
                kind = key.split("/")[1]
                if (name, kind) in self.delayed:
                    continue
                log = self.log(key)
                if kind == "heartbeats" and not self.reads_heartbeats(worker):
                    worker.cursors[key] = len(log)  # its reader is closed: reopened at latest
                    continue
                while worker.cursors[key] < len(log) and self.workers.get(name) is worker:
                    position = worker.cursors[key]
                    worker.cursors[key] = position + 1
                    self.feed(worker, Delivered(record=log[position]))
                    progressed = True
        return progressed

    def reads_heartbeats(self, worker: SimWorker) -> bool:
        """Whether ``worker``'s heartbeats reader is open."""
        return self.every_worker_reads_heartbeats or worker.state.office is not None

    def plan_round(self) -> bool:
        """The inherited planning pass, over the workers that want one or whose
        planner's wake has come."""
        names = set(self.want_plan)
        self.want_plan.clear()
        for name in self.office_holders:
            worker = self.workers.get(name)
            wake_at = worker.planner.wake_at if worker is not None else None
            if wake_at is not None and wake_at <= self.now + 1e-9:
                names.add(name)
        scope = [self.workers[n] for n in sorted(names) if n in self.workers]
        if not scope:
            return False
        with self.only(scope):
            return super().plan_round()

    def finish_hand_offs(self) -> bool:
        """The inherited hand-off check, over the workers handing off."""
        scope = [w for w in self.workers.values() if getattr(w.state, "handing_off", False)]
        if not scope:
            return False
        with self.only(scope):
            return super().finish_hand_offs()

    def next_event(self) -> float:
        """The earliest time something is due: a tick or a leader's planner wake."""
        while self.wakes:
            at, _, name = self.wakes[0]
            worker = self.workers.get(name)
            if worker is not None and abs(next_wake(worker.state) - at) < 1e-12:
                break
            heapq.heappop(self.wakes)  # stale: the worker is gone or rescheduled
        times = [self.wakes[0][0]] if self.wakes else []
        for name in self.office_holders:
            worker = self.workers.get(name)
            wake_at = worker.planner.wake_at if worker is not None else None
            if wake_at is not None and wake_at > self.now + 1e-9:
                times.append(wake_at)  # a due one is run by ``plan_round`` already
        return min(times, default=float("inf"))

    def advance(self, seconds: float, deliver: bool = True) -> None:
        """Let ``seconds`` pass, jumping from one due event to the next."""
        end = self.now + seconds
        if deliver:
            self.deliver_all()
        while True:
            # 1 ns past the wake: the protocol compares differences of times, which
            # rounding can leave a hair short of due at exactly the wake time
            self.now = min(end, max(self.now, self.next_event() + 1e-9))
            self.tick_due()
            if deliver:
                self.deliver_all()
            if self.now >= end - 1e-12:
                return
