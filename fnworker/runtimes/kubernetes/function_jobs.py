"""What the Kubernetes driver holds per function (its instances, what it applied, a
pending delete, what its pods last reported) and an instance's status from that and
the pod watch. Pure, no I/O (a pending delete holds the cancel scope of its wait)."""

from __future__ import annotations

import dataclasses
from typing import Any

import anyio
import msgspec

from fnworker.runtimes.kubernetes.manifests import RenderedJob
from fnworker.runtimes.kubernetes.pod_readings import PodReading
from fnworker.runtimes.kubernetes.pod_watch import PodState
from fnworker.scheduler.model.instances import InstanceSpec
from fnworker.scheduler.model.records import InstanceId, InstanceStatusData


@dataclasses.dataclass(eq=False)
class PendingDelete:
    """A delete of a function's objects waiting out its grace; cancelled by a new start."""

    rendered: RenderedJob
    scope: anyio.CancelScope = dataclasses.field(default_factory=anyio.CancelScope)
    done: anyio.Event = dataclasses.field(default_factory=anyio.Event)
    started: bool = False

    def cancel(self) -> None:
        """Cancel the delete (a no-op once it runs its calls: it holds the job's lock)."""
        self.scope.cancel()
        if not self.started:
            self.done.set()


class FunctionJob(msgspec.Struct, kw_only=True):
    """What the driver holds for one function: its instances and applied objects."""

    instances: dict[InstanceId, InstanceSpec] = {}
    rendered: RenderedJob | None = None
    applied: list[dict[str, Any]] | None = None
    error: str = ""
    restarts: dict[int, int] = {}
    pending_delete: PendingDelete | None = None
    collected: dict[int, PodReading] = {}
    """What each instance's pod last answered on its control port."""


def instance_status(
    job: FunctionJob, spec: InstanceSpec, pod: PodState | None, watch_error: str
) -> InstanceStatusData:
    """An instance's status: the pod watch (running, restarts, why it waits), the
    counters its pod last reported, and the driver's own errors and restarts."""
    error = job.error or watch_error
    restarts = job.restarts.get(spec.index, 0)
    if pod is None:
        return InstanceStatusData(
            running=False, error=error, num_restarts=restarts, worker_id=spec.worker_id
        )
    reading = job.collected.get(spec.index)
    counters = reading.status if reading is not None else InstanceStatusData()
    return msgspec.structs.replace(
        counters,
        running=pod.phase == "Running" and pod.ready,
        error=error or pod.waiting or counters.error,
        num_restarts=restarts + pod.restarts,
        worker_id=spec.worker_id,
    )
