"""The leader's pending operator requests (drains, rebalances) and the coalescing
trigger that wakes its loop. The fleet admin writes them; the leader loop reads them."""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from fnworker.scheduler.model.records import Assignment, InstanceId, WorkerId, WorkerInfo


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


class LeaderControl:
    """Operator requests the leader carries out: drains and rebalances.

    A drained worker gets no instances until it leaves the fleet (Pulsar's rule);
    its status is Pulsar's LongRunningProcessStatus: RUNNING, then SUCCESS once
    nothing is assigned to it any more.
    """

    def __init__(self, wakeup: Wakeup) -> None:
        self.wakeup = wakeup
        self.drains: dict[str, str] = {}
        self.rebalance_pending = False

    def request_drain(self, worker_id: str) -> None:
        """Exclude a worker from placement and move its instances away."""
        self.drains[worker_id] = "RUNNING"
        self.wakeup.set()

    def request_rebalance(self) -> None:
        """Even out the instances per worker on the next pass."""
        self.rebalance_pending = True
        self.wakeup.set()

    def eligible(self, members: tuple[WorkerInfo, ...]) -> list[WorkerId]:
        """Members that may receive instances; forgets drains of departed workers."""
        present = {m.worker_id for m in members}
        for worker_id in [w for w in self.drains if w not in present]:
            del self.drains[worker_id]
        return [WorkerId(m.worker_id) for m in members if m.worker_id not in self.drains]

    def settle_drains(self, assignments: Mapping[InstanceId, Assignment]) -> None:
        """Mark drains complete once nothing is assigned to the drained workers."""
        if "RUNNING" not in self.drains.values():
            return
        busy = {a.worker for a in assignments.values()}
        for worker_id, status in self.drains.items():
            if status == "RUNNING" and worker_id not in busy:
                self.drains[worker_id] = "SUCCESS"
