"""Sending results to the output topic, and confirming a *window* of inputs with
one receipt instead of a Python callback per message. Does broker I/O.

A window's inputs are acknowledged only once everything sent for them is
persisted. Receipts on one producer arrive in send order (a failure fails every
later pending send too), so the receipt of the window's last send confirms the
whole window: ``WindowReceipt`` rides on that one send, and acknowledges the
window's inputs on success or negatively acknowledges them on failure.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

import pulsar

from fnworker.runtimes.instance.serde import SerDe
from fnworker.runtimes.instance.stats import InstanceStats

INPUT_TOPIC_PROPERTY = "__pfn_input_topic__"
INPUT_MESSAGE_ID_PROPERTY = "__pfn_input_msg_id__"
MAX_MESSAGE_BYTES = 5 * 1024 * 1024


class PublishError(RuntimeError):
    """The broker did not persist a send."""


def encoded_message_id(message_id: pulsar.MessageId) -> str:
    """The input message id as Pulsar's Python instance writes it (url-safe base64)."""
    return base64.urlsafe_b64encode(message_id.serialize()).decode("ascii")


def sequence_id_of(message_id: pulsar.MessageId) -> int:
    """A producer sequence id that grows with the input position (EFFECTIVELY_ONCE).

    ledger (23 bits) | entry (27 bits) | batch index + 1 (13 bits); a replay of the
    same input gets the same id, so a broker with deduplication drops it.
    """
    ledger = max(int(message_id.ledger_id()), 0)
    entry = max(int(message_id.entry_id()), 0)
    batch = max(int(message_id.batch_index()) + 1, 0)
    return (ledger << 40) | (entry << 13) | (batch & 0x1FFF)


class Outstanding:
    """Counts receipts not yet called back, so stopping can wait for them."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._count = 0

    def add(self) -> None:
        """One more receipt is in flight."""
        with self._changed:
            self._count += 1

    def done(self) -> None:
        """A receipt was called back."""
        with self._changed:
            self._count -= 1
            self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no receipt is in flight; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count == 0, timeout)


class WindowReceipt:
    """The send callback that settles a whole window of inputs (runs on a client thread)."""

    __slots__ = ("acks", "consumer", "done", "outstanding", "stats")

    def __init__(
        self,
        consumer: pulsar.Consumer,
        acks: list[pulsar.Message],
        done: int,
        stats: InstanceStats,
        outstanding: Outstanding,
    ) -> None:
        self.consumer = consumer
        self.acks = acks
        self.done = done
        self.stats = stats
        self.outstanding = outstanding
        outstanding.add()

    def __call__(self, result: Any, message_id: Any = None) -> None:
        """Acknowledge the window on success, negatively acknowledge it otherwise."""
        try:
            if result == pulsar.Result.Ok:
                settle(self.consumer, self.acks, self.done, self.stats)
            else:
                fail_window(
                    self.consumer, self.acks, self.done, self.stats, PublishError(str(result))
                )
        finally:
            self.outstanding.done()


def settle(
    consumer: pulsar.Consumer, acks: list[pulsar.Message], done: int, stats: InstanceStats
) -> None:
    """Acknowledge a confirmed window and count its messages as processed."""
    for message in acks:
        consumer.acknowledge(message)
    stats.add_processed(done)


def fail_window(
    consumer: pulsar.Consumer,
    acks: list[pulsar.Message],
    done: int,
    stats: InstanceStats,
    error: BaseException,
) -> None:
    """A window whose sends failed: count a system exception per message, redeliver."""
    stats.record_system_exception(error, count=max(done, 1))
    for message in acks:
        consumer.negative_acknowledge(message)


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

    def send(
        self, result: Any, message: pulsar.Message, topic: str, receipt: WindowReceipt | None
    ) -> None:
        """Serialize and send one result; ``receipt`` (if any) is called once it is persisted."""
        data = self.serde.serialize(result)
        if not isinstance(data, bytes):
            data = bytes(data)
        if len(data) > MAX_MESSAGE_BYTES:
            raise PublishError(f"result of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES} bytes")
        properties = message.properties() if self.forward_properties else {}
        message_id = message.message_id()
        properties[INPUT_TOPIC_PROPERTY] = topic
        properties[INPUT_MESSAGE_ID_PROPERTY] = encoded_message_id(message_id)
        sequence_id = sequence_id_of(message_id) if self.sequenced else None
        self.producer.send_async(data, receipt, properties=properties, sequence_id=sequence_id)
        self.pending = receipt is None

    def flush(self) -> None:
        """Wait until every result sent is persisted; raises if the broker refused."""
        if self.pending:
            self.pending = False
            self.producer.flush()
