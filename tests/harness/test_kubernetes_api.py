"""The in-test Kubernetes API server (tests/harness/kubernetes_api.py) answers as a real one
would, checked with plain HTTP so the fake is tested independently of the driver."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
import pytest

from tests.harness.kubernetes_api import KubernetesApi
from tests.harness.stateful_set_rollout import REVISION_LABEL

pytestmark = pytest.mark.anyio

SETS = "/apis/apps/v1/namespaces/default/statefulsets"
PODS = "/api/v1/namespaces/default/pods"


def stateful_set(name: str = "web", replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "python:3.11"}]},
            },
        },
    }


async def call(
    api: KubernetesApi, method: str, path: str, body: Any = None, **params: str
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, api.url + path, json=body, params=params) as response,
    ):
        return response.status, await response.json()


async def test_create_get_conflict_and_not_found(kubernetes_api: KubernetesApi) -> None:
    assert (await call(kubernetes_api, "POST", SETS, stateful_set()))[0] == 201
    code, body = await call(kubernetes_api, "POST", SETS, stateful_set())
    assert (code, body["kind"], body["reason"]) == (409, "Status", "AlreadyExists")
    code, body = await call(kubernetes_api, "GET", SETS + "/web")
    assert code == 200 and body["metadata"]["resourceVersion"]
    code, body = await call(kubernetes_api, "GET", SETS + "/nope")
    assert (code, body["reason"]) == (404, "NotFound")


async def test_invalid_body_is_422(kubernetes_api: KubernetesApi) -> None:
    bad = stateful_set()
    bad["spec"]["replicaz"] = 3
    code, body = await call(kubernetes_api, "POST", SETS, bad)
    assert (code, body["reason"]) == (422, "Invalid")


async def test_controller_runs_pods_and_follows_replicas(kubernetes_api: KubernetesApi) -> None:
    await call(kubernetes_api, "POST", SETS, stateful_set(replicas=2))
    assert kubernetes_api.names("pods") == ["web-0", "web-1"]
    code, _ = await call(kubernetes_api, "PATCH", SETS + "/web", {"spec": {"replicas": 3}})
    assert code == 200
    assert kubernetes_api.names("pods") == ["web-0", "web-1", "web-2"]
    code, listed = await call(kubernetes_api, "GET", PODS, labelSelector="app=web")
    assert [item["metadata"]["name"] for item in listed["items"]] == ["web-0", "web-1", "web-2"]
    assert (await call(kubernetes_api, "GET", PODS, labelSelector="app!=web"))[1]["items"] == []
    code, body = await call(kubernetes_api, "DELETE", SETS + "/web")
    assert (code, body["kind"], body["status"]) == (200, "Status", "Success")
    assert kubernetes_api.names("pods") == []


async def test_forbidden_and_injected_faults(kubernetes_api: KubernetesApi) -> None:
    kubernetes_api.forbid("create", "statefulsets")
    code, body = await call(kubernetes_api, "POST", SETS, stateful_set())
    assert (code, body["reason"]) == (403, "Forbidden")
    assert 'cannot create resource "statefulsets" in API group "apps"' in body["message"]
    kubernetes_api.fail_once("list", "pods", 500)
    assert (await call(kubernetes_api, "GET", PODS))[0] == 500
    assert (await call(kubernetes_api, "GET", PODS))[0] == 200


async def test_watch_streams_events_in_order(kubernetes_api: KubernetesApi) -> None:
    await call(kubernetes_api, "POST", SETS, stateful_set(replicas=1))
    events: list[tuple[str, str, int]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            kubernetes_api.url + PODS, params={"watch": "true", "labelSelector": "app=web"}
        ) as response,
    ):
        await kubernetes_api.restart_container("default", "web-0")
        await call(kubernetes_api, "DELETE", SETS + "/web")
        with anyio.fail_after(5):
            while len(events) < 3:
                event = json.loads(await response.content.readline())
                events.append(
                    (
                        event["type"],
                        event["object"]["metadata"]["name"],
                        int(event["object"]["metadata"]["resourceVersion"]),
                    )
                )
    assert [e[0] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[0][2] < events[1][2] < events[2][2]


# -- the StatefulSet controller's update strategies --------------------------------------


class HeldPods:
    """A stand-in kubelet: every new pod runs but is not ready until ``ready`` says so;
    a removed pod stops at once, or (``stop_at_once=False``) when ``stop`` says so."""

    def __init__(self, stop_at_once: bool = True) -> None:
        self.stop_at_once = stop_at_once
        self.runs: dict[str, dict[str, Any]] = {}

    def pod_added(self, pod: dict[str, Any]) -> None:
        pod["status"] = pod_status(ready=False)
        self.runs[pod["metadata"]["uid"]] = pod

    def pod_removed(self, pod: dict[str, Any]) -> None:
        if self.stop_at_once:
            self.stop(pod["metadata"]["uid"])

    def stop(self, uid: str) -> None:
        self.runs.pop(uid, None)


def pod_status(ready: bool) -> dict[str, Any]:
    flag = "True" if ready else "False"
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": flag}],
        "containerStatuses": [{"name": "c", "ready": ready, "restartCount": 0}],
    }


async def ready(api: KubernetesApi, *names: str) -> None:
    """Report pods ready, as the kubelet does when their readiness probe passes."""
    for name in names:
        pod = api.get("pods", "default", name)
        assert pod is not None, name
        assert await api.set_pod_status("default", name, pod["metadata"]["uid"], pod_status(True))
    await api.settled()


def revisions(api: KubernetesApi) -> list[str]:
    """The controller-revision-hash of web-0, web-1, web-2 ("" for a missing pod)."""
    pods = [api.get("pods", "default", f"web-{ordinal}") for ordinal in range(3)]
    return [
        (pod or {}).get("metadata", {}).get("labels", {}).get(REVISION_LABEL, "") for pod in pods
    ]


def uids(api: KubernetesApi) -> list[str]:
    return [
        api.objects[("pods", "default", f"web-{ordinal}")]["metadata"]["uid"]
        for ordinal in range(3)
    ]


async def held_set(
    api: KubernetesApi, strategy: dict[str, Any] | None, kubelet: HeldPods | None = None
) -> str:
    """A 3-pod set (with ``strategy``), every pod ready; its first revision."""
    api.kubelet = kubelet or HeldPods()
    body = stateful_set(replicas=3)
    body["spec"]["podManagementPolicy"] = "Parallel"
    if strategy is not None:
        body["spec"]["updateStrategy"] = strategy
    assert (await call(api, "POST", SETS, body))[0] == 201
    await ready(api, "web-0", "web-1", "web-2")
    first = revisions(api)
    assert len(set(first)) == 1 and first[0].startswith("web-")
    return first[0]


async def new_template(api: KubernetesApi, version: str) -> str:
    """Change the pod template (a new version annotation); the update revision."""
    patch = {"spec": {"template": {"metadata": {"annotations": {"version": version}}}}}
    code, body = await call(api, "PATCH", SETS + "/web", patch)
    assert code == 200, body
    await api.settled()
    stored = api.get("statefulsets", "default", "web")
    assert stored is not None
    revision: str = stored["status"]["updateRevision"]
    return revision


async def test_rolling_update_replaces_one_pod_at_a_time_highest_ordinal_first(
    kubernetes_api: KubernetesApi,
) -> None:
    api = kubernetes_api
    old = await held_set(api, {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    before = uids(api)
    new = await new_template(api, "2")
    assert new != old
    assert revisions(api) == [old, old, new]  # web-2 replaced, not ready yet
    assert uids(api)[:2] == before[:2] and uids(api)[2] != before[2]
    await ready(api, "web-2")
    assert revisions(api) == [old, new, new]
    await ready(api, "web-1")
    assert revisions(api) == [new, new, new]
    status = api.get("statefulsets", "default", "web")["status"]  # type: ignore[index]
    assert status["currentRevision"] == old and status["readyReplicas"] == 2
    await ready(api, "web-0")
    status = api.get("statefulsets", "default", "web")["status"]  # type: ignore[index]
    assert status["currentRevision"] == status["updateRevision"] == new
    assert (status["readyReplicas"], status["updatedReplicas"]) == (3, 3)
    pod = api.get("pods", "default", "web-0")
    assert pod is not None and pod["metadata"]["annotations"] == {"version": "2"}


async def test_rolling_update_waits_for_the_replaced_pod_and_restarts_on_revert(
    kubernetes_api: KubernetesApi,
) -> None:
    api = kubernetes_api
    old = await held_set(api, None)  # no updateStrategy: RollingUpdate is the default
    broken = await new_template(api, "broken")
    await ready(api, "web-0", "web-1")  # status changes elsewhere do not move it on
    assert revisions(api) == [old, old, broken]
    again = await new_template(api, "fixed")  # a fixed version replaces the stuck pod
    assert revisions(api) == [old, old, again]
    await ready(api, "web-2")
    assert revisions(api) == [old, again, again]


async def test_on_delete_and_partition_leave_pods_until_they_are_deleted(
    kubernetes_api: KubernetesApi,
) -> None:
    api = kubernetes_api
    old = await held_set(api, {"type": "OnDelete"})
    new = await new_template(api, "2")
    assert revisions(api) == [old, old, old]
    assert (await call(api, "DELETE", PODS + "/web-1"))[0] == 200
    assert revisions(api) == [old, new, old]  # recreated from the new template
    partitioned = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    code, _ = await call(api, "PATCH", SETS + "/web", {"spec": {"updateStrategy": partitioned}})
    assert code == 200
    await ready(api, "web-1")
    assert revisions(api) == [old, new, new]  # only ordinals >= 2 roll
    await ready(api, "web-2")
    assert (await call(api, "DELETE", PODS + "/web-0"))[0] == 200
    assert revisions(api) == [old, new, new]  # below the partition: the current revision


async def test_max_unavailable_lets_that_many_pods_go_at_once(
    kubernetes_api: KubernetesApi,
) -> None:
    api = kubernetes_api
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
    old = await held_set(api, strategy)
    new = await new_template(api, "2")
    assert revisions(api) == [old, new, new]
    await ready(api, "web-2")  # one unavailable: room for one more
    assert revisions(api) == [new, new, new]


async def test_without_a_kubelet_pods_are_ready_and_roll_at_once(
    kubernetes_api: KubernetesApi,
) -> None:
    await call(kubernetes_api, "POST", SETS, stateful_set(replicas=3))
    first = revisions(kubernetes_api)
    new = await new_template(kubernetes_api, "2")
    assert revisions(kubernetes_api) == [new, new, new] and new != first[0]


async def test_a_rolled_pod_terminates_before_its_replacement_is_created(
    kubernetes_api: KubernetesApi,
) -> None:
    api, kubelet = kubernetes_api, HeldPods(stop_at_once=False)
    old = await held_set(api, None, kubelet)
    web_2 = api.objects[("pods", "default", "web-2")]["metadata"]["uid"]
    code, _ = await call(api, "PATCH", SETS + "/web", {"spec": {"template": {"metadata": {
        "annotations": {"version": "2"}}}}})  # fmt: skip
    assert code == 200
    terminating = api.get("pods", "default", "web-2")
    assert terminating is not None and terminating["metadata"]["uid"] == web_2
    assert terminating["metadata"]["deletionTimestamp"]
    assert revisions(api) == [old, old, old]
    status = api.get("statefulsets", "default", "web")["status"]  # type: ignore[index]
    assert status["readyReplicas"] == 2  # a terminating pod is not ready
    kubelet.stop(web_2)  # its process stopped within the grace period
    await api.settled()
    assert revisions(api) == [old, old, status["updateRevision"]]
    assert api.objects[("pods", "default", "web-2")]["metadata"]["uid"] != web_2
