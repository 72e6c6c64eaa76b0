"""A reader of one topic that is open only while the protocol state asks for it:
the heartbeats topic, read by the leader alone (``reader_needs.reads_heartbeats``).
Does I/O (a pulsar reader); the decision is the pure ``wanted`` function.

The driver calls ``watch`` after every step; the ``run`` task opens a reader at
``latest`` when the state starts to want one, hands every record to ``deliver``,
and closes it when the state stops wanting it (this worker lost, or never won,
leadership). A worker that does not lead therefore has no subscription on the
topic at all: the fleet's heartbeat traffic is O(workers), not O(workers²).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pulsar.asyncio as apulsar
import structlog

from fnworker.coordination.protocol import NodeState
from fnworker.coordination.pulsar_transport import read_forever
from fnworker.coordination.replay import STEP_SECONDS, abandon

log = structlog.get_logger("fnworker.coordination")

RETRY_SECONDS = 0.2
"""Pause before opening the reader again after a failed or unanswered attempt."""
QUIET_LIMIT = 0.6
"""A wanted reader that delivered nothing for this long is replaced (the backend
passes 3 heartbeat intervals: the leader's own heartbeats must arrive)."""


class StateGatedReader:
    """One topic's reader, open exactly while ``wanted(state)`` holds."""

    def __init__(
        self,
        topic: str,
        open_reader: Callable[[], Awaitable[apulsar.Reader]],
        decoder: Any,
        deliver: Callable[[Any], object],
        wanted: Callable[[NodeState], bool],
        quiet_limit: float = QUIET_LIMIT,
    ) -> None:
        self.topic = topic
        self.open_reader = open_reader
        self.decoder = decoder
        self.deliver = deliver
        self.wanted = wanted
        self.wants = False
        self.changed = anyio.Event()
        self.quiet_limit = quiet_limit
        self.heard_at = 0.0
        self.opened = 0
        """How many times a reader was opened (logged; a test can count it)."""
        self.silences = 0
        """How many readers were replaced for silence."""

    def watch(self, state: NodeState) -> None:
        """After a protocol step: note whether the state now wants the reader."""
        wants = self.wanted(state)
        if wants != self.wants:
            self.wants = wants
            self.changed.set()
            self.changed = anyio.Event()

    async def wait_until(self, wants: bool) -> None:
        """Return once the state wants the reader (``True``) or no longer does."""
        while self.wants != wants:
            await self.changed.wait()

    async def run(self) -> None:
        """Open, read and close the reader as the state asks, until cancelled; a
        reader silent for ``quiet_limit`` while wanted is replaced by a new one."""
        while True:
            await self.wait_until(True)
            reader = await self.open_while_wanted()
            if reader is None:
                continue
            self.heard_at = anyio.current_time()
            async with anyio.create_task_group() as group:
                group.start_soon(self.read, reader)
                await self.until_unwanted_or_silent()
                group.cancel_scope.cancel()
            await abandon(reader)
            log.info("leader-only reader closed", topic=self.topic)

    async def read(self, reader: apulsar.Reader) -> None:
        """Deliver what the reader reads; a reader that fails is left for the silence
        check to replace (it ends nothing else)."""
        try:
            await read_forever(reader, self.decoder, self.heard)
        except apulsar.PulsarException as error:
            log.warning("leader-only reader failed", topic=self.topic, error=str(error))

    def heard(self, record: Any) -> object:
        """Hand a record on, and note that the reader is alive."""
        self.heard_at = anyio.current_time()
        return self.deliver(record)

    async def until_unwanted_or_silent(self) -> None:
        """Return when the state no longer wants the reader, or when it delivered
        nothing for ``quiet_limit`` s (the topic has traffic while it is wanted: the
        leader's own heartbeats). A pulsar-lite reader opened at ``latest`` whose first
        entry is a batch of several records reads nothing more, and reads were seen to
        stall (docs/coordination.md, pulsar-lite); a new reader recovers from both."""
        checked_at = anyio.current_time()
        while self.wants:
            with anyio.move_on_after(self.quiet_limit / 4):
                await self.wait_until(False)
                return
            now = anyio.current_time()
            if now - checked_at > self.quiet_limit:
                self.heard_at = now  # this process was frozen, not the reader: read on
            checked_at = now
            silent_for = now - self.heard_at
            if silent_for > self.quiet_limit:
                self.silences += 1
                log.warning(
                    "leader-only reader silent; opening a new one",
                    topic=self.topic,
                    silent_seconds=round(silent_for, 3),
                )
                return

    async def open_while_wanted(self) -> apulsar.Reader | None:
        """A new reader at ``latest``, retried until it opens; None once unwanted."""
        while self.wants:
            with anyio.move_on_after(STEP_SECONDS):
                try:
                    reader = await self.open_reader()
                except apulsar.PulsarException as error:
                    log.warning(
                        "leader-only reader failed to open", topic=self.topic, error=str(error)
                    )
                else:
                    self.opened += 1
                    log.info("leader-only reader opened", topic=self.topic, times=self.opened)
                    return reader
            await anyio.sleep(RETRY_SECONDS)
        return None
