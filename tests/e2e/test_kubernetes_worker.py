"""A standalone worker whose runtime is Kubernetes (functionRuntimeFactoryClassName
set to Pulsar's KubernetesRuntimeFactory, k8Uri pointing at the in-test API server):
a function deployed over REST becomes a StatefulSet and a Service, its status
comes from the pod watch, an update rolls it, and deleting it deletes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import StandaloneWorker
from tests.e2e.conftest import kubernetes_worker as start_kubernetes_worker
from tests.e2e.helpers import BASE, call, function_form, register, running_count, wait_for
from tests.harness.kubernetes_api import KubernetesApi, threaded_kubernetes_api  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

JOB = "pf-public-default-k8sfn"


@pytest.fixture
def kubernetes_worker(
    threaded_kubernetes_api: KubernetesApi,  # noqa: F811
    tmp_path: Path,
) -> Iterator[StandaloneWorker]:
    yield from start_kubernetes_worker(
        threaded_kubernetes_api.url, tmp_path, percentMemoryPadding=10
    )


def stateful_set(api: KubernetesApi) -> dict[str, Any] | None:
    return api.get("statefulsets", "functions", JOB)


def test_function_lifecycle_on_kubernetes(
    kubernetes_worker: StandaloneWorker,
    threaded_kubernetes_api: KubernetesApi,  # noqa: F811
) -> None:
    api, base = threaded_kubernetes_api, str(kubernetes_worker.admin_url)
    reply = register(base, "k8sfn", parallelism=2)
    assert reply.status == 200, reply.body
    wait_for(lambda: stateful_set(api) is not None, timeout=30)
    assert api.names("services", "functions") == [JOB]
    wait_for(lambda: running_count(base, "k8sfn") == 2, timeout=30)
    update = call(base, "PUT", f"{BASE}/k8sfn", function_form({"parallelism": 3}, None))
    assert update.status == 200, update.body
    wait_for(lambda: (stateful_set(api) or {}).get("spec", {}).get("replicas") == 3, timeout=30)
    wait_for(lambda: running_count(base, "k8sfn") == 3, timeout=30)
    assert call(base, "DELETE", f"{BASE}/k8sfn").status in (200, 204)
    wait_for(lambda: stateful_set(api) is None, timeout=60)
    wait_for(lambda: api.names("services", "functions") == [], timeout=10)
    assert api.names("pods", "functions") == []


def test_unknown_custom_runtime_options_are_refused_at_submission(
    kubernetes_worker: StandaloneWorker,
    threaded_kubernetes_api: KubernetesApi,  # noqa: F811
) -> None:
    base = str(kubernetes_worker.admin_url)
    options = '{"jobNamespace": "functions", "extraLabels": {"a": "b"}, "bogusKey": 1}'
    reply = register(base, "badopts", customRuntimeOptions=options)
    assert reply.status == 400
    assert "customRuntimeOptions" in reply.reason and "bogusKey" in reply.reason, reply.reason
    assert "\n" not in reply.reason
    assert call(base, "GET", f"{BASE}/badopts").status == 404, "nothing is stored"
    assert threaded_kubernetes_api.count("create", "statefulsets") == 0
