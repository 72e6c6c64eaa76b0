"""The metadata topic on Pulsar, with snapshots (metadata_snapshot.py decides;
this module reads and writes). Does I/O (pulsar readers and a producer).

- ``load_snapshot``: the last complete snapshot, found from the snapshot topic's
  tail: read the last ``TAIL`` entries (a window that widens eightfold up to the
  start of the topic's last ledger when it holds no end record), take the last
  ``SnapshotEnd``, and read from its ``SnapshotBegin`` (``begin_at``) to it. So a
  start reads one snapshot plus a small window, however many snapshots the topic
  holds. Anything unreadable (a stall, an error, a corrupt or incomplete snapshot,
  a ``through`` beyond the metadata topic's end) answers None, and the worker
  replays the metadata topic from its start as before.
- ``SnapshotWriter``: the leader's counter of metadata records read since the last
  snapshot; once it reaches ``every``, the state as of the last record read is
  copied (no await between applying that record and the copy) and written in the
  background: begin, chunks, end.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping

import anyio
import msgspec
import pulsar
import pulsar.asyncio as apulsar
import structlog

from fnworker.coordination.metadata_snapshot import (
    MetadataSnapshot,
    SnapshotAssembly,
    SnapshotEnd,
    SnapshotRecord,
    SnapshotSettings,
    snapshot_due,
    snapshot_end,
    snapshot_parts,
)
from fnworker.coordination.pulsar_transport import ENCODE, PulsarTopics
from fnworker.coordination.replay import (
    STEP_SECONDS,
    Cursor,
    Position,
    ReplayStalled,
    abandon,
    last_message_id,
    last_position,
    position_of,
    read_until,
    within,
)
from fnworker.scheduler.model.records import Fqfn, FunctionRecord

log = structlog.get_logger("fnworker.coordination")

SNAPSHOTS = msgspec.msgpack.Decoder(SnapshotRecord)
TAIL = 16
"""Entries of the snapshot topic read back first when looking for the last snapshot."""
ENDS_TRIED = 3
"""End records tried (newest first) before the window widens."""

Found = list[tuple[pulsar.MessageId, SnapshotRecord]]


def message_id_of(serialized: bytes) -> pulsar.MessageId | None:
    """A message id from ``MessageId.serialize()`` bytes; None when they are not one."""
    try:
        return pulsar.MessageId.deserialize(serialized)
    except Exception:  # noqa: BLE001 - the C++ client raises various errors on bad bytes
        return None


async def load_snapshot(
    client: apulsar.Client, topic: str, metadata_topic: str, probe_name: str
) -> MetadataSnapshot | None:
    """The last complete snapshot on ``topic`` whose ``through`` lies within
    ``metadata_topic``; None (logged) when there is none or it cannot be read."""
    try:
        snapshot = await find_snapshot(client, topic, probe_name)
        if snapshot is None:
            return None
        through = message_id_of(snapshot.through)
        end = await within(
            STEP_SECONDS, last_position(client, metadata_topic, probe_name), "metadata probe"
        )
        if through is None or end is None or position_of(through)[:2] > end:
            log.warning(
                "metadata snapshot ignored: its position is not on the metadata topic",
                snapshot=snapshot.snapshot_id,
            )
            return None
        return snapshot
    except (ReplayStalled, apulsar.PulsarException) as error:
        log.warning("metadata snapshot unreadable; replaying from the start", detail=str(error))
        return None


async def find_snapshot(
    client: apulsar.Client, topic: str, probe_name: str
) -> MetadataSnapshot | None:
    """The last complete snapshot, searched from the topic's tail backwards."""
    last = await within(STEP_SECONDS, last_message_id(client, topic, probe_name), "probe")
    if last is None or last.entry_id() < 0:
        return None
    end = (last.ledger_id(), last.entry_id())
    back = TAIL
    while True:
        first = max(0, last.entry_id() - back)
        start = pulsar.MessageId(-1, last.ledger_id(), first, -1)
        found = await read_span(client, topic, start, end)
        snapshot = await complete_snapshot(client, topic, found)
        if snapshot is not None or first == 0:
            return snapshot
        back *= 8


async def complete_snapshot(
    client: apulsar.Client, topic: str, found: Found
) -> MetadataSnapshot | None:
    """The snapshot of the newest end record in ``found`` that assembles, reading
    back to its begin record when the window does not hold it."""
    ends = [(at, record) for at, record in found if isinstance(record, SnapshotEnd)]
    for at, end in reversed(ends[-ENDS_TRIED:]):
        begin_at = message_id_of(end.begin_at)
        if begin_at is None:
            continue
        span = [(i, r) for i, r in found if position_of(i) >= position_of(begin_at)]
        if not span or position_of(span[0][0]) > position_of(begin_at):
            span = await read_span(client, topic, begin_at, position_of(at)[:2])
        snapshot = assembled(span, end)
        if snapshot is not None:
            return snapshot
    return None


def assembled(span: Found, end: SnapshotEnd) -> MetadataSnapshot | None:
    """The snapshot ``end`` closes, if ``span`` holds all of it."""
    assembly = SnapshotAssembly()
    for _, record in span:
        assembly.apply(record)
        if assembly.last is not None and assembly.last.snapshot_id == end.snapshot_id:
            return assembly.last
    return None


async def read_span(
    client: apulsar.Client, topic: str, start: pulsar.MessageId, end: Position
) -> Found:
    """The decodable records from ``start`` (inclusive) to the entry at ``end`` and
    the rest of its batch, each once; undecodable ones are logged and left out."""
    reader = await within(
        STEP_SECONDS,
        client.create_reader(topic, start, start_message_id_inclusive=True),
        "snapshot reader",
    )
    cursor = Cursor()
    found: Found = []

    def keep(message: pulsar.Message) -> None:
        if not cursor.take(message):
            return
        try:
            found.append((message.message_id(), SNAPSHOTS.decode(message.data())))
        except msgspec.DecodeError as error:
            log.warning("undecodable snapshot record skipped", error=str(error))

    try:
        await read_until(reader, end, keep, STEP_SECONDS)
    finally:
        await abandon(reader)
    return found


class SnapshotWriter:
    """The leader's side: count metadata records read, and write a snapshot when due."""

    def __init__(
        self, transport: PulsarTopics, topic: str, settings: SnapshotSettings, writer: str
    ) -> None:
        self.transport = transport
        self.topic = topic
        self.settings = settings
        self.writer = writer
        self.since = 0
        """Metadata records read since the last snapshot this worker knows of."""
        self.last: pulsar.MessageId | None = None
        """The last metadata record applied (the ``through`` of the next snapshot)."""
        self.busy = False
        self.queue_in, self.queue_out = anyio.create_memory_object_stream[
            tuple[dict[Fqfn, FunctionRecord], pulsar.MessageId]
        ](math.inf)

    def read(self, message_id: pulsar.MessageId | None, count: int = 1) -> None:
        """``count`` metadata records were applied, the last at ``message_id``."""
        self.since += count
        if message_id is not None:
            self.last = message_id

    def offer(self, functions: Mapping[Fqfn, FunctionRecord], leads: bool) -> None:
        """Take a snapshot of ``functions`` (the state as of ``last``) if one is due
        and this worker leads; the copy is made now, the write happens in ``run``."""
        if self.busy or not leads or self.last is None:
            return
        if not snapshot_due(self.since, self.settings):
            return
        self.busy = True
        self.since = 0
        self.queue_in.send_nowait((dict(functions), self.last))

    async def run(self) -> None:
        """Write each snapshot taken, one at a time, until cancelled."""
        async for functions, through in self.queue_out:
            try:
                await self.write(functions, through)
            except Exception as error:  # noqa: BLE001 - a snapshot is optional; the worker goes on
                log.warning("metadata snapshot not written", error=repr(error))
            finally:
                self.busy = False

    async def write(self, functions: dict[Fqfn, FunctionRecord], through: pulsar.MessageId) -> None:
        """Begin, chunks, end: one snapshot on the snapshot topic."""
        snapshot_id = uuid.uuid4().hex
        parts = snapshot_parts(
            snapshot_id,
            self.writer,
            through.serialize(),
            functions,
            self.settings,
            lambda record: len(ENCODE(record)),
        )
        if parts is None:
            log.warning(
                "metadata snapshot not written: larger than its limit",
                functions=len(functions),
                max_bytes=self.settings.max_bytes,
            )
            return
        begin, chunks = parts
        begin_at = await self.transport.send(self.topic, ENCODE(begin))
        for chunk in chunks:
            await self.transport.send(self.topic, ENCODE(chunk))
        await self.transport.send(
            self.topic, ENCODE(snapshot_end(begin, chunks, begin_at.serialize()))
        )
        log.info(
            "metadata snapshot written",
            snapshot=snapshot_id,
            functions=len(functions),
            chunks=len(chunks),
            through=str(through),
        )
