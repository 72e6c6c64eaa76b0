"""Function state of a function "deployed to Kubernetes", as a user sees it: Pulsar's
WordCount on a standalone worker whose runtime is the in-test Kubernetes (API
server and kubelet, pods running pod_main, tests/e2e/test_kubernetes_pods.py),
counted by its pods and read back through the worker's REST state API; deleted
with the function, so a function created again under the same name starts at 0.

Fails when a pod writes its state as another incarnation than the worker's
record of the function (the pod then counts words the REST API never shows, and
a re-created function's pods see the old counts).
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pulsar
import pytest

from tests.e2e.conftest import StandaloneWorker
from tests.e2e.helpers import BASE, call, function_form, running_count, wait_for
from tests.e2e.test_kubernetes_pods import NS, client, cluster, worker  # noqa: F401 - fixtures
from tests.harness.kubernetes_kubelet import Kubelet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

WORD_COUNT = Path(__file__).resolve().parents[1] / "fixtures" / "functions" / "word_count.py"
WORDS = ("apple", "pear", "plum", "fig")


def register_word_count(base: str, name: str, topic: str, parallelism: int) -> None:
    """WordCount reading ``topic`` from its earliest message."""
    config = {
        "className": "word_count.WordCountFunction",
        "inputs": [f"persistent://public/default/{topic}"],
        "parallelism": parallelism,
        "subscriptionPosition": "Earliest",
    }
    reply = call(base, "POST", f"{BASE}/{name}", function_form(config, WORD_COUNT))
    assert reply.status == 200, reply.body


def send_one_by_one(connection: pulsar.Client, topic: str, texts: list[str]) -> None:
    """Unbatched, so the Shared subscription deals the messages out to every pod."""
    producer = connection.create_producer(
        f"persistent://public/default/{topic}", batching_enabled=False
    )
    try:
        for text in texts:
            producer.send(text.encode())
    finally:
        producer.close()


def state_of(base: str, name: str, key: str) -> tuple[int, Any]:
    """The REST API's answer for ``key``: status and JSON body (None if not JSON)."""
    reply = call(base, "GET", f"{BASE}/{name}/state/{key}")
    try:
        return reply.status, reply.json()
    except ValueError:
        return reply.status, None


def counted(base: str, name: str, truth: dict[str, int]) -> dict[str, Any]:
    """Every word's ``numberValue`` as the REST API answers it."""
    found: dict[str, Any] = {}
    for word in truth:
        status, body = state_of(base, name, word)
        found[word] = body.get("numberValue") if status == 200 and body else status
    return found


def test_pods_count_into_the_state_the_rest_api_reads_and_a_delete_clears_it(
    cluster: Kubelet,  # noqa: F811 - the fixture
    worker: StandaloneWorker,  # noqa: F811 - the fixture
    client: pulsar.Client,  # noqa: F811 - the fixture
) -> None:
    base, name = worker.admin_url, "k8swords"
    register_word_count(base, name, f"{name}-in", parallelism=2)
    try:
        wait_for(lambda: len(cluster.pids(NS)) == 2, timeout=60, what="two pods")
        wait_for(lambda: running_count(base, name) == 2, timeout=120, what="two running")
        texts = [" ".join(WORDS[(i + step) % len(WORDS)] for step in range(1 + i % 3))
                 for i in range(40)]  # fmt: skip
        truth = dict(collections.Counter(word for text in texts for word in text.split()))
        send_one_by_one(client, f"{name}-in", texts)
        last: dict[str, Any] = {}

        def all_counted() -> bool:
            last.update(counted(base, name, truth))
            return last == truth

        try:
            wait_for(all_counted, timeout=60, what="every word counted")
        except AssertionError:
            raise AssertionError(
                f"REST state {last} != words sent {truth}\n{cluster.logs()}"
            ) from None

        assert call(base, "DELETE", f"{BASE}/{name}").status in (200, 204)
        wait_for(lambda: cluster.pids(NS) == {}, timeout=60, what="pods gone")
        # A new input topic: the old one's messages are not the new function's.
        register_word_count(base, name, f"{name}-in2", parallelism=1)
        wait_for(lambda: running_count(base, name) == 1, timeout=120, what="re-created running")
        assert state_of(base, name, "apple")[0] == 404
        send_one_by_one(client, f"{name}-in2", ["apple"])
        wait_for(lambda: state_of(base, name, "apple")[0] == 200, timeout=60, what="apple again")
        assert state_of(base, name, "apple") == (
            200,
            {"key": "apple", "numberValue": 1, "version": 1},
        ), "the re-created function counts from 0"
    finally:
        call(base, "DELETE", f"{BASE}/{name}")
        wait_for(lambda: cluster.pids(NS) == {}, timeout=60, what="pods gone at the end")
