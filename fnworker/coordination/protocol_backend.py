"""What both coordination backends share: the function metadata log with its
versioned writes, and the fleet views and assignment publishing that go through the
protocol driver. A backend adds only its transport: how it joins (``run``), how a
metadata write is appended (``append_metadata``) and where packages live."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from fnworker.coordination.driver import ProtocolDriver
from fnworker.coordination.events import FunctionsChanged, MembershipView
from fnworker.coordination.metadata_log import MetadataLog
from fnworker.coordination.protocol import membership_of, table_of
from fnworker.coordination.wire import FunctionWrite
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    WorkerInfo,
)


class ProtocolBackend:
    """The transport-independent half of a CoordinationBackend."""

    def __init__(self) -> None:
        self.session = uuid.uuid4().hex[:12]
        self.metadata = MetadataLog()
        self.me: WorkerInfo | None = None
        self.driver: ProtocolDriver | None = None

    async def append_metadata(self, write: FunctionWrite) -> None:
        """Append one write to the metadata topic (the transport's job)."""
        raise NotImplementedError

    async def write_function(self, record: FunctionRecord, expected_version: int) -> None:
        """Publish the next version and wait to learn whether it won."""
        await self.write(record.fqfn, record, expected_version)

    async def delete_function(self, fqfn: Fqfn, expected_version: int) -> None:
        """Publish a deletion as the next version and wait to learn whether it won."""
        await self.write(fqfn, None, expected_version)

    async def write(self, fqfn: Fqfn, record: FunctionRecord | None, expected: int) -> None:
        """Append the next version to the metadata topic; wait until this worker's
        reader decides it (VersionConflict when another write won)."""
        write = FunctionWrite(
            fqfn=fqfn,
            version=expected + 1,
            record=record,
            writer=self.me.worker_id if self.me else "",
            request_id=uuid.uuid4().hex,
        )
        await self.metadata.write(write, expected, self.append_metadata)

    def apply_metadata_event(self, write: FunctionWrite) -> None:
        """Apply a live metadata write and tell the worker."""
        if self.metadata.apply(write) and self.driver is not None:
            if write.record is None:
                self.driver.emit(FunctionsChanged(deleted=(write.fqfn,)))
            else:
                self.driver.emit(FunctionsChanged(changed=(write.record,)))

    def functions(self) -> Mapping[Fqfn, FunctionRecord]:
        """Every function, as this worker's metadata reader has applied them."""
        return self.metadata.functions()

    def membership(self) -> MembershipView:
        """The fleet: the leader's own liveness table, or the last lease elsewhere."""
        if self.driver is None:
            return MembershipView(term=0, leader=None, members=())
        return membership_of(self.driver.state)

    def assignments(self) -> Mapping[InstanceId, Assignment]:
        """The whole fleet's assignments (the leader's table; empty elsewhere)."""
        return table_of(self.driver.state) if self.driver is not None else {}

    async def hand_off(self, timeout: float) -> bool | None:
        """Graceful stop: hand this worker's instances to the others first (at most
        ``timeout`` seconds); True when all were, False when the timeout passed, None
        when there was no hand-off (alone in the fleet, or ``timeout`` 0)."""
        me = self.me.worker_id if self.me else ""
        others = [m for m in self.membership().members if m.worker_id != me]
        if self.driver is None or timeout <= 0 or not others:
            return None
        return await self.driver.hand_off(timeout)

    def awaiting_start(self) -> frozenset[InstanceId]:
        """Instances handed over to this worker whose running it has not confirmed."""
        return self.driver.state.awaiting if self.driver is not None else frozenset()

    def confirm_running(self, instances: Sequence[InstanceId]) -> None:
        """These instances run here now (those handed over are confirmed to the leader)."""
        if self.driver is not None:
            self.driver.confirm_running(instances)

    async def publish_assignments(
        self, term: int, assigned: Sequence[Assignment], unassigned: Sequence[InstanceId]
    ) -> None:
        """Leader only: write what changed to each worker's own topic (the protocol
        refuses, and logs, a stale term)."""
        if self.driver is not None:
            await self.driver.publish(term, assigned, unassigned)
