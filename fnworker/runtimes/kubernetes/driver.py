"""The Kubernetes runtime driver: applies the manifests of ``manifests.render`` to a
cluster with kubernetes-asyncio and reports status from a pod watch. The only
module that imports kubernetes_asyncio. Implements RuntimeDriver (name
``kubernetes``).

One StatefulSet per function, owned by instance 0: the scheduler assigns one
instance ``fqfn:index`` per pod, possibly on several workers, but a StatefulSet is
one object. So:

- ``start`` of instance 0 *ensures* the function's Secret (when rendered), Service
  and StatefulSet exist as rendered for that function version (replicas =
  parallelism): created the first time, merge-patched after (a new version changes
  the pod template, so the pods roll; a new parallelism changes ``replicas``).
  A 409 AlreadyExists on create is "exists": the object is patched instead, after
  checking the StatefulSet's ``fnworker/fqfn`` annotation names this function.
  The StatefulSet carries ``fnworker/owner-worker`` = the worker that applied it.
- ``start`` of any other instance only registers it for status (its pod
  ``<job>-<index>`` is the StatefulSet's).
- ``stop`` of instance 0 deletes the StatefulSet, Service and Secret after
  ``delete_grace_seconds`` (default 10), unless instance 0 starts again meanwhile:
  an update arrives as stop + start, which must roll the pods, not delete them.
  The delete is skipped if another worker has applied the set since (owner
  annotation, and a resourceVersion precondition on the delete), so moving
  instance 0 between workers never deletes a live function.
- ``restart`` deletes the instance's pod; the StatefulSet recreates it.
- ``aclose`` stops the watches and cancels pending deletes: as in Pulsar, the
  functions keep running on the cluster while the worker restarts.

Every call goes (``api_calls.ApiCaller``) through one client-side token bucket
(``k8RequestsPerSecond``, default 200/s, burst ``k8RequestBurst`` 200) and is retried
with exponential backoff on 429, 5xx and connection errors (and 409 Conflict on
patch). A 403 becomes one sentence naming the verb, resource, namespace and the RBAC
rule that fixes it, logged once and shown in the status of the function's instances.

Status comes from ONE watch per namespace on pods labelled
``component=function,fnworker/job-name``; restarts are the containers'
``restartCount`` (plus the restarts this driver did by deleting a pod).
Counters (and the instance's own status fields: received, processed, exceptions,
latency) are read from each held pod's control port (``grpcPort``, plain HTTP; see
``fnworker/runtimes/kubernetes/pod_server.py``) at the pod IP the watch reports, every
``expectedMetricsCollectionInterval`` seconds (default 30, Pulsar's): no cluster
DNS, so ``kubernetesServiceDomainSuffix`` is not needed.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import aiohttp
import msgspec
import structlog
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import watch as k8s_watch

from fnworker.runtimes.kubernetes import names
from fnworker.runtimes.kubernetes.api_calls import (
    RESOURCES,
    ApiCaller,
    KubernetesError,
    RetryPolicy,
    TokenBucket,
    forbidden_sentence,
)
from fnworker.runtimes.kubernetes.customizer import ManifestCustomizer, load_customizer
from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.manifests import (
    FQFN_ANNOTATION,
    KubernetesSettings,
    RenderedJob,
    render,
    settings_from_worker,
)
from fnworker.runtimes.kubernetes.secrets import check_secrets
from fnworker.scheduler.model.instances import InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import FunctionRecord, InstanceId, InstanceStatusData
from fnworker.scheduler.settings.worker_config import WorkerConfig, runtime_factory_config

log = structlog.get_logger("fnworker.runtime.kubernetes")

OWNER_ANNOTATION: Final = "fnworker/owner-worker"
POD_SELECTOR: Final = f"component=function,{names.JOB_LABEL}"
PLURALS: Final = {"StatefulSet": "statefulsets", "Service": "services", "Secret": "secrets"}
MERGE_PATCH: Final = "application/merge-patch+json"


class PodState(msgspec.Struct, kw_only=True):
    """What the watch last saw of one pod."""

    phase: str = ""
    ready: bool = False
    restarts: int = 0
    waiting: str = ""
    ip: str = ""


class PodReading(msgspec.Struct, kw_only=True):
    """An instance's status and counters as its pod last reported them."""

    status: InstanceStatusData
    metrics: InstanceMetrics


class FunctionJob(msgspec.Struct, kw_only=True):
    """What the driver holds for one function: its instances and applied objects."""

    instances: dict[InstanceId, InstanceSpec] = {}
    rendered: RenderedJob | None = None
    applied: list[dict[str, Any]] | None = None
    error: str = ""
    restarts: dict[int, int] = {}
    pending_delete: asyncio.Task[None] | None = None
    collected: dict[int, PodReading] = {}
    """What each instance's pod last answered on its control port."""


class KubernetesRuntime:
    """Runs each function as a StatefulSet on a Kubernetes cluster."""

    name = "kubernetes"

    def __init__(
        self,
        settings: KubernetesSettings,
        *,
        k8_uri: str | None = None,
        customizer: ManifestCustomizer | None = None,
        requests_per_second: float = 200.0,
        burst: int = 200,
        retry: RetryPolicy | None = None,
        delete_grace_seconds: float = 10.0,
        worker_id: str = "",
        collect_interval_seconds: float = 30.0,
        in_cluster_only: bool = False,
    ) -> None:
        self.settings = settings
        self.customizer = customizer
        self.api = ApiCaller(
            k8_uri=k8_uri or "",
            in_cluster_only=in_cluster_only,
            limiter=TokenBucket(requests_per_second, burst),
            retry=retry or RetryPolicy(),
        )
        self.limiter, self.retry = self.api.limiter, self.api.retry
        self.delete_grace_seconds = delete_grace_seconds
        self.worker_id = worker_id
        self.collect_interval_seconds = collect_interval_seconds
        self._collector: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._jobs: dict[str, FunctionJob] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._pods: dict[str, dict[str, PodState]] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._watch_errors: dict[str, str] = {}
        self._reported: set[str] = set()

    # -- RuntimeDriver -----------------------------------------------------------

    async def start(self, spec: InstanceSpec) -> None:
        """Register the instance; for instance 0, ensure the function's objects."""
        fqfn = spec.function.fqfn
        async with self._lock(fqfn):
            job = self._jobs.setdefault(fqfn, FunctionJob())
            job.instances[spec.instance] = spec
            try:
                if self.settings.kubernetes_secrets:
                    check_secrets(spec.function.config.secrets)
                rendered = render(spec.function, self.settings, self.customizer)
            except ManifestError as error:
                job.error = str(error)
                self._report(job.error, instance=spec.instance)
                return
            if spec.index != 0 and job.rendered is not None:
                self._ensure_watch(job.rendered.namespace)
                return
            job.rendered = rendered
            if spec.index != 0:
                self._ensure_watch(rendered.namespace)
                return
            if job.pending_delete is not None:
                job.pending_delete.cancel()
                job.pending_delete = None
            objects = self._with_owner(rendered)
            if job.applied != objects or job.error:
                try:
                    await self._apply(
                        spec.function, rendered, objects, patch_first=bool(job.applied)
                    )
                except KubernetesError as error:
                    job.error = str(error)
                    self._report(job.error, instance=spec.instance)
                else:
                    job.applied, job.error = objects, ""
                    log.info(
                        "function applied", fqfn=fqfn, job=rendered.name,
                        namespace=rendered.namespace, version=spec.function.version,
                        replicas=spec.function.parallelism(),
                    )  # fmt: skip
            self._ensure_watch(rendered.namespace)

    async def stop(self, instance: InstanceId) -> None:
        """Forget the instance; stopping instance 0 deletes the function's objects."""
        fqfn = _fqfn_of(instance)
        async with self._lock(fqfn):
            job = self._jobs.get(fqfn)
            if job is None or instance not in job.instances:
                return
            spec = job.instances.pop(instance)
            if spec.index != 0 or job.rendered is None:
                if not job.instances:
                    self._jobs.pop(fqfn, None)
                return
            rendered = job.rendered
            if self.delete_grace_seconds <= 0:
                job.applied = None
                await self._delete_job(rendered)
            else:
                job.pending_delete = asyncio.create_task(self._delete_later(fqfn, rendered))
            if not job.instances and job.pending_delete is None:
                self._jobs.pop(fqfn, None)

    async def restart(self, instance: InstanceId) -> None:
        """Delete the instance's pod; its StatefulSet starts it again."""
        fqfn = _fqfn_of(instance)
        job = self._jobs.get(fqfn)
        if job is None or instance not in job.instances or job.rendered is None:
            return
        index = job.instances[instance].index
        pod = f"{job.rendered.name}-{index}"
        try:
            await self.call(
                "delete", "pods", job.rendered.namespace, pod, "delete_namespaced_pod",
                pod, job.rendered.namespace,
            )  # fmt: skip
        except KubernetesError as error:
            if error.code != 404:
                job.error = str(error)
                self._report(job.error, instance=instance)
                return
        job.restarts[index] = job.restarts.get(index, 0) + 1

    def status(self, instance: InstanceId) -> InstanceStatusData | None:
        """The instance's status from the pod watch, or None if not held."""
        job = self._jobs.get(_fqfn_of(instance))
        if job is None or instance not in job.instances:
            return None
        spec = job.instances[instance]
        if job.rendered is None:
            return InstanceStatusData(running=False, error=job.error, worker_id=spec.worker_id)
        namespace = job.rendered.namespace
        pod = self._pods.get(namespace, {}).get(f"{job.rendered.name}-{spec.index}")
        error = job.error or self._watch_errors.get(namespace, "")
        restarts = job.restarts.get(spec.index, 0)
        if pod is None:
            return InstanceStatusData(
                running=False, error=error, num_restarts=restarts, worker_id=spec.worker_id
            )
        reading = job.collected.get(spec.index)
        counters = reading.status if reading is not None else InstanceStatusData()
        return msgspec.structs.replace(
            counters,
            running=pod.phase == "Running" and pod.ready,
            error=error or pod.waiting or counters.error,
            num_restarts=restarts + pod.restarts,
            worker_id=spec.worker_id,
        )

    def metrics(self, instance: InstanceId) -> InstanceMetrics | None:
        """The counters the instance's pod last reported (zero before the first read)."""
        job = self._jobs.get(_fqfn_of(instance))
        if job is None or instance not in job.instances:
            return None
        reading = job.collected.get(job.instances[instance].index)
        return reading.metrics if reading is not None else InstanceMetrics()

    def instances(self) -> set[InstanceId]:
        """Every instance held."""
        return {instance for job in self._jobs.values() for instance in job.instances}

    async def aclose(self) -> None:
        """Stop the watches, cancel pending deletes (functions keep running), close the client."""
        tasks = list(self._watches.values())
        tasks += [job.pending_delete for job in self._jobs.values() if job.pending_delete]
        if self._collector is not None:
            tasks.append(self._collector)
            self._collector = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watches.clear()
        self._jobs.clear()
        await self.api.aclose()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # -- test and tool helpers -----------------------------------------------------

    async def wait_for_deletes(self) -> None:
        """Wait until every pending delete has run (tests)."""
        pending = [job.pending_delete for job in self._jobs.values() if job.pending_delete]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # -- applying ------------------------------------------------------------------

    def _with_owner(self, rendered: RenderedJob) -> list[dict[str, Any]]:
        """The objects to apply; the StatefulSet names the worker that applied it."""
        objects = [dict(obj) for obj in rendered.objects()]
        stateful_set = objects[-1]
        metadata = dict(stateful_set["metadata"])
        metadata["annotations"] = {
            **metadata.get("annotations", {}),
            OWNER_ANNOTATION: self.worker_id or "unknown",
        }
        stateful_set["metadata"] = metadata
        return objects

    async def _apply(
        self,
        function: FunctionRecord,
        rendered: RenderedJob,
        objects: list[dict[str, Any]],
        *,
        patch_first: bool,
    ) -> None:
        """Create or patch the Secret, Service and StatefulSet, in that order."""
        for obj in objects:
            resource = PLURALS[obj["kind"]]
            name = obj["metadata"]["name"]
            suffix = RESOURCES[resource][2]
            namespace = rendered.namespace
            if patch_first:
                try:
                    await self._patch(resource, namespace, name, obj)
                    continue
                except KubernetesError as error:
                    if error.code != 404:
                        raise
            try:
                await self.call(
                    "create", resource, namespace, name, f"create_namespaced_{suffix}",
                    namespace, obj,
                )  # fmt: skip
            except KubernetesError as error:
                if error.code != 409:
                    raise
                if resource == "statefulsets":
                    await self._check_owner(function, namespace, name)
                await self._patch(resource, namespace, name, obj)

    async def _patch(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> None:
        """A JSON merge patch with the whole rendered object (lists are replaced)."""
        suffix = RESOURCES[resource][2]
        await self.call(
            "patch", resource, namespace, name, f"patch_namespaced_{suffix}",
            name, namespace, obj, _content_type=MERGE_PATCH,
        )  # fmt: skip

    async def _check_owner(self, function: FunctionRecord, namespace: str, name: str) -> None:
        """Refuse to take over a StatefulSet of another function with the same job name."""
        existing = await self.call(
            "get", "statefulsets", namespace, name, "read_namespaced_stateful_set", name, namespace
        )
        owner = (existing.metadata.annotations or {}).get(FQFN_ANNOTATION)
        if owner not in (None, function.fqfn):
            raise KubernetesError(
                f"StatefulSet {name} in namespace {namespace} already runs function {owner}; "
                f"refusing to take it over for {function.fqfn} (set jobName in its "
                "customRuntimeOptions to give it a different name)"
            )

    async def _delete_later(self, fqfn: str, rendered: RenderedJob) -> None:
        await asyncio.sleep(self.delete_grace_seconds)
        async with self._lock(fqfn):
            job = self._jobs.get(fqfn)
            if job is not None:
                job.pending_delete = None
                job.applied = None
                if not job.instances:
                    self._jobs.pop(fqfn, None)
            try:
                await self._delete_job(rendered)
            except Exception as error:  # noqa: BLE001 - logged, never raised from a task
                log.error("deleting a function failed", fqfn=fqfn, error=str(error))

    async def _delete_job(self, rendered: RenderedJob) -> None:
        """Delete the StatefulSet (if this worker still owns it), Service and Secret."""
        namespace, name = rendered.namespace, rendered.name
        try:
            existing = await self.call(
                "get", "statefulsets", namespace, name, "read_namespaced_stateful_set",
                name, namespace,
            )  # fmt: skip
        except KubernetesError as error:
            if error.code != 404:
                self._report(str(error), job=name)
                return
        else:
            owner = (existing.metadata.annotations or {}).get(OWNER_ANNOTATION)
            if self.worker_id and owner not in (None, self.worker_id):
                log.info("not deleting: another worker applied it since", job=name, owner=owner)
                return
            body = {"preconditions": {"resourceVersion": existing.metadata.resource_version}}
            try:
                await self.call(
                    "delete", "statefulsets", namespace, name, "delete_namespaced_stateful_set",
                    name, namespace, body=body,
                )  # fmt: skip
            except KubernetesError as error:
                if error.code == 409:
                    log.info("not deleting: the StatefulSet changed meanwhile", job=name)
                    return
                if error.code != 404:
                    self._report(str(error), job=name)
                    return
        others = [("services", name)]
        if rendered.auth_secret_name is not None:
            others.append(("secrets", rendered.auth_secret_name))
        for resource, object_name in others:
            try:
                await self.delete(resource, namespace, object_name)
            except KubernetesError as error:
                self._report(str(error), job=name)
        log.info("function deleted", job=name, namespace=namespace)

    # -- calls ---------------------------------------------------------------------

    # -- calls ---------------------------------------------------------------------

    async def call(
        self, verb: str, resource: str, namespace: str, name: str, method: str,
        *args: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """One API call through the rate limit, retried on transient errors."""
        return await self.api.call(verb, resource, namespace, name, method, *args, **kwargs)

    async def delete(self, resource: str, namespace: str, name: str) -> None:
        """Delete one object; one already gone is fine."""
        suffix = RESOURCES[resource][2]
        try:
            await self.call(
                "delete", resource, namespace, name, f"delete_namespaced_{suffix}", name, namespace
            )
        except KubernetesError as error:
            if error.code != 404:
                raise

    # -- the pod watch -------------------------------------------------------------

    def _ensure_watch(self, namespace: str) -> None:
        """Start the one pod watch of ``namespace`` (and the collector) if not running."""
        task = self._watches.get(namespace)
        if task is None or task.done():
            self._pods.setdefault(namespace, {})
            self._watches[namespace] = asyncio.create_task(self._watch_pods(namespace))
        if self._collector is None or self._collector.done():
            self._collector = asyncio.create_task(self._collect_forever())

    async def _watch_pods(self, namespace: str) -> None:
        """Keep ``_pods[namespace]`` current from a label-selected pod watch, forever."""
        attempt = 0
        while True:
            try:
                api_client = await self.api.client()
                await self.limiter.acquire()
                core = k8s.CoreV1Api(api_client)
                async with k8s_watch.Watch() as watcher:
                    stream = watcher.stream(
                        core.list_namespaced_pod, namespace, label_selector=POD_SELECTOR
                    )
                    fresh = True
                    async for event in stream:
                        if fresh:
                            self._pods[namespace] = {}
                            fresh = False
                        self._watch_errors.pop(namespace, None)
                        attempt = 0
                        self._on_pod_event(namespace, event["type"], event["raw_object"])
            except asyncio.CancelledError:
                raise
            except k8s.ApiException as error:
                if error.status == 403:
                    sentence = forbidden_sentence("watch", "pods", namespace)
                    self._watch_errors[namespace] = sentence
                    self._report(sentence)
                else:
                    log.warning("pod watch failed", namespace=namespace, status=error.status)
            except Exception as error:  # noqa: BLE001 - the watch must go on
                log.warning("pod watch failed", namespace=namespace, error=repr(error))
            await asyncio.sleep(self.retry.delay(min(attempt, 8)))
            attempt += 1

    def _on_pod_event(self, namespace: str, kind: str, pod: dict[str, Any]) -> None:
        name = pod.get("metadata", {}).get("name", "")
        if kind == "DELETED":
            self._pods[namespace].pop(name, None)
            return
        if kind not in ("ADDED", "MODIFIED"):
            return
        status = pod.get("status") or {}
        containers = status.get("containerStatuses") or []
        waiting = [
            f"container {c.get('name')} is waiting: {w.get('reason', '')} {w.get('message', '')}"
            for c in containers
            if (w := (c.get("state") or {}).get("waiting"))
        ]
        self._pods[namespace][name] = PodState(
            phase=status.get("phase", ""),
            ready=bool(containers) and all(c.get("ready") for c in containers),
            restarts=sum(int(c.get("restartCount", 0)) for c in containers),
            waiting=waiting[0].strip() if waiting else "",
            ip=status.get("podIP", "") or "",
        )

    # -- reading the pods' control ports -------------------------------------------

    async def _collect_forever(self) -> None:
        """Every ``collect_interval_seconds``, read status and counters of this worker's
        running pods from their control ports (``grpcPort``, at the watched pod IP)."""
        while True:
            await asyncio.sleep(self.collect_interval_seconds)
            try:
                await self.collect_once()
            except Exception as error:  # noqa: BLE001 - the collector must go on
                log.warning("collecting pod status failed", error=repr(error))

    async def collect_once(self) -> None:
        """One read of every held instance's running pod (at most 32 at a time)."""
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        gate = asyncio.Semaphore(32)
        reads = [
            self._read_pod(job, spec.index, pod, gate)
            for job in list(self._jobs.values())
            if job.rendered is not None
            for spec in list(job.instances.values())
            if (pod := self._pod_of(job, spec.index)) is not None and pod.ip and pod.ready
        ]
        await asyncio.gather(*reads)

    def _pod_of(self, job: FunctionJob, index: int) -> PodState | None:
        """What the watch last saw of the function's pod ``index``."""
        assert job.rendered is not None
        return self._pods.get(job.rendered.namespace, {}).get(f"{job.rendered.name}-{index}")

    async def _read_pod(
        self, job: FunctionJob, index: int, pod: PodState, gate: asyncio.Semaphore
    ) -> None:
        """GET the pod's /status and /stats; a failed read keeps the last reading."""
        assert self._http is not None
        base = f"http://{_host(pod.ip)}:{self.settings.grpc_port}"
        async with gate:
            try:
                async with self._http.get(f"{base}/status") as reply:
                    status = msgspec.json.decode(await reply.read(), type=InstanceStatusData)
                async with self._http.get(f"{base}/stats") as reply:
                    metrics = msgspec.json.decode(await reply.read(), type=InstanceMetrics)
            except (aiohttp.ClientError, TimeoutError, OSError, msgspec.DecodeError) as error:
                log.debug("reading a pod failed", pod=base, error=repr(error))
                return
        job.collected[index] = PodReading(status=status, metrics=metrics)

    # -- helpers -------------------------------------------------------------------

    def _lock(self, fqfn: str) -> asyncio.Lock:
        return self._locks.setdefault(fqfn, asyncio.Lock())

    def _report(self, sentence: str, **context: Any) -> None:
        """Log an error sentence once (it also shows in status)."""
        if sentence not in self._reported:
            self._reported.add(sentence)
            log.error(sentence, **context)


def _host(ip: str) -> str:
    """An IP as the host part of a URL (IPv6 in brackets)."""
    return f"[{ip}]" if ":" in ip else ip


def _fqfn_of(instance: InstanceId) -> str:
    return str(instance).rsplit(":", 1)[0]


def from_worker_config(config: WorkerConfig, *, worker_id: str = "") -> KubernetesRuntime:
    """The driver for a worker config (settings, customizer, k8Uri, rate limit)."""
    factory = runtime_factory_config(config)
    return KubernetesRuntime(
        settings_from_worker(config),
        k8_uri=factory.k8_uri,
        customizer=load_customizer(
            config.runtime_customizer_class_name, config.runtime_customizer_config
        ),
        requests_per_second=factory.k8_requests_per_second,
        burst=factory.k8_request_burst,
        worker_id=worker_id,
        collect_interval_seconds=float(factory.expected_metrics_collection_interval),
        in_cluster_only=factory.submitting_inside_pod and not factory.k8_uri,
    )
