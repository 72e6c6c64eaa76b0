"""A deterministic simulation of a fleet running the pure protocol: simulated
workers (each a ``NodeState`` stepped by ``step``), simulated topics (append-only
logs read through per-worker cursors, one total order per topic as in Pulsar),
one simulated clock, and the faults a script or Hypothesis can inject.

- A topic is a list of records; a worker's reader is a cursor into it. The
  coordinate topic is read from its start, heartbeats and a worker's own
  assignment topic from the end at the worker's start (as the Pulsar backend does).
- ``freeze``: the worker gets no ticks and reads nothing (SIGSTOP); ``thaw`` ends it.
- ``cut`` (a partition): the worker can neither read nor publish; what it publishes
  meanwhile waits in its producer and is stored when the cut heals, in order.
- ``delay``: the worker's reader of one topic kind reads nothing until released.
- ``drop``: what the worker publishes on one topic kind is lost until released.
- ``hand_off``: a graceful stop (SIGTERM): the worker hands its instances over and
  stops (``Leave``) once it holds nothing. A worker's runtime runs what it is
  assigned at once (``InstancesRunning``), unless its ``runtime`` is delayed.
- The leader's planning pass is the real ``LeaderPlanner`` (plan, then the automatic
  rebalance under ``Sim.policy``), as ``worker_loops.leader_pass`` runs it: whenever a
  leader's view of the fleet changed, once quiet, and when its planner's ``wake_at``
  comes. Every move is recorded (``Sim.moves``); an automatic move of an instance
  that its leader moved less than the cooldown ago is a ``SafetyViolation``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fnworker.coordination.events import AssignmentsChanged, MembershipChanged
from fnworker.coordination.protocol import (
    Delivered,
    Emit,
    HandOff,
    Input,
    InstancesRunning,
    Leave,
    NodeState,
    Note,
    Publish,
    Send,
    Tick,
    Timings,
    Topic,
    handed_off,
    initial_state,
    leads,
    membership_of,
    next_wake,
    step,
    table_of,
)
from fnworker.coordination.protocol.messages import HeartbeatStored, ProtocolRecord
from fnworker.coordination.wire import Assign, Claim, Heartbeat, Snapshot, Unassign
from fnworker.scheduler.decide.assignment_plan import AssignmentChanges
from fnworker.scheduler.decide.auto_rebalance import RebalancePolicy
from fnworker.scheduler.decide.leader_plan import LeaderPlanner
from fnworker.scheduler.decide.placement import Move
from fnworker.scheduler.model.records import (
    Fqfn,
    FunctionConfig,
    FunctionRecord,
    InstanceId,
    WorkerId,
    WorkerInfo,
    instance_id_of,
)

NAMESPACE = "public/default"
RESOLUTION = 0.025
"""Simulated time advances in steps of 25 ms; workers tick when their wake is due."""


class SafetyViolation(AssertionError):
    """A protocol safety property was broken."""


def info(name: str) -> WorkerInfo:
    """The WorkerInfo of simulated worker ``name``."""
    return WorkerInfo(worker_id=WorkerId(name), worker_hostname="sim", port=1)


def instance(short: str) -> InstanceId:
    """``f:0`` as a full instance id."""
    return InstanceId(f"{NAMESPACE}/{short}")


@dataclass
class SimWorker:
    """One simulated worker process."""

    name: str
    cluster: str
    state: NodeState
    cursors: dict[str, int]
    frozen: bool = False
    claims: int = 0
    fences: int = 0
    wants_plan: bool = True
    notes: list[Note] = field(default_factory=list)
    planner: LeaderPlanner = field(default_factory=LeaderPlanner)
    moved_at: dict[str, float] = field(default_factory=dict)
    """Instance -> when this worker, leading, last moved it (forgotten with its office)."""


@dataclass
class Sim:
    """A fleet of simulated workers over simulated topics."""

    timings: Timings = field(default_factory=Timings)
    now: float = 0.0
    logs: dict[str, list[ProtocolRecord]] = field(default_factory=dict)
    workers: dict[str, SimWorker] = field(default_factory=dict)
    incarnations: dict[str, int] = field(default_factory=dict)
    functions: dict[str, dict[Fqfn, FunctionRecord]] = field(default_factory=dict)
    cut: set[str] = field(default_factory=set)
    delayed: set[tuple[str, str]] = field(default_factory=set)
    dropped: set[tuple[str, str]] = field(default_factory=set)
    held_back: dict[str, list[tuple[str, ProtocolRecord, int]]] = field(default_factory=dict)
    leaders: dict[tuple[str, int], str] = field(default_factory=dict)
    """(cluster, term) -> the one worker that ever led it (safety: at most one)."""
    policy: RebalancePolicy = field(default_factory=RebalancePolicy)
    """The automatic rebalance settings of every leader (the shipped defaults)."""
    moves: list[tuple[float, Move]] = field(default_factory=list)
    """Every move any leader published, with when."""

    # -- topics ----------------------------------------------------------------

    def key(self, cluster: str, topic: Topic) -> str:
        """The log name of ``topic`` in ``cluster``."""
        return f"{cluster}/{topic.kind}/{topic.worker}"

    def log(self, key: str) -> list[ProtocolRecord]:
        """The records of one topic."""
        return self.logs.setdefault(key, [])

    def reader_keys(self, worker: SimWorker) -> list[str]:
        """The topics a worker reads."""
        return [
            self.key(worker.cluster, Topic(kind="coordinate")),
            self.key(worker.cluster, Topic(kind="heartbeats")),
            self.key(worker.cluster, Topic(kind="assignments", worker=worker.name)),
        ]

    # -- workers ---------------------------------------------------------------

    def start(self, name: str, cluster: str = "east") -> None:
        """Start a worker process named ``name`` (a new session if it ran before)."""
        if name in self.workers:
            raise ValueError(f"{name} is already running")
        incarnation = self.incarnations.get(name, 0) + 1
        self.incarnations[name] = incarnation
        state = initial_state(info(name), f"{name}#{incarnation}", self.timings, self.now)
        worker = SimWorker(name=name, cluster=cluster, state=state, cursors={})
        coordinate, heartbeats, mine = self.reader_keys(worker)
        worker.cursors = {
            coordinate: 0,
            heartbeats: len(self.log(heartbeats)),
            mine: len(self.log(mine)),
        }
        self.workers[name] = worker

    def kill(self, name: str) -> None:
        """SIGKILL: the worker is gone without a word."""
        self.workers.pop(name)
        self.cut.discard(name)
        self.held_back.pop(name, None)

    def stop(self, name: str) -> None:
        """A clean stop: the worker announces it leaves, then is gone."""
        self.feed(self.workers[name], Leave())
        self.kill(name)

    def hand_off(self, name: str, timeout: float = 3.0) -> None:
        """SIGTERM: the worker starts handing its instances over (it stops once done,
        or once ``timeout`` has passed)."""
        self.feed(self.workers[name], HandOff(timeout=timeout))

    def finish_hand_offs(self) -> bool:
        """Workers that handed everything over leave; True if any did."""
        done = [w.name for w in self.running() if handed_off(w.state)]
        for name in done:
            self.stop(name)
        return bool(done)

    def run_handed_over(self, worker: SimWorker) -> None:
        """The worker's runtime runs what was handed over to it (unless delayed)."""
        if worker.state.awaiting and (worker.name, "runtime") not in self.delayed:
            if not worker.frozen and self.workers.get(worker.name) is worker:
                self.feed(worker, InstancesRunning(instances=tuple(sorted(worker.state.awaiting))))

    def running(self, cluster: str | None = None) -> list[SimWorker]:
        """Workers that run (not frozen), by name, in one cluster or all."""
        return [
            w
            for _, w in sorted(self.workers.items())
            if not w.frozen and (cluster is None or w.cluster == cluster)
        ]

    def add_function(self, name: str, parallelism: int, cluster: str = "east") -> None:
        """A function every leader of ``cluster`` places (metadata is not simulated)."""
        fqfn = Fqfn(f"{NAMESPACE}/{name}")
        functions = self.functions.setdefault(cluster, {})
        version = functions[fqfn].version + 1 if fqfn in functions else 1
        config = FunctionConfig(
            tenant="public", namespace="default", name=name, parallelism=parallelism
        )
        functions[fqfn] = FunctionRecord(fqfn=fqfn, version=version, config=config)
        for worker in self.workers.values():
            worker.wants_plan = True

    def instances(self, cluster: str) -> set[InstanceId]:
        """Every instance the functions of ``cluster`` ask for."""
        return {
            instance_id_of(record.fqfn, index)
            for record in self.functions.get(cluster, {}).values()
            for index in range(record.parallelism())
        }

    # -- stepping --------------------------------------------------------------

    def feed(self, worker: SimWorker, event: Input) -> None:
        """Step one worker with one input and carry out its outputs."""
        before = worker.state
        worker.state, outputs = step(before, event, self.now)
        for output in outputs:
            if isinstance(output, Send):
                self.publish(worker, self.key(worker.cluster, output.topic), output.record)
            elif isinstance(output, Emit):
                self.on_event(worker, before, event, output)
            else:
                worker.notes.append(output)
        if worker.state.fences > before.fences:
            worker.fences += 1
        if worker.state.awaiting and not isinstance(event, InstancesRunning):
            self.run_handed_over(worker)
        if leads(worker.state):
            self.check_one_leader(worker)

    def on_event(self, worker: SimWorker, before: NodeState, cause: Input, emit: Emit) -> None:
        """A worker event: check that no stale assignment record is applied; wake the
        planner."""
        event = emit.event
        if isinstance(event, MembershipChanged):
            worker.wants_plan = True
        if isinstance(event, AssignmentsChanged) and isinstance(cause, Delivered):
            record = cause.record
            if isinstance(record, Assign):
                term = record.assignment.term
            elif isinstance(record, Unassign | Snapshot):
                term = record.term
            else:
                return
            known = max(before.mine.term, before.leadership.term)
            if term < known:
                raise SafetyViolation(
                    f"{worker.name} applied {record} of term {term} after learning term {known}"
                )

    def check_one_leader(self, worker: SimWorker) -> None:
        """At most one leader per term and cluster, ever."""
        term = worker.state.leadership.term
        first = self.leaders.setdefault((worker.cluster, term), worker.name)
        if first != worker.name:
            raise SafetyViolation(f"term {term} led by {first} and {worker.name}")

    def publish(self, worker: SimWorker, key: str, record: ProtocolRecord) -> None:
        """A worker publishes one record (held while cut off, lost while dropped)."""
        if isinstance(record, Claim):
            worker.claims += 1
        kind = key.split("/")[1]
        if (worker.name, kind) in self.dropped:
            return
        incarnation = self.incarnations[worker.name]
        if worker.name in self.cut:
            self.held_back.setdefault(worker.name, []).append((key, record, incarnation))
            return
        self.store(worker.name, key, record, incarnation)

    def store(self, name: str, key: str, record: ProtocolRecord, incarnation: int) -> None:
        """The broker stores a record; a heartbeat's sender learns it was stored."""
        if isinstance(record, Assign) and not self.wrote_as_leader(name, record):
            raise SafetyViolation(f"{name} wrote {record} without leading its term")
        self.log(key).append(record)
        worker = self.workers.get(name)
        if isinstance(record, Heartbeat) and worker and self.incarnations[name] == incarnation:
            if not worker.frozen:
                self.feed(worker, HeartbeatStored(seq=record.seq))

    def wrote_as_leader(self, name: str, record: Assign) -> bool:
        """An assignment is written only by the leader of its term."""
        worker = self.workers.get(name)
        cluster = worker.cluster if worker else "east"
        return self.leaders.get((cluster, record.assignment.term)) == name

    def tick_due(self) -> None:
        """Every running worker whose wake time has come gets a ``Tick``."""
        for worker in self.running():
            if next_wake(worker.state) <= self.now + 1e-9:
                self.feed(worker, Tick())

    def deliver_all(self) -> None:
        """Deliver every deliverable record and run every pending planning pass,
        until nothing is left to do."""
        while self.deliver_round() or self.plan_round() or self.finish_hand_offs():
            pass

    def deliver_round(self) -> bool:
        """Each reachable worker reads at most one record per topic; True if any did."""
        progressed = False
        for worker in self.running():
            if worker.name in self.cut:
                continue
            for key in self.reader_keys(worker):
                if (worker.name, key.split("/")[1]) in self.delayed:
                    continue
                log = self.log(key)
                position = worker.cursors[key]
                if position < len(log) and self.workers.get(worker.name) is worker:
                    worker.cursors[key] = position + 1
                    self.feed(worker, Delivered(record=log[position]))
                    progressed = True
        return progressed

    def plan_round(self) -> bool:
        """The planning pass of every leader whose view changed or whose planner asked
        to look again by now; True if any published."""
        published = False
        for worker in self.running():
            wake_at = worker.planner.wake_at
            if not worker.wants_plan and (wake_at is None or wake_at > self.now + 1e-9):
                continue
            worker.wants_plan = False
            view = membership_of(worker.state)
            if view.leader is None or view.leader.worker_id != worker.name:
                worker.planner.forget()
                worker.moved_at.clear()
                continue
            workers = [m.worker_id for m in view.members if m.worker_id not in view.handing_off]
            planner = worker.planner
            changes = planner.plan(
                self.functions.get(worker.cluster, {}),
                workers,
                table_of(worker.state),
                view.term,
                "roundrobin",
                drained=view.handing_off,
                now=self.now,
            )
            published |= self.publish_changes(worker, view.term, changes)
            auto = planner.auto_rebalance(
                workers, table_of(worker.state), view.term, "roundrobin", self.policy, self.now
            )
            published |= self.publish_changes(worker, view.term, auto)
        return published

    def publish_changes(self, worker: SimWorker, term: int, changes: AssignmentChanges) -> bool:
        """Publish one plan's records through the leader's ``step``; record its moves
        and check the cooldown of automatic ones. True if anything was published."""
        if changes.is_empty():
            return False
        for move in changes.moves:
            self.moves.append((self.now, move))
            if move.source is None or move.target is None:
                continue
            last = worker.moved_at.get(move.instance)
            cooling = last is not None and self.now - last < self.policy.cooldown_s - 1e-9
            if move.reason in ("join", "rebalance") and cooling:
                raise SafetyViolation(
                    f"{move.instance} moved again ({move.reason}) {self.now - last:.3f}s "
                    f"after its last move; cooldown {self.policy.cooldown_s}s"
                )
            worker.moved_at[move.instance] = self.now
        publish = Publish(term=term, assigned=changes.assigned, unassigned=changes.unassigned)
        self.feed(worker, publish)
        return True

    def advance(self, seconds: float, deliver: bool = True) -> None:
        """Let ``seconds`` pass in small steps: ticks, then (unless told not to)
        every delivery and planning pass that follows."""
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now = min(end, round(self.now + RESOLUTION, 9))
            self.tick_due()
            if deliver:
                self.deliver_all()

    # -- faults ----------------------------------------------------------------

    def partition(self, left: Iterable[str]) -> None:
        """Cut ``left`` off from the broker."""
        self.cut |= set(left)

    def heal(self) -> None:
        """End every partition: what was held back is stored, in order."""
        self.cut.clear()
        for name, held in sorted(self.held_back.items()):
            for key, record, incarnation in held:
                self.store(name, key, record, incarnation)
        self.held_back.clear()

    # -- what the scripts and properties look at -----------------------------

    def owners(self, short_or_full: str) -> set[str]:
        """The running workers that hold an instance."""
        wanted = short_or_full if "/" in short_or_full else instance(short_or_full)
        return {w.name for w in self.running() if wanted in w.state.mine.held}

    def check_quiet(self) -> None:
        """Once quiet: every instance of every cluster is held by exactly one running
        worker of that cluster, and nothing else is held."""
        for cluster in {w.cluster for w in self.workers.values()} | set(self.functions):
            wanted = self.instances(cluster)
            held: dict[str, list[str]] = {}
            for worker in self.running(cluster):
                for held_instance in worker.state.mine.held:
                    held.setdefault(held_instance, []).append(worker.name)
            problems = {
                i: owners
                for i in sorted(wanted | set(held))
                if len(owners := held.get(i, [])) != (1 if i in wanted else 0)
            }
            if problems and self.running(cluster):
                raise SafetyViolation(f"cluster {cluster}: instances not held once: {problems}")
