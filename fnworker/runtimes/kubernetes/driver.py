"""The Kubernetes runtime driver: applies the manifests of ``manifests.render`` to a
cluster and reports status from a pod watch. Implements RuntimeDriver (name
``kubernetes``). Its parts: ``api_calls`` (the only module that imports
kubernetes_asyncio: client, rate limit, retries, the pod watch stream),
``job_objects`` (apply and delete one function's objects), ``pod_watch`` (pod
states per namespace), ``pod_readings`` (a pod's control port).

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
- ``run`` hosts every background task (the pod watches, the pod reader, pending
  deletes) in its own task group, which the worker starts in its root task group;
  cancelling it or ``aclose`` ends them all. ``aclose`` also drops pending deletes:
  as in Pulsar, the functions keep running on the cluster while the worker restarts.
  Every wait (grace, backoff, polling, rate limit) reads the injected ``clock``.

Calls are rate-limited and retried (``api_calls``); status comes from one pod watch
per namespace (``pod_watch``) and the pods' control ports (``pod_readings``), read
every ``expectedMetricsCollectionInterval`` s. docs/kubernetes-runtime.md has the rest.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from fnworker.runtimes.kubernetes.api_calls import (
    ApiCaller,
    KubernetesError,
    RetryPolicy,
    TokenBucket,
)
from fnworker.runtimes.kubernetes.customizer import ManifestCustomizer
from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.function_jobs import FunctionJob, PendingDelete, instance_status
from fnworker.runtimes.kubernetes.job_objects import OWNER_ANNOTATION, JobObjects, with_owner
from fnworker.runtimes.kubernetes.manifests import RenderedJob, render
from fnworker.runtimes.kubernetes.pod_readings import (
    PARALLEL_READS,
    control_url,
    read_pod,
    reading_session,
)
from fnworker.runtimes.kubernetes.pod_watch import PodState, PodWatches
from fnworker.runtimes.kubernetes.secrets import check_secrets
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock
from fnworker.scheduler.model.instances import InstanceMetrics, InstanceSpec
from fnworker.scheduler.model.records import FunctionRecord, InstanceId, InstanceStatusData

__all__ = ["OWNER_ANNOTATION", "KubernetesRuntime"]

log = structlog.get_logger("fnworker.runtime.kubernetes")


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
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.settings = settings
        self.customizer = customizer
        self.clock = clock
        self.api = ApiCaller(
            k8_uri=k8_uri or "",
            in_cluster_only=in_cluster_only,
            limiter=TokenBucket(requests_per_second, burst, clock),
            retry=retry or RetryPolicy(),
            clock=clock,
        )
        self.limiter, self.retry = self.api.limiter, self.api.retry
        self.delete_grace_seconds = delete_grace_seconds
        self.worker_id = worker_id
        self.collect_interval_seconds = collect_interval_seconds
        self.objects = JobObjects(self.api, worker_id, self._report)
        self.pods = PodWatches(self.api, self._report, clock)
        self._group: TaskGroup | None = None
        self._run_ended = anyio.Event()
        self._watched: set[str] = set()
        self._collecting = False
        self._http: aiohttp.ClientSession | None = None
        self._jobs: dict[str, FunctionJob] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._reported: set[str] = set()

    # -- RuntimeDriver -----------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Host the driver's background tasks (one pod watch per namespace, the pod
        reader, pending deletes) in a task group of its own until cancelled or
        ``aclose``; work asked for before it runs starts with it."""
        if self._group is not None:
            raise RuntimeError("the Kubernetes driver is already running")
        self._run_ended = anyio.Event()
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                for namespace in sorted(self._watched):
                    group.start_soon(self.pods.watch, namespace, name=f"pod watch {namespace}")
                if self._collecting:
                    group.start_soon(self._collect_forever, name="pod reader")
                for fqfn, job in list(self._jobs.items()):
                    if job.pending_delete is not None and not job.pending_delete.started:
                        self._start_delete(group, fqfn, job.pending_delete)
                task_status.started()
                await anyio.sleep_forever()
        finally:
            self._group = None
            self._run_ended.set()

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
            if spec.index == 0:
                await self._apply_locked(job, spec, rendered)
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
            if self.delete_grace_seconds <= 0:
                job.applied = None
                await self.objects.delete_job(job.rendered)
            else:
                job.pending_delete = PendingDelete(rendered=job.rendered)
                if self._group is not None:
                    self._start_delete(self._group, fqfn, job.pending_delete)
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

    def admission_problem(self, function: FunctionRecord) -> str | None:
        """Pulsar's doAdmissionChecks at submission: one sentence when the function's
        objects cannot be rendered (customRuntimeOptions, names), else None."""
        try:
            render(function, self.settings, self.customizer)
        except ManifestError as error:
            return str(error)
        return None

    def status(self, instance: InstanceId) -> InstanceStatusData | None:
        """The instance's status from the pod watch, or None if not held."""
        job = self._jobs.get(_fqfn_of(instance))
        if job is None or instance not in job.instances:
            return None
        spec = job.instances[instance]
        if job.rendered is None:
            return InstanceStatusData(running=False, error=job.error, worker_id=spec.worker_id)
        pod = self._pod_of(job, spec.index)
        return instance_status(job, spec, pod, self.pods.error(job.rendered.namespace))

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
        """End ``run`` (the watches, the pod reader and pending deletes: functions keep
        running), forget every function, close the clients."""
        if self._group is not None:
            self._group.cancel_scope.cancel()
            await self._run_ended.wait()
        for job in self._jobs.values():
            if job.pending_delete is not None:
                job.pending_delete.cancel()
        self._watched.clear()
        self._collecting = False
        self._jobs.clear()
        await self.api.aclose()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    # -- calls (also used by the auth provider) ------------------------------------

    async def call(
        self, verb: str, resource: str, namespace: str, name: str, method: str,
        *args: Any, **kwargs: Any,
    ) -> Any:  # fmt: skip
        """One API call through the rate limit, retried on transient errors."""
        return await self.api.call(verb, resource, namespace, name, method, *args, **kwargs)

    async def delete(self, resource: str, namespace: str, name: str) -> None:
        """Delete one object; one already gone is fine."""
        await self.objects.delete(resource, namespace, name)

    async def wait_for_deletes(self) -> None:
        """Wait until every pending delete has run or was cancelled (tests; needs ``run``)."""
        pending = [job.pending_delete for job in self._jobs.values() if job.pending_delete]
        for delete in pending:
            await delete.done.wait()

    # -- applying and deleting -------------------------------------------------------

    async def _apply_locked(
        self, job: FunctionJob, spec: InstanceSpec, rendered: RenderedJob
    ) -> None:
        """Instance 0's start: cancel a pending delete, apply what changed."""
        if job.pending_delete is not None:
            job.pending_delete.cancel()
            job.pending_delete = None
        objects = with_owner(rendered, self.worker_id)
        if job.applied == objects and not job.error:
            return
        try:
            await self.objects.apply(
                spec.function, rendered, objects, cluster=self.settings.cluster_name
            )
        except KubernetesError as error:
            job.error = str(error)
            self._report(job.error, instance=spec.instance)
        else:
            job.applied, job.error = objects, ""
            log.info(
                "function applied", fqfn=spec.function.fqfn, job=rendered.name,
                namespace=rendered.namespace, version=spec.function.version,
                replicas=spec.function.parallelism(),
            )  # fmt: skip

    def _start_delete(self, group: TaskGroup, fqfn: str, pending: PendingDelete) -> None:
        pending.started = True
        group.start_soon(self._delete_later, fqfn, pending, name=f"delete {fqfn}")

    async def _delete_later(self, fqfn: str, pending: PendingDelete) -> None:
        """After the grace, delete the function's objects unless cancelled meanwhile."""
        try:
            with pending.scope:
                await self.clock.sleep(self.delete_grace_seconds)
                async with self._lock(fqfn):
                    job = self._jobs.get(fqfn)
                    if job is not None:
                        job.pending_delete = None
                        job.applied = None
                        if not job.instances:
                            self._jobs.pop(fqfn, None)
                    try:
                        await self.objects.delete_job(pending.rendered)
                    except Exception as error:  # noqa: BLE001 - logged, never raised from a task
                        log.error("deleting a function failed", fqfn=fqfn, error=str(error))
        finally:
            pending.done.set()

    # -- the pod watch and the pod reader ----------------------------------------------

    def _ensure_watch(self, namespace: str) -> None:
        """Watch ``namespace``'s pods (and read the pods) from now on, if not already."""
        if namespace not in self._watched:
            self._watched.add(namespace)
            if self._group is not None:
                self._group.start_soon(self.pods.watch, namespace, name=f"pod watch {namespace}")
        if not self._collecting:
            self._collecting = True
            if self._group is not None:
                self._group.start_soon(self._collect_forever, name="pod reader")

    async def _collect_forever(self) -> None:
        """Every ``collect_interval_seconds``, read status and counters of this worker's
        running pods from their control ports (``grpcPort``, at the watched pod IP)."""
        while True:
            await self.clock.sleep(self.collect_interval_seconds)
            try:
                await self.collect_once()
            except Exception as error:  # noqa: BLE001 - the collector must go on
                log.warning("collecting pod status failed", error=repr(error))

    async def collect_once(self) -> None:
        """One read of every held instance's running pod (at most 32 at a time)."""
        if self._http is None:
            self._http = reading_session()
        gate = anyio.CapacityLimiter(PARALLEL_READS)
        async with anyio.create_task_group() as group:
            for job in list(self._jobs.values()):
                if job.rendered is None:
                    continue
                for spec in list(job.instances.values()):
                    pod = self._pod_of(job, spec.index)
                    if pod is not None and pod.ip and pod.ready:
                        group.start_soon(self._read_pod, job, spec.index, pod, gate)

    async def _read_pod(
        self, job: FunctionJob, index: int, pod: PodState, gate: anyio.CapacityLimiter
    ) -> None:
        """Read one pod's control port; a failed read keeps the last reading."""
        assert self._http is not None
        async with gate:
            reading = await read_pod(self._http, control_url(pod.ip, self.settings.grpc_port))
        if reading is not None:
            job.collected[index] = reading

    def _pod_of(self, job: FunctionJob, index: int) -> PodState | None:
        """What the watch last saw of the function's pod ``index``."""
        assert job.rendered is not None
        return self.pods.pod(job.rendered.namespace, f"{job.rendered.name}-{index}")

    # -- helpers -------------------------------------------------------------------

    def _lock(self, fqfn: str) -> anyio.Lock:
        return self._locks.setdefault(fqfn, anyio.Lock())

    def _report(self, sentence: str, **context: Any) -> None:
        """Log an error sentence once (it also shows in status)."""
        if sentence not in self._reported:
            self._reported.add(sentence)
            log.error(sentence, **context)


def _fqfn_of(instance: InstanceId) -> str:
    return str(instance).rsplit(":", 1)[0]
