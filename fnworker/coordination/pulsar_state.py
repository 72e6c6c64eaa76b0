"""Function state for the worker's REST API: fold a function's state topic (from its
start to its last entry) and append a record to it. The instances keep their own
live fold (runtimes/instance/state_log.py); this is the admin's read and write
(docs/state.md). Does I/O (the worker's async client)."""

from __future__ import annotations

import pulsar.asyncio as apulsar

from fnworker.coordination.pulsar_transport import PulsarTopics
from fnworker.coordination.replay import read_each_once
from fnworker.scheduler.model.function_state import (
    ENCODE,
    StateRecord,
    StateTable,
    decode_record,
)


async def read_state_table(client: apulsar.Client, topic: str, incarnation: int) -> StateTable:
    """The fold of ``topic`` for ``incarnation`` as the topic holds it now, each message
    once. Raises ReplayStalled when a call does not answer within STEP_SECONDS."""
    table = StateTable(incarnation)

    def apply(data: bytes) -> None:
        record = decode_record(data)
        if record is not None:
            table.apply(record)

    await read_each_once(client, topic, apply, "state")
    return table


async def append_state(pulsar_topics: PulsarTopics, topic: str, record: StateRecord) -> None:
    """Store one record on a function's state topic (unbatched, as instances write)."""
    producer = await pulsar_topics.producer(topic, batching=False)
    await producer.send(ENCODE(record))
