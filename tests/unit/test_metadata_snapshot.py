"""Metadata snapshots (coordination/metadata_snapshot.py), pure: a snapshot of the
fold of any prefix of the metadata topic, cut into chunks, written to the wire and
read back, plus the records after it, gives exactly what replaying every record
from the start gives; the reader takes the last complete snapshot whatever other
writers interleave, and never a torn one."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from fnworker.coordination.metadata_snapshot import (
    SnapshotBegin,
    SnapshotChunk,
    SnapshotEnd,
    SnapshotRecord,
    SnapshotSettings,
    chunk_functions,
    last_complete,
    snapshot_due,
    snapshot_end,
    snapshot_parts,
)
from fnworker.coordination.replay import batch_size_of
from fnworker.coordination.views import MetadataView
from fnworker.coordination.wire import FunctionWrite
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord

ENCODE = msgspec.msgpack.Encoder().encode
DECODE = msgspec.msgpack.Decoder(SnapshotRecord).decode
NAMES = [Fqfn(f"public/default/f{index}") for index in range(5)]


def size_of(record: object) -> int:
    return len(ENCODE(record))


def record(fqfn: Fqfn, version: int, parallelism: int) -> FunctionRecord:
    config = FunctionConfig(parallelism=parallelism, class_name="m.C", inputs=["in"])
    return FunctionRecord(fqfn=fqfn, version=version, config=config)


@st.composite
def writes(draw: st.DrawFn) -> list[FunctionWrite]:
    """Random metadata topics: mostly next versions (creates, updates, deletions,
    re-creations), some stale or racing writes of a version already taken."""
    versions: dict[Fqfn, int] = {}
    found = []
    for _ in range(draw(st.integers(0, 60))):
        fqfn = draw(st.sampled_from(NAMES))
        current = versions.get(fqfn, 0)
        racing = draw(st.booleans()) and draw(st.booleans())
        version = draw(st.integers(1, current + 1)) if racing else current + 1
        deleted = current > 0 and draw(st.integers(0, 4)) == 0
        body = None if deleted else record(fqfn, version, draw(st.integers(1, 4)))
        write = FunctionWrite(fqfn=fqfn, version=version, record=body, writer="w", request_id="r")
        found.append(write)
        view = MetadataView(functions={k: record(k, v, 1) for k, v in versions.items() if v})
        if view.apply(write):
            versions[fqfn] = 0 if body is None else version
    return found


def replayed(
    start: dict[Fqfn, FunctionRecord], records: list[FunctionWrite]
) -> dict[Fqfn, FunctionRecord]:
    view = MetadataView(functions=dict(start))
    for write in records:
        view.apply(write)
    return view.functions


def on_the_wire(
    snapshot_id: str, functions: dict[Fqfn, FunctionRecord], chunk_bytes: int
) -> list[SnapshotRecord]:
    """A snapshot's records as a reader decodes them from the topic."""
    parts = snapshot_parts(
        snapshot_id, "w1", b"through-" + snapshot_id.encode(), functions,
        SnapshotSettings(chunk_bytes=chunk_bytes), size_of,
    )  # fmt: skip
    assert parts is not None
    begin, chunks = parts
    records = [begin, *chunks, snapshot_end(begin, chunks, b"begin-at")]
    return [DECODE(ENCODE(r)) for r in records]


@settings(max_examples=300, deadline=None)
@given(writes(), st.data(), st.integers(1, 3000))
def test_a_snapshot_plus_the_rest_is_the_full_replay(
    topic: list[FunctionWrite], data: st.DataObject, chunk_bytes: int
) -> None:
    cut = data.draw(st.integers(0, len(topic)))
    prefix = replayed({}, topic[:cut])
    snapshot = last_complete(on_the_wire("s1", prefix, chunk_bytes))
    assert snapshot is not None
    assert snapshot.through == b"through-s1"
    assert replayed(snapshot.view(), topic[cut:]) == replayed({}, topic)


@settings(max_examples=200, deadline=None)
@given(writes(), st.data())
def test_interleaved_writers_duplicates_and_a_torn_tail_yield_the_last_complete(
    topic: list[FunctionWrite], data: st.DataObject
) -> None:
    early, late = replayed({}, topic[: len(topic) // 2]), replayed({}, topic)
    first = on_the_wire("early", early, 200)
    second = on_the_wire("late", late, 200)
    merged: list[SnapshotRecord] = []
    while first or second:  # two writers' records interleave; each keeps its order
        source = first if first and (not second or data.draw(st.booleans())) else second
        merged.append(source.pop(0))
        if data.draw(st.integers(0, 9)) == 0:
            merged.append(merged[-1])  # a reader's duplicate
    late_ended = max(
        i for i, r in enumerate(merged) if isinstance(r, SnapshotEnd) and r.snapshot_id == "late"
    )
    early_ended = max(
        i for i, r in enumerate(merged) if isinstance(r, SnapshotEnd) and r.snapshot_id == "early"
    )
    torn = on_the_wire("torn", late, 50)
    torn = [r for r in torn if not (isinstance(r, SnapshotChunk) and r.seq == len(torn) - 3)]
    snapshot = last_complete([*merged, *torn])
    assert snapshot is not None
    assert snapshot.snapshot_id == ("late" if late_ended > early_ended else "early")
    assert snapshot.view() == (late if late_ended > early_ended else early)


def test_a_snapshot_missing_a_part_or_with_wrong_counts_never_completes() -> None:
    functions = {name: record(name, 1, 1) for name in NAMES}
    whole = on_the_wire("s", functions, 100)
    begin, chunks, end = whole[0], whole[1:-1], whole[-1]
    assert isinstance(begin, SnapshotBegin) and isinstance(end, SnapshotEnd)
    assert len(chunks) == len(NAMES)
    assert last_complete(whole) is not None
    assert last_complete([*chunks, end]) is None  # no begin
    assert last_complete([begin, *chunks[1:], end]) is None  # a chunk lost
    assert last_complete([begin, *chunks, msgspec.structs.replace(end, functions=4)]) is None
    assert last_complete([begin, *chunks, msgspec.structs.replace(end, chunks=6)]) is None
    other = msgspec.structs.replace(end, through=b"elsewhere")
    assert last_complete([begin, *chunks, other]) is None


def test_chunks_respect_their_size_and_a_state_over_the_cap_is_not_snapshotted() -> None:
    functions = [record(name, 1, 1) for name in NAMES]
    one = size_of(functions[0])
    chunks = chunk_functions(functions, 2 * one, size_of)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert chunk_functions([], 10, size_of) == [()]
    assert chunk_functions(functions[:1], 1, size_of) == [(functions[0],)]
    by_name = {r.fqfn: r for r in functions}
    capped = SnapshotSettings(max_bytes=5 * one - 1)
    assert snapshot_parts("s", "w", b"t", by_name, capped, size_of) is None
    assert snapshot_parts("s", "w", b"t", by_name, SnapshotSettings(max_bytes=5 * one), size_of)


def test_a_snapshot_is_due_every_n_records_and_never_when_off() -> None:
    assert not snapshot_due(999, SnapshotSettings(every=1000))
    assert snapshot_due(1000, SnapshotSettings(every=1000))
    assert not snapshot_due(10**9, SnapshotSettings(every=0))


def test_a_batch_size_is_read_from_a_serialized_message_id() -> None:
    # MessageId.serialize() of pulsar-client 3.13 on pulsar-lite: (0,1,-1,0) of a
    # batch of 50, (0,0,-1,0) of a batch of 100, and an unbatched (0,17,-1,-1).
    assert batch_size_of(b"\x08\x00\x10\x01 \x0002") == 50
    assert batch_size_of(b"\x08\x00\x10\x00 \x000d") == 100
    assert batch_size_of(b"\x08\x00\x10\x11") is None
    assert batch_size_of(b"\x08\x00\x10\x96\x01 \x05(\x80\x01\x30\xac\x02") == 300
