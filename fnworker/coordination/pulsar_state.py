"""Function state for the worker's REST API: fold a function's state topic (from its
start to its last entry) and append a record to it. The instances keep their own
live fold (runtimes/instance/state_log.py); this is the admin's read and write
(docs/state.md). Does I/O (the worker's async client)."""

from __future__ import annotations

import uuid

import pulsar
import pulsar.asyncio as apulsar

from fnworker.coordination.pulsar_transport import PulsarTopics
from fnworker.coordination.replay import STEP_SECONDS, abandon, last_position, within
from fnworker.scheduler.model.function_state import (
    ENCODE,
    StateRecord,
    StateTable,
    decode_record,
)


async def read_state_table(client: apulsar.Client, topic: str, incarnation: int) -> StateTable:
    """The fold of ``topic`` for ``incarnation`` as the topic holds it now; each message
    id is applied once (readers may get duplicates). Raises ReplayStalled when a call
    does not answer within STEP_SECONDS."""
    table = StateTable(incarnation)
    probe = f"fnworker-state-query-{uuid.uuid4().hex[:12]}"
    end = await within(STEP_SECONDS, last_position(client, topic, probe), "state probe")
    if end is None:
        return table
    reader = await within(
        STEP_SECONDS, client.create_reader(topic, pulsar.MessageId.earliest), "state reader"
    )
    try:
        seen: set[tuple[int, int]] = set()
        position = (-1, -1)
        while position < end:
            message = await within(STEP_SECONDS, reader.read_next(), "state read")
            position = (message.message_id().ledger_id(), message.message_id().entry_id())
            if position in seen:
                continue
            seen.add(position)
            record = decode_record(message.data())
            if record is not None:
                table.apply(record)
    finally:
        await abandon(reader)
    return table


async def append_state(pulsar_topics: PulsarTopics, topic: str, record: StateRecord) -> None:
    """Store one record on a function's state topic (unbatched, as instances write)."""
    producer = await pulsar_topics.producer(topic, batching=False)
    await producer.send(ENCODE(record))
