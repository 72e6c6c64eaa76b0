"""Function packages (and uploaded files) on the cluster's packages topic, in the
application's own 512 KiB chunks (pulsar-lite's chunking is flaky): store one, fetch
one by the MessageId of its first chunk. Does I/O (pulsar, the local file)."""

from __future__ import annotations

import base64
import math
from pathlib import Path

import anyio
import msgspec
import pulsar

from fnworker.coordination.pulsar_transport import ENCODE, PulsarTopics
from fnworker.coordination.wire import PackageChunk
from fnworker.scheduler.model.records import PackageRef

CHUNKS = msgspec.msgpack.Decoder(PackageChunk)
CHUNK_BYTES = 512 * 1024
FETCH_TIMEOUT = 60.0


async def store_package(pulsar_topics: PulsarTopics, ref: PackageRef, path: Path) -> PackageRef:
    """Write a package to the packages topic in chunks; the ref names the first one."""
    first = await store_chunks(pulsar_topics, ref.sha256, path.read_bytes())
    return msgspec.structs.replace(ref, message_id=first)


async def store_chunks(pulsar_topics: PulsarTopics, package_id: str, data: bytes) -> str:
    """Write ``data`` to the packages topic in chunks tagged ``package_id``; the
    MessageId (base64) of the first chunk."""
    total = max(1, math.ceil(len(data) / CHUNK_BYTES))
    producer = await pulsar_topics.producer(pulsar_topics.topics.packages, batching=False)
    first = None
    for index in range(total):
        chunk = PackageChunk(
            package_id=package_id,
            index=index,
            total=total,
            data=data[index * CHUNK_BYTES : (index + 1) * CHUNK_BYTES],
        )
        message_id = await producer.send(ENCODE(chunk))
        first = first or base64.b64encode(message_id.serialize()).decode()
    assert first is not None
    return first


async def fetch_package(pulsar_topics: PulsarTopics, ref: PackageRef, target: Path) -> None:
    """Read a package's chunks from the packages topic into ``target`` (atomically)."""
    assert ref.message_id is not None
    data = await fetch_chunks(pulsar_topics, ref.sha256, ref.message_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(data)
    partial.replace(target)  # atomic: a reader sees no file or the whole file


async def fetch_chunks(pulsar_topics: PulsarTopics, package_id: str, message_id: str) -> bytes:
    """The content whose chunks, tagged ``package_id``, start at ``message_id`` (base64);
    TimeoutError after FETCH_TIMEOUT."""
    start = pulsar.MessageId.deserialize(base64.b64decode(message_id))
    reader = await pulsar_topics.client.create_reader(
        pulsar_topics.topics.packages, start, start_message_id_inclusive=True
    )
    parts: dict[int, bytes] = {}
    try:
        with anyio.fail_after(FETCH_TIMEOUT):
            while True:
                chunk = CHUNKS.decode((await reader.read_next()).data())
                if chunk.package_id == package_id:
                    parts[chunk.index] = chunk.data
                    if len(parts) == chunk.total:
                        break
    finally:
        await reader.close()
    return b"".join(parts[i] for i in range(len(parts)))
