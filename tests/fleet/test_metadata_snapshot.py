"""Metadata snapshots on real worker processes and the real broker (issue 15 point 4,
part B): a leader that has read 1,000 metadata records writes a snapshot to
``{functionMetadataTopicName}-snapshots``; a worker that starts later loads it and
replays only the records after it, and ends with exactly the functions a full replay
gives. A snapshot topic holding only a torn or corrupt snapshot is ignored: the
worker replays from the start. The records are written straight to the topics
through the workers' own encoder (as many function updates as the default snapshot
interval needs, quickly)."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pulsar
import pytest

from fnworker.coordination.metadata_snapshot import SnapshotBegin, SnapshotChunk, SnapshotEnd
from fnworker.coordination.topics import cluster_topics
from fnworker.coordination.views import MetadataView
from fnworker.coordination.wire import FunctionWrite
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord
from tests.e2e.helpers import BASE
from tests.fleet.conftest import Fleet, FleetWorker, eventually, wire_records

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ENCODE = msgspec.msgpack.Encoder().encode
TOPICS = cluster_topics("public/functions")
FUNCTIONS = 50


def update(name: str, version: int, deleted: bool = False) -> FunctionWrite:
    """Version ``version`` of ``public/default/{name}``: parallelism = version % 7 + 1,
    its one instance stopped (nothing runs), or a deletion."""
    fqfn = Fqfn(f"public/default/{name}")
    config = FunctionConfig(
        tenant="public",
        namespace="default",
        name=name,
        parallelism=version % 7 + 1,
        class_name="m.C",
        inputs=["persistent://public/default/in"],
    )
    states = {index: "STOPPED" for index in range(version % 7 + 1)}
    body = FunctionRecord(fqfn=fqfn, version=version, config=config, instance_states=states)  # type: ignore[arg-type]
    record = None if deleted else body
    return FunctionWrite(fqfn=fqfn, version=version, record=record, writer="test", request_id="")


def history(rounds: int, first_round: int = 0) -> list[FunctionWrite]:
    """``rounds`` updates of every function; in round 5 every fifth function is
    deleted and in round 6 created again (version 1 after a deletion)."""
    writes = []
    versions: dict[str, int] = {}
    for round_ in range(rounds + first_round):
        for index in range(FUNCTIONS):
            name = f"f{index}"
            deleting = round_ == 5 and index % 5 == 0
            version = versions.get(name, 0) + 1
            versions[name] = 0 if deleting else version
            if round_ >= first_round:
                writes.append(update(name, version, deleting))
    return writes


def publish(client: pulsar.Client, topic: str, records: list[Any]) -> None:
    """Write records to a topic in order, batched."""
    producer = client.create_producer(topic, batching_enabled=True, batching_max_messages=100)
    for record in records:
        producer.send_async(ENCODE(record) if not isinstance(record, bytes) else record, None)
    producer.flush()
    producer.close()


def expected(writes: list[FunctionWrite]) -> dict[str, int]:
    """Function name -> parallelism, as a full replay leaves them."""
    view = MetadataView()
    for write in writes:
        view.apply(write)
    return {
        fqfn.split("/")[-1]: record.config.parallelism or 1
        for fqfn, record in view.functions.items()
    }


def functions_of(worker: FleetWorker) -> dict[str, int]:
    """Function name -> parallelism, as ``worker`` serves them over REST."""
    names = worker.json(BASE)
    return {name: worker.json(f"{BASE}/{name}")["parallelism"] for name in names}


def start_up_line(worker: FleetWorker) -> dict[str, str]:
    """The fields of the worker's 'start-up: metadata read' log line."""
    line = next(x for x in worker.log().splitlines() if "start-up: metadata read" in x)
    return dict(re.findall(r"(\w+)=(\S+)", line))


def snapshot_ends(fleet: Fleet) -> list[dict[str, Any]]:
    """The end records on the snapshot topic (none while it has no message)."""
    try:
        records = wire_records(fleet.broker_url, TOPICS.metadata_snapshots)
    except pulsar.PulsarException:  # pulsar-lite's answer for a topic with no message
        return []
    return [r for r in records if r.get("type") == "snapshot-end"]


def test_a_starting_worker_reads_the_snapshot_and_only_the_records_after_it(
    fleet: Fleet, client: pulsar.Client
) -> None:
    before = history(24)  # 1,200 records: over the default interval of 1,000
    publish(client, TOPICS.metadata, before)
    first = fleet.start("w1")
    eventually(lambda: "start-up: metadata read" in first.log(), 60, "w1 started")
    assert start_up_line(first)["from_snapshot"] == "False"
    eventually(lambda: snapshot_ends(fleet), 60, "the leader wrote a snapshot")

    after = history(1, first_round=24)  # 50 more
    publish(client, TOPICS.metadata, after)
    eventually(lambda: functions_of(first) == expected(before + after), 60, "w1 read them")

    second = fleet.start("w2")
    eventually(lambda: "start-up: metadata read" in second.log(), 60, "w2 started")
    line = start_up_line(second)
    assert line["from_snapshot"] == "True", line
    assert int(line["records_replayed"]) == len(after), line
    assert functions_of(second) == expected(before + after)


def test_a_torn_or_corrupt_snapshot_means_a_full_replay(
    fleet: Fleet, client: pulsar.Client
) -> None:
    writes = history(8)
    publish(client, TOPICS.metadata, writes)
    functions = [w.record for w in writes[-FUNCTIONS:] if w.record is not None]
    begin = SnapshotBegin(snapshot_id="torn", through=b"\x08\x00\x10\x05")
    chunk = SnapshotChunk(snapshot_id="torn", seq=0, functions=tuple(functions))
    end = SnapshotEnd(
        snapshot_id="torn", through=begin.through, begin_at=b"", chunks=2, functions=len(functions)
    )
    bogus = SnapshotEnd(
        snapshot_id="x", through=b"\xff", begin_at=b"\x00\x01", chunks=1, functions=1
    )
    publish(client, TOPICS.metadata_snapshots, [begin, chunk, end, b"\x93not a snapshot", bogus])

    worker = fleet.start("w1")
    eventually(lambda: "start-up: metadata read" in worker.log(), 60, "w1 started")
    line = start_up_line(worker)
    assert line["from_snapshot"] == "False", line
    assert int(line["records_replayed"]) == len(writes), line
    assert functions_of(worker) == expected(writes)
