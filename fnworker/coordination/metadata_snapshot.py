"""Snapshots of the function metadata topic without broker compaction: what a
snapshot holds, how it is cut into chunks, how a reader picks the last complete
one, and when the next is due. Pure (no I/O); the Pulsar side is
``pulsar_metadata.py``. See docs/coordination.md, "Metadata snapshots".

A snapshot is the folded metadata state (every live function with its version;
deleted functions are absent, exactly as ``MetadataView`` leaves them) plus
``through``: the serialized message id (``MessageId.serialize()``) of the last
metadata record it includes. On the snapshot topic it is ``SnapshotBegin``, one or
more ``SnapshotChunk``s (each at most ``chunk_bytes`` of functions, at least one
function) and ``SnapshotEnd``, which names the position of its ``SnapshotBegin`` so
a reader that finds the end near the topic's tail can read just that snapshot.
Records of two writers may interleave; every record names its snapshot, and only a
snapshot whose begin, every chunk and end were read counts.

Since the state is the whole fold, applying the records after ``through`` to a
snapshot's functions gives exactly what applying every record from the start gives
(``tests/unit/test_metadata_snapshot.py`` checks it over random write sequences).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import msgspec

from fnworker.scheduler.model.records import Fqfn, FunctionRecord

SNAPSHOT_EVERY = 1_000
"""Metadata records read between two snapshots (``functionMetadataSnapshotEveryRecords``)."""
MAX_SNAPSHOT_BYTES = 64 * 1024 * 1024
"""A state larger than this is not snapshotted (workers then replay from the start)."""
CHUNK_BYTES = 256 * 1024
"""Encoded functions per chunk (well under the broker's 5 MiB message limit)."""


class SnapshotSettings(msgspec.Struct, frozen=True, kw_only=True):
    """When to write a snapshot and how large it may be; ``every`` 0 turns writing off,
    ``read`` False makes a starting worker ignore snapshots (replay from the start)."""

    every: int = SNAPSHOT_EVERY
    read: bool = True
    max_bytes: int = MAX_SNAPSHOT_BYTES
    chunk_bytes: int = CHUNK_BYTES


class SnapshotBegin(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot-begin"):
    """A snapshot starts; it includes the metadata records up to ``through``."""

    snapshot_id: str
    through: bytes
    writer: str = ""


class SnapshotChunk(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot-chunk"):
    """Part ``seq`` (from 0) of a snapshot's functions."""

    snapshot_id: str
    seq: int
    functions: tuple[FunctionRecord, ...]


class SnapshotEnd(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot-end"):
    """A snapshot is complete: ``chunks`` chunks holding ``functions`` functions;
    its ``SnapshotBegin`` sits at ``begin_at`` (a serialized message id)."""

    snapshot_id: str
    through: bytes
    begin_at: bytes
    chunks: int
    functions: int


SnapshotRecord = SnapshotBegin | SnapshotChunk | SnapshotEnd


class MetadataSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A complete snapshot: the functions, and the last metadata record they include."""

    snapshot_id: str
    through: bytes
    functions: tuple[FunctionRecord, ...]

    def view(self) -> dict[Fqfn, FunctionRecord]:
        """The functions by name, as ``MetadataView.functions`` holds them."""
        return {record.fqfn: record for record in self.functions}


def chunk_functions(
    functions: Iterable[FunctionRecord], chunk_bytes: int, size_of: Callable[[object], int]
) -> list[tuple[FunctionRecord, ...]]:
    """The functions in chunks of at most ``chunk_bytes`` (by ``size_of``), in order;
    a function larger than that gets a chunk of its own. No functions: one empty chunk."""
    chunks: list[tuple[FunctionRecord, ...]] = []
    current: list[FunctionRecord] = []
    size = 0
    for record in functions:
        record_size = size_of(record)
        if current and size + record_size > chunk_bytes:
            chunks.append(tuple(current))
            current, size = [], 0
        current.append(record)
        size += record_size
    chunks.append(tuple(current))
    return chunks


def snapshot_parts(
    snapshot_id: str,
    writer: str,
    through: bytes,
    functions: Mapping[Fqfn, FunctionRecord],
    settings: SnapshotSettings,
    size_of: Callable[[object], int],
) -> tuple[SnapshotBegin, list[SnapshotChunk]] | None:
    """The begin record and the chunks of a snapshot of ``functions``; None when the
    state is larger than ``settings.max_bytes``."""
    ordered = [functions[fqfn] for fqfn in sorted(functions)]
    if sum(size_of(record) for record in ordered) > settings.max_bytes:
        return None
    begin = SnapshotBegin(snapshot_id=snapshot_id, through=through, writer=writer)
    chunks = [
        SnapshotChunk(snapshot_id=snapshot_id, seq=seq, functions=part)
        for seq, part in enumerate(chunk_functions(ordered, settings.chunk_bytes, size_of))
    ]
    return begin, chunks


def snapshot_end(
    begin: SnapshotBegin, chunks: Sequence[SnapshotChunk], begin_at: bytes
) -> SnapshotEnd:
    """The end record of a snapshot whose begin record was stored at ``begin_at``."""
    return SnapshotEnd(
        snapshot_id=begin.snapshot_id,
        through=begin.through,
        begin_at=begin_at,
        chunks=len(chunks),
        functions=sum(len(chunk.functions) for chunk in chunks),
    )


class SnapshotAssembly:
    """Snapshot records folded in topic order; ``last`` is the last complete snapshot
    (by the position of its end record). Duplicates and other writers' records are
    harmless; a snapshot missing its begin, a chunk, or with counts that disagree
    never completes."""

    def __init__(self) -> None:
        self.begun: dict[str, SnapshotBegin] = {}
        self.parts: dict[str, dict[int, tuple[FunctionRecord, ...]]] = {}
        self.last: MetadataSnapshot | None = None
        self.last_end: SnapshotEnd | None = None

    def apply(self, record: SnapshotRecord) -> None:
        """Fold one record of the snapshot topic."""
        if isinstance(record, SnapshotBegin):
            self.begun.setdefault(record.snapshot_id, record)
            self.parts.setdefault(record.snapshot_id, {})
        elif isinstance(record, SnapshotChunk):
            if record.snapshot_id in self.begun:
                self.parts[record.snapshot_id].setdefault(record.seq, record.functions)
        else:
            self.finish(record)

    def finish(self, end: SnapshotEnd) -> None:
        """An end record: the snapshot becomes ``last`` if it is whole and consistent."""
        begin = self.begun.pop(end.snapshot_id, None)
        parts = self.parts.pop(end.snapshot_id, {})
        if begin is None or begin.through != end.through:
            return
        if sorted(parts) != list(range(end.chunks)):
            return
        functions = tuple(record for seq in range(end.chunks) for record in parts[seq])
        if len(functions) != end.functions or len({f.fqfn for f in functions}) != end.functions:
            return
        self.last = MetadataSnapshot(
            snapshot_id=end.snapshot_id, through=end.through, functions=functions
        )
        self.last_end = end


def last_complete(records: Iterable[SnapshotRecord]) -> MetadataSnapshot | None:
    """The last complete snapshot among ``records`` (in topic order), or None."""
    assembly = SnapshotAssembly()
    for record in records:
        assembly.apply(record)
    return assembly.last


def snapshot_due(records_since: int, settings: SnapshotSettings) -> bool:
    """True when enough metadata records were read since the last snapshot."""
    return settings.every > 0 and records_since >= settings.every
