"""The heartbeats reader that is open only while the protocol state wants it
(coordination/pulsar_leader_reader.py), on the real broker: it opens at ``latest``
when wanted and closes when not, and a reader that delivers nothing while wanted
is replaced (a safeguard against pulsar-lite's broken reader at ``latest`` and
stalled reads, docs/coordination.md)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable

import anyio
import msgspec
import pulsar
import pulsar.asyncio as apulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker
from fnworker.coordination.protocol import NodeState, Timings, initial_state
from fnworker.coordination.pulsar_leader_reader import StateGatedReader
from fnworker.scheduler.model.records import WorkerId, WorkerInfo

pytestmark = pytest.mark.anyio

DECODER = msgspec.msgpack.Decoder(str)
ENCODE = msgspec.msgpack.Encoder().encode
STATE = initial_state(
    WorkerInfo(worker_id=WorkerId("w1"), worker_hostname="h", port=1), "s", Timings(), 0.0
)


def quiet() -> logging.Logger:
    logger = logging.getLogger("test-leader-reader")
    logger.setLevel(logging.ERROR)
    return logger


class Gate:
    """What the test's 'state' wants, and what the reader delivered."""

    def __init__(self) -> None:
        self.open = False
        self.seen: list[str] = []

    def wanted(self, state: NodeState) -> bool:
        return self.open


async def until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.02)


@pytest.fixture
async def client(broker: EmbeddedBroker) -> AsyncIterator[apulsar.Client]:
    connection = apulsar.Client(broker.url, operation_timeout_seconds=5, logger=quiet())
    yield connection
    await connection.close()


async def gated(
    client: apulsar.Client, topic: str, gate: Gate, quiet_limit: float
) -> StateGatedReader:
    return StateGatedReader(
        topic,
        lambda: client.create_reader(topic, pulsar.MessageId.latest),
        DECODER,
        gate.seen.append,
        gate.wanted,
        quiet_limit=quiet_limit,
    )


async def test_the_reader_is_open_exactly_while_wanted(client: apulsar.Client) -> None:
    topic = f"persistent://public/default/gated-{uuid.uuid4().hex[:8]}"
    producer = await client.create_producer(topic, batching_enabled=False)
    gate = Gate()
    reader = await gated(client, topic, gate, quiet_limit=60.0)
    async with anyio.create_task_group() as group:
        group.start_soon(reader.run)
        gate.open = True
        reader.watch(STATE)
        await until(lambda: reader.opened == 1, "opened")
        await producer.send(ENCODE("first"))
        await until(lambda: gate.seen == ["first"], "first read")
        gate.open = False
        reader.watch(STATE)
        await producer.send(ENCODE("while closed"))
        gate.open = True
        reader.watch(STATE)
        await until(lambda: reader.opened == 2, "opened again")
        await producer.send(ENCODE("second"))
        await until(lambda: "second" in gate.seen, "second read")
        group.cancel_scope.cancel()
    assert gate.seen == ["first", "second"]


async def test_a_reader_silent_while_wanted_is_replaced(client: apulsar.Client) -> None:
    """While wanted the topic has traffic (the leader's own heartbeats), so a reader
    that delivers nothing for ``quiet_limit`` is taken for broken and replaced; the
    replacement reads what follows."""
    topic = f"persistent://public/default/gated-{uuid.uuid4().hex[:8]}"
    producer = await client.create_producer(topic, batching_enabled=False)
    gate = Gate()
    reader = await gated(client, topic, gate, quiet_limit=0.3)
    async with anyio.create_task_group() as group:
        group.start_soon(reader.run)
        gate.open = True
        reader.watch(STATE)
        await until(lambda: reader.silences >= 1 and reader.opened >= 2, "replaced")
        await producer.send(ENCODE("after"))
        await until(lambda: "after" in gate.seen, "read by the replacement")
        group.cancel_scope.cancel()
