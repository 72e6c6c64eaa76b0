"""Two worker clusters sharing one Kubernetes namespace never touch each other's
functions, and a StatefulSet left by Pulsar's own worker (or by an older fnworker whose
selector differs) is replaced, on the in-test API server."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anyio
import pytest

from fnworker.runtimes.kubernetes.api_calls import RetryPolicy
from fnworker.runtimes.kubernetes.claims import CLUSTER_ANNOTATION, FQFN_ANNOTATION, claim_of
from fnworker.runtimes.kubernetes.driver import KubernetesRuntime
from fnworker.runtimes.kubernetes.manifests import render
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from tests.harness.kubernetes_api import KubernetesApi
from tests.integration.test_kubernetes_driver import JOB, function, spec

pytestmark = pytest.mark.anyio

EAST, WEST = KubernetesSettings(cluster_name="east-1"), KubernetesSettings(cluster_name="west-1")


@pytest.fixture
async def make_driver(
    kubernetes_api: KubernetesApi,
) -> AsyncIterator[Callable[..., KubernetesRuntime]]:
    async with anyio.create_task_group() as group:
        drivers: list[KubernetesRuntime] = []

        def make(settings: KubernetesSettings, worker_id: str) -> KubernetesRuntime:
            driver = KubernetesRuntime(
                settings,
                k8_uri=kubernetes_api.url,
                delete_grace_seconds=0,
                retry=RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.02),
                worker_id=worker_id,
            )
            drivers.append(driver)
            group.start_soon(driver.run)
            return driver

        yield make
        for driver in drivers:
            await driver.aclose()


def test_east_and_west_render_different_objects() -> None:
    east, west = render(function(), EAST), render(function(), WEST)
    assert east.stateful_set != west.stateful_set
    assert east.stateful_set["spec"]["selector"]["matchLabels"]["fnworker/cluster"] == "east-1"
    args = east.stateful_set["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--cluster-name") + 1] == "east-1"


async def test_a_second_cluster_refuses_to_touch_the_first_clusters_function(
    kubernetes_api: KubernetesApi, make_driver: Callable[..., KubernetesRuntime]
) -> None:
    east, west = make_driver(EAST, "east-worker"), make_driver(WEST, "west-worker")
    await east.start(spec(function()))
    before = kubernetes_api.get("statefulsets", "default", JOB)
    await west.start(spec(function(version=2, parallelism=3)))
    status = west.status(spec(function()).instance)
    assert status is not None and not status.running
    assert status.error == (
        f"StatefulSet {JOB} in namespace default runs function public/default/exclamation "
        "of cluster east-1; refusing to touch it from cluster west-1 (give each cluster its "
        "own functionRuntimeFactoryConfigs jobNamespace)"
    )
    assert kubernetes_api.get("statefulsets", "default", JOB) == before
    assert kubernetes_api.count("patch", "statefulsets") == 0
    await west.stop(spec(function()).instance)
    await west.wait_for_deletes()
    assert kubernetes_api.names("statefulsets") == [JOB], "west deleted east's function"
    assert kubernetes_api.names("services") == [JOB]


async def create(api: KubernetesApi, resource: str, body: dict[str, Any]) -> None:
    path = {"statefulsets": "/apis/apps/v1", "services": "/api/v1"}[resource]
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{api.url}{path}/namespaces/default/{resource}", json=body) as reply,
    ):
        assert reply.status == 201, await reply.text()


def pulsars_objects() -> tuple[dict[str, Any], dict[str, Any]]:
    """What Pulsar's worker leaves for the same function: its labels and selector
    (tenant, namespace, name, component), no fnworker annotations."""
    job = render(function(), EAST)
    stateful_set, service = copy.deepcopy(job.stateful_set), copy.deepcopy(job.service)
    pulsar_labels = {"tenant": "public", "namespace": "default", "name": "exclamation",
                     "component": "function"}  # fmt: skip
    for obj in (stateful_set, service):
        obj["metadata"]["labels"] = dict(pulsar_labels)
        obj["metadata"].pop("annotations", None)
    stateful_set["spec"]["selector"] = {"matchLabels": dict(pulsar_labels)}
    stateful_set["spec"]["template"]["metadata"]["labels"] = dict(pulsar_labels)
    service["spec"]["selector"] = dict(pulsar_labels)
    return stateful_set, service


async def test_a_set_left_by_pulsars_worker_is_replaced_after_one_log_line(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
    capsys: pytest.CaptureFixture[str],
) -> None:
    stateful_set, service = pulsars_objects()
    await create(kubernetes_api, "statefulsets", stateful_set)
    await create(kubernetes_api, "services", service)
    driver = make_driver(EAST, "east-worker")
    await driver.start(spec(function()))
    status = driver.status(spec(function()).instance)
    assert status is not None and status.error == ""
    replaced = kubernetes_api.get("statefulsets", "default", JOB)
    assert replaced is not None
    assert replaced["metadata"]["annotations"][FQFN_ANNOTATION] == "public/default/exclamation"
    assert replaced["spec"]["selector"] == render(function(), EAST).stateful_set["spec"]["selector"]
    assert kubernetes_api.count("delete", "statefulsets") == 1
    output = capsys.readouterr()
    assert (output.out + output.err).count("was made by Pulsar's functions worker") == 1


def test_claims_on_every_kind_of_existing_set() -> None:
    desired = render(function(), EAST).stateful_set
    ours = copy.deepcopy(desired)
    assert claim_of(None, desired, "public/default/exclamation", "east-1").action == "create"
    assert claim_of(ours, desired, "public/default/exclamation", "east-1").action == "patch"
    older = copy.deepcopy(ours)
    older["metadata"]["annotations"].pop(CLUSTER_ANNOTATION)
    older["spec"]["selector"]["matchLabels"].pop("fnworker/cluster")
    assert claim_of(older, desired, "public/default/exclamation", "east-1").action == "recreate"
    other = claim_of(ours, desired, "public/default/other", "east-1")
    assert other.action == "refuse" and "already runs function public/default/exclamation" in (
        other.sentence
    )
    stranger = copy.deepcopy(pulsars_objects()[0])
    stranger["metadata"]["labels"]["name"] = "someone-else"
    refused = claim_of(stranger, desired, "public/default/exclamation", "east-1")
    assert refused.action == "refuse" and "not made by fnworker" in refused.sentence
