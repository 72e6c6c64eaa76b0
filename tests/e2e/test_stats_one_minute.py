"""``GET .../stats`` and ``.../{instanceId}/stats`` carry Pulsar's ``1min`` block (the
counters over the last minute) on a real ``fnworker standalone``, for the thread runtime,
the process runtime (whose instance reports its counters over the control channel) and
the Kubernetes runtime (pods on the in-test kubelet report them on their ``/stats``).
Messages go through the embedded broker with the real pulsar client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulsar
import pytest

from tests.conftest import quiet_client
from tests.e2e.conftest import StandaloneWorker, configured_worker, kubernetes_worker
from tests.e2e.helpers import BASE, call, register, running_count, wait_for
from tests.e2e.pipe import Pipe
from tests.harness.kubernetes_kubelet import threaded_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RUNTIMES = {
    "thread": "org.apache.pulsar.functions.runtime.thread.ThreadRuntimeFactory",
    "process": "org.apache.pulsar.functions.runtime.process.ProcessRuntimeFactory",
}
COUNTERS = (
    "receivedTotal",
    "processedSuccessfullyTotal",
    "systemExceptionsTotal",
    "userExceptionsTotal",
    "avgProcessLatency",
)
SENT = 25


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def worker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StandaloneWorker]:
    """A standalone worker on the runtime the test is parametrized with."""
    state: Path = tmp_path_factory.mktemp(f"stats-{request.param}")
    yield from configured_worker(
        state,
        {
            "functionRuntimeFactoryClassName": RUNTIMES[request.param],
            # The process runtime's instance logs: under the test's folder, not the repo.
            "functionRuntimeFactoryConfigs": {"logDirectory": str(state / "logs")},
        },
    )


@pytest.fixture(scope="module")
def client(worker: StandaloneWorker) -> Iterator[pulsar.Client]:
    with quiet_client(worker.broker_url, "e2e-stats-1min") as connection:
        yield connection


@pytest.fixture(scope="module")
def pods_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneWorker]:
    """A standalone worker whose runtime is the in-test Kubernetes (pods run pod_main)."""
    with threaded_cluster(tmp_path_factory.mktemp("stats-kubelet")) as cluster:
        yield from kubernetes_worker(cluster.api.url, tmp_path_factory.mktemp("stats-k8s"))


def stats(base: str, path: str = "stats") -> Any:
    reply = call(base, "GET", f"{BASE}/counted/{path}")
    assert reply.status == 200, reply.body
    return reply.json()


def test_stats_answer_the_last_minutes_counters_as_pulsar(
    worker: StandaloneWorker, client: pulsar.Client
) -> None:
    check_one_minute(worker, client)


def test_kubernetes_pods_report_the_last_minute_too(pods_worker: StandaloneWorker) -> None:
    with quiet_client(pods_worker.broker_url, "e2e-stats-1min-pods") as client:
        check_one_minute(pods_worker, client, timeout=180)


def check_one_minute(worker: StandaloneWorker, client: pulsar.Client, timeout: float = 60) -> None:
    """Send SENT messages through ``counted`` and read them back in every ``1min``."""
    base = worker.admin_url
    assert register(base, "counted", subscriptionPosition="Earliest").status == 200
    wait_for(lambda: running_count(base, "counted") == 1, timeout, "the instance running")
    pipe = Pipe(client, "counted", shared=True)
    values = [f"v{i}" for i in range(SENT)]
    pipe.send(values)
    assert pipe.receive_all({f"{v}!" for v in values}) >= {f"{v}!" for v in values}

    def counted() -> Any:
        answer = stats(base)
        return answer if answer["1min"]["processedSuccessfullyTotal"] >= SENT else None

    function = wait_for(counted, timeout, "the function's 1min counters")
    assert list(function) == [*COUNTERS[:-1], "avgProcessLatency", "1min", "lastInvocation"] + [
        "instances"
    ]
    window = function["1min"]
    assert list(window) == list(COUNTERS)
    assert window["receivedTotal"] >= SENT
    assert (window["systemExceptionsTotal"], window["userExceptionsTotal"]) == (0, 0)
    assert isinstance(window["avgProcessLatency"], float)
    assert window["receivedTotal"] <= function["receivedTotal"]

    metrics = function["instances"][0]["metrics"]
    assert list(metrics)[:8] == [*COUNTERS, "1min", "lastInvocation", "userMetrics"]
    assert metrics["1min"]["processedSuccessfullyTotal"] >= SENT
    one = stats(base, "0/stats")
    assert one["1min"]["receivedTotal"] >= SENT
    assert one["1min"]["receivedTotal"] <= one["receivedTotal"]
