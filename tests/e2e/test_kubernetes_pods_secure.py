"""Token auth on the Kubernetes runtime, end to end: an HTTPS-only, token-secured
worker whose runtime is the in-test Kubernetes (its kubelet runs pods as local
processes). A function created with a token gets a Secret holding that token and
the worker's CA; its pods mount it, download their package over HTTPS with the
token, process messages, and report their counters to the worker through their
control port. An update with another token replaces the Secret and rolls the pods.
No token is in a log line or another object; deleting the function deletes the
Secret."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulsar
import pytest
import yaml

from fnworker.coordination.embedded_broker import free_loopback_port
from tests.certs import Certs, make_certs, new_secret, sign
from tests.conftest import quiet_client
from tests.e2e.conftest import StandaloneWorker, launch, stop, wait_ready
from tests.e2e.helpers import BASE, call, example_config, function_form, wait_for
from tests.e2e.pipe import Pipe
from tests.e2e.test_secure_standalone import secured_document, write_yml
from tests.harness.kubernetes_kubelet import Kubelet, threaded_cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

NS = "functions"


@dataclass
class SecureCluster:
    """The fake cluster, the secured worker and the secrets it was given."""

    cluster: Kubelet
    worker: StandaloneWorker
    certs: Certs
    secret: bytes

    def call(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        return call(
            self.worker.admin_url,
            method,
            path,
            headers={"Authorization": f"Bearer {token}"},
            ssl_context=self.worker.ssl_context,
            **kwargs,
        )


def secure_kubernetes_yml(folder: Path, certs: Certs, secret: bytes, api_url: str) -> Path:
    """HTTPS only, token authentication, Kubernetes runtime reading pods every second."""
    document = secured_document(folder, certs, secret, free_loopback_port())
    document.update(
        functionRuntimeFactoryClassName="kubernetes",
        functionRuntimeFactoryConfigs={
            "k8Uri": api_url,
            "jobNamespace": NS,
            "expectedMetricsCollectionInterval": 1,
        },
    )
    return write_yml(folder, document)


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    folder = tmp_path_factory.mktemp("secure-k8s")
    certs = make_certs(folder / "certs")
    secret = new_secret()
    with threaded_cluster(folder / "kubelet") as cluster:
        config = secure_kubernetes_yml(folder, certs, secret, cluster.api.url)
        tls_port = yaml.safe_load(config.read_text())["workerPortTls"]
        context = ssl.create_default_context(cafile=str(certs.ca))
        worker = launch(
            folder / "state", "--config", str(config), tls_port=tls_port, ssl_context=context
        )
        try:
            wait_ready(worker)
            yield SecureCluster(cluster, worker, certs, secret)
        finally:
            stop(worker)
            print(cluster.logs())
            print("===== worker log =====\n" + worker.log_path.read_text(errors="replace")[-8000:])


@pytest.fixture(scope="module")
def client(secure: SecureCluster) -> Iterator[pulsar.Client]:
    with quiet_client(secure.worker.broker_url, "e2e-k8s-secure") as connection:
        yield connection


def test_the_submitters_token_runs_the_pods_and_never_leaks(
    secure: SecureCluster, client: pulsar.Client
) -> None:
    name = "securepods"
    job = f"pf-public-default-{name}"
    token = sign(secure.secret, "admin")
    form = function_form(example_config(name))
    reply = secure.call("POST", f"{BASE}/{name}", token, form=form)
    assert reply.status == 200, reply.body
    [secret_name] = secure.cluster.api.names("secrets", NS)
    assert secret_name.startswith(f"{job}-auth-")
    stored = secure.cluster.api.get("secrets", NS, secret_name)
    assert stored is not None
    assert base64.b64decode(stored["data"]["token"]).decode() == token
    assert base64.b64decode(stored["data"]["ca.pem"]) == secure.certs.ca.read_bytes()
    stateful_set = wait_for(lambda: secure.cluster.api.get("statefulsets", NS, job))
    assert token not in json.dumps(stateful_set)
    assert token not in secure.call("GET", f"{BASE}/{name}", token).body.decode()

    pipe = Pipe(client, name, shared=True)
    pipe.probe("probe")  # the pod fetched its package over HTTPS with the token
    values = [f"s{i}" for i in range(20)]
    pipe.send(values)
    received = pipe.receive_all({f"{value}!" for value in values})
    assert received >= {f"{value}!" for value in values}
    pipe.close()

    def counted() -> dict[str, Any] | None:
        status = secure.call("GET", f"{BASE}/{name}/status", token).json()
        one = status["instances"][0]["status"]
        return status if status["numRunning"] == 1 and one["numReceived"] >= 21 else None

    status = wait_for(counted, timeout=30)
    assert status["instances"][0]["status"]["numSuccessfullyProcessed"] >= 21
    stats = secure.call("GET", f"{BASE}/{name}/stats", token).json()
    assert stats["receivedTotal"] >= 21

    # An update with another token: a new Secret, the old one removed, the pods roll.
    second = sign(secure.secret, "admin", jti="second")
    update = function_form({"parallelism": 1}, package=None)
    reply = secure.call("PUT", f"{BASE}/{name}", second, form=update)
    assert reply.status == 200, reply.body
    [renewed] = secure.cluster.api.names("secrets", NS)
    assert renewed != secret_name
    stored = secure.cluster.api.get("secrets", NS, renewed)
    assert stored is not None and base64.b64decode(stored["data"]["token"]).decode() == second
    pipe = Pipe(client, name, shared=True)
    pipe.probe("after-update")  # a pod that mounts the new Secret answers
    pipe.close()

    assert secure.call("DELETE", f"{BASE}/{name}", second).status in (200, 204)
    wait_for(lambda: secure.cluster.api.names("secrets", NS) == [], timeout=60)
    for secret_token in (token, second):
        assert secret_token not in secure.worker.log_path.read_text(errors="replace")
        assert secret_token not in secure.cluster.logs()
