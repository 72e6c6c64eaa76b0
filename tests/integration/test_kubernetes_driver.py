"""The Kubernetes runtime driver, with the real kubernetes-asyncio client, against the
in-test API server (tests/harness/kubernetes_api.py), which validates every body against the
Kubernetes 1.30 schemas and runs a toy StatefulSet controller."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from fnworker.runtimes.driver import RuntimeCallError
from fnworker.runtimes.kubernetes.api_calls import RetryPolicy, TokenBucket, forbidden_sentence
from fnworker.runtimes.kubernetes.auth_provider import KubernetesSecretsTokenAuthProvider
from fnworker.runtimes.kubernetes.driver import OWNER_ANNOTATION, KubernetesRuntime
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from fnworker.runtimes.registry import AVAILABLE, create_driver
from fnworker.scheduler.model.instances import ClientSettings, InstanceSpec
from fnworker.scheduler.model.records import (
    FunctionConfig,
    FunctionRecord,
    fqfn_of,
    instance_id_of,
)
from fnworker.scheduler.settings.worker_config import RuntimeFactoryConfig
from tests.harness.kubernetes_api import KubernetesApi

pytestmark = pytest.mark.anyio

JOB = "pf-public-default-exclamation"


def function(version: int = 1, parallelism: int = 1, **fields: Any) -> FunctionRecord:
    config = FunctionConfig(
        tenant="public", namespace="default", name="exclamation", parallelism=parallelism,
        **fields,
    )  # fmt: skip
    return FunctionRecord(
        fqfn=fqfn_of("public", "default", "exclamation"), version=version, config=config
    )


def spec(record: FunctionRecord, index: int = 0) -> InstanceSpec:
    return InstanceSpec(
        instance=instance_id_of(record.fqfn, index),
        index=index,
        function=record,
        package_path=Path("/nonexistent/function.py"),
        worker_id="worker-1",
        client=ClientSettings(service_url="pulsar://localhost:6650"),
    )


@pytest.fixture
async def make_driver(
    kubernetes_api: KubernetesApi,
) -> AsyncIterator[Callable[..., KubernetesRuntime]]:
    drivers: list[KubernetesRuntime] = []
    async with anyio.create_task_group() as group:

        def make(**options: Any) -> KubernetesRuntime:
            options.setdefault("delete_grace_seconds", 0)
            options.setdefault(
                "retry", RetryPolicy(attempts=4, base_seconds=0.01, cap_seconds=0.05)
            )
            options.setdefault("worker_id", "worker-1")
            driver = KubernetesRuntime(KubernetesSettings(), k8_uri=kubernetes_api.url, **options)
            drivers.append(driver)
            group.start_soon(driver.run)  # as the worker does, in its root task group
            return driver

        yield make
        for driver in drivers:
            await driver.aclose()  # ends its run


async def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    with anyio.fail_after(seconds):
        while not check():
            await anyio.sleep(0.02)


async def test_deploy_creates_valid_service_and_stateful_set(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    driver = make_driver()
    record = function(parallelism=2)
    await driver.start(spec(record, 0))
    await driver.start(spec(record, 1))
    assert kubernetes_api.names("statefulsets") == [JOB]
    assert kubernetes_api.names("services") == [JOB]
    assert kubernetes_api.names("secrets") == []
    stateful_set = kubernetes_api.get("statefulsets", "default", JOB)
    assert stateful_set is not None
    assert stateful_set["spec"]["replicas"] == 2
    assert stateful_set["metadata"]["annotations"][OWNER_ANNOTATION] == "worker-1"
    assert kubernetes_api.count("create", "statefulsets") == 1  # instance 1 applies nothing
    assert driver.instances() == {spec(record, 0).instance, spec(record, 1).instance}
    await eventually(lambda: all(driver.status(spec(record, i).instance).running for i in (0, 1)))  # type: ignore[union-attr]


def token_of(api: KubernetesApi, name: str) -> bytes:
    secret = api.get("secrets", "default", name)
    assert secret is not None
    return base64.b64decode(secret["data"]["token"])


async def test_token_secret_is_stored_mounted_and_deleted_with_the_function(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    driver = make_driver()
    provider = KubernetesSecretsTokenAuthProvider(driver, ca_pem=b"-----CA-----")
    auth = await provider.cache_auth(function(), "token-value")
    assert auth is not None and auth.with_ca
    assert re.fullmatch(rf"{JOB}-auth-[0-9a-f]{{8}}", auth.secret_name)
    assert kubernetes_api.names("secrets") == [auth.secret_name]
    assert token_of(kubernetes_api, auth.secret_name) == b"token-value"
    secret = kubernetes_api.get("secrets", "default", auth.secret_name)
    assert secret is not None
    assert base64.b64decode(secret["data"]["ca.pem"]) == b"-----CA-----"
    record = msgspec.structs.replace(function(), auth=auth)
    await driver.start(spec(record))
    stateful_set = kubernetes_api.get("statefulsets", "default", JOB)
    assert stateful_set is not None
    pod = stateful_set["spec"]["template"]["spec"]
    assert pod["volumes"] == [{"name": "function-auth", "secret": {"secretName": auth.secret_name}}]
    args = pod["containers"][0]["args"]
    assert args[args.index("--auth-token-file") + 1] == "/etc/auth/token"
    assert args[args.index("--tls-trust-cert-path") + 1] == "/etc/auth/ca.pem"
    assert "token-value" not in repr(stateful_set)
    await driver.stop(spec(record).instance)
    assert kubernetes_api.names("secrets") == []
    assert kubernetes_api.names("statefulsets") == kubernetes_api.names("services") == []
    assert kubernetes_api.names("pods") == []
    assert driver.instances() == set()


async def test_each_store_makes_its_own_secret_and_clean_up_removes_only_it(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    provider = KubernetesSecretsTokenAuthProvider(make_driver())
    first = await provider.cache_auth(function(), "first-token")
    second = await provider.cache_auth(function(), "second-token")
    assert first is not None and second is not None and not first.with_ca
    assert first.secret_name != second.secret_name
    assert await provider.cache_auth(function(), None) is None
    await provider.clean_up(msgspec.structs.replace(function(), auth=first))
    assert kubernetes_api.names("secrets") == [second.secret_name]
    assert token_of(kubernetes_api, second.secret_name) == b"second-token"
    await provider.clean_up(msgspec.structs.replace(function(), auth=first))  # gone: fine


async def test_a_forbidden_secret_is_one_sentence(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    kubernetes_api.forbid("create", "secrets")
    provider = KubernetesSecretsTokenAuthProvider(make_driver())
    with pytest.raises(RuntimeCallError) as raised:
        await provider.cache_auth(function(), "token-value")
    assert str(raised.value) == forbidden_sentence("create", "secrets", "default")
    assert "token-value" not in str(raised.value)


async def test_update_patches_and_rolls_the_pods(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    driver = make_driver()
    await driver.start(spec(function(version=1)))
    first_pod = kubernetes_api.get("pods", "default", f"{JOB}-0")
    await driver.start(spec(function(version=2)))
    assert kubernetes_api.count("patch", "statefulsets") == 1
    assert kubernetes_api.count("create", "statefulsets") == 1
    stateful_set = kubernetes_api.get("statefulsets", "default", JOB)
    assert stateful_set is not None
    template = stateful_set["spec"]["template"]
    assert template["metadata"]["annotations"]["fnworker/function-version"] == "2"
    second_pod = kubernetes_api.get("pods", "default", f"{JOB}-0")
    assert first_pod is not None and second_pod is not None
    assert second_pod["metadata"]["uid"] != first_pod["metadata"]["uid"]
    # The same version again applies nothing.
    await driver.start(spec(function(version=2)))
    assert kubernetes_api.count("patch", "statefulsets") == 1


async def test_parallelism_change_patches_replicas(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    driver = make_driver()
    await driver.start(spec(function(version=1, parallelism=1)))
    await driver.start(spec(function(version=2, parallelism=3)))
    stateful_set = kubernetes_api.get("statefulsets", "default", JOB)
    assert stateful_set is not None and stateful_set["spec"]["replicas"] == 3
    assert kubernetes_api.names("pods") == [f"{JOB}-0", f"{JOB}-1", f"{JOB}-2"]
    await driver.start(spec(function(version=3, parallelism=2)))
    assert kubernetes_api.names("pods") == [f"{JOB}-0", f"{JOB}-1"]


async def test_stop_of_instance_zero_deletes_everything_after_the_grace(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    driver = make_driver(delete_grace_seconds=0.2)
    record = function(parallelism=2)
    await driver.start(spec(record, 0))
    await driver.start(spec(record, 1))
    await driver.stop(spec(record, 1).instance)  # not the owner: nothing deleted
    assert kubernetes_api.names("statefulsets") == [JOB]
    # An update arrives as stop + start: the set is patched, never deleted.
    await driver.stop(spec(record, 0).instance)
    await driver.start(spec(function(version=2, parallelism=2), 0))
    await anyio.sleep(0.3)
    assert kubernetes_api.names("statefulsets") == [JOB]
    assert kubernetes_api.count("delete", "statefulsets") == 0
    assert kubernetes_api.count("create", "statefulsets") == 1  # patched, not re-created
    assert kubernetes_api.count("patch", "statefulsets") == 1
    await driver.stop(spec(record, 0).instance)
    assert kubernetes_api.names("statefulsets") == [JOB]  # still in its grace period
    await driver.wait_for_deletes()
    assert kubernetes_api.names("statefulsets") == kubernetes_api.names("services") == []


async def test_delete_skips_a_set_another_worker_applied_since(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    old_owner = make_driver(delete_grace_seconds=0.2, worker_id="worker-1")
    new_owner = make_driver(worker_id="worker-2")
    record = function()
    await old_owner.start(spec(record))
    await old_owner.stop(spec(record).instance)  # instance 0 moves to worker-2
    await new_owner.start(spec(record))
    await old_owner.wait_for_deletes()
    assert kubernetes_api.names("statefulsets") == [JOB]


async def test_status_counts_running_pods_and_restarts_from_one_watch(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    driver = make_driver()
    record = function(parallelism=2)
    zero, one = spec(record, 0).instance, spec(record, 1).instance
    await driver.start(spec(record, 0))
    await driver.start(spec(record, 1))
    await eventually(lambda: driver.status(one) is not None and driver.status(one).running)  # type: ignore[union-attr]
    await kubernetes_api.restart_container("default", f"{JOB}-1")
    await kubernetes_api.restart_container("default", f"{JOB}-1")
    await eventually(lambda: driver.status(one).num_restarts == 2)  # type: ignore[union-attr]
    assert driver.status(zero).num_restarts == 0  # type: ignore[union-attr]
    await driver.restart(zero)  # deletes the pod; the set starts it again
    await eventually(lambda: driver.status(zero).num_restarts == 1)  # type: ignore[union-attr]
    await eventually(lambda: driver.status(zero).running)  # type: ignore[union-attr]
    assert kubernetes_api.count("watch", "pods") == 1
    assert driver.status(instance_id_of("public/default/other", 0)) is None


async def test_a_set_another_worker_of_the_cluster_made_is_patched(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    record = function(parallelism=1)
    await make_driver(worker_id="worker-0").start(spec(record))
    driver = make_driver()  # a new worker: it reads the set, sees it is ours, patches
    await driver.start(spec(function(version=2, parallelism=2)))
    assert kubernetes_api.count("create", "statefulsets") == 1
    assert kubernetes_api.count("patch", "statefulsets") == 1
    stateful_set = kubernetes_api.get("statefulsets", "default", JOB)
    assert stateful_set is not None and stateful_set["spec"]["replicas"] == 2
    assert stateful_set["metadata"]["annotations"][OWNER_ANNOTATION] == "worker-1"
    assert driver.status(spec(record).instance).error == ""  # type: ignore[union-attr]


async def test_transient_errors_are_retried(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    kubernetes_api.fail_once("create", "statefulsets", 500)
    kubernetes_api.fail_once("create", "services", 429)
    driver = make_driver()
    await driver.start(spec(function()))
    assert kubernetes_api.count("create", "statefulsets") == 2
    assert kubernetes_api.count("create", "services") == 2
    assert kubernetes_api.names("statefulsets") == [JOB]
    assert driver.status(spec(function()).instance).error == ""  # type: ignore[union-attr]


async def test_forbidden_is_one_sentence_in_status_and_logged_once(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
    capsys: pytest.CaptureFixture[str],
) -> None:
    kubernetes_api.forbid("create", "statefulsets")
    driver = make_driver()
    record = function()
    await driver.start(spec(record))
    status = driver.status(spec(record).instance)
    assert status is not None and not status.running
    assert status.error == (
        "the Kubernetes API forbids the worker to create statefulsets in namespace default "
        '(403); grant its service account the RBAC rule apiGroups: ["apps"], '
        'resources: ["statefulsets"], verbs: ["create"] in a Role or ClusterRole bound to it '
        "(config/kubernetes/rbac.yml has every rule the worker needs)"
    )
    assert "\n" not in status.error and "Traceback" not in status.error
    assert kubernetes_api.count("create", "statefulsets") == 1  # a 403 is not retried
    await driver.start(spec(function(version=2)))  # fails the same way: not logged again
    output = capsys.readouterr()
    assert (output.out + output.err).count("forbids the worker to create statefulsets") == 1


async def test_invalid_object_is_one_sentence_in_status(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    kubernetes_api.fail_once("create", "statefulsets", 422)
    driver = make_driver()
    await driver.start(spec(function()))
    error = driver.status(spec(function()).instance).error  # type: ignore[union-attr]
    assert error.startswith(f"create statefulsets {JOB} in namespace default failed: 422")
    await driver.start(spec(function()))  # a failed apply is tried again on the next start
    assert kubernetes_api.names("statefulsets") == [JOB]
    assert driver.status(spec(function()).instance).error == ""  # type: ignore[union-attr]


async def test_forbidden_watch_is_reported_in_status(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    kubernetes_api.forbid("watch", "pods")
    driver = make_driver()
    await driver.start(spec(function()))
    await eventually(lambda: "watch pods" in driver.status(spec(function()).instance).error)  # type: ignore[union-attr]


async def test_token_bucket_limits_the_request_rate() -> None:
    bucket = TokenBucket(rate=100.0, burst=5)
    started = time.monotonic()
    for _ in range(15):
        await bucket.acquire()
    elapsed = time.monotonic() - started
    assert 0.08 <= elapsed < 0.5  # 5 at once, then 10 at 100/s


def test_registry_creates_the_kubernetes_driver() -> None:
    assert "kubernetes" in AVAILABLE
    factory = RuntimeFactoryConfig(k8_uri="http://127.0.0.1:1", k8_requests_per_second=50.0)
    driver = create_driver(
        "kubernetes", factory, ClientSettings(service_url="pulsar://localhost:6650")
    )
    assert isinstance(driver, KubernetesRuntime)
    assert driver.api.k8_uri == "http://127.0.0.1:1" and driver.limiter.rate == 50.0
    assert RuntimeFactoryConfig().k8_requests_per_second == 200.0


async def test_crash_looping_pod_shows_its_reason(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    driver = make_driver()
    instance = spec(function()).instance
    await driver.start(spec(function()))
    await eventually(lambda: driver.status(instance).running)  # type: ignore[union-attr]
    await kubernetes_api.crash_loop("default", f"{JOB}-0", "back-off restarting")
    await eventually(lambda: not driver.status(instance).running)  # type: ignore[union-attr]
    status = driver.status(instance)
    assert status is not None and status.num_restarts == 1
    assert status.error == (
        "container pulsarfunction is waiting: CrashLoopBackOff back-off restarting"
    )


def test_forbidden_sentence_names_the_core_group_for_pods() -> None:
    sentence = forbidden_sentence("watch", "pods", "functions")
    assert sentence.startswith("the Kubernetes API forbids the worker to watch pods in namespace")
    assert 'apiGroups: [""], resources: ["pods"], verbs: ["watch"]' in sentence


def test_retry_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(base_seconds=0.1, cap_seconds=1.0)
    assert 0.05 <= policy.delay(0) <= 0.1
    assert 0.4 <= policy.delay(3) <= 0.8
    assert all(0.5 <= policy.delay(n) <= 1.0 for n in range(4, 20))


async def test_submitting_inside_pod_outside_a_pod_is_one_sentence_in_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    driver = KubernetesRuntime(
        KubernetesSettings(), in_cluster_only=True, retry=RetryPolicy(attempts=1)
    )
    try:
        await driver.start(spec(function()))
        status = driver.status(spec(function()).instance)
        assert status is not None and not status.running
        assert status.error.startswith(
            "functionRuntimeFactoryConfigs submittingInsidePod is true but this worker is not "
            "in a pod with a service account"
        )
        assert status.error.endswith(
            "set k8Uri to the API server's URL, or set submittingInsidePod to false to use "
            "~/.kube/config"
        )
    finally:
        await driver.aclose()


async def test_run_starts_the_watch_asked_for_before_it_and_aclose_ends_it(
    kubernetes_api: KubernetesApi,
) -> None:
    driver = KubernetesRuntime(
        KubernetesSettings(), k8_uri=kubernetes_api.url, delete_grace_seconds=0
    )
    instance = spec(function()).instance
    await driver.start(spec(function()))  # not running yet: the watch waits for run
    assert kubernetes_api.names("statefulsets") == [JOB]
    assert driver.status(instance) is not None and not driver.status(instance).running  # type: ignore[union-attr]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(driver.run)
            await eventually(lambda: driver.status(instance).running)  # type: ignore[union-attr]
            await driver.aclose()  # ends run, so the group can end
    assert driver.instances() == set()


class SteppedClock:
    """A clock whose sleeps last until the test releases them (then they are real
    sleeps); it records each sleep."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.release = anyio.Event()

    def now(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self.release.is_set():
            await self.release.wait()
        else:
            await anyio.sleep(seconds)


async def test_the_delete_grace_is_waited_on_the_injected_clock(
    kubernetes_api: KubernetesApi,
    make_driver: Callable[..., KubernetesRuntime],
) -> None:
    clock = SteppedClock()
    driver = make_driver(delete_grace_seconds=600.0, clock=clock)
    await driver.start(spec(function()))
    await driver.stop(spec(function()).instance)
    await eventually(lambda: 600.0 in clock.sleeps)
    assert kubernetes_api.names("statefulsets") == [JOB]  # still in its grace
    clock.release.set()
    with anyio.fail_after(5):
        await driver.wait_for_deletes()
    assert kubernetes_api.names("statefulsets") == []


class CountingClock:
    """A clock that only moves when something sleeps on it."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.time += seconds


async def test_token_bucket_waits_on_the_injected_clock() -> None:
    clock = CountingClock()
    bucket = TokenBucket(rate=64.0, burst=5, clock=clock)  # 1/64 s is exact in binary
    with anyio.fail_after(5):
        for _ in range(15):
            await bucket.acquire()
    assert clock.time == 10 / 64  # 5 at once, then 10 at 64/s


async def test_token_bucket_ends_when_the_refill_rounds_just_below_one_token() -> None:
    """At 100/s, 1/100 s is not exact in binary: the refill can leave 0.999... tokens,
    and the wait for the rest is too small to move the clock; the bucket still ends."""
    clock = CountingClock()
    bucket = TokenBucket(rate=100.0, burst=1, clock=clock)
    with anyio.fail_after(5):
        for _ in range(200):
            await bucket.acquire()
    assert abs(clock.time - 199 / 100) < 1e-6
