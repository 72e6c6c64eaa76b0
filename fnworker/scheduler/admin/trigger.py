"""Sends one value to a function's input topic and waits for the output the
function produced for it, as ``pulsar-admin functions trigger`` does. Blocking
I/O on the sync pulsar client: call it from a worker thread.

A broker error is an ``ApiError`` with one sentence: a value larger than the broker's
maximum message size is ``ValueTooLarge`` (413), a broker that cannot be reached or
did not answer in time 503, any other refusal 502.

The instance host marks every output with ``__pfn_input_msg_id__`` (the base64 of
the input's serialized message id), so the answer is matched exactly even while
other messages flow through the function.
"""

from __future__ import annotations

import base64
import time

import pulsar

from fnworker.scheduler.model.errors import ApiError

INPUT_ID_PROPERTY = "__pfn_input_msg_id__"
BROKER_DEFAULT_MAX_MESSAGE_BYTES = 5 * 1024 * 1024
"""Pulsar's (and pulsar-lite's) default ``maxMessageSize``: 5 MiB."""
UNAVAILABLE = (
    pulsar.Timeout,
    pulsar.ConnectError,
    pulsar.NotConnected,
    pulsar.LookupError,
    pulsar.ServiceUnitNotReady,
    pulsar.TooManyLookupRequestException,
    pulsar.ProducerQueueIsFull,
    pulsar.MemoryBufferIsFull,
)
"""Broker errors that say "not now" rather than "never"."""


class ValueTooLarge(ApiError):
    """The broker refused the value as larger than its maximum message size (413)."""

    def __init__(self, size: int) -> None:
        super().__init__(413, too_large_reason("the value", size))
        self.size = size


def too_large_reason(what: str, size: int) -> str:
    """One sentence: ``what`` is ``size`` bytes, over the broker's message size limit."""
    return (
        f"{what} is {size} bytes, more than the broker accepts in one message (its "
        f"maxMessageSize, {BROKER_DEFAULT_MAX_MESSAGE_BYTES} bytes unless the broker sets "
        "another); expected a smaller value"
    )


def broker_error(error: pulsar.PulsarException, topic: str, size: int) -> ApiError:
    """The answer for a broker error while triggering: 413, 503 or 502."""
    if isinstance(error, pulsar.MessageTooBig):
        return ValueTooLarge(size)
    what = f"{type(error).__name__}: {error}"
    if isinstance(error, UNAVAILABLE):
        return ApiError(
            503, f"the broker did not take the value for {topic} ({what}); retry shortly"
        )
    return ApiError(502, f"the broker refused the value for {topic} ({what})")


def encode_message_id(message_id: pulsar.MessageId) -> str:
    """The form in which an output names the input message it answers."""
    return base64.b64encode(message_id.serialize()).decode("ascii")


def trigger_and_wait(
    client: pulsar.Client,
    input_topic: str,
    output_topic: str | None,
    value: bytes,
    timeout_s: float,
) -> bytes | None:
    """Publish ``value`` to ``input_topic``; return the matching output or None.

    Returns None at once when the function has no output topic, raises TimeoutError
    when no matching output arrives within ``timeout_s``, and an ``ApiError`` for a
    broker error (``broker_error``).
    """
    try:
        return _send_and_read(client, input_topic, output_topic, value, timeout_s)
    except pulsar.PulsarException as error:
        raise broker_error(error, input_topic, len(value)) from error


def _send_and_read(
    client: pulsar.Client,
    input_topic: str,
    output_topic: str | None,
    value: bytes,
    timeout_s: float,
) -> bytes | None:
    """``trigger_and_wait`` without the translation of broker errors."""
    reader = client.create_reader(output_topic, pulsar.MessageId.latest) if output_topic else None
    try:
        producer = client.create_producer(input_topic)
        try:
            wanted = encode_message_id(producer.send(value))
        finally:
            producer.close()
        if reader is None:
            return None
        return read_answer(reader, wanted, time.monotonic() + timeout_s)
    finally:
        if reader is not None:
            reader.close()


def read_answer(reader: pulsar.Reader, wanted: str, deadline: float) -> bytes:
    """Read outputs until the one naming ``wanted`` arrives, or time runs out."""
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            message = reader.read_next(timeout_millis=max(1, int(remaining * 1000)))
        except pulsar.Timeout:
            break
        if message.properties().get(INPUT_ID_PROPERTY) == wanted:
            return bytes(message.data())
    raise TimeoutError("no output arrived for the triggered value in time")
