"""pulsar-lite: two clients on one Shared subscription clash unless their consumer
ids differ; the spreader puts each worker's ids in its own slot."""

from __future__ import annotations

import logging

import pulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker
from fnworker.runtimes.instance.consumer_ids import ConsumerIdSpreader, slot_of


def client(broker: EmbeddedBroker) -> pulsar.Client:
    quiet = logging.getLogger("consumer-ids-test")
    quiet.setLevel(logging.WARNING)
    return pulsar.Client(broker.url, operation_timeout_seconds=3, logger=quiet)


@pytest.mark.timeout(60)
def test_workers_in_different_slots_share_a_subscription(
    broker: EmbeddedBroker, unique_name: str
) -> None:
    topic, subscription = f"{unique_name}-in", f"{unique_name}-sub"
    other = next(name for name in ("w2", "w3", "w4", "w5") if slot_of(name, 8) != slot_of("w1", 8))
    first, second = client(broker), client(broker)
    try:
        spreaders = [ConsumerIdSpreader("w1", 8), ConsumerIdSpreader(other, 8)]
        consumers = [
            spreader.subscribe(
                c,
                [topic],
                lambda c=c: c.subscribe(
                    topic, subscription, consumer_type=pulsar.ConsumerType.Shared
                ),
            )
            for spreader, c in zip(spreaders, (first, second), strict=True)
        ]
        producer = first.create_producer(topic, batching_enabled=False)
        for index in range(20):
            producer.send(f"m{index}".encode())
        got = 0
        for consumer in consumers:
            while True:
                try:
                    consumer.acknowledge(consumer.receive(timeout_millis=500))
                    got += 1
                except pulsar.Timeout:
                    break
        assert got == 20
        assert [s.next_id % 8 for s in spreaders] == [(s.slot + 1) % 8 for s in spreaders]
    finally:
        first.close()
        second.close()


@pytest.mark.timeout(60)
def test_skipping_uses_up_exactly_the_ids_it_counts(
    broker: EmbeddedBroker, unique_name: str
) -> None:
    """Another client holds every id around ``skip`` on a subscription, all but
    ``skip`` itself: the spreader's client joins it only if its throw-away consumers
    used up exactly ``skip`` ids (pulsar-lite refuses a second consumer with an id)."""
    topic, subscription, skip = f"{unique_name}-in", f"{unique_name}-sub", 15
    holder, joiner = client(broker), client(broker)
    shared = pulsar.ConsumerType.Shared
    try:
        held = [holder.subscribe(topic, subscription, consumer_type=shared) for _ in range(skip)]
        holder.create_reader(f"{unique_name}-other", pulsar.MessageId.latest).close()  # id `skip`
        held += [holder.subscribe(topic, subscription, consumer_type=shared) for _ in range(4)]
        spreader = ConsumerIdSpreader("w1", 1)
        spreader.skip(joiner, skip)
        assert spreader.next_id == skip
        joined = joiner.subscribe(topic, subscription, consumer_type=shared)
        joined.close()
    finally:
        holder.close()
        joiner.close()
