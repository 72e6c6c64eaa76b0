"""The thread runtime: every instance runs inside the worker process on a daemon
thread of its own. Implements the RuntimeDriver protocol (name ``thread``). Does
broker I/O, always off the event loop.

Containment (docs/instance-host.md, "Fault containment"):

- **Clients**: instances use a small pool of clients, and a function with many
  input topics gets a client of its own (fnworker/runtimes/client_pool.py), so one
  function's subscriptions or traffic do not queue up every other function's.
- **Starting** never holds up the caller for long: an instance loads and subscribes
  on a daemon thread of its own (``<thread name>-open``); ``start`` waits at most
  ``START_WAIT_SECONDS`` for it, then returns with the instance still opening
  (``running: false`` until it runs). A stop while it opens abandons it: the
  opener closes what it opened when its blocking call returns, and a dedicated
  client is closed at once, which ends its pending subscribe.
- **Stopping is bounded**: the loop gets ``stop_timeout_seconds`` (the worker's
  ``gracePeriodSeconds``, 5 s by default) to finish; closing the consumer and
  producers, and then a dedicated client, get ``CLOSE_SECONDS`` each; what overruns
  is abandoned (daemon threads never hold up exit) and the log names the instance.
  ``aclose`` stops every instance at once, then closes the clients within
  ``CLOSE_SECONDS``: the runtime stops within ``stop_timeout_seconds + 3 *
  CLOSE_SECONDS`` (8 s by default), plus at most ``START_WAIT_SECONDS`` for a start
  in progress, whatever the instances are doing.

Failures stay local: a package that cannot load, or a subscription that fails,
shows as ``running=False`` with a one-sentence ``error`` in the instance's status,
and is not retried here (the worker decides when to restart). Thread names are
``f"{thread_group_name}-{instance}"``, as Pulsar names its ThreadRuntime threads
after ``threadGroupName``.
"""

from __future__ import annotations

import threading

import anyio
import msgspec
import pulsar
import structlog
from anyio.abc import TaskStatus

from fnworker.runtimes.broker_client import ClientLogger, make_client  # make_client: re-exported
from fnworker.runtimes.client_pool import (
    CLOSE_SECONDS,
    DEDICATED_ABOVE_TOPICS,
    SHARED_CLIENTS,
    ClientKey,
    ClientLease,
    ClientPool,
    client_key_for,
    run_bounded,
)
from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader
from fnworker.runtimes.instance.host import InstanceHost, InstanceStartError
from fnworker.runtimes.instance.instance_plan import PlanError, plan_instance
from fnworker.runtimes.instance.state_log import FunctionStateLog
from fnworker.runtimes.instance.state_logs import StateLogs
from fnworker.runtimes.instance.stats import describe
from fnworker.runtimes.lifecycle import InstanceLifecycle
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock
from fnworker.scheduler.model.instances import ClientSettings, InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import InstanceId, InstanceStatusData

__all__ = ["DEFAULT_THREAD_GROUP", "InstanceSlot", "ThreadRuntime", "make_client"]

DEFAULT_THREAD_GROUP = "Thread Function Container Group"
START_WAIT_SECONDS = 1.0
OPENING_REPORT_SECONDS = 5.0
"""An instance still opening (its client or subscribe not answered) after this long
says so in its status error, instead of a bare running false."""
log = structlog.get_logger("fnworker.runtime.thread")


class InstanceSlot(msgspec.Struct, kw_only=True):
    """What the runtime holds for one instance: its spec, host (None while it opens
    or if it failed), client lease and restarts."""

    spec: InstanceSpec
    host: InstanceHost | None = None
    error: str = ""
    restarts: int = 0
    lease: ClientLease | None = None
    state: FunctionStateLog | None = None
    abandoned: bool = False
    opened: threading.Event = msgspec.field(default_factory=threading.Event)
    opening_since: float
    """When the start began, on the runtime's clock."""


def opening_error(slot: InstanceSlot, now: float) -> str:
    """What an instance that has not finished opening says in its status: nothing for
    the first OPENING_REPORT_SECONDS, then how long it has waited for the broker."""
    if slot.opened.is_set():
        return ""
    waited = now - slot.opening_since
    if waited < OPENING_REPORT_SECONDS:
        return ""
    return (
        f"still starting after {waited:.0f} s: subscribing to its input has not finished "
        "(the broker has not answered yet)"
    )


class ThreadRuntime(InstanceLifecycle[InstanceSlot]):
    """Runs function instances on threads of the worker process.

    ``client_logger`` defaults to the C++ client's console logger at WARN (a Python
    logger costs every client in the process, see docs/instance-host.md).
    ``shared_clients`` and ``dedicated_above_topics`` shape the client pool.
    """

    name = "thread"

    def __init__(
        self,
        thread_group_name: str = DEFAULT_THREAD_GROUP,
        client_settings: ClientSettings | None = None,
        *,
        nack_redelivery_delay_ms: int = 1000,
        stop_timeout_seconds: float = 5.0,
        close_timeout_seconds: float = CLOSE_SECONDS,
        client_logger: ClientLogger | None = None,
        consumer_ids: ConsumerIdSpreader | None = None,
        shared_clients: int = SHARED_CLIENTS,
        dedicated_above_topics: int = DEDICATED_ABOVE_TOPICS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.clock = clock
        self.thread_group_name = thread_group_name
        self.client_logger = client_logger
        self.client_settings = client_settings
        self.nack_redelivery_delay_ms = nack_redelivery_delay_ms
        self.stop_timeout_seconds = stop_timeout_seconds
        self.close_timeout_seconds = close_timeout_seconds
        self.shared_clients = shared_clients
        self.dedicated_above_topics = dedicated_above_topics
        self._settings: ClientSettings | None = client_settings
        self._pool = ClientPool(self._make_client, consumer_ids)
        self._slots_lock = threading.Lock()
        super().__init__()
        self._states = StateLogs(self._make_client)

    def thread_name(self, instance: InstanceId) -> str:
        """The name of an instance's thread."""
        return f"{self.thread_group_name}-{instance}"

    def client_names(self) -> list[str]:
        """The pulsar clients open now (``shared-N``, ``function:<fqfn>``)."""
        return self._pool.names()

    # -- RuntimeDriver -----------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The driver's place in the worker's root task group: instances run on threads
        of their own, started by ``start`` and ended by ``stop``/``aclose``, so there is
        no background task to host."""
        task_status.started()
        await anyio.sleep_forever()

    def status(self, instance: InstanceId) -> InstanceStatusData | None:
        """The instance's status, or None if this runtime does not hold it."""
        slot = self._held.get(instance)
        if slot is None:
            return None
        if slot.host is None:
            return InstanceStatusData(
                running=False,
                error=slot.error or opening_error(slot, self.clock.now()),
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
        """Stop every instance at once, then close the clients (bounded, see above)."""
        async with anyio.create_task_group() as group:
            for instance in list(self._held):
                group.start_soon(self.stop, instance)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(
                run_bounded,
                self._states.close_all,
                self.close_timeout_seconds,
                "close state logs",
                abandon_on_cancel=True,
            )
            abandoned = await anyio.to_thread.run_sync(
                self._pool.close_all, self.close_timeout_seconds, abandon_on_cancel=True
            )
        for name in abandoned:
            log.warning(
                "pulsar client did not close in time; abandoned",
                client=name,
                seconds=self.close_timeout_seconds,
            )

    # -- internals ---------------------------------------------------------------

    def _make_client(self) -> pulsar.Client:
        assert self._settings is not None
        return make_client(self._settings, self.client_logger)

    def _client_key(self, spec: InstanceSpec) -> tuple[ClientKey, int]:
        """The client an instance uses, and its number of input topics."""
        try:
            topics = len(plan_instance(spec.function).inputs.topics)
        except PlanError:
            topics = 1  # the host reports the error; any client will do
        key = client_key_for(
            spec.function.fqfn,
            topics,
            shared_clients=self.shared_clients,
            dedicated_above=self.dedicated_above_topics,
        )
        return key, topics

    async def _start_locked(self, spec: InstanceSpec, *, restarts: int) -> None:
        if self._settings is None:
            self._settings = spec.client
        slot = self._held[spec.instance] = InstanceSlot(
            spec=spec, restarts=restarts, opening_since=self.clock.now()
        )
        opener = threading.Thread(
            target=self._open,
            args=(slot,),
            name=f"{self.thread_name(spec.instance)}-open",
            daemon=True,
        )
        opener.start()
        await anyio.to_thread.run_sync(slot.opened.wait, START_WAIT_SECONDS, abandon_on_cancel=True)

    def _open(self, slot: InstanceSlot) -> None:
        """The opener thread: lease a client, load and subscribe, start the loop."""
        try:
            self._open_slot(slot)
        except Exception as error:  # noqa: BLE001 - reported in status
            slot.error = f"starting the instance failed: {describe(error)}"
            self._end_lease(slot)
        finally:
            slot.opened.set()

    def _open_slot(self, slot: InstanceSlot) -> None:
        spec = slot.spec
        key, topics = self._client_key(spec)
        log.info("instance opening", instance=spec.instance, input_topics=topics, client=key.name)
        try:
            lease = self._pool.lease(key)
        except Exception as error:  # noqa: BLE001 - reported in status
            slot.error = f"creating the pulsar client failed: {describe(error)}"
            return
        slot.lease = lease
        slot.state = self._states.acquire(spec)
        host = InstanceHost(
            spec,
            lease.client,
            slot.state,
            thread_name=self.thread_name(spec.instance),
            nack_redelivery_delay_ms=self.nack_redelivery_delay_ms,
            consumer_ids=lease.consumer_ids,
            clock=self.clock,
        )
        try:
            if slot.abandoned:
                raise InstanceStartError("the instance was stopped while it started")
            host.open()
        except InstanceStartError as error:
            slot.error = str(error)
            if not slot.abandoned:
                log.warning("instance failed to start", instance=spec.instance, error=slot.error)
            self._end_lease(slot)
            return
        with self._slots_lock:
            keep = not slot.abandoned
            if keep:
                host.start()
                slot.host = host
        if keep:
            log.info(
                "instance started",
                instance=spec.instance,
                version=spec.function.version,
                **msgspec.structs.asdict(host.open_ms),
            )
            return
        host.close()
        self._end_lease(slot)

    def _end_lease(self, slot: InstanceSlot) -> None:
        """Release the slot's state log and client (blocking: a dedicated client is
        closed, bounded)."""
        state, slot.state = slot.state, None
        if state is not None:
            self._states.release(state)
        lease = slot.lease
        client = lease.release() if lease is not None else None
        if client is None:
            return
        name = lease.key.name if lease is not None else "?"
        if not run_bounded(client.close, self.close_timeout_seconds, f"close {name}"):
            log.warning(
                "pulsar client did not close in time; abandoned",
                client=name,
                seconds=self.close_timeout_seconds,
            )

    async def _stop_locked(self, instance: InstanceId) -> None:
        slot = self._held.pop(instance, None)
        if slot is None:
            return
        with self._slots_lock:
            slot.abandoned = True
            host = slot.host
        with anyio.CancelScope(shield=True):
            if host is not None:
                await self._stop_host(instance, host)
            await anyio.to_thread.run_sync(self._end_lease, slot, abandon_on_cancel=True)
        log.info("instance stopped", instance=instance)

    async def _stop_host(self, instance: InstanceId, host: InstanceHost) -> None:
        """Ask the loop to finish, wait, close; abandon what overruns its bound."""
        host.request_stop()
        stopped = await anyio.to_thread.run_sync(
            host.join, self.stop_timeout_seconds, abandon_on_cancel=True
        )
        if not stopped:
            log.warning(
                "instance thread did not stop in time; abandoned (it is a daemon thread)",
                instance=instance,
                seconds=self.stop_timeout_seconds,
                where=host.where_stuck(),
            )
        closed = await anyio.to_thread.run_sync(
            run_bounded,
            host.close,
            self.close_timeout_seconds,
            f"close {instance}",
            abandon_on_cancel=True,
        )
        if not closed:
            log.warning(
                "closing the instance's consumer and producers did not finish in time; abandoned",
                instance=instance,
                seconds=self.close_timeout_seconds,
            )
