"""The coordination backend on Pulsar topics: the pure protocol (protocol/) run by
a ``ProtocolDriver`` whose records travel on the cluster's topics. This module
only wires readers to the driver and the metadata log; pulsar_transport.py does
the reading and writing, pulsar_packages.py the package chunks, metadata_log.py
the versioned metadata writes. See docs/coordination.md.

Per worker: readers on the coordinate topic (leases, claims, reports), the
heartbeats topic, the metadata topic (from the start) and its own assignment
topic; producers for everything it publishes.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio
import msgspec
import pulsar.asyncio as apulsar
import structlog
from anyio.abc import ObjectReceiveStream, TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from fnworker.coordination.driver import ProtocolDriver
from fnworker.coordination.events import CoordinationEvent, FunctionsChanged, MembershipView
from fnworker.coordination.fleet_settings import FleetSettings
from fnworker.coordination.metadata_log import MetadataLog
from fnworker.coordination.protocol import membership_of, table_of
from fnworker.coordination.pulsar_packages import fetch_package, store_package
from fnworker.coordination.pulsar_transport import (
    ENCODE,
    PulsarTopics,
    client_logger,
    read_forever,
)
from fnworker.coordination.replay import replay_topic
from fnworker.coordination.topics import ClusterTopics
from fnworker.coordination.wire import (
    AssignmentRecord,
    CoordinateRecord,
    FunctionWrite,
    HeartbeatRecord,
    Report,
)
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock
from fnworker.scheduler.model.records import (
    Assignment,
    Fqfn,
    FunctionRecord,
    InstanceId,
    PackageRef,
    WorkerInfo,
)

__all__ = ["ENCODE", "PulsarCoordination"]

log = structlog.get_logger("fnworker.coordination")

COORDINATE = msgspec.msgpack.Decoder(CoordinateRecord | Report)
HEARTBEATS = msgspec.msgpack.Decoder(HeartbeatRecord)
ASSIGNMENTS = msgspec.msgpack.Decoder(AssignmentRecord)
METADATA = msgspec.msgpack.Decoder(FunctionWrite)


class PulsarCoordination:
    """One worker's handle on its cluster's coordination topics."""

    def __init__(
        self, settings: FleetSettings, topics: ClusterTopics, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.clock = clock
        self.session = uuid.uuid4().hex[:12]
        self.metadata = MetadataLog()
        self.me: WorkerInfo | None = None
        self.pulsar: PulsarTopics | None = None
        self.driver: ProtocolDriver | None = None

    # -- the CoordinationBackend contract -----------------------------------

    async def run(
        self, me: WorkerInfo, *, task_status: TaskStatus[ObjectReceiveStream[CoordinationEvent]]
    ) -> None:
        """Join the fleet, report events until cancelled, then leave cleanly."""
        self.me = me
        send, receive = anyio.create_memory_object_stream[CoordinationEvent](math.inf)
        client = apulsar.Client(
            self.settings.service_url,
            operation_timeout_seconds=10,
            logger=client_logger(self.settings.client_log_file),
        )
        self.pulsar = PulsarTopics(client, self.topics)
        try:
            async with anyio.create_task_group() as group:
                await self.start_reading(group, me, send)
                task_status.started(receive)
        finally:
            with anyio.CancelScope(shield=True):
                if self.driver is not None:
                    await self.driver.leave()
                await client.close()

    async def write_function(self, record: FunctionRecord, expected_version: int) -> None:
        """Publish the next version and wait to learn whether it won."""
        await self.write(record.fqfn, record, expected_version)

    async def delete_function(self, fqfn: Fqfn, expected_version: int) -> None:
        """Publish a deletion as the next version and wait to learn whether it won."""
        await self.write(fqfn, None, expected_version)

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

    async def publish_assignments(
        self, term: int, assigned: Sequence[Assignment], unassigned: Sequence[InstanceId]
    ) -> None:
        """Leader only: write what changed to each worker's own topic."""
        if self.driver is not None:
            await self.driver.publish(term, assigned, unassigned)

    async def store_package(self, ref: PackageRef, path: Path) -> PackageRef:
        """Write a package to the packages topic in chunks; the ref names the first one."""
        assert self.pulsar is not None
        return await store_package(self.pulsar, ref, path)

    async def fetch_package(self, ref: PackageRef, target: Path) -> None:
        """Read a package's chunks from the packages topic into ``target``."""
        assert self.pulsar is not None
        await fetch_package(self.pulsar, ref, target)

    # -- wiring ---------------------------------------------------------------

    async def start_reading(
        self,
        group: TaskGroup,
        me: WorkerInfo,
        events: MemoryObjectSendStream[CoordinationEvent],
    ) -> None:
        """Open every reader, catch up on metadata, then start the protocol."""
        transport = self.pulsar
        assert transport is not None
        probe = f"probe-{self.session}"
        log.info("start-up: opening readers", session=self.session)
        mine = await transport.reader_at_latest(self.topics.assignments_of(me.worker_id))
        coordinate = await transport.reader_near_end(self.topics.coordinate, probe)
        heartbeats = await transport.reader_at_latest(self.topics.heartbeats)
        log.info("start-up: replaying the metadata topic")
        metadata = await replay_topic(
            transport.client, self.topics.metadata, self.apply_metadata_bytes, probe_name=probe
        )
        log.info("start-up: metadata read", functions=len(self.metadata.functions()))
        events.send_nowait(FunctionsChanged(changed=tuple(self.metadata.functions().values())))
        driver = ProtocolDriver(
            me, self.session, self.settings.timings(), self.clock, transport, events
        )
        self.driver = driver
        group.start_soon(read_forever, mine, ASSIGNMENTS, driver.deliver)
        group.start_soon(read_forever, coordinate, COORDINATE, driver.deliver)
        group.start_soon(read_forever, heartbeats, HEARTBEATS, driver.deliver)
        group.start_soon(read_forever, metadata, METADATA, self.apply_metadata_event)
        await group.start(driver.run)

    def apply_metadata_bytes(self, data: bytes) -> bool:
        """Decode and apply one record of the metadata topic (start-up replay)."""
        return self.metadata.apply(METADATA.decode(data))

    def apply_metadata_event(self, write: FunctionWrite) -> None:
        """Apply a live metadata write and tell the worker."""
        if self.metadata.apply(write) and self.driver is not None:
            if write.record is None:
                self.driver.emit(FunctionsChanged(deleted=(write.fqfn,)))
            else:
                self.driver.emit(FunctionsChanged(changed=(write.record,)))

    async def write(self, fqfn: Fqfn, record: FunctionRecord | None, expected: int) -> None:
        """Publish a metadata write and wait until this worker's reader decides it."""
        write = FunctionWrite(
            fqfn=fqfn,
            version=expected + 1,
            record=record,
            writer=self.me.worker_id if self.me else "",
            request_id=uuid.uuid4().hex,
        )
        transport = self.pulsar
        assert transport is not None

        async def publish(write: FunctionWrite) -> None:
            await transport.send(self.topics.metadata, ENCODE(write))

        await self.metadata.write(write, expected, publish)
