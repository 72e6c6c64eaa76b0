"""Sends one value to a function's input topic and waits for the output the
function produced for it, as ``pulsar-admin functions trigger`` does. Blocking
I/O on the sync pulsar client: call it from a worker thread.

The instance host marks every output with ``__pfn_input_msg_id__`` (the base64 of
the input's serialized message id), so the answer is matched exactly even while
other messages flow through the function.
"""

from __future__ import annotations

import base64
import time

import pulsar

INPUT_ID_PROPERTY = "__pfn_input_msg_id__"


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

    Returns None at once when the function has no output topic, and raises
    TimeoutError when no matching output arrives within ``timeout_s``.
    """
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
