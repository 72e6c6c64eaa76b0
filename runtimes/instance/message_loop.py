"""The hot loop of one instance: receive → deserialize → call user code → publish →
acknowledge, with the sync pulsar client on the instance's own thread. Does broker
I/O and runs user code.

Throughput design (docs/instance-host.md): no Python callback per message. Outputs
go out with ``send_async(..., None)``; the inputs they came from wait in a
*window*. The window is closed when the consumer's queue is momentarily empty,
after ``FLUSH_EVERY`` messages or after ``FLUSH_SECONDS``: the producers are
flushed (one round trip confirms every send) and only then are the window's
inputs acknowledged, or negatively acknowledged if the flush failed.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import pulsar
import structlog

from fnworker.runtimes.instance.context import InstanceContext, Producers
from fnworker.runtimes.instance.instance_plan import AckMode, base_topic_name
from fnworker.runtimes.instance.serde import SerDe
from fnworker.runtimes.instance.stats import InstanceStats, describe

IDLE_RECEIVE_MS = 100
FLUSH_EVERY = 1000
FLUSH_SECONDS = 0.005
FAILURE_LOGS_PER_SECOND = 5
INPUT_TOPIC_PROPERTY = "__pfn_input_topic__"
INPUT_MESSAGE_ID_PROPERTY = "__pfn_input_msg_id__"


def encoded_message_id(message_id: pulsar.MessageId) -> str:
    """The input message id as Pulsar's Python instance writes it (url-safe base64)."""
    return base64.urlsafe_b64encode(message_id.serialize()).decode("ascii")


def sequence_id_of(message_id: pulsar.MessageId) -> int:
    """A producer sequence id that grows with the input position (EFFECTIVELY_ONCE).

    ledger (23 bits) | entry (27 bits) | batch index + 1 (13 bits); a replay of the
    same input gets the same id, so a broker with deduplication drops it.
    """
    ledger = max(message_id.ledger_id(), 0)
    entry = max(message_id.entry_id(), 0)
    batch = max(message_id.batch_index() + 1, 0)
    return (ledger << 40) | (entry << 13) | (batch & 0x1FFF)


class OutputSink:
    """Serializes results and sends them to the output topic with Pulsar's properties."""

    def __init__(
        self, producer: pulsar.Producer, serde: SerDe, *, forward_properties: bool, sequenced: bool
    ) -> None:
        self.producer = producer
        self.serde = serde
        self.forward_properties = forward_properties
        self.sequenced = sequenced
        self.pending = False

    def send(self, result: Any, message: pulsar.Message, topic: str) -> None:
        """Queue one result for sending; confirmed by ``flush``."""
        data = self.serde.serialize(result)
        properties = message.properties() if self.forward_properties else {}
        message_id = message.message_id()
        properties[INPUT_TOPIC_PROPERTY] = topic
        properties[INPUT_MESSAGE_ID_PROPERTY] = encoded_message_id(message_id)
        if self.sequenced:
            sequence_id = sequence_id_of(message_id)
            self.producer.send_async(data, None, properties=properties, sequence_id=sequence_id)
        else:
            self.producer.send_async(data, None, properties=properties)
        self.pending = True

    def flush(self) -> None:
        """Wait until every queued result is persisted; raises if the broker refused."""
        if self.pending:
            self.pending = False
            self.producer.flush()


class MessageLoop:
    """Processes messages until ``stop`` is set; never lets user code end the loop."""

    def __init__(
        self,
        *,
        consumer: pulsar.Consumer,
        handler: Callable[..., Any],
        takes_context: bool,
        context: InstanceContext,
        serdes: dict[str, SerDe],
        output: OutputSink | None,
        producers: Producers,
        ack_mode: AckMode,
        stats: InstanceStats,
        stop: threading.Event,
        log: structlog.stdlib.BoundLogger,
    ) -> None:
        self.consumer = consumer
        self.handler = handler
        self.takes_context = takes_context
        self.context = context
        self.serdes = serdes
        self.output = output
        self.producers = producers
        self.stats = stats
        self.stop = stop
        self.ack_on_receipt = ack_mode == "ATMOST_ONCE"
        self.ack_after_publish = ack_mode in ("ATLEAST_ONCE", "EFFECTIVELY_ONCE")
        self.nack_on_failure = ack_mode != "ATMOST_ONCE"
        self.window_acks: list[pulsar.Message] = []
        self.window_done = 0
        self.window_deadline = 0.0
        self.failure_window = (0.0, 0)
        self.log = log

    def run(self) -> None:
        """Loop until asked to stop, then confirm what is still in the window."""
        while not self.stop.is_set():
            self.step()
        self.flush()

    def step(self) -> None:
        """Receive and handle one message, closing the window when it is due."""
        try:
            message = self.consumer.receive(0 if self.window_done else IDLE_RECEIVE_MS)
        except pulsar.Timeout:
            if self.window_done:
                self.flush()
            return
        self.handle(message)
        if self.window_done >= FLUSH_EVERY or (
            self.window_done and time.monotonic() >= self.window_deadline
        ):
            self.flush()

    def handle(self, message: pulsar.Message) -> None:
        """Run one message through the user's code and queue its result."""
        stats = self.stats
        stats.received += 1
        topic = message.topic_name()
        if self.ack_on_receipt:
            self.consumer.acknowledge(message)
        try:
            value = self.serde_for(topic).deserialize(message.data())
        except Exception as error:  # noqa: BLE001 - a bad payload is a system failure
            self.fail(message, error, user=False, what="deserializing the input failed")
            return
        self.context.message = message
        stats.last_invocation_ms = int(time.time() * 1000)
        started = time.perf_counter()
        try:
            result = self.handler(value, self.context) if self.takes_context else self.handler(value)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - user code must never end the loop
            self.fail(message, error, user=True, what="the function raised")
            return
        stats.latency_total_ms += (time.perf_counter() - started) * 1000.0
        stats.latency_count += 1
        if result is not None and self.output is not None:
            try:
                self.output.send(result, message, topic)
            except Exception as error:  # noqa: BLE001 - serialize/publish failure
                self.fail(message, error, user=False, what="publishing the result failed")
                return
        self.complete(message)

    def serde_for(self, topic: str) -> SerDe:
        """The input serde of a topic (partitions share their topic's serde)."""
        serde = self.serdes.get(topic)
        if serde is None:
            serde = self.serdes.get(base_topic_name(topic)) or next(iter(self.serdes.values()))
            self.serdes[topic] = serde
        return serde

    def complete(self, message: pulsar.Message) -> None:
        """Put a successfully handled message in the window."""
        if self.ack_after_publish:
            self.window_acks.append(message)
        if not self.window_done:
            self.window_deadline = time.monotonic() + FLUSH_SECONDS
        self.window_done += 1

    def flush(self) -> None:
        """Confirm every send of the window, then acknowledge (or nack) its inputs."""
        acks, done = self.window_acks, self.window_done
        self.window_acks, self.window_done = [], 0
        try:
            if self.output is not None:
                self.output.flush()
            self.producers.flush_dirty()
        except Exception as error:  # noqa: BLE001 - a failed flush fails the window
            self.stats.record_system_exception(error, count=max(done, 1))
            self.log_failure("flushing the producers failed; inputs will be redelivered", error)
            for message in acks:
                self.consumer.negative_acknowledge(message)
            return
        for message in acks:
            self.consumer.acknowledge(message)
        self.stats.processed_successfully += done

    def fail(self, message: pulsar.Message, error: BaseException, *, user: bool, what: str) -> None:
        """Count and log a failed message and hand it back per the guarantee."""
        if user:
            self.stats.record_user_exception(error)
        else:
            self.stats.record_system_exception(error)
        self.log_failure(what, error)
        if self.nack_on_failure:
            self.consumer.negative_acknowledge(message)

    def log_failure(self, what: str, error: BaseException) -> None:
        """Log with a traceback, at most a few times per second per instance."""
        now = time.monotonic()
        started, count = self.failure_window
        if now - started >= 1.0:
            started, count = now, 0
        self.failure_window = (started, count + 1)
        if count < FAILURE_LOGS_PER_SECOND:
            self.log.warning(what, error=describe(error), exc_info=error)
