"""Trigger: send a value to a function's input and wait for its output, over the
worker's own broker client (opened on first use, closed with the admin).
"""

from __future__ import annotations

import anyio
import pulsar

from fnworker.runtimes.broker_client import make_client
from fnworker.scheduler.admin.function_reads import FunctionReads
from fnworker.scheduler.admin.trigger import trigger_and_wait
from fnworker.scheduler.decide.function_validation import input_topics
from fnworker.scheduler.model.errors import ApiError, bad_request, conflict
from fnworker.scheduler.model.instances import ClientSettings
from fnworker.scheduler.model.records import FunctionRecord

TRIGGER_TIMEOUT_S = 10.0


class TriggerService:
    """Answers trigger requests with the function's output (or why none can come)."""

    def __init__(self, reads: FunctionReads, client_settings: ClientSettings) -> None:
        self.reads = reads
        self.client_settings = client_settings
        self._client: pulsar.Client | None = None

    async def trigger(
        self, tenant: str, namespace: str, name: str, value: bytes, topic: str | None
    ) -> bytes | None:
        """Send ``value`` to the function's input and return its output (408 on timeout;
        409 at once when every instance is stopped: no output can come)."""
        record = self.reads.record(tenant, namespace, name)
        target = target_topic(record, topic)
        client = self.client()
        try:
            return await anyio.to_thread.run_sync(
                trigger_and_wait, client, target, record.config.output, value, TRIGGER_TIMEOUT_S
            )
        except TimeoutError as error:
            raise ApiError(
                408, f"no output from {record.fqfn} within {TRIGGER_TIMEOUT_S:.0f} s"
            ) from error

    def client(self) -> pulsar.Client:
        """The worker's own broker client for admin work such as trigger."""
        if self._client is None:
            self._client = make_client(self.client_settings)
        return self._client

    async def aclose(self) -> None:
        """Close the client, if one was opened."""
        if self._client is not None:
            client, self._client = self._client, None
            await anyio.to_thread.run_sync(client.close)


def target_topic(record: FunctionRecord, topic: str | None) -> str:
    """The input topic a trigger sends to: ``topic`` if it is one of the function's
    inputs, else its first; 409 when every instance is stopped, 400 for a bad topic."""
    size = record.parallelism()
    states = record.instance_states.items()
    if sum(1 for i, state in states if state == "STOPPED" and i < size) >= size:
        raise conflict(
            f"every instance of {record.fqfn} is stopped, so no output can come; "
            "expected it started first (POST .../start)"
        )
    inputs = [t for t, is_pattern in input_topics(record.config).items() if not is_pattern]
    if not inputs:
        raise bad_request(f"{record.fqfn} reads a topics pattern; trigger needs a 'topic' part")
    if topic is not None and topic not in inputs:
        raise bad_request(
            f"topic '{topic}' is not an input of {record.fqfn}; its inputs are {inputs}"
        )
    return topic or inputs[0]
