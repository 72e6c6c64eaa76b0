"""The start-up replay of a coordination topic reads every record even when the
broker stops answering in the middle (a restarted worker once hung there, and an
error mid-replay used to end it early with part of the functions)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator

import pulsar
import pulsar.asyncio as apulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker
from fnworker.coordination.replay import replay_topic

pytestmark = pytest.mark.anyio

RECORDS = 5000
"""Written one record per entry: more than a reader prefetches (1,000), so the replay
must ask the broker for more while the broker is stopped."""


def fill(broker: EmbeddedBroker, topic: str, batch: int = 1, records: int = RECORDS) -> None:
    client = pulsar.Client(broker.url, logger=quiet())
    producer = client.create_producer(
        topic,
        batching_enabled=batch > 1,
        batching_max_messages=max(batch, 2),
        block_if_queue_full=True,
    )
    for index in range(records):
        producer.send_async(f"r{index}".encode(), None)
    producer.flush()
    client.close()


def quiet() -> logging.Logger:
    logger = logging.getLogger("test-replay-client")
    logger.setLevel(logging.ERROR)
    return logger


@pytest.fixture
def resumed(fresh_broker: EmbeddedBroker) -> Iterator[EmbeddedBroker]:
    """The test's broker, always resumed at the end even if the test stopped it."""
    yield fresh_broker
    os.kill(fresh_broker.pid, signal.SIGCONT)


async def test_a_replay_survives_a_broker_that_stops_answering_mid_way(
    resumed: EmbeddedBroker,
) -> None:
    topic = "persistent://public/default/replay-stall"
    fill(resumed, topic)
    seen: set[bytes] = set()
    resume = threading.Timer(3.0, os.kill, (resumed.pid, signal.SIGCONT))

    def apply(data: bytes) -> None:
        seen.add(data)
        if len(seen) == 10 and not resume.is_alive():
            os.kill(resumed.pid, signal.SIGSTOP)
            resume.start()

    client = apulsar.Client(resumed.url, operation_timeout_seconds=1, logger=quiet())
    try:
        reader = await replay_topic(client, topic, apply, probe_name="probe", step_seconds=1.5)
        stalled_to_the_end = resume.is_alive()
        resume.join()
        await reader.close()
    finally:
        await client.close()
    assert not stalled_to_the_end, "the replay ended while the broker was stopped"
    assert seen == {f"r{index}".encode() for index in range(RECORDS)}


async def test_a_replay_reads_every_record_of_large_batches(broker: EmbeddedBroker) -> None:
    """The end is an entry; the rest of its batch is read too."""
    topic = "persistent://public/default/replay-batches"
    fill(broker, topic, batch=1000, records=3000)
    seen: list[bytes] = []
    client = apulsar.Client(broker.url, operation_timeout_seconds=5, logger=quiet())
    try:
        reader = await replay_topic(client, topic, seen.append, probe_name="probe")
        await reader.close()
    finally:
        await client.close()
    # Every record, at least once: a replay that stalled (a loaded pulsar-lite once
    # left a read_next of this test unanswered for 10 s) reads again from the start
    # with a new reader, which is safe because records apply idempotently.
    assert set(seen) == {f"r{index}".encode() for index in range(3000)}


async def test_a_replay_of_an_empty_topic_returns_a_reader_for_what_comes(
    broker: EmbeddedBroker,
) -> None:
    topic = "persistent://public/default/replay-empty"
    client = apulsar.Client(broker.url, operation_timeout_seconds=5, logger=quiet())
    try:
        reader = await replay_topic(client, topic, lambda data: None, probe_name="probe")
        fill(broker, topic, records=1)
        assert (await reader.read_next()).data() == b"r0"
        await reader.close()
    finally:
        await client.close()
