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
from tests.e2e.pipe import Pipe

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
    assert pipe.probe(suffix="?") == "probe?"
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
    # No condition says the consumer is closed: the worker stops listing the instance
    # in functionsmetrics before its loop ends (a message sent then was still processed).
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
