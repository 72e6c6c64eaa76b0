"""The in-test Kubernetes API server (tests/harness/kubernetes_api.py) answers as a real one
would, checked with plain HTTP so the fake is tested independently of the driver."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anyio
import pytest

from tests.harness.kubernetes_api import KubernetesApi

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
