"""The coordination backend on Pulsar topics: the pure protocol (protocol/) run by
a ``ProtocolDriver`` whose records travel on the cluster's topics. This module
only wires readers to the driver and the metadata log; pulsar_transport.py does
the reading and writing, pulsar_packages.py the package chunks, pulsar_uploads.py
the uploads index, metadata_log.py the versioned metadata writes. See
docs/coordination.md.

Per worker: readers on the coordinate topic (leases, claims, reports), the
metadata topic (from the start) and its own assignment topic, plus the heartbeats
topic while it leads or takes office (pulsar_leader_reader.py); producers for
everything it publishes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import anyio
import msgspec
import pulsar
import pulsar.asyncio as apulsar
import structlog
from anyio.abc import ObjectReceiveStream, TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from fnworker.coordination.driver import ProtocolDriver
from fnworker.coordination.events import CoordinationEvent, FunctionsChanged
from fnworker.coordination.fleet_settings import FleetSettings
from fnworker.coordination.metadata_snapshot import SnapshotSettings
from fnworker.coordination.protocol import leads
from fnworker.coordination.protocol_backend import ProtocolBackend
from fnworker.coordination.pulsar_leader_reader import StateGatedReader
from fnworker.coordination.pulsar_metadata import SnapshotWriter, load_snapshot, message_id_of
from fnworker.coordination.pulsar_packages import fetch_package, store_package
from fnworker.coordination.pulsar_state import append_state, read_state_table
from fnworker.coordination.pulsar_transport import (
    ENCODE,
    PulsarTopics,
    client_logger,
    read_forever,
)
from fnworker.coordination.pulsar_uploads import fetch_upload, read_uploads, store_upload
from fnworker.coordination.reader_needs import reads_heartbeats
from fnworker.coordination.replay import Cursor, Replayed, replay_from
from fnworker.coordination.topics import ClusterTopics
from fnworker.coordination.uploads import UploadRecord
from fnworker.coordination.wire import (
    AssignmentRecord,
    CoordinateRecord,
    FunctionWrite,
    HeartbeatRecord,
    Report,
)
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock
from fnworker.scheduler.model.function_state import StateRecord, StateTable, state_topic
from fnworker.scheduler.model.records import (
    Fqfn,
    PackageRef,
    WorkerInfo,
)

__all__ = ["ENCODE", "PulsarCoordination"]

log = structlog.get_logger("fnworker.coordination")

COORDINATE = msgspec.msgpack.Decoder(CoordinateRecord | Report)
HEARTBEATS = msgspec.msgpack.Decoder(HeartbeatRecord)
ASSIGNMENTS = msgspec.msgpack.Decoder(AssignmentRecord)
METADATA = msgspec.msgpack.Decoder(FunctionWrite)


class PulsarCoordination(ProtocolBackend):
    """One worker's handle on its cluster's coordination topics."""

    def __init__(
        self,
        settings: FleetSettings,
        topics: ClusterTopics,
        clock: Clock = SYSTEM_CLOCK,
        snapshots: SnapshotSettings | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.topics = topics
        self.clock = clock
        self.snapshots = snapshots or SnapshotSettings()
        self.pulsar: PulsarTopics | None = None

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

    async def store_package(self, ref: PackageRef, path: Path) -> PackageRef:
        """Write a package to the packages topic in chunks; the ref names the first one."""
        assert self.pulsar is not None
        return await store_package(self.pulsar, ref, path)

    async def read_state(self, fqfn: Fqfn, incarnation: int) -> StateTable:
        """Fold ``fqfn``'s state topic from its start to its last entry."""
        assert self.pulsar is not None
        topic = state_topic(self.topics.namespace, fqfn)
        return await read_state_table(self.pulsar.client, topic, incarnation)

    async def write_state(self, fqfn: Fqfn, record: StateRecord) -> None:
        """Append one record to ``fqfn``'s state topic."""
        assert self.pulsar is not None
        await append_state(self.pulsar, state_topic(self.topics.namespace, fqfn), record)

    async def fetch_package(self, ref: PackageRef, target: Path) -> None:
        """Read a package's chunks from the packages topic into ``target``."""
        assert self.pulsar is not None
        await fetch_package(self.pulsar, ref, target)

    async def store_upload(self, path: str, file: Path, sha256: str) -> UploadRecord:
        """Chunks on the packages topic, then a record on the uploads index."""
        assert self.pulsar is not None
        return await store_upload(self.pulsar, path, file, sha256)

    async def uploads(self) -> Mapping[str, UploadRecord]:
        """Fold the uploads index from its start to its last entry."""
        assert self.pulsar is not None
        return await read_uploads(self.pulsar.client, self.topics.uploads)

    async def fetch_upload(self, record: UploadRecord) -> bytes:
        """Read an upload's chunks from the packages topic."""
        assert self.pulsar is not None
        return await fetch_upload(self.pulsar, record)

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
        replayed = await self.replay_metadata(transport, probe)
        writer = SnapshotWriter(
            transport, self.topics.metadata_snapshots, self.snapshots, me.worker_id
        )
        writer.read(replayed.last, replayed.applied)
        events.send_nowait(FunctionsChanged(changed=tuple(self.metadata.functions().values())))
        driver = ProtocolDriver(
            me, self.session, self.settings.timings(), self.clock, transport, events
        )
        self.driver = driver
        self.read_heartbeats_while_leading(group, transport, driver)
        group.start_soon(read_forever, mine, ASSIGNMENTS, driver.deliver)
        group.start_soon(read_forever, coordinate, COORDINATE, driver.deliver)
        driver.watchers.append(lambda state: writer.offer(self.metadata.functions(), leads(state)))
        group.start_soon(writer.run)
        group.start_soon(self.read_metadata, replayed, writer)
        await group.start(driver.run)

    def read_heartbeats_while_leading(
        self, group: TaskGroup, transport: PulsarTopics, driver: ProtocolDriver
    ) -> None:
        """Read the heartbeats topic only while this worker leads or takes office
        (reader_needs.py): the driver tells the gated reader after every step."""
        heartbeats = StateGatedReader(
            self.topics.heartbeats,
            lambda: transport.reader_at_latest(self.topics.heartbeats),
            HEARTBEATS,
            driver.deliver,
            reads_heartbeats,
            quiet_limit=3 * self.settings.heartbeat_interval,
        )
        driver.watchers.append(heartbeats.watch)
        group.start_soon(heartbeats.run)

    async def replay_metadata(self, transport: PulsarTopics, probe: str) -> Replayed:
        """Catch up on the metadata topic: from the last complete snapshot when there
        is one (pulsar_metadata.py), else from the topic's first record."""
        started = anyio.current_time()
        snapshot = None
        if self.snapshots.read:
            snapshot = await load_snapshot(
                transport.client, self.topics.metadata_snapshots, self.topics.metadata, probe
            )
        start = message_id_of(snapshot.through) if snapshot is not None else None
        if snapshot is not None and start is not None:
            self.metadata.restore(snapshot.view())
            log.info(
                "start-up: metadata snapshot loaded",
                snapshot=snapshot.snapshot_id,
                functions=len(snapshot.functions),
                through=str(start),
            )
        log.info("start-up: replaying the metadata topic", after_snapshot=start is not None)
        replayed = await replay_from(
            transport.client,
            self.topics.metadata,
            self.apply_metadata_message,
            probe_name=probe,
            start=start,
        )
        log.info(
            "start-up: metadata read",
            functions=len(self.metadata.functions()),
            records_replayed=replayed.applied,
            from_snapshot=start is not None,
            seconds=round(anyio.current_time() - started, 3),
        )
        return replayed

    async def read_metadata(self, replayed: Replayed, writer: SnapshotWriter) -> None:
        """Apply every metadata record written after the start-up replay, each once,
        and let the snapshot writer count it (and take a snapshot when due)."""
        cursor = Cursor(replayed.last)
        while True:
            message = await replayed.reader.read_next()
            if not cursor.take(message):
                continue
            try:
                write = METADATA.decode(message.data())
            except msgspec.DecodeError as error:
                log.warning("undecodable metadata record skipped", error=str(error))
            else:
                self.apply_metadata_event(write)
            writer.read(message.message_id())
            if self.driver is not None:
                writer.offer(self.metadata.functions(), leads(self.driver.state))

    def apply_metadata_message(self, message: pulsar.Message) -> None:
        """Decode and apply one message of the metadata topic (start-up replay); an
        undecodable one is logged and skipped, as the live reader does."""
        try:
            self.metadata.apply(METADATA.decode(message.data()))
        except msgspec.DecodeError as error:
            log.warning("undecodable metadata record skipped", error=str(error))

    async def append_metadata(self, write: FunctionWrite) -> None:
        """Send one write to the metadata topic."""
        assert self.pulsar is not None
        await self.pulsar.send(self.topics.metadata, ENCODE(write))
