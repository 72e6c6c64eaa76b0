"""The in-test API server's watch (tests/harness/kubernetes_api.py) sends each event once, in
resourceVersion order, starting after the resourceVersion asked for; it reads only
the events it has not sent yet (not the whole history on every change)."""

from __future__ import annotations

import json

import aiohttp
import anyio
import pytest

from tests.harness.kubernetes_api import KubernetesApi
from tests.harness.test_kubernetes_api import PODS, SETS, call, stateful_set

pytestmark = pytest.mark.anyio


async def read_events(response: aiohttp.ClientResponse, count: int) -> list[tuple[str, str, int]]:
    events: list[tuple[str, str, int]] = []
    with anyio.fail_after(5):
        while len(events) < count:
            event = json.loads(await response.content.readline())
            metadata = event["object"]["metadata"]
            events.append((event["type"], metadata["name"], int(metadata["resourceVersion"])))
    return events


async def test_watch_from_a_resource_version_sends_only_later_events_once(
    kubernetes_api: KubernetesApi,
) -> None:
    await call(kubernetes_api, "POST", SETS, stateful_set(replicas=1))
    pod = kubernetes_api.get("pods", "default", "web-0")
    assert pod is not None
    added = int(pod["metadata"]["resourceVersion"])
    await kubernetes_api.restart_container("default", "web-0")
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            kubernetes_api.url + PODS,
            params={"watch": "true", "labelSelector": "app=web", "resourceVersion": str(added)},
        ) as response,
    ):
        assert await read_events(response, 1) == [("MODIFIED", "web-0", added + 1)]
        code, _ = await call(kubernetes_api, "PATCH", SETS + "/web", {"spec": {"replicas": 3}})
        assert code == 200
        for _ in range(50):  # a burst, stored while earlier events are being sent
            await kubernetes_api.restart_container("default", "web-0")
        events = await read_events(response, 52)
        with pytest.raises(TimeoutError):  # nothing more, in particular no replay
            with anyio.fail_after(0.3):
                await response.content.readline()
    assert [(kind, name) for kind, name, _ in events[:2]] == [
        ("ADDED", "web-1"),
        ("ADDED", "web-2"),
    ]
    assert [(kind, name) for kind, name, _ in events[2:]] == [("MODIFIED", "web-0")] * 50
    versions = [version for _, _, version in events]
    assert versions == sorted(set(versions)) and versions[0] > added + 1
    assert versions[-1] == kubernetes_api.resource_version
