"""The shipped RBAC (config/kubernetes/rbac.yml) allows every call the Kubernetes driver
can make and nothing more: the driver's declared calls (DRIVER_CALLS, which ``call``
enforces) equal the rules, and a whole function lifecycle — auth secret, create, update,
scale, restart, delete — runs on the in-test API server with everything else refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import yaml

from fnworker.runtimes.kubernetes.api_calls import DRIVER_CALLS, RESOURCES, RetryPolicy
from fnworker.runtimes.kubernetes.auth_provider import KubernetesSecretsTokenAuthProvider
from fnworker.runtimes.kubernetes.driver import KubernetesRuntime
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from tests.harness.kubernetes_api import KINDS, KubernetesApi
from tests.integration.test_kubernetes_driver import function, spec

pytestmark = pytest.mark.anyio

RBAC = Path(__file__).parents[2] / "config" / "kubernetes" / "rbac.yml"
EVERY_VERB = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def granted(path: Path = RBAC) -> set[tuple[str, str]]:
    """(verb, resource) pairs the ClusterRole's rules allow (no wildcards expected)."""
    documents = list(yaml.safe_load_all(path.read_text()))
    role = next(d for d in documents if d["kind"] in ("ClusterRole", "Role"))
    pairs = set()
    for rule in role["rules"]:
        for resource in rule["resources"]:
            assert resource != "*" and "*" not in rule["verbs"], "no wildcard grants"
            group = RESOURCES[resource][0] if resource in RESOURCES else None
            assert group in rule["apiGroups"], (resource, rule["apiGroups"])
            pairs |= {(verb, resource) for verb in rule["verbs"]}
    return pairs


def test_the_shipped_role_grants_exactly_the_calls_the_driver_makes() -> None:
    assert granted() == set(DRIVER_CALLS)


@pytest.fixture
async def locked_down(kubernetes_api: KubernetesApi) -> AsyncIterator[KubernetesApi]:
    """The API server refusing (403) every call the shipped role does not grant."""
    allowed = granted()
    for resource in KINDS:
        for verb in EVERY_VERB:
            if (verb, resource) not in allowed:
                kubernetes_api.forbid(verb, resource)
    yield kubernetes_api


async def test_a_whole_lifecycle_needs_nothing_the_role_does_not_grant(
    locked_down: KubernetesApi,
) -> None:
    async with anyio.create_task_group() as group:
        driver = KubernetesRuntime(
            KubernetesSettings(),
            k8_uri=locked_down.url,
            delete_grace_seconds=0,
            retry=RetryPolicy(attempts=2, base_seconds=0.01, cap_seconds=0.02),
            worker_id="worker-1",
        )
        group.start_soon(driver.run)
        provider = KubernetesSecretsTokenAuthProvider(driver)
        auth = await provider.cache_auth(function(), "token")
        record = msgspec.structs.replace(function(parallelism=2), auth=auth)
        await driver.start(spec(record, 0))
        await driver.start(spec(record, 1))
        await eventually(lambda: running(driver, record, 2))
        updated = msgspec.structs.replace(function(version=2, parallelism=3), auth=auth)
        await driver.start(spec(updated, 0))
        await driver.restart(spec(updated, 1).instance)
        await eventually(lambda: locked_down.count("delete", "pods") == 1)
        await driver.stop(spec(updated, 0).instance)
        await driver.wait_for_deletes()
        await provider.clean_up(updated)
        assert locked_down.names("statefulsets") == locked_down.names("services") == []
        assert locked_down.names("secrets") == []
        await driver.aclose()
    made = {(verb, resource) for verb, resource, _, _ in locked_down.requests}
    assert made <= set(DRIVER_CALLS), made - set(DRIVER_CALLS)
    assert {("delete", "pods"), ("watch", "pods"), ("create", "secrets")} <= made


def running(driver: KubernetesRuntime, record: Any, count: int) -> bool:
    statuses = [driver.status(spec(record, i).instance) for i in range(count)]
    return all(status is not None and status.running for status in statuses)


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        while not check():
            await anyio.sleep(0.02)
