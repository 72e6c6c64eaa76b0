"""The Pulsar side of the coordination backend: one client, a cached producer per
topic, readers that decode each record and hand it on, and the publisher that
stores the protocol's records in order. Does I/O (pulsar); decides nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import msgspec
import pulsar
import pulsar.asyncio as apulsar
import structlog

from fnworker.coordination.protocol import Send, Topic
from fnworker.coordination.replay import last_message_id
from fnworker.coordination.topics import ClusterTopics

log = structlog.get_logger("fnworker.coordination")

ENCODE = msgspec.msgpack.Encoder().encode
HISTORY = 5000  # coordinate records a starting worker reads back (minutes of leases)


def client_logger(path: str | None) -> pulsar.FileLogger | None:
    """The C++ client's own file logger at WARN: no Python call per log line."""
    return pulsar.FileLogger(pulsar.LoggerLevel.Warn, path) if path else None


class PulsarTopics:
    """One worker's client on its cluster's topics: producers, readers, publishing."""

    def __init__(self, client: apulsar.Client, topics: ClusterTopics) -> None:
        self.client = client
        self.topics = topics
        self.producers: dict[str, apulsar.Producer] = {}
        self.creating: dict[str, anyio.Lock] = {}

    def name_of(self, topic: Topic) -> str:
        """The full Pulsar topic name of a protocol topic."""
        if topic.kind == "coordinate":
            return self.topics.coordinate
        if topic.kind == "heartbeats":
            return self.topics.heartbeats
        return self.topics.assignments_of(topic.worker)

    async def producer(self, topic: str, batching: bool = True) -> apulsar.Producer:
        """A cached producer per topic, made once even when asked for concurrently
        (batching on: pulsar-lite duplicates unbatched bursts)."""
        producer = self.producers.get(topic)
        if producer is not None:
            return producer
        async with self.creating.setdefault(topic, anyio.Lock()):
            producer = self.producers.get(topic)
            if producer is None:
                producer = await self.client.create_producer(
                    topic,
                    batching_enabled=batching,
                    batching_max_publish_delay_ms=1,
                    block_if_queue_full=True,
                )
                self.producers[topic] = producer
            return producer

    async def send(self, topic: str, data: bytes) -> pulsar.MessageId:
        """Publish one record."""
        return await (await self.producer(topic)).send(data)

    async def publish(self, sends: Sequence[Send]) -> None:
        """Store the protocol's records, in order on each topic, every topic at once."""
        by_topic: dict[str, list[bytes]] = {}
        for send in sends:
            by_topic.setdefault(self.name_of(send.topic), []).append(ENCODE(send.record))
        async with anyio.create_task_group() as group:
            for topic, records in by_topic.items():
                group.start_soon(self.publish_to, topic, records)

    async def publish_to(self, topic: str, records: list[bytes]) -> None:
        """Store records on one topic in order: the first alone, then the rest together
        (the client queues a send when it is called, so starting them in order keeps
        the order). The first goes alone because pulsar-lite breaks a reader opened at
        ``latest`` whose first entry is a batch of several records: it drops the
        reader's connection ("out of range integral type conversion") and the reader
        reads nothing more (docs/coordination.md, pulsar-lite)."""
        producer = await self.producer(topic)
        await producer.send(records[0])
        async with anyio.create_task_group() as group:
            for data in records[1:]:
                group.start_soon(producer.send, data)

    async def reader_at_latest(self, topic: str) -> apulsar.Reader:
        """A reader of what is written to ``topic`` from now on."""
        return await self.client.create_reader(topic, pulsar.MessageId.latest)

    async def reader_near_end(self, topic: str, probe_name: str) -> apulsar.Reader:
        """A reader starting HISTORY records before the end of ``topic`` (or at its start)."""
        last = await last_message_id(self.client, topic, probe_name)
        if last is None or last.entry_id() < 0:
            return await self.client.create_reader(topic, pulsar.MessageId.earliest)
        start = pulsar.MessageId(-1, last.ledger_id(), max(0, last.entry_id() - HISTORY), -1)
        return await self.client.create_reader(topic, start, start_message_id_inclusive=True)


async def read_forever(
    reader: apulsar.Reader, decoder: Any, apply: Callable[[Any], object | Awaitable[object]]
) -> None:
    """Decode and apply every record a reader delivers, forever (the client's close
    closes the reader)."""
    while True:
        message = await reader.read_next()
        try:
            record = decoder.decode(message.data())
        except msgspec.DecodeError as error:
            log.warning("undecodable record skipped", topic=reader.topic(), error=str(error))
            continue
        applied = apply(record)
        if isinstance(applied, Awaitable):
            await applied
