"""Uploaded files on Pulsar: the content in chunks on the packages topic (as function
packages), one ``UploadRecord`` per upload on the uploads index topic, and the index
read from its start to its last entry. Every call has a deadline. Does I/O (pulsar,
the local file).

Reading the index: ``replay.read_each_once`` (from the start to the last entry, each
message once: applying an older record again would make it the latest).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import msgspec
import pulsar.asyncio as apulsar
import structlog

from fnworker.coordination.pulsar_packages import FETCH_TIMEOUT, fetch_chunks, store_chunks
from fnworker.coordination.pulsar_transport import PulsarTopics
from fnworker.coordination.replay import read_each_once
from fnworker.coordination.uploads import (
    DECODE_UPLOAD,
    ENCODE_UPLOAD,
    UploadRecord,
    latest_uploads,
)

log = structlog.get_logger("fnworker.coordination")


async def store_upload(
    pulsar_topics: PulsarTopics, path: str, file: Path, sha256: str
) -> UploadRecord:
    """Store ``file`` as the content of ``path``: chunks first, then the index record
    (so the index never names chunks that are not there). TimeoutError past FETCH_TIMEOUT."""
    data = await anyio.to_thread.run_sync(file.read_bytes)
    upload_id = uuid.uuid4().hex
    with anyio.fail_after(FETCH_TIMEOUT):
        first = await store_chunks(pulsar_topics, upload_id, data)
        record = UploadRecord(
            path=path, sha256=sha256, size=len(data), where=first, upload_id=upload_id
        )
        producer = await pulsar_topics.producer(pulsar_topics.topics.uploads, batching=False)
        await producer.send(ENCODE_UPLOAD(record))
    return record


async def read_uploads(client: apulsar.Client, topic: str) -> dict[str, UploadRecord]:
    """The latest record of every path on the index topic as it holds it now. Raises
    ReplayStalled when a call does not answer within STEP_SECONDS."""
    records: list[UploadRecord] = []

    def apply(data: bytes) -> None:
        try:
            records.append(DECODE_UPLOAD(data))
        except msgspec.DecodeError as error:
            log.warning("undecodable upload record skipped", topic=topic, error=str(error))

    await read_each_once(client, topic, apply, "uploads")
    return latest_uploads(records)


async def fetch_upload(pulsar_topics: PulsarTopics, record: UploadRecord) -> bytes:
    """The content of one upload, from its chunks. TimeoutError past FETCH_TIMEOUT."""
    return await fetch_chunks(pulsar_topics, record.upload_id, record.where)
