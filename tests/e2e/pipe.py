"""A function's two ends for end-to-end tests: a producer on its input topic and a
consumer on its output topic, with receive helpers that tolerate ATLEAST_ONCE
repeats. Broker I/O through the real pulsar client."""

from __future__ import annotations

import time

import pulsar

from tests.e2e.helpers import wait_for


class Pipe:
    """A producer on ``<name>-in`` and a consumer on ``<name>-out`` (public/default).

    ``shared`` reads the output with a Shared subscription: pulsar-lite can deliver
    duplicates to a live Exclusive consumer of an unbatched burst."""

    def __init__(
        self, client: pulsar.Client, name: str, *, batching: bool = True, shared: bool = False
    ) -> None:
        self.consumer = client.subscribe(
            f"persistent://public/default/{name}-out",
            f"e2e-{name}",
            consumer_type=pulsar.ConsumerType.Shared if shared else pulsar.ConsumerType.Exclusive,
            initial_position=pulsar.InitialPosition.Earliest,
        )
        self.producer = client.create_producer(
            f"persistent://public/default/{name}-in",
            batching_enabled=batching,
            batching_max_publish_delay_ms=5,
        )

    def send(self, values: list[str]) -> None:
        """Send every value and wait until the broker has them."""
        for value in values:
            self.producer.send_async(value.encode(), None)
        self.producer.flush()

    def receive_all(self, expected: set[str], timeout_s: float = 60.0) -> set[str]:
        """Outputs until every expected one arrived (repeats allowed) or time is up."""
        received: set[str] = set()
        deadline = time.monotonic() + timeout_s
        while not expected <= received and time.monotonic() < deadline:
            try:
                message = self.consumer.receive(timeout_millis=500)
            except pulsar.Timeout:
                continue
            received.add(message.data().decode())
            self.consumer.acknowledge(message)
        return received

    def receive(self, count: int, timeout_s: float = 60.0) -> list[str]:
        """Up to ``count`` outputs within the timeout."""
        received: list[str] = []
        deadline = time.monotonic() + timeout_s
        while len(received) < count and time.monotonic() < deadline:
            try:
                message = self.consumer.receive(timeout_millis=500)
            except pulsar.Timeout:
                continue
            received.append(message.data().decode())
            self.consumer.acknowledge(message)
        return received

    def nothing_within(self, seconds: float) -> list[str]:
        """Whatever arrives within ``seconds`` (expected: nothing)."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.consumer.receive(timeout_millis=200).data().decode())
            except pulsar.Timeout:
                pass
        return got

    def probe(self, word: str = "probe", suffix: str = "!", timeout_s: float = 120.0) -> str:
        """Send ``word`` until ``word + suffix`` comes back (the function is consuming)."""
        answer = word + suffix

        def answered() -> bool:
            self.send([word])
            return answer in self.receive_all({answer}, timeout_s=2)

        wait_for(answered, timeout=timeout_s)
        return answer

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()
