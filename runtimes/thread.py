"""The thread runtime: every instance runs inside the worker process on a daemon
thread of its own, all sharing one sync ``pulsar.Client``. Implements the
RuntimeDriver protocol (name ``thread``). Does broker I/O; every blocking client
call (subscribe, flush, close, join) runs through ``anyio.to_thread`` so the event
loop never blocks.

Failures stay local: a package that cannot load, or a subscription that fails,
shows as ``running=False`` with a one-sentence ``error`` in the instance's status,
and is not retried here (the worker decides when to restart). Thread names are
``f"{thread_group_name}-{instance}"``, as Pulsar names its ThreadRuntime threads
after ``threadGroupName``.
"""

from __future__ import annotations

import anyio
import msgspec
import pulsar
import structlog

from fnworker.runtimes.broker_client import ClientLogger, make_client  # make_client: re-exported
from fnworker.runtimes.driver import ClientSettings, InstanceMetrics, InstanceSpec
from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader
from fnworker.runtimes.instance.host import InstanceHost, InstanceStartError
from fnworker.runtimes.instance.state_store import StateStores
from fnworker.runtimes.instance.stats import describe
from fnworker.runtimes.lifecycle import InstanceLifecycle
from fnworker.scheduler.records import InstanceId, InstanceStatusData

DEFAULT_THREAD_GROUP = "Thread Function Container Group"
log = structlog.get_logger("fnworker.runtime.thread")


class InstanceSlot(msgspec.Struct, kw_only=True):
    """What the runtime holds for one instance: its spec, host (None if it failed) and restarts."""

    spec: InstanceSpec
    host: InstanceHost | None = None
    error: str = ""
    restarts: int = 0


class ThreadRuntime(InstanceLifecycle[InstanceSlot]):
    """Runs function instances on threads of the worker process.

    ``client_logger`` defaults to a stdlib logger at WARNING. The C++ client hands
    every DEBUG line to a Python logger (filtering happens in Python, under the
    GIL) and keeps the logger of the first client created in the process, so a
    ``pulsar.FileLogger(pulsar.LoggerLevel.Warn, path)`` is faster (see
    docs/instance-host.md).
    """

    name = "thread"

    def __init__(
        self,
        thread_group_name: str = DEFAULT_THREAD_GROUP,
        client_settings: ClientSettings | None = None,
        *,
        nack_redelivery_delay_ms: int = 1000,
        stop_timeout_seconds: float = 10.0,
        client_logger: ClientLogger | None = None,
        consumer_ids: ConsumerIdSpreader | None = None,
    ) -> None:
        self.consumer_ids = consumer_ids
        self.thread_group_name = thread_group_name
        self.client_logger = client_logger
        self.client_settings = client_settings
        self.nack_redelivery_delay_ms = nack_redelivery_delay_ms
        self.stop_timeout_seconds = stop_timeout_seconds
        self._client: pulsar.Client | None = None
        self._client_lock = anyio.Lock()
        super().__init__()
        self._states = StateStores()

    def thread_name(self, instance: InstanceId) -> str:
        """The name of an instance's thread."""
        return f"{self.thread_group_name}-{instance}"

    # -- RuntimeDriver -----------------------------------------------------------

    def status(self, instance: InstanceId) -> InstanceStatusData | None:
        """The instance's status, or None if this runtime does not hold it."""
        slot = self._held.get(instance)
        if slot is None:
            return None
        if slot.host is None:
            return InstanceStatusData(
                running=False,
                error=slot.error,
                num_restarts=slot.restarts,
                worker_id=slot.spec.worker_id,
            )
        status = slot.host.status()
        status.num_restarts = slot.restarts
        return status

    def metrics(self, instance: InstanceId) -> InstanceMetrics | None:
        """The instance's counters, or None if this runtime does not hold it."""
        slot = self._held.get(instance)
        if slot is None:
            return None
        return slot.host.metrics() if slot.host is not None else InstanceMetrics()

    async def aclose(self) -> None:
        """Stop every instance, then close the shared client."""
        async with anyio.create_task_group() as group:
            for instance in list(self._held):
                group.start_soon(self.stop, instance)
        client, self._client = self._client, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(client.close)

    # -- internals ---------------------------------------------------------------

    async def _shared_client(self, settings: ClientSettings) -> pulsar.Client:
        """The one client of this runtime, created on first use."""
        async with self._client_lock:
            if self._client is None:
                chosen = self.client_settings or settings
                self._client = await anyio.to_thread.run_sync(
                    make_client, chosen, self.client_logger
                )
            return self._client

    async def _start_locked(self, spec: InstanceSpec, *, restarts: int) -> None:
        slot = self._held[spec.instance] = InstanceSlot(spec=spec, restarts=restarts)
        try:
            client = await self._shared_client(spec.client)
        except Exception as error:  # noqa: BLE001 - reported in status
            slot.error = f"creating the pulsar client failed: {describe(error)}"
            return
        host = InstanceHost(
            spec,
            client,
            self._states.for_function(spec.function.fqfn),
            thread_name=self.thread_name(spec.instance),
            nack_redelivery_delay_ms=self.nack_redelivery_delay_ms,
            consumer_ids=self.consumer_ids,
        )
        try:
            await anyio.to_thread.run_sync(host.open)
        except InstanceStartError as error:
            slot.error = str(error)
            log.warning("instance failed to start", instance=spec.instance, error=slot.error)
            return
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(host.close)
            self._held.pop(spec.instance, None)
            raise
        host.start()
        slot.host = host
        log.info("instance started", instance=spec.instance, version=spec.function.version)

    async def _stop_locked(self, instance: InstanceId) -> None:
        slot = self._held.pop(instance, None)
        if slot is None or slot.host is None:
            return
        host = slot.host
        host.request_stop()
        with anyio.CancelScope(shield=True):
            stopped = await anyio.to_thread.run_sync(host.join, self.stop_timeout_seconds)
            if not stopped:
                log.warning(
                    "instance thread did not stop in time; closing it anyway", instance=instance
                )
            await anyio.to_thread.run_sync(host.close)
        log.info("instance stopped", instance=instance)
