"""``functions update`` on Kubernetes rolls the pods without downtime: a standalone
worker whose runtime is the in-test API server with its kubelet (pods are local
processes, readiness is their ``/health`` probe), a function of parallelism 3, and
samples of the API server's pod list throughout the update: never fewer than 2
pods Ready, never a replacement started before its old pod's process stopped (the
grace period is the old pod's), every pod ends on the new version, and messages keep
flowing."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pulsar
import pytest

from fnworker.runtimes.kubernetes.names import JOB_LABEL
from fnworker.runtimes.kubernetes.pod_template import VERSION_ANNOTATION
from tests.conftest import quiet_client
from tests.e2e.conftest import StandaloneWorker, kubernetes_worker
from tests.e2e.helpers import BASE, call, function_form, register, running_count, wait_for
from tests.e2e.pipe import Pipe
from tests.harness.kubernetes_kubelet import Kubelet, threaded_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

NS = "functions"
NAME = "k8sroll"
JOB = f"pf-public-default-{NAME}"
PARALLELISM = 3
ROLLOUT_DEADLINE_S = 180.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubelet]:
    """The fake API server with a kubelet (probe periods cut to 0.5 s), for the module."""
    with threaded_cluster(tmp_path_factory.mktemp("kubelet"), probe_period_cap=0.5) as running:
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
    with quiet_client(worker.broker_url, "e2e-k8s-roll") as connection:
        yield connection


@pytest.fixture
def show_logs(cluster: Kubelet, worker: StandaloneWorker) -> Iterator[None]:
    """Print the pods' and the worker's logs after the test (shown when it fails)."""
    yield
    print(cluster.logs())
    print("===== worker log =====\n" + worker.log_path.read_text(errors="replace")[-8000:])


def pod_list(api_url: str) -> list[dict[str, Any]]:
    """The function's pods, as a client listing them sees them (plain HTTP)."""
    query = urllib.parse.urlencode({"labelSelector": f"{JOB_LABEL}={JOB}"})
    with urllib.request.urlopen(f"{api_url}/api/v1/namespaces/{NS}/pods?{query}", timeout=10) as r:
        items: list[dict[str, Any]] = json.loads(r.read())["items"]
    return items


def is_ready(pod: dict[str, Any]) -> bool:
    """Ready, and not terminating (a deleted pod stops serving at once)."""
    if "deletionTimestamp" in pod["metadata"]:
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def version_of(pod: dict[str, Any]) -> str:
    return str((pod["metadata"].get("annotations") or {}).get(VERSION_ANNOTATION, ""))


class Sample:
    """One look at the pods: how many are Ready, each pod's version and how many pod
    processes the kubelet has alive (stopping ones too)."""

    def __init__(self, pods: list[dict[str, Any]], processes: int = 0) -> None:
        self.processes = processes
        self.ready = sum(1 for pod in pods if is_ready(pod))
        self.versions = {pod["metadata"]["name"]: version_of(pod) for pod in pods}
        self.ready_versions = sorted(version_of(pod) for pod in pods if is_ready(pod))

    def __repr__(self) -> str:
        return f"Sample(ready={self.ready}, processes={self.processes}, {self.versions})"


class Traffic:
    """Sends a numbered message every 50 ms and reads the outputs on other threads,
    noting when each output arrived."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.sent: list[str] = []
        self.arrivals: dict[str, float] = {}
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._send, daemon=True),
            threading.Thread(target=self._receive, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def _send(self) -> None:
        while not self.stop.wait(0.05):
            value = f"r{len(self.sent)}"
            self.pipe.producer.send_async(value.encode(), None)
            self.sent.append(value)
        self.pipe.producer.flush()

    def _receive(self) -> None:
        expected_done = threading.Event()
        while not expected_done.is_set():
            try:
                message = self.pipe.consumer.receive(timeout_millis=200)
            except pulsar.Timeout:
                if self.stop.is_set() and {f"{v}!" for v in self.sent} <= set(self.arrivals):
                    expected_done.set()
                continue
            self.arrivals.setdefault(message.data().decode(), time.monotonic())
            self.pipe.consumer.acknowledge(message)

    def finish(self, timeout_s: float) -> None:
        """Stop sending; wait until every sent message's output arrived (or time is up)."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout_s)


def test_update_rolls_pods_keeping_parallelism_minus_one_ready(
    cluster: Kubelet, worker: StandaloneWorker, client: pulsar.Client, show_logs: None
) -> None:
    base, api_url = worker.admin_url, cluster.api.url
    assert register(base, NAME, parallelism=PARALLELISM).status == 200
    wait_for(lambda: Sample(pod_list(api_url)).ready == PARALLELISM, timeout=120)
    wait_for(lambda: running_count(base, NAME) == PARALLELISM, timeout=120)
    old_version = version_of(pod_list(api_url)[0])
    pipe = Pipe(client, NAME, shared=True)
    pipe.probe("before")
    traffic = Traffic(pipe)
    try:
        began = time.monotonic()
        update = {"parallelism": PARALLELISM, "userConfig": {"rolled": "yes"}}
        reply = call(base, "PUT", f"{BASE}/{NAME}", function_form(update, None))
        assert reply.status == 200, reply.body
        samples = sample_until_rolled(cluster, old_version)
        ended = time.monotonic()
        traffic.finish(timeout_s=60)
    finally:
        traffic.stop.set()
    print(f"rollout: {len(samples)} samples in {ended - began:.1f} s, {len(traffic.sent)} sent")
    low = [sample for sample in samples if sample.ready < PARALLELISM - 1]
    assert not low, f"fewer than {PARALLELISM - 1} pods ready during the update: {low[:5]}"
    doubled = [sample for sample in samples if sample.processes > PARALLELISM]
    assert not doubled, f"a replacement started before its old pod stopped: {doubled[:5]}"
    mixed = [s for s in samples if len(set(s.versions.values())) > 1 or s.ready < PARALLELISM]
    assert mixed, f"no sample saw the rollout in progress: {samples[:3]}"
    final = samples[-1]
    assert final.ready == PARALLELISM and old_version not in final.versions.values(), final
    expected = {f"{value}!" for value in traffic.sent}
    missing = expected - set(traffic.arrivals)
    assert not missing, (
        f"{len(missing)} of {len(expected)} outputs never came: {sorted(missing)[:5]}"
    )
    during = [at for at in traffic.arrivals.values() if began <= at <= ended]
    assert during, "no output arrived while the pods rolled"
    wait_for(lambda: running_count(base, NAME) == PARALLELISM, timeout=60)
    pipe.close()
    assert call(base, "DELETE", f"{BASE}/{NAME}").status in (200, 204)
    wait_for(lambda: cluster.api.get("statefulsets", NS, JOB) is None, timeout=60)


def sample_until_rolled(cluster: Kubelet, old_version: str) -> list[Sample]:
    """Samples of the pod list every 0.1 s until every pod is Ready on a version other
    than ``old_version`` (bounded by ROLLOUT_DEADLINE_S)."""
    samples: list[Sample] = []
    deadline = time.monotonic() + ROLLOUT_DEADLINE_S
    while time.monotonic() < deadline:
        sample = Sample(pod_list(cluster.api.url), len(cluster.alive()))
        samples.append(sample)
        rolled = sample.ready_versions and old_version not in sample.ready_versions
        if rolled and sample.ready == PARALLELISM and len(sample.versions) == PARALLELISM:
            return samples
        time.sleep(0.1)
    raise AssertionError(f"the update did not finish in {ROLLOUT_DEADLINE_S} s: {samples[-3:]}")
