"""Functions "deployed to Kubernetes" that really run: a standalone worker whose
runtime is Kubernetes, on the in-test API server with its fake kubelet
(tests/harness/kubernetes_kubelet.py, tested on its own in tests/harness/), which
starts every pod as a local process from the pod's command and env. The pods run
pod_main, which fetches the function from the worker and processes messages on the
worker's pulsar-lite broker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pulsar
import pytest

from fnworker.coordination.embedded_broker import pid_alive
from tests.conftest import quiet_client
from tests.e2e.conftest import StandaloneWorker, kubernetes_worker
from tests.e2e.helpers import BASE, call, register, running_count, wait_for
from tests.e2e.pipe import Pipe
from tests.harness.kubernetes_kubelet import Kubelet, threaded_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

NS = "functions"


# -- a standalone worker whose runtime is Kubernetes, pods running pod_main ------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelet]:
    """The fake API server with a kubelet, on a thread of their own, for the module."""
    with threaded_cluster(tmp_path_factory.mktemp("kubelet")) as running:
        yield running


@pytest.fixture(scope="module")
def worker(
    cluster: Kubelet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StandaloneWorker]:
    """A standalone worker (embedded broker) whose runtime is the fake Kubernetes."""
    yield from kubernetes_worker(
        cluster.api.url, tmp_path_factory.mktemp("k8s-worker"), jobNamespace=NS
    )


@pytest.fixture(scope="module")
def client(worker: StandaloneWorker) -> Iterator[pulsar.Client]:
    """A pulsar client on the worker's embedded broker."""
    with quiet_client(worker.broker_url, "e2e-k8s-pods") as connection:
        yield connection


@pytest.fixture
def show_logs(cluster: Kubelet, worker: StandaloneWorker) -> Iterator[None]:
    """Print the pods' and the worker's logs after the test (shown when it fails)."""
    yield
    print(cluster.logs())
    print("===== worker log =====\n" + worker.log_path.read_text(errors="replace")[-8000:])


def instances(base: str, name: str) -> list[dict[str, Any]]:
    reply = call(base, "GET", f"{BASE}/{name}/status")
    assert reply.status == 200, reply.body
    return list(reply.json()["instances"])


def test_function_on_kubernetes_pods_processes_messages(
    cluster: Kubelet, worker: StandaloneWorker, client: pulsar.Client, show_logs: None
) -> None:
    base, name = worker.admin_url, "k8spods"
    reply = register(base, name, parallelism=2)
    assert reply.status == 200, reply.body
    pods = [f"pf-public-default-{name}-0", f"pf-public-default-{name}-1"]
    wait_for(lambda: sorted(cluster.pids(NS)) == pods, timeout=60)
    wait_for(lambda: running_count(base, name) == 2, timeout=120)
    pipe = Pipe(client, name, shared=True)
    pipe.probe("probe")
    values = [f"m{i}" for i in range(50)]
    pipe.send(values)
    expected = {f"{value}!" for value in values}
    received = pipe.receive_all(expected)
    assert received - {"probe!"} == expected
    status = instances(base, name)
    assert len(status) == 2 and all(one["status"]["running"] for one in status), status
    pids = list(cluster.pids(NS).values())
    assert len(pids) == 2
    pipe.close()
    assert call(base, "DELETE", f"{BASE}/{name}").status in (200, 204)
    wait_for(lambda: cluster.api.get("statefulsets", NS, f"pf-public-default-{name}") is None)
    wait_for(lambda: not any(pid_alive(pid) for pid in pids), timeout=30)
    assert cluster.pids(NS) == {}


def test_a_killed_pod_process_is_restarted_and_counted(
    cluster: Kubelet, worker: StandaloneWorker, client: pulsar.Client, show_logs: None
) -> None:
    base, name = worker.admin_url, "k8scrash"
    pod = f"pf-public-default-{name}-0"
    assert register(base, name).status == 200

    wait_for(lambda: running_count(base, name) == 1, timeout=180)
    assert instances(base, name)[0]["status"]["numRestarts"] == 0
    first = cluster.kill(NS, pod)
    wait_for(lambda: instances(base, name)[0]["status"]["numRestarts"] >= 1, timeout=30)
    second = wait_for(lambda: (pid := cluster.pid_of(NS, pod)) != first and pid, timeout=120)
    assert not pid_alive(first)
    wait_for(lambda: running_count(base, name) == 1, timeout=60)
    pipe = Pipe(client, name, shared=True)
    pipe.probe("again")
    pipe.close()
    assert call(base, "DELETE", f"{BASE}/{name}").status in (200, 204)
    wait_for(lambda: not pid_alive(second), timeout=30)
    assert cluster.pids(NS) == {}
