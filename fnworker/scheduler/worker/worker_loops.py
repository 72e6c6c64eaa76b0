"""The three long-lived loops of a worker: pump coordination events into local
state, plan assignments while leader, and reconcile the runtime with this
worker's assignments. Does I/O only through the backend and the runtime driver.

Triggers are coalesced: many events between two passes cause one pass, and a
pass always works from the newest state, never from a queue of stale events.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio
import structlog
from anyio.abc import ObjectReceiveStream

from fnworker.coordination.backend import (
    AssignmentsChanged,
    CoordinationBackend,
    CoordinationEvent,
    FunctionsChanged,
    MembershipChanged,
)
from fnworker.runtimes.driver import RuntimeDriver
from fnworker.scheduler.admin.leader_control import LeaderControl, Wakeup
from fnworker.scheduler.decide.admission_limits import AdmissionMemo
from fnworker.scheduler.decide.assignment_plan import REASON_OF_MOVE, AssignmentChanges
from fnworker.scheduler.decide.auto_rebalance import RebalancePolicy
from fnworker.scheduler.decide.leader_plan import LeaderPlanner
from fnworker.scheduler.decide.reconcile import (
    ReplaceInstance,
    RuntimeAction,
    StartInstance,
    StopInstance,
    reconcile,
)
from fnworker.scheduler.model.instances import InstanceSpec
from fnworker.scheduler.model.prometheus import AssignmentChangeCounter
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    WorkerInfo,
    split_fqfn,
    split_instance_id,
)

log = structlog.get_logger("fnworker.worker")


class LocalAssignments:
    """This worker's own assignments, fenced by leadership term."""

    def __init__(self) -> None:
        self.by_instance: dict[InstanceId, Assignment] = {}
        self.highest_term = 0

    def apply(self, event: AssignmentsChanged) -> bool:
        """Apply an assignment change unless it comes from an older term."""
        if event.term < self.highest_term:
            log.warning("stale assignments ignored", term=event.term, current=self.highest_term)
            return False
        self.highest_term = event.term
        for instance in event.unassigned:
            self.by_instance.pop(instance, None)
        for assignment in event.assigned:
            self.by_instance[assignment.instance] = assignment
        return True


async def pump_events(
    events: ObjectReceiveStream[CoordinationEvent],
    mine: LocalAssignments,
    leader_wakeup: Wakeup,
    reconcile_wakeup: Wakeup,
) -> None:
    """Apply every queued coordination event, then wake the loops they concern.

    A burst (100 workers declared dead one by one, 1,000 registrations) is applied
    whole before the leader re-plans, so it causes one plan, not one per event.
    """
    async with events:
        async for first in events:
            for event in [first, *drain_queued(events)]:
                if isinstance(event, AssignmentsChanged):
                    if mine.apply(event):
                        reconcile_wakeup.set()
                elif isinstance(event, FunctionsChanged):
                    leader_wakeup.set()
                    reconcile_wakeup.set()
                elif isinstance(event, MembershipChanged):
                    leader_wakeup.set()


def drain_queued(events: ObjectReceiveStream[CoordinationEvent]) -> list[CoordinationEvent]:
    """Every event already waiting in the stream, without waiting for more."""
    queued: list[CoordinationEvent] = []
    while True:
        try:
            queued.append(events.receive_nowait())  # type: ignore[attr-defined]
        except (anyio.WouldBlock, anyio.EndOfStream):
            return queued


async def lead(
    backend: CoordinationBackend,
    me: WorkerInfo,
    strategy: str,
    wakeup: Wakeup,
    control: LeaderControl | None = None,
    admission: AdmissionMemo | None = None,
    changes: AssignmentChangeCounter | None = None,
    policy: RebalancePolicy | None = None,
) -> None:
    """While this worker leads, re-plan on every change and write what differs.
    Functions over an admission limit are not placed (nor expanded into instances).
    With ``policy``, also pass when the automatic rebalance asks to (its ``wake_at``)."""
    control = control or LeaderControl(wakeup)
    planner = LeaderPlanner()
    while True:
        wake_at = planner.wake_at if policy is not None else None
        delay = math.inf if wake_at is None else max(0.0, wake_at - time.monotonic())
        with anyio.move_on_after(delay):
            await wakeup.wait()
        await leader_pass(
            backend, me, strategy, control, planner, admission, changes, policy, time.monotonic()
        )


async def leader_pass(
    backend: CoordinationBackend,
    me: WorkerInfo,
    strategy: str,
    control: LeaderControl,
    planner: LeaderPlanner,
    admission: AdmissionMemo | None = None,
    changes: AssignmentChangeCounter | None = None,
    policy: RebalancePolicy | None = None,
    now: float | None = None,
) -> None:
    """One pass of the leader: plan (incrementally, on ``planner``), publish what
    differs with why, carry out a requested rebalance, then (with ``policy``) the
    automatic rebalance, settle drains. ``now`` is a monotonic time (default: the
    clock's). Does nothing (and lets the planner forget) while this worker does not
    lead."""
    now = time.monotonic() if now is None else now
    view = backend.membership()
    if view.leader is None or view.leader.worker_id != me.worker_id:
        planner.forget()
        return
    handing = set(view.handing_off)  # stopping gracefully: a drain they ask for
    workers = [w for w in control.eligible(view.members) if w not in handing]
    planned = planner.plan(
        admitted(backend.functions(), admission),
        workers,
        backend.assignments(),
        view.term,
        strategy,
        drained=handing.union(control.drains),
        now=now,
    )
    if not planned.is_empty():
        log_changes("assignments planned", view.term, planned)
        await backend.publish_assignments(view.term, planned.assigned, planned.unassigned)
        if changes is not None:
            changes.add(planned.reason_counts())
    if control.rebalance_pending:
        control.rebalance_pending = False
        moved = planner.rebalance(workers, backend.assignments(), view.term, strategy, now)
        log_changes("rebalance planned", view.term, moved, always=True)
        await backend.publish_assignments(view.term, moved.assigned, ())
        if changes is not None:
            changes.add(moved.reason_counts())
    if policy is not None:
        auto = planner.auto_rebalance(
            workers, backend.assignments(), view.term, strategy, policy, now
        )
        if not auto.is_empty():
            log_changes("automatic rebalance planned", view.term, auto)
            await backend.publish_assignments(view.term, auto.assigned, ())
            if changes is not None:
                changes.add(auto.reason_counts())
    control.settle_drains(backend.assignments())


MOVES_LOGGED = 100
"""At most this many ``instance moved`` lines per pass; the summary line counts all."""


def log_changes(event: str, term: int, changes: AssignmentChanges, always: bool = False) -> None:
    """One summary line with the count per reason, then one line per instance that
    left a worker (moved or dropped: worker lost, drain, rebalance, removed), up to
    ``MOVES_LOGGED``."""
    if changes.is_empty() and not always:
        return
    log.info(
        event,
        term=term,
        assigned=len(changes.assigned),
        unassigned=len(changes.unassigned),
        moved=len(changes.moves),
        reasons=changes.reason_counts(),
    )
    departed = [m for m in changes.moves if m.source is not None]
    for move in departed[:MOVES_LOGGED]:
        log.info(
            "instance moved",
            instance=move.instance,
            source=move.source,
            target=move.target,
            reason=REASON_OF_MOVE[move.reason],
        )
    if len(departed) > MOVES_LOGGED:
        log.info("more instances moved", not_logged=len(departed) - MOVES_LOGGED, term=term)


def admitted(
    functions: Mapping[Fqfn, FunctionRecord], admission: AdmissionMemo | None
) -> Mapping[Fqfn, FunctionRecord]:
    """The functions within the admission limits; logs each record newly found over one
    (once per function version and worker)."""
    if admission is None:
        return functions
    kept = admission.admitted(functions)
    for fqfn, problem in admission.take_new_refusals():
        log.error("function over an admission limit is not run", function=fqfn, reason=problem)
    return kept


def instance_folder(instances_dir: Path, instance: InstanceId) -> Path:
    """Where one instance's files live: ``{instances}/{tenant}/{namespace}/{name}/{index}``."""
    fqfn, index = split_instance_id(instance)
    return instances_dir.joinpath(*split_fqfn(fqfn), str(index))


def remove_folder(folder: Path, keep: Path | None = None) -> None:
    """Delete ``folder``, then its parents below ``keep`` that are left empty."""
    shutil.rmtree(folder, ignore_errors=True)
    if keep is None:
        return
    for parent in folder.parents:
        if parent == keep or keep not in parent.parents:
            return
        try:
            parent.rmdir()
        except OSError:
            return


class Reconciler:
    """Makes the runtime driver run exactly this worker's assigned instances.

    Actions run side by side, up to ``concurrency`` at a time, and a new wake-up
    does not wait for the actions of the last one: a worker taking over a lost
    worker's instances starts them all at once, and neither a slow start nor an
    assignment record that arrives a moment later holds up the others. An instance
    has at most one action under way; a change for it meanwhile is carried out when
    that action ends (the next reconcile sees it)."""

    CONCURRENCY = 16
    """How many runtime actions run at a time, by default (bench/README.md, failover)."""

    def __init__(
        self,
        backend: CoordinationBackend,
        driver: RuntimeDriver,
        mine: LocalAssignments,
        make_spec: Callable[[StartInstance | ReplaceInstance, Path], Awaitable[InstanceSpec]],
        instances_dir: Path,
        admission: AdmissionMemo | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self.backend = backend
        self.driver = driver
        self.mine = mine
        self.make_spec = make_spec
        self.instances_dir = instances_dir
        self.admission = admission
        self.concurrency = max(1, concurrency)
        self.running: dict[InstanceId, int] = {}
        self.under_way: set[InstanceId] = set()
        self.deferred: set[InstanceId] = set()

    async def run(self, wakeup: Wakeup) -> None:
        """Reconcile once per wake-up, forever; each action runs in a task of its own."""
        limiter = anyio.CapacityLimiter(self.concurrency)
        async with anyio.create_task_group() as group:
            while True:
                await wakeup.wait()
                functions = admitted(self.backend.functions(), self.admission)
                actions = reconcile(self.mine.by_instance, functions, self.running)
                for action in self.take_up(actions):
                    group.start_soon(self._carry_out, limiter, action, wakeup)

    def take_up(self, actions: list[RuntimeAction]) -> list[RuntimeAction]:
        """The actions to begin now: those of instances with none under way. The others
        are deferred until the action under way ends. Logs what begins (the failover
        bench's phases come from these lines)."""
        ready: list[RuntimeAction] = []
        for action in actions:
            if action.instance in self.under_way:
                self.deferred.add(action.instance)
            else:
                self.under_way.add(action.instance)
                ready.append(action)
        if ready:
            log.info("reconcile pass", **self.count(ready), waiting=len(self.deferred))
        return ready

    async def _carry_out(
        self, limiter: anyio.CapacityLimiter, action: RuntimeAction, wakeup: Wakeup
    ) -> None:
        """Apply one action within the limit; then, if a pass deferred a change for its
        instance meanwhile, ask for another pass."""
        try:
            async with limiter:
                await self.apply(action)
        finally:
            self.under_way.discard(action.instance)
            if action.instance in self.deferred:
                self.deferred.discard(action.instance)
                wakeup.set()

    @staticmethod
    def count(actions: list[RuntimeAction]) -> dict[str, int]:
        """How many starts, replaces and stops a pass holds (for its log line)."""
        return {
            "starts": sum(isinstance(a, StartInstance) for a in actions),
            "replaces": sum(isinstance(a, ReplaceInstance) for a in actions),
            "stops": sum(isinstance(a, StopInstance) for a in actions),
        }

    async def apply(self, action: RuntimeAction) -> None:
        """Carry out one action; a failure is logged and shows in status, never raised."""
        try:
            if isinstance(action, StopInstance):
                await self.driver.stop(action.instance)
                self.running.pop(action.instance, None)
                folder = instance_folder(self.instances_dir, action.instance)
                await anyio.to_thread.run_sync(remove_folder, folder, self.instances_dir)
                log.info("instance stopped", instance=action.instance, reason=action.reason)
                return
            if isinstance(action, ReplaceInstance):
                await self.driver.stop(action.instance)
            spec = await self.make_spec(action, self.instances_dir)
            await self.driver.start(spec)
            self.running[action.instance] = action.function.version
            log.info("instance started", instance=action.instance, version=action.function.version)
        except Exception as error:  # noqa: BLE001 - one instance must never stop the loop
            log.error("instance action failed", instance=action.instance, error=str(error))

    async def stop_all(self) -> None:
        """Stop every instance this worker runs (on shutdown), all at once: the slowest
        instance's stop (bounded by the runtime's grace), not their sum, bounds it."""
        async with anyio.create_task_group() as group:
            for instance in list(self.running):
                group.start_soon(self._stop_on_shutdown, instance)

    async def _stop_on_shutdown(self, instance: InstanceId) -> None:
        await self.driver.stop(instance)
        self.running.pop(instance, None)
