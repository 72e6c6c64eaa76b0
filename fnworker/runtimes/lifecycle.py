"""Start, stop and restart of local instances, one at a time per instance: the
part the thread and process drivers share. No I/O of its own; the drivers'
``_start_locked`` and ``_stop_locked`` do it."""

from __future__ import annotations

from collections import defaultdict
from typing import Generic, Protocol, TypeVar

import anyio

from fnworker.scheduler.model.instances import InstanceSpec
from fnworker.scheduler.model.records import FunctionRecord, InstanceId


class Held(Protocol):
    """What a driver keeps per instance: at least its spec and restart count."""

    spec: InstanceSpec
    restarts: int


H = TypeVar("H", bound=Held)


class InstanceLifecycle(Generic[H]):
    """Serialises the life-cycle calls of each instance with a lock of its own."""

    def __init__(self) -> None:
        self._held: dict[InstanceId, H] = {}
        self._locks: defaultdict[InstanceId, anyio.Lock] = defaultdict(anyio.Lock)

    async def start(self, spec: InstanceSpec) -> None:
        """Start (or start again) an instance."""
        async with self._locks[spec.instance]:
            await self._stop_locked(spec.instance)
            await self._start_locked(spec, restarts=0)

    async def stop(self, instance: InstanceId) -> None:
        """Stop an instance and forget it; a no-op for one not held."""
        async with self._locks[instance]:
            await self._stop_locked(instance)

    async def restart(self, instance: InstanceId) -> None:
        """Stop and start again with the same spec, counting the restart."""
        async with self._locks[instance]:
            held = self._held.get(instance)
            if held is None:
                return
            await self._stop_locked(instance)
            await self._start_locked(held.spec, restarts=held.restarts + 1)

    def instances(self) -> set[InstanceId]:
        """Every instance held: running, starting or failed."""
        return set(self._held)

    def admission_problem(self, function: FunctionRecord) -> str | None:
        """Nothing beyond the worker's own checks stops a thread or process instance."""
        return None

    async def _start_locked(self, spec: InstanceSpec, *, restarts: int) -> None:
        raise NotImplementedError

    async def _stop_locked(self, instance: InstanceId) -> None:
        raise NotImplementedError
