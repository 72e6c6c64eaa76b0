"""The durable function state on a real pulsar-lite broker: shared between
processes' logs (each with its own client, as two workers have), durable across a
new reader, voided with its function, and clear about bad input and a broker that
is gone."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker, start_embedded_broker
from fnworker.runtimes.instance.state_log import FunctionStateLog, StateUnavailable
from fnworker.scheduler.model.function_state import (
    ENCODE,
    MAX_VALUE_BYTES,
    StateError,
    StateRecord,
    state_topic,
)
from fnworker.scheduler.model.instances import StateSettings
from tests.integration.conftest import wait_until


@pytest.fixture
def clients(broker: EmbeddedBroker) -> Iterator[Callable[[], pulsar.Client]]:
    """Make pulsar clients on the session broker; all closed after the test."""
    made: list[pulsar.Client] = []

    def make(url: str = broker.url) -> pulsar.Client:
        client = pulsar.Client(url, operation_timeout_seconds=5)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def open_log(
    client: pulsar.Client, topic: str, incarnation: int = 1, timeout: float = 10.0
) -> FunctionStateLog:
    return FunctionStateLog(
        lambda: client,
        topic,
        incarnation=incarnation,
        settings=StateSettings(write_timeout_seconds=timeout),
    )


def unique_topic() -> str:
    return state_topic("public/functions", f"public/default/state-{uuid.uuid4().hex[:8]}")


def test_increments_from_two_processes_add_up_and_each_reads_its_own_writes(
    clients: Callable[[], pulsar.Client],
) -> None:
    topic = unique_topic()
    first, second = open_log(clients(), topic), open_log(clients(), topic)
    try:

        def count(log: FunctionStateLog, times: int) -> None:
            for _ in range(times):
                log.incr_counter("words", 1)

        threads = [threading.Thread(target=count, args=(log, 150)) for log in (first, second)]
        threads += [threading.Thread(target=count, args=(first, 100))]
        for thread in threads:
            thread.start()
        assert first.incr_counter("mine", 5) == 5, "a write is visible to the next read at once"
        assert first.get_counter("mine") == 5
        for thread in threads:
            thread.join()
        assert wait_until(lambda: first.get_counter("words") == 400), first.get_counter("words")
        assert wait_until(lambda: second.get_counter("words") == 400), second.get_counter("words")
        assert wait_until(lambda: second.get_counter("mine") == 5)
    finally:
        first.close()
        second.close()


def test_state_is_read_back_by_a_new_log_and_values_keep_their_type(
    clients: Callable[[], pulsar.Client],
) -> None:
    topic = unique_topic()
    writer = open_log(clients(), topic)
    writer.incr_counter("n", 3)
    writer.incr_counter("n", -1)
    writer.put("text", "héllo")
    writer.put("raw", b"\x00\xff")
    writer.put("gone", "x")
    writer.delete("gone")
    writer.close()
    reader = open_log(clients(), topic)
    try:
        assert reader.get_counter("n") == 2
        assert reader.get("text") == "héllo"
        assert reader.get("raw") == b"\x00\xff"
        assert reader.get("gone") is None
        assert reader.get_counter("never") == 0
    finally:
        reader.close()


def test_a_clear_voids_the_incarnation_and_its_late_writes(
    clients: Callable[[], pulsar.Client],
) -> None:
    topic = unique_topic()
    old = open_log(clients(), topic, incarnation=111)
    old.incr_counter("n", 7)
    producer = clients().create_producer(topic)
    producer.send(ENCODE(StateRecord(op="clear", incarnation=111)))
    old.incr_counter("n", 1)  # a late write of the deleted function
    old.close()
    new = open_log(clients(), topic, incarnation=222)
    try:
        assert new.get_counter("n") == 0
        new.incr_counter("n", 2)
        assert new.get_counter("n") == 2
    finally:
        new.close()


def test_a_corrupt_record_is_skipped_and_the_rest_still_counts(
    clients: Callable[[], pulsar.Client],
) -> None:
    topic = unique_topic()
    producer = clients().create_producer(topic)
    producer.send(ENCODE(StateRecord(op="incr", key="n", amount=4, incarnation=1)))
    producer.send(b"\xc1 not a state record")
    producer.send(b'{"op": "incr"}')
    producer.send(ENCODE(StateRecord(op="incr", key="n", amount=1, incarnation=1)))
    log = open_log(clients(), topic)
    try:
        assert log.get_counter("n") == 5
        log.incr_counter("n", 1)
        assert log.get_counter("n") == 6
    finally:
        log.close()


def test_bad_keys_and_values_get_one_sentence_and_store_nothing(
    clients: Callable[[], pulsar.Client],
) -> None:
    topic = unique_topic()
    log = open_log(clients(), topic)
    try:
        with pytest.raises(StateError, match="keys must be strings"):
            log.incr_counter(42, 1)  # type: ignore[arg-type]
        with pytest.raises(StateError, match=f"at most {MAX_VALUE_BYTES} bytes"):
            log.put("big", b"x" * (MAX_VALUE_BYTES + 1))
        with pytest.raises(StateError, match="put_state takes str or bytes"):
            log.put("obj", {"a": 1})
        log.put("v", "value")
        with pytest.raises(StateError, match="holds a value, not a counter"):
            log.incr_counter("v", 1)
        with pytest.raises(StateError, match="at most 1024 bytes"):
            log.get("k" * 1025)
    finally:
        log.close()
    again = open_log(clients(), topic)
    try:
        assert again.get("big") is None and again.get("obj") is None
        assert again.get("v") == "value"
    finally:
        again.close()


def test_a_broker_that_is_gone_makes_the_write_raise_and_keeps_what_was_written(
    tmp_path: Path,
) -> None:
    broker = start_embedded_broker(tmp_path / "broker")
    port = broker.port
    client = pulsar.Client(broker.url, operation_timeout_seconds=3)
    log = open_log(client, unique_topic(), timeout=2.0)
    try:
        log.incr_counter("n", 10)
        broker.stop()
        started = time.monotonic()
        with pytest.raises(StateUnavailable, match="nothing was written"):
            log.incr_counter("n", 5)
        assert time.monotonic() - started < 15
        broker = start_embedded_broker(tmp_path / "broker", port=port)
        fresh = pulsar.Client(broker.url, operation_timeout_seconds=5)
        again = open_log(fresh, log.topic)
        try:
            assert again.get_counter("n") == 10
        finally:
            again.close()
            fresh.close()
    finally:
        log.close()
        client.close()
        broker.stop()
