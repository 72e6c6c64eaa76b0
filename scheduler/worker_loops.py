"""The three long-lived loops of a worker: pump coordination events into local
state, plan assignments while leader, and reconcile the runtime with this
worker's assignments. Does I/O only through the backend and the runtime driver.

Triggers are coalesced: many events between two passes cause one pass, and a
pass always works from the newest state, never from a queue of stale events.
"""

from __future__ import annotations

from collections.abc import Callable
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
from fnworker.runtimes.driver import InstanceSpec, RuntimeDriver
from fnworker.scheduler.assignment_plan import plan_assignments
from fnworker.scheduler.reconcile import (
    ReplaceInstance,
    RuntimeAction,
    StartInstance,
    StopInstance,
    reconcile,
)
from fnworker.scheduler.records import Assignment, InstanceId, WorkerId, WorkerInfo

log = structlog.get_logger("fnworker.worker")


class Wakeup:
    """A coalescing trigger: any number of ``set()`` calls wake one ``wait()``."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        """Ask for one more pass."""
        self._event.set()

    async def wait(self) -> None:
        """Wait until a pass was asked for, and consume the request."""
        await self._event.wait()
        self._event = anyio.Event()


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
    """Apply each coordination event to local state and wake the loops it concerns."""
    async with events:
        async for event in events:
            if isinstance(event, AssignmentsChanged):
                if mine.apply(event):
                    reconcile_wakeup.set()
            elif isinstance(event, FunctionsChanged):
                leader_wakeup.set()
                reconcile_wakeup.set()
            elif isinstance(event, MembershipChanged):
                leader_wakeup.set()


async def lead(backend: CoordinationBackend, me: WorkerInfo, strategy: str, wakeup: Wakeup) -> None:
    """While this worker leads, re-plan on every change and write what differs."""
    while True:
        await wakeup.wait()
        view = backend.membership()
        if view.leader is None or view.leader.worker_id != me.worker_id:
            continue
        workers = [WorkerId(m.worker_id) for m in view.members]
        changes = plan_assignments(
            backend.functions(), workers, backend.assignments(), view.term, strategy
        )
        if changes.is_empty():
            continue
        log.info(
            "assignments planned",
            term=view.term,
            assigned=len(changes.assigned),
            unassigned=len(changes.unassigned),
        )
        await backend.publish_assignments(view.term, changes.assigned, changes.unassigned)


class Reconciler:
    """Makes the runtime driver run exactly this worker's assigned instances."""

    def __init__(
        self,
        backend: CoordinationBackend,
        driver: RuntimeDriver,
        mine: LocalAssignments,
        make_spec: Callable[[StartInstance | ReplaceInstance, Path], InstanceSpec],
        instances_dir: Path,
    ) -> None:
        self.backend = backend
        self.driver = driver
        self.mine = mine
        self.make_spec = make_spec
        self.instances_dir = instances_dir
        self.running: dict[InstanceId, int] = {}

    async def run(self, wakeup: Wakeup) -> None:
        """Reconcile once per wake-up, forever."""
        while True:
            await wakeup.wait()
            for action in reconcile(self.mine.by_instance, self.backend.functions(), self.running):
                await self.apply(action)

    async def apply(self, action: RuntimeAction) -> None:
        """Carry out one action; a failure is logged and shows in status, never raised."""
        try:
            if isinstance(action, StopInstance):
                await self.driver.stop(action.instance)
                self.running.pop(action.instance, None)
                log.info("instance stopped", instance=action.instance, reason=action.reason)
                return
            if isinstance(action, ReplaceInstance):
                await self.driver.stop(action.instance)
            spec = self.make_spec(action, self.instances_dir)
            await self.driver.start(spec)
            self.running[action.instance] = action.function.version
            log.info("instance started", instance=action.instance, version=action.function.version)
        except Exception as error:  # noqa: BLE001 - one instance must never stop the loop
            log.error("instance action failed", instance=action.instance, error=str(error))

    async def stop_all(self) -> None:
        """Stop every instance this worker runs (on shutdown)."""
        for instance in list(self.running):
            await self.driver.stop(instance)
            self.running.pop(instance, None)
