"""The process runtime driver: every instance runs the shared instance host in an OS
process of its own (``fnworker.runtimes.process.process_main``), supervised by a
thread of the worker (supervisor.py). Implements the RuntimeDriver protocol (name
``process``). Every blocking call runs off the event loop.

The parts, one module each: ``settings`` (from functionRuntimeFactoryConfigs),
``restart_policy`` (pure backoff), ``command`` (pure: command line, environment, log
path), ``pid_files`` (ending what a previous life of the worker left), ``phases``
(the supervisor's phase machine), ``outcomes`` (why a run ended) and ``supervisor``
(one thread per instance). Decisions and numbers: docs/process-runtime.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import structlog
from anyio.abc import TaskStatus

from fnworker.runtimes.lifecycle import InstanceLifecycle
from fnworker.runtimes.process.pid_files import end_leftover, pid_file_of
from fnworker.runtimes.process.settings import ProcessSettings
from fnworker.runtimes.process.supervisor import InstanceProcess
from fnworker.scheduler.model.instances import InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import InstanceId, InstanceStatusData

log = structlog.get_logger("fnworker.runtime.process")


class ProcessRuntime(InstanceLifecycle[InstanceProcess]):
    """Runs every function instance in a supervised OS process of its own."""

    name = "process"

    def __init__(
        self, settings: ProcessSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.settings = settings
        self.clock = clock
        self._swept = False
        self._sweep_lock = anyio.Lock()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The driver's place in the worker's root task group. Supervisors are threads,
        not tasks (each spawning thread must live exactly as long as its instance is
        supervised, for the parent-death signal), so nothing runs here; but when the
        group ends, every supervisor is told to stop at once, and ``stop``/``aclose``
        then wait for them."""
        task_status.started()
        try:
            await anyio.sleep_forever()
        finally:
            for held in list(self._held.values()):
                held.request_stop()

    async def start(self, spec: InstanceSpec) -> None:
        """Start (or start again) an instance; returns once its process is spawned.

        The first start also ends instance processes a previous run of this worker
        left behind."""
        await self._sweep_once(spec.worker_id)
        await super().start(spec)

    def status(self, instance: InstanceId) -> InstanceStatusData | None:
        """The instance's status, or None if this runtime does not hold it."""
        held = self._held.get(instance)
        return held.status() if held is not None else None

    def metrics(self, instance: InstanceId) -> InstanceMetrics | None:
        """The instance's counters as last polled, or None if not held."""
        held = self._held.get(instance)
        return held.metrics() if held is not None else None

    def pid(self, instance: InstanceId) -> int | None:
        """The pid of the instance's current (or last) process."""
        held = self._held.get(instance)
        return held.pid if held is not None else None

    async def reset_metrics(self, instance: InstanceId) -> bool:
        """Zero the instance's counters; False if it is not running here."""
        held = self._held.get(instance)
        if held is None:
            return False
        return await anyio.to_thread.run_sync(held.reset_metrics)

    async def aclose(self) -> None:
        """Stop every instance. All supervisors are told at once, before any join takes
        one of the event loop's worker threads, so stopping many instances takes about
        one grace period, not one per batch of threads."""
        for held in list(self._held.values()):
            held.request_stop()
        async with anyio.create_task_group() as group:
            for instance in list(self._held):
                group.start_soon(self.stop, instance)

    # -- internals -----------------------------------------------------------------

    async def _sweep_once(self, worker_id: str) -> None:
        """On the first start: end instance processes a previous life of this worker left."""
        async with self._sweep_lock:
            if self._swept:
                return
            self._swept = True
            root = self.settings.state_directory / "processes"
            files = sorted(root.rglob("*.pid")) if root.is_dir() else []
            for path in files:
                await anyio.to_thread.run_sync(end_leftover, path, worker_id, self.clock)

    async def _start_locked(self, spec: InstanceSpec, *, restarts: int) -> None:
        pid_file = pid_file_of(self.settings.state_directory, spec.instance)
        await anyio.to_thread.run_sync(end_leftover, pid_file, spec.worker_id, self.clock)
        held = InstanceProcess(spec, self.settings, restarts=restarts, clock=self.clock)
        self._held[spec.instance] = held
        await anyio.to_thread.run_sync(held.begin)

    async def _stop_locked(self, instance: InstanceId) -> None:
        held = self._held.pop(instance, None)
        if held is None:
            return
        held.request_stop()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(held.join)
        log.info("instance stopped", instance=instance)
