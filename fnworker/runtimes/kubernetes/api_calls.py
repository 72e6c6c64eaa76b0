"""Calls to the Kubernetes API for the runtime driver: one client (k8Uri, else the
in-cluster service account, else ~/.kube/config), one client-side rate limit, retries
with backoff on transient errors, and every failure as one sentence (a 403 names the
RBAC rule that fixes it). Does network I/O through kubernetes-asyncio."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
import anyio
import msgspec
import structlog
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio import watch as k8s_watch

from fnworker.runtimes.driver import RuntimeCallError
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock

log = structlog.get_logger("fnworker.runtime.kubernetes")

RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})
# resource: (API group, API attribute, method suffix)
RESOURCES: Final = {
    "statefulsets": ("apps", "apps", "stateful_set"),
    "services": ("", "core", "service"),
    "secrets": ("", "core", "secret"),
    "pods": ("", "core", "pod"),
}

DRIVER_CALLS: Final = frozenset(
    {
        ("create", "statefulsets"),
        ("get", "statefulsets"),
        ("patch", "statefulsets"),
        ("delete", "statefulsets"),
        ("create", "services"),
        ("patch", "services"),
        ("delete", "services"),
        ("create", "secrets"),
        ("patch", "secrets"),
        ("delete", "secrets"),
        ("watch", "pods"),
        ("delete", "pods"),
    }
)
"""Every (RBAC verb, resource) the driver can call, and nothing else: ``call`` refuses
any other, and config/kubernetes/rbac.yml grants exactly these
(tests/integration/test_kubernetes_rbac.py checks both ways)."""


class KubernetesError(RuntimeCallError):
    """A Kubernetes API call failed; ``str()`` is one sentence for logs and status."""

    def __init__(self, sentence: str, code: int = 0) -> None:
        super().__init__(sentence)
        self.code = code


class Forbidden(KubernetesError):
    """The worker's service account may not make this call (HTTP 403)."""


def forbidden_sentence(verb: str, resource: str, namespace: str) -> str:
    """One sentence naming the verb, resource, namespace and the RBAC rule that fixes it."""
    group = RESOURCES[resource][0]
    return (
        f"the Kubernetes API forbids the worker to {verb} {resource} in namespace {namespace} "
        f'(403); grant its service account the RBAC rule apiGroups: ["{group}"], '
        f'resources: ["{resource}"], verbs: ["{verb}"] in a Role or ClusterRole bound to it '
        "(config/kubernetes/rbac.yml has every rule the worker needs)"
    )


class TokenBucket:
    """Client-side request rate limit: ``rate`` requests/s, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Clock = SYSTEM_CLOCK) -> None:
        self.rate = rate
        self.capacity = float(max(1, burst))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock.now()

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        while True:
            now = self.clock.now()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            # A hair under one token is one token: the refill above can round to
            # 0.999..., and a wait for the last 1e-16 may not move the clock at all.
            if self.tokens >= 1.0 - 1e-9:
                self.tokens = max(0.0, self.tokens - 1.0)
                return
            await self.clock.sleep((1.0 - self.tokens) / self.rate)


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Backoff for transient errors: ``base * 2**attempt`` (jittered), at most ``cap``."""

    attempts: int = 6
    base_seconds: float = 0.1
    cap_seconds: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        full = min(self.cap_seconds, self.base_seconds * 2**attempt)
        return float(full / 2 + random.uniform(0, full / 2))


class ApiCaller:
    """Makes API calls through one client, one rate limit and one retry policy."""

    def __init__(
        self,
        *,
        k8_uri: str = "",
        in_cluster_only: bool = False,
        limiter: TokenBucket,
        retry: RetryPolicy,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.k8_uri = k8_uri
        self.in_cluster_only = in_cluster_only
        self.limiter = limiter
        self.retry = retry
        self.clock = clock
        self._api: k8s.ApiClient | None = None
        self._api_lock = anyio.Lock()

    async def client(self) -> k8s.ApiClient:
        """The API client, configured on first use (k8Uri, else in-cluster, else kubeconfig)."""
        async with self._api_lock:
            if self._api is None:
                configuration = k8s.Configuration()
                if self.k8_uri:
                    configuration.host = self.k8_uri.rstrip("/")
                else:
                    await self._configure_from_environment(configuration)
                self._api = k8s.ApiClient(configuration)
            return self._api

    async def _configure_from_environment(self, configuration: k8s.Configuration) -> None:
        """In-cluster service account (required with ``submittingInsidePod``), else the
        in-cluster account when there is one, else ``~/.kube/config``."""
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except k8s_config.ConfigException as error:
            if self.in_cluster_only:
                raise KubernetesError(
                    "functionRuntimeFactoryConfigs submittingInsidePod is true but this worker "
                    f"is not in a pod with a service account ({error}); set k8Uri to the API "
                    "server's URL, or set submittingInsidePod to false to use ~/.kube/config"
                ) from None
            await k8s_config.load_kube_config(client_configuration=configuration)

    async def call(
        self, verb: str, resource: str, namespace: str, name: str, method: str,
        *args: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """One API call through the rate limit, retried on transient errors."""
        if (verb, resource) not in DRIVER_CALLS:
            raise AssertionError(f"{verb} {resource} is not in DRIVER_CALLS (and rbac.yml)")
        api_client = await self.client()
        kind = RESOURCES[resource][1]
        api = k8s.AppsV1Api(api_client) if kind == "apps" else k8s.CoreV1Api(api_client)
        call: Callable[..., Awaitable[Any]] = getattr(api, method)
        what = f"{verb} {resource} {name} in namespace {namespace}"
        for attempt in range(self.retry.attempts):
            await self.limiter.acquire()
            last = attempt == self.retry.attempts - 1
            try:
                return await call(*args, **kwargs)
            except k8s.ApiException as error:
                code = int(error.status or 0)
                if code == 403:
                    raise Forbidden(forbidden_sentence(verb, resource, namespace), 403) from None
                retryable = code in RETRYABLE or (code == 409 and verb in ("patch", "update"))
                if not retryable or last:
                    raise KubernetesError(
                        f"{what} failed: {code} {_status_message(error)}", code
                    ) from None
                delay = _retry_after(error) if code == 429 else None
                log.warning("retrying a Kubernetes call", call=what, status=code)
            except (TimeoutError, aiohttp.ClientError, OSError) as error:
                if last:
                    raise KubernetesError(f"{what} failed: {error!r}") from None
                delay = None
                log.warning("retrying a Kubernetes call", call=what, error=repr(error))
            await self.clock.sleep(delay if delay is not None else self.retry.delay(attempt))
        raise AssertionError("unreachable")

    async def read_stateful_set(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The StatefulSet as the API serves it (camelCase JSON), None when there is none."""
        try:
            found = await self.call(
                "get", "statefulsets", namespace, name, "read_namespaced_stateful_set",
                name, namespace,
            )  # fmt: skip
        except KubernetesError as error:
            if error.code == 404:
                return None
            raise
        api_client = await self.client()
        plain: dict[str, Any] = api_client.sanitize_for_serialization(found)
        return plain

    async def watch_pods(
        self, namespace: str, selector: str, on_event: Callable[[str, dict[str, Any]], None]
    ) -> None:
        """Watch the pods ``selector`` matches in ``namespace``, handing each event's type
        and raw pod to ``on_event``, until the server ends the stream. Raises Forbidden
        (a sentence) on 403 and KubernetesError (with the code) on another API error."""
        api_client = await self.client()
        await self.limiter.acquire()
        core = k8s.CoreV1Api(api_client)
        try:
            async with k8s_watch.Watch() as watcher:
                stream = watcher.stream(
                    core.list_namespaced_pod, namespace, label_selector=selector
                )
                async for event in stream:
                    on_event(event["type"], event["raw_object"])
        except k8s.ApiException as error:
            code = int(error.status or 0)
            if code == 403:
                raise Forbidden(forbidden_sentence("watch", "pods", namespace), 403) from None
            raise KubernetesError(
                f"watch pods in namespace {namespace} failed: {code} {_status_message(error)}",
                code,
            ) from None

    async def aclose(self) -> None:
        """Close the client (a later call opens a new one)."""
        api, self._api = self._api, None
        if api is not None:
            await api.close()


def _status_message(error: Any) -> str:
    """The reason and message of a Kubernetes Status body, else the HTTP reason."""
    try:
        body = msgspec.json.decode(error.body or b"{}")
    except (msgspec.DecodeError, TypeError):
        body = {}
    if isinstance(body, dict) and body.get("message"):
        return f"{body.get('reason', '')}: {body['message']}".strip(": ")
    return str(error.reason or "")


def _retry_after(error: Any) -> float | None:
    try:
        return float((error.headers or {}).get("Retry-After", ""))
    except ValueError:
        return None
