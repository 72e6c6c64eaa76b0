"""Finding the last complete metadata snapshot from the snapshot topic's tail, on the
real broker (coordination/pulsar_metadata.py): snapshots written by the leader's
own writer, with more chunks than the first window holds, a torn snapshot after
them, and snapshots that must be refused."""

from __future__ import annotations

import logging
import uuid

import pulsar
import pulsar.asyncio as apulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker
from fnworker.coordination.metadata_snapshot import (
    SnapshotSettings,
    snapshot_parts,
)
from fnworker.coordination.pulsar_metadata import TAIL, SnapshotWriter, load_snapshot
from fnworker.coordination.pulsar_transport import ENCODE, PulsarTopics
from fnworker.coordination.topics import ClusterTopics, cluster_topics
from fnworker.coordination.views import MetadataView
from fnworker.coordination.wire import FunctionWrite
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord

pytestmark = pytest.mark.anyio


def quiet() -> logging.Logger:
    logger = logging.getLogger("test-snapshot-search")
    logger.setLevel(logging.ERROR)
    return logger


def record(index: int, version: int) -> FunctionRecord:
    config = FunctionConfig(parallelism=1, class_name="m.C", inputs=["in"])
    return FunctionRecord(fqfn=Fqfn(f"public/default/f{index}"), version=version, config=config)


def write_metadata(
    broker: EmbeddedBroker, topics: ClusterTopics, count: int
) -> list[pulsar.MessageId]:
    """``count`` updates of 40 functions on the metadata topic; their message ids."""
    client = pulsar.Client(broker.url, logger=quiet())
    producer = client.create_producer(topics.metadata)
    ids = []
    for n in range(count):
        write = FunctionWrite(
            fqfn=Fqfn(f"public/default/f{n % 40}"), version=n // 40 + 1,
            record=record(n % 40, n // 40 + 1), writer="t", request_id="",
        )  # fmt: skip
        ids.append(producer.send(ENCODE(write)))
    client.close()
    return ids


def state_after(count: int) -> dict[Fqfn, FunctionRecord]:
    view = MetadataView()
    for n in range(count):
        write = FunctionWrite(
            fqfn=Fqfn(f"public/default/f{n % 40}"), version=n // 40 + 1,
            record=record(n % 40, n // 40 + 1), writer="t", request_id="",
        )  # fmt: skip
        view.apply(write)
    return view.functions


@pytest.mark.parametrize("torn_chunks", [10, 30], ids=["begin-before-window", "window-widens"])
async def test_the_last_complete_snapshot_is_found_past_a_torn_tail(
    broker: EmbeddedBroker, torn_chunks: int
) -> None:
    """10 torn chunks: the last end lies in the first window of TAIL entries, its begin
    does not (read back from ``begin_at``); 30: no end in the first window (it widens)."""
    topics = cluster_topics(f"public/search-{uuid.uuid4().hex[:8]}")
    ids = write_metadata(broker, topics, 200)
    client = apulsar.Client(broker.url, operation_timeout_seconds=5, logger=quiet())
    try:
        transport = PulsarTopics(client, topics)
        one_per_chunk = SnapshotSettings(chunk_bytes=1)  # 40 chunks: more than TAIL entries
        writer = SnapshotWriter(transport, topics.metadata_snapshots, one_per_chunk, "w1")
        await writer.write(state_after(120), ids[119])
        await writer.write(state_after(200), ids[199])
        parts = snapshot_parts(
            "torn", "w2", ids[199].serialize(), state_after(200), one_per_chunk, lambda r: 1
        )
        assert parts is not None
        begin, chunks = parts
        for torn in [begin, *chunks[:torn_chunks]]:  # a writer that died mid-snapshot: no end
            await transport.send(topics.metadata_snapshots, ENCODE(torn))
        assert len(chunks) > TAIL

        found = await load_snapshot(client, topics.metadata_snapshots, topics.metadata, "probe")
        assert found is not None
        assert found.through == ids[199].serialize()
        assert found.view() == state_after(200)
    finally:
        await client.close()


async def test_no_snapshot_or_one_beyond_the_metadata_topic_is_none(broker: EmbeddedBroker) -> None:
    topics = cluster_topics(f"public/search-{uuid.uuid4().hex[:8]}")
    ids = write_metadata(broker, topics, 10)
    client = apulsar.Client(broker.url, operation_timeout_seconds=5, logger=quiet())
    try:
        assert await load_snapshot(client, topics.metadata_snapshots, topics.metadata, "p") is None
        transport = PulsarTopics(client, topics)
        writer = SnapshotWriter(transport, topics.metadata_snapshots, SnapshotSettings(), "w1")
        beyond = pulsar.MessageId(-1, ids[-1].ledger_id(), ids[-1].entry_id() + 5, -1)
        await writer.write(state_after(10), beyond)
        assert await load_snapshot(client, topics.metadata_snapshots, topics.metadata, "p") is None
        await writer.write(state_after(10), ids[-1])
        found = await load_snapshot(client, topics.metadata_snapshots, topics.metadata, "p")
        assert found is not None and found.view() == state_after(10)
    finally:
        await client.close()
