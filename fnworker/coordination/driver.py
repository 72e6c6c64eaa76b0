"""Runs the pure protocol (``protocol.step``) for one worker over any transport:
feeds it ``Tick``s from an injectable clock and the records the transport's
readers deliver, and carries out its outputs: events to the worker's stream,
notes to the log, and records to a ``Publisher``, in order, from one sender task.

The transport (Pulsar or in-memory topics) only reads and writes; every decision
is the protocol's. Does I/O only through the publisher, the event stream and the
logger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
import structlog
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from fnworker.coordination.events import CoordinationEvent
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
    handed_off,
    initial_state,
    next_wake,
    step,
)
from fnworker.coordination.protocol.messages import HeartbeatStored, ProtocolRecord
from fnworker.coordination.wire import Heartbeat
from fnworker.scheduler.model.clock import Clock
from fnworker.scheduler.model.records import Assignment, InstanceId, WorkerInfo

log = structlog.get_logger("fnworker.coordination")

Batch = tuple[list[Send], anyio.Event]
LEAVE_TIMEOUT = 2.0
"""How long a worker on its way out tries to say it leaves."""


HAND_OFF_MARGIN = 1.0
"""How long past its timeout a hand-off is waited for: the protocol gives up by
itself on the first tick after the timeout; this only guards against a stuck one."""


class Publisher(Protocol):
    """Where a driver's records go."""

    async def publish(self, sends: Sequence[Send]) -> None:
        """Store these records, in this order on each topic; return once all are stored."""
        ...


class ProtocolDriver:
    """One worker's protocol state and the loops that move it."""

    def __init__(
        self,
        me: WorkerInfo,
        session: str,
        timings: Timings,
        clock: Clock,
        publisher: Publisher,
        events: MemoryObjectSendStream[CoordinationEvent],
    ) -> None:
        self.clock = clock
        self.publisher = publisher
        self.events = events
        self.state: NodeState = initial_state(me, session, timings, clock.now())
        self.outbox_in, self.outbox_out = anyio.create_memory_object_stream[Batch](1_000_000)
        self.sleeping_until = float("inf")
        self.nap: anyio.CancelScope | None = None
        self.running = True
        """False once ``run`` has ended: a worker that left publishes nothing more."""
        self.handed_over = anyio.Event()
        """Set once a worker that hands off holds nothing any more."""
        self.watchers: list[Callable[[NodeState], None]] = []
        """Called with the new state after every step (e.g. the transport opening or
        closing a leader-only reader); they must not block."""

    def feed(self, event: Input) -> anyio.Event:
        """Step the protocol with one input and carry out its outputs; the event is set
        once every record it asked to publish is stored."""
        self.state, outputs = step(self.state, event, self.clock.now())
        for watcher in self.watchers:
            watcher(self.state)
        sends: list[Send] = []
        for output in outputs:
            if isinstance(output, Send):
                sends.append(output)
            elif isinstance(output, Emit):
                self.emit(output.event)
            else:
                write_log(output)
        stored = anyio.Event()
        if sends and self.running:
            self.outbox_in.send_nowait((sends, stored))
        else:
            stored.set()  # nothing to send, or this worker has left: nothing will be
        if self.nap is not None and next_wake(self.state) < self.sleeping_until:
            self.nap.cancel()  # a deadline moved closer: tick earlier
        return stored

    def deliver(self, record: ProtocolRecord) -> None:
        """A reader read ``record``."""
        self.feed(Delivered(record=record))

    async def publish(
        self, term: int, assigned: Sequence[Assignment], unassigned: Sequence[InstanceId]
    ) -> None:
        """The leader's planning pass: publish what changed and wait until it is stored."""
        event = Publish(term=term, assigned=tuple(assigned), unassigned=tuple(unassigned))
        await self.feed(event).wait()

    def emit(self, event: CoordinationEvent) -> None:
        """Hand an event to the worker (a closed stream: the worker is gone)."""
        try:
            self.events.send_nowait(event)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Tick when due and publish what the protocol asks, until cancelled."""
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self.send_loop)
                task_status.started()
                await self.tick_loop()
        finally:
            self.running = False
            while True:  # release every writer still waiting on a batch
                try:
                    self.outbox_out.receive_nowait()[1].set()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break

    async def tick_loop(self) -> None:
        """Sleep until the protocol's next wake time (or until it moves closer), tick."""
        while True:
            wake = next_wake(self.state)
            with anyio.CancelScope() as nap:
                self.nap, self.sleeping_until = nap, wake
                await self.clock.sleep(max(0.0, wake - self.clock.now()))
            self.nap, self.sleeping_until = None, float("inf")
            if not nap.cancelled_caught:
                self.feed(Tick())

    async def send_loop(self) -> None:
        """Publish each batch in the order the protocol produced it."""
        async for sends, stored in self.outbox_out:
            try:
                await self.publisher.publish(sends)
            finally:
                stored.set()
            for send in sends:
                if isinstance(send.record, Heartbeat):
                    self.feed(HeartbeatStored(seq=send.record.seq))

    async def hand_off(self, timeout: float) -> bool:
        """Graceful stop: ask the leader to move this worker's instances and wait (at
        most ``timeout`` seconds) until each runs on its new owner and was unassigned
        here; True when all were."""
        self.watchers.append(self.note_handed_off)
        self.feed(HandOff(timeout=timeout))
        with anyio.move_on_after(timeout + HAND_OFF_MARGIN):
            await self.handed_over.wait()
        return self.handed_over.is_set() and not self.state.hand_off_gave_up

    def note_handed_off(self, state: NodeState) -> None:
        """A watcher: wake ``hand_off`` once this worker holds nothing any more."""
        if handed_off(state):
            self.handed_over.set()

    def confirm_running(self, instances: Sequence[InstanceId]) -> None:
        """The runtime runs ``instances``: confirm those handed over to this worker."""
        self.feed(InstancesRunning(instances=tuple(instances)))

    async def leave(self) -> None:
        """Say goodbye so the leader moves this worker's instances at once (best effort)."""
        self.state, outputs = step(self.state, Leave(), self.clock.now())
        sends = [output for output in outputs if isinstance(output, Send)]
        try:
            with anyio.fail_after(LEAVE_TIMEOUT):
                await self.publisher.publish(sends)
        except Exception as error:  # noqa: BLE001 - best effort on the way out
            log.warning("could not announce leaving", error=str(error))


def write_log(note: Note) -> None:
    """One log line for a protocol note."""
    fields = dict(note.fields)
    if note.level == "warning":
        log.warning(note.event, **fields)
    else:
        log.info(note.event, **fields)
