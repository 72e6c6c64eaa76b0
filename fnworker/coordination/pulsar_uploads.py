"""Uploaded files on Pulsar: the content in chunks on the packages topic (as function
packages), one ``UploadRecord`` per upload on the uploads index topic, and the index
read from its start to its last entry. Every call has a deadline. Does I/O (pulsar,
the local file).

Reading the index: a probe consumer (a name of its own) gives the topic's last entry,
then a reader from the start applies records up to it (and the rest of its batch). A
record whose position (ledger, entry, batch index) is not after the last one applied is
skipped (pulsar-lite's readers may deliver a message again; applying an older record
again would make it the latest).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import anyio
import msgspec
import pulsar
import pulsar.asyncio as apulsar
import structlog

from fnworker.coordination.pulsar_packages import FETCH_TIMEOUT, fetch_chunks, store_chunks
from fnworker.coordination.pulsar_transport import PulsarTopics
from fnworker.coordination.replay import (
    STEP_SECONDS,
    abandon,
    holds_more,
    last_position,
    within,
)
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
    probe = f"fnworker-uploads-{uuid.uuid4().hex[:12]}"
    end = await within(STEP_SECONDS, last_position(client, topic, probe), "uploads probe")
    if end is None:
        return {}
    reader = await within(
        STEP_SECONDS, client.create_reader(topic, pulsar.MessageId.earliest), "uploads reader"
    )
    records: list[UploadRecord] = []
    applied: tuple[int, int, int] = (-1, -1, -1)

    async def read_one() -> None:
        nonlocal applied
        message = await within(STEP_SECONDS, reader.read_next(), "uploads read")
        at = message.message_id()
        position = (at.ledger_id(), at.entry_id(), at.batch_index())
        if position <= applied:
            return
        applied = position
        try:
            records.append(DECODE_UPLOAD(message.data()))
        except msgspec.DecodeError as error:
            log.warning("undecodable upload record skipped", topic=topic, error=str(error))

    try:
        while applied[:2] < end:
            await read_one()
        while await within(STEP_SECONDS, holds_more(reader), "uploads has_message_available"):
            await read_one()  # the rest of the last entry's batch
    finally:
        await abandon(reader)
    return latest_uploads(records)


async def fetch_upload(pulsar_topics: PulsarTopics, record: UploadRecord) -> bytes:
    """The content of one upload, from its chunks. TimeoutError past FETCH_TIMEOUT."""
    return await fetch_chunks(pulsar_topics, record.upload_id, record.where)
