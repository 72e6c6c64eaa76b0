"""What a user of ``fnworker standalone`` sees: functions deployed over REST process
real messages on the embedded broker; update, parallelism, delete and bad requests
behave as in Pulsar. Messages are counted one by one, never assumed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pulsar
import pytest

from tests.e2e.helpers import BASE, CLASS, EXAMPLE, call, function_form, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def base(standalone_worker: Any) -> str:
    return str(standalone_worker.admin_url)


def config(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "className": CLASS,
        "inputs": [f"persistent://public/default/{name}-in"],
        "output": f"persistent://public/default/{name}-out",
        **extra,
    }


def deploy(base: str, name: str, package: Path = EXAMPLE, **extra: Any) -> None:
    reply = call(base, "POST", f"{BASE}/{name}", function_form(config(name, **extra), package))
    assert reply.status == 200, reply.body
    parallelism = extra.get("parallelism", 1)
    wait_for(lambda: status(base, name)["numRunning"] == parallelism)


def status(base: str, name: str) -> dict[str, Any]:
    reply = call(base, "GET", f"{BASE}/{name}/status")
    assert reply.status == 200, reply.body
    return dict(reply.json())


class Pipe:
    """A producer on a function's input and a consumer on its output."""

    def __init__(self, client: pulsar.Client, name: str, batching: bool = True) -> None:
        self.consumer = client.subscribe(
            f"persistent://public/default/{name}-out",
            f"e2e-{name}",
            initial_position=pulsar.InitialPosition.Earliest,
        )
        self.producer = client.create_producer(
            f"persistent://public/default/{name}-in",
            batching_enabled=batching,
            batching_max_publish_delay_ms=5,
        )

    def send(self, values: list[str]) -> None:
        for value in values:
            self.producer.send_async(value.encode(), None)
        self.producer.flush()

    def receive_all(self, expected: set[str], timeout_s: float = 60.0) -> set[str]:
        """Outputs until every expected one arrived (ATLEAST_ONCE: repeats allowed)."""
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

    def probe(self, expect_suffix: str = "!") -> str:
        """Send probes until one comes back; returns the first answer."""

        def answered() -> str | None:
            self.send(["probe"])
            got = self.receive(1, timeout_s=2)
            return got[0] if got and got[0].endswith(expect_suffix) else None

        return str(wait_for(answered, timeout=60))

    def close(self) -> None:
        self.producer.close()
        self.consumer.close()


def test_a_thousand_messages_come_back_exclaimed(base: str, client: pulsar.Client) -> None:
    deploy(base, "thousand")
    pipe = Pipe(client, "thousand")
    assert pipe.probe() == "probe!"
    values = [f"message-{i}" for i in range(1000)]
    pipe.send(values)
    expected = {f"{v}!" for v in values}
    assert pipe.receive_all(expected) - {"probe!"} == expected
    # Counters are updated when an output batch is confirmed, which can be just
    # after its messages were consumed here: poll rather than read once.
    processed = wait_for(
        lambda: (
            (n := call(base, "GET", f"{BASE}/thousand/stats").json()["processedSuccessfullyTotal"])
            >= 1001
            and n
        ),
        timeout=15,
    )
    assert processed >= 1001
    pipe.close()


def test_an_update_with_new_code_changes_the_behaviour(
    base: str, client: pulsar.Client, tmp_path: Path
) -> None:
    deploy(base, "updated")
    pipe = Pipe(client, "updated")
    assert pipe.probe() == "probe!"
    new_code = tmp_path / "exclamation_function.py"
    new_code.write_text(
        "from pulsar import Function\n\n"
        "class ExclamationFunction(Function):\n"
        "    def process(self, input, context):\n"
        "        return input + '?'\n"
    )
    reply = call(base, "PUT", f"{BASE}/updated", function_form({"className": CLASS}, new_code))
    assert reply.status == 200, reply.body
    assert pipe.probe(expect_suffix="?") == "probe?"
    pipe.send(["after"])
    assert pipe.receive(1) == ["after?"]
    pipe.close()


def test_parallelism_three_shares_the_load(base: str, client: pulsar.Client) -> None:
    deploy(base, "shared", parallelism=3)
    pipe = Pipe(client, "shared", batching=False)  # a batch is dispatched whole to one consumer
    pipe.probe()
    values = [f"m{i}" for i in range(300)]
    pipe.send(values)
    expected = {f"{v}!" for v in values}
    assert pipe.receive_all(expected) - {"probe!"} == expected
    instances = status(base, "shared")["instances"]
    assert [i["instanceId"] for i in instances] == [0, 1, 2]
    per_instance = [i["status"]["numReceived"] for i in instances]
    assert all(count > 0 for count in per_instance), per_instance
    assert sum(per_instance) >= 301
    pipe.close()


def test_delete_stops_consumption(base: str, client: pulsar.Client) -> None:
    deploy(base, "deleted")
    pipe = Pipe(client, "deleted")
    assert pipe.probe() == "probe!"
    assert call(base, "DELETE", f"{BASE}/deleted").status == 200
    assert call(base, "GET", f"{BASE}/deleted/status").status == 404
    time.sleep(0.5)
    pipe.send([f"late-{i}" for i in range(20)])
    assert pipe.nothing_within(3.0) == []
    pipe.close()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_REQUESTS = {
    "unknown runtime": ({"runtime": "RUBY"}, None, "runtime"),
    "parallelism 0": ({"parallelism": 0}, None, "parallelism"),
    "missing classname": ({"className": None}, None, "className"),
    "class not in package": ({"className": "exclamation_function.Nope"}, None, "Nope"),
    "syntax error": ({}, "def broken(:\n", "syntax error"),
    "rejected topic": ({"inputs": ["persistent://public/default/a/b/c"]}, None, "inputs"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_a_clear_400_and_leave_others_running(
    base: str, client: pulsar.Client, tmp_path: Path, case: str
) -> None:
    if call(base, "GET", f"{BASE}/steady").status == 404:
        deploy(base, "steady")
    changes, source, mentions = BAD_REQUESTS[case]
    body = {k: v for k, v in {**config("bad"), **changes}.items() if v is not None}
    package = write(tmp_path / "exclamation_function.py", source) if source else EXAMPLE
    reply = call(base, "POST", f"{BASE}/bad", function_form(json.dumps(body).encode(), package))
    assert reply.status == 400, reply.body
    reason = reply.json()["reason"]
    assert mentions in reason and len(reason) < 400, reason
    assert call(base, "GET", f"{BASE}/bad").status == 404
    pipe = Pipe(client, "steady")
    assert pipe.probe() == "probe!"
    assert status(base, "steady")["numRunning"] == 1
    pipe.close()
