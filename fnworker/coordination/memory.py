"""The in-process coordination backend: the same fleet protocol as the pulsar backend
(protocol/, run by a ``ProtocolDriver``) over in-memory topics, so every worker of
one ``MemoryCluster`` in one process (standalone on ``coordinationBackend:
memory``, tests) elects, fences and assigns exactly as a fleet on Pulsar does.

A ``MemoryTopic`` is an append-only list read through per-worker cursors: one
total order per topic, as in Pulsar. Nothing outlives the process. Does no I/O
beyond in-memory streams, except reading an uploaded file another member stored.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectSendStream

from fnworker.coordination.driver import ProtocolDriver
from fnworker.coordination.events import CoordinationEvent, FunctionsChanged
from fnworker.coordination.protocol import Send, Timings, Topic
from fnworker.coordination.protocol_backend import ProtocolBackend
from fnworker.coordination.reader_needs import reads_heartbeats
from fnworker.coordination.uploads import UploadRecord, latest_uploads
from fnworker.coordination.wire import FunctionWrite
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock
from fnworker.scheduler.model.function_state import StateRecord, StateTable
from fnworker.scheduler.model.records import (
    Fqfn,
    PackageRef,
    WorkerInfo,
)

METADATA = "metadata"
UPLOADS = "uploads"


class MemoryTopic:
    """An append-only log and a wake-up for the readers waiting at its end."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.grown = anyio.Event()

    def append(self, record: Any) -> None:
        """Store one record and wake every reader."""
        self.records.append(record)
        self.grown.set()
        self.grown = anyio.Event()

    async def read(self, start: int, apply: Callable[[Any], None]) -> None:
        """Apply every record from ``start`` on, waiting for more at the end, forever."""
        position = start
        while True:
            while position < len(self.records):
                record = self.records[position]
                position += 1
                apply(record)
            await self.grown.wait()


class MemoryCluster:
    """The topics of one cluster, shared by its workers in one process."""

    def __init__(self, timings: Timings | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.timings = timings or Timings()
        self.clock = clock
        self.topics: dict[str, MemoryTopic] = {}

    def topic(self, name: str) -> MemoryTopic:
        """The topic called ``name`` (made on first use)."""
        return self.topics.setdefault(name, MemoryTopic())

    def name_of(self, topic: Topic) -> str:
        """The name of a protocol topic."""
        return f"{topic.kind}/{topic.worker}" if topic.worker else topic.kind

    async def publish(self, sends: Sequence[Send]) -> None:
        """Store the protocol's records in order (implements the driver's Publisher)."""
        for send in sends:
            self.topic(self.name_of(send.topic)).append(send.record)


class MemoryCoordination(ProtocolBackend):
    """One worker's handle on a ``MemoryCluster`` (implements CoordinationBackend)."""

    def __init__(self, cluster: MemoryCluster) -> None:
        super().__init__()
        self.cluster = cluster

    async def run(
        self, me: WorkerInfo, *, task_status: TaskStatus[ObjectReceiveStream[CoordinationEvent]]
    ) -> None:
        """Join, hand over the event stream, and leave cleanly when cancelled."""
        self.me = me
        send, receive = anyio.create_memory_object_stream[CoordinationEvent](math.inf)
        try:
            async with anyio.create_task_group() as group:
                await self.start_reading(group, me, send)
                task_status.started(receive)
        finally:
            with anyio.CancelScope(shield=True):
                if self.driver is not None:
                    await self.driver.leave()

    async def start_reading(
        self,
        group: TaskGroup,
        me: WorkerInfo,
        events: MemoryObjectSendStream[CoordinationEvent],
    ) -> None:
        """Catch up on metadata, open the readers, start the protocol."""
        cluster = self.cluster
        metadata = cluster.topic(METADATA)
        replayed = len(metadata.records)
        for write in metadata.records:
            self.metadata.apply(write)
        events.send_nowait(FunctionsChanged(changed=tuple(self.metadata.functions().values())))
        driver = ProtocolDriver(me, self.session, cluster.timings, cluster.clock, cluster, events)
        self.driver = driver
        mine = cluster.topic(cluster.name_of(Topic(kind="assignments", worker=me.worker_id)))
        heartbeats = cluster.topic("heartbeats")
        group.start_soon(mine.read, len(mine.records), driver.deliver)
        group.start_soon(cluster.topic("coordinate").read, 0, driver.deliver)
        group.start_soon(heartbeats.read, len(heartbeats.records), leader_only(driver))
        group.start_soon(metadata.read, replayed, self.apply_metadata_event)
        await group.start(driver.run)

    async def store_package(self, ref: PackageRef, path: Path) -> PackageRef:
        """Every member shares this process's disk: nothing to do."""
        return ref

    async def fetch_package(self, ref: PackageRef, target: Path) -> None:
        """Never needed in one process: the package is already on this disk."""
        raise FileNotFoundError(f"package {ref.path} is not in the local store")

    async def read_state(self, fqfn: Fqfn, incarnation: int) -> StateTable:
        """Fold the records this cluster holds for ``fqfn``'s state."""
        table = StateTable(incarnation)
        for record in self.cluster.topic(f"state:{fqfn}").records:
            table.apply(record)
        return table

    async def write_state(self, fqfn: Fqfn, record: StateRecord) -> None:
        """Append one record to ``fqfn``'s state."""
        self.cluster.topic(f"state:{fqfn}").append(record)

    async def append_metadata(self, write: FunctionWrite) -> None:
        """Append one write to the cluster's metadata topic."""
        self.cluster.topic(METADATA).append(write)

    async def store_upload(self, path: str, file: Path, sha256: str) -> UploadRecord:
        """Index ``file`` itself: every member shares this process's disk."""
        size = await anyio.to_thread.run_sync(lambda: file.stat().st_size)
        record = UploadRecord(
            path=path, sha256=sha256, size=size, where=str(file), upload_id=uuid.uuid4().hex
        )
        self.cluster.topic(UPLOADS).append(record)
        return record

    async def uploads(self) -> Mapping[str, UploadRecord]:
        """The latest record of every path this cluster holds."""
        return latest_uploads(self.cluster.topic(UPLOADS).records)

    async def fetch_upload(self, record: UploadRecord) -> bytes:
        """Read the file the storing member indexed."""
        return await anyio.to_thread.run_sync(Path(record.where).read_bytes)


def leader_only(driver: ProtocolDriver) -> Callable[[Any], None]:
    """Deliver heartbeats only while the worker leads or takes office, as the pulsar
    backend reads them (pulsar_leader_reader.py): what arrives meanwhile is not read."""

    def deliver(record: Any) -> None:
        if reads_heartbeats(driver.state):
            driver.deliver(record)

    return deliver
