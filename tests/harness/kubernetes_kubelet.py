"""A fake kubelet for the in-test Kubernetes API server (tests/harness/kubernetes_api.py):
every pod stored there runs as a local process, so a function "deployed to
Kubernetes" processes real messages. Its job is each pod's life: start, status,
readiness, restarts, stop. Does process and file I/O; opt-in (fixtures ``kubelet``
and ``threaded_kubelet``), the server alone keeps pods as objects.

What it does, as a kubelet would:

- **What to start** (``tests/harness/kubelet_pod_spec.py``): the container's ``command`` +
  ``args`` with ``$(VAR)`` expanded, the "image's" env plus what Kubernetes adds and
  the container's ``env`` (``value``, fieldRef ``metadata.name``/``metadata.namespace``
  /``status.podIP``, ``secretKeyRef``), ``secret`` and ``emptyDir`` volumes mounted by
  path substitution: every occurrence of a ``mountPath`` in ``args`` and in plain env
  ``value`` s is rewritten to a local directory (a program that builds the path itself
  will not find it). What it cannot run does not start: the container waits with
  reason ``CreateContainerConfigError`` (``ContainerCreating`` for volumes) and a
  message saying why, retried with backoff as Kubernetes does (a Secret may come).
  The process runs in its own process group, cwd a per-pod directory, stdout and
  stderr appended to ``log_of(namespace, pod)``.
- **Images** (``Kubelet(images=...)``, ``threaded_cluster(images=...)``; the ``images``
  dict may also be filled later, it is read at each start): a pod whose container image
  is one of them runs from that image's files (its ``python``, env and WORKDIR, no repo on
  ``PYTHONPATH``; see ``kubelet_pod_spec``); any other image runs with this process's
  Python and the repo on ``PYTHONPATH``.
- **Pod IP**: each live pod has its own loopback address ``127.0.X.Y`` (X ≥ 1), in
  ``status.podIP`` and fieldRef ``status.podIP``, from a random starting point so
  concurrent test processes do not collide.
- **Status**: ``Pending``/``ContainerCreating`` until started; ``Running``,
  ``state.running`` while the process lives. When it exits (code 0 too: restartPolicy
  Always) ``restartCount`` + 1, not ready, ``waiting`` ``CrashLoopBackOff`` with the
  exit code, ``lastState.terminated``, then a restart after a backoff of 0.5 s
  doubling to 5 s (reset when it ran 10 s). Written with ``set_pod_status``, so the
  pod watch sees MODIFIED events.
- **Readiness** (``tests/harness/kubelet_probes.py``): without a ``readinessProbe`` the
  container (and the pod's ``Ready``/``ContainersReady`` conditions) is ready while its
  process lives. With one (``httpGet``, ``tcpSocket`` or ``exec``) it is running but
  not ready until the probe succeeds ``successThreshold`` times in a row, and not
  ready again after ``failureThreshold`` failures; each change is a status write.
  Probing runs beside the process and ends with it (exit or pod removal); a restart
  starts unready again. ``Kubelet(probe_period_cap=0.5)`` cuts longer probe periods
  and initial delays to 0.5 s, for tests.
- **Stop**: a removed pod (rolled, scaled down, deleted, its set deleted) gets SIGTERM
  on its process group, ``terminationGracePeriodSeconds`` (at most 5 s), then
  SIGKILL. A pod the StatefulSet controller rolls or scales down is deleted
  gracefully (its replacement is created once this kubelet has stopped the old
  process); a pod DELETE request or a deleted set removes pods at once, so there a
  replacement of the same name may start while the old process is still stopping.
  ``aclose``
  stops every pod; ``kill_all`` SIGKILLs whatever is left (by process group).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import functools
import os
import random
import shlex
import signal
import subprocess
import time
import traceback
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.harness.kubelet_pod_spec import Image, Launch, PodConfigError, PodSite, launch_of
from tests.harness.kubelet_probes import Probe, readiness_probe, watch_readiness
from tests.harness.kubernetes_api import KubernetesApi, ThreadedKubernetesApi

BACKOFF_FIRST = 0.5
BACKOFF_CAP = 5.0
BACKOFF_RESET_AFTER = 10.0
GRACE_CAP = 5.0
LOG_TAIL = 6000


@dataclasses.dataclass
class PodRun:
    """One pod (one uid) on this kubelet: its process, restarts and where its files are."""

    pod: dict[str, Any]
    ip: str
    directory: Path
    log_path: Path
    deleted: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    ever_started: bool = False
    started_at: str = ""
    last_terminated: dict[str, Any] | None = None

    @property
    def namespace(self) -> str:
        """The pod's namespace."""
        return str(self.pod["metadata"]["namespace"])

    @property
    def name(self) -> str:
        """The pod's name."""
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        """The pod's uid (a recreated pod of the same name has another)."""
        return str(self.pod["metadata"]["uid"])

    @property
    def container(self) -> dict[str, Any]:
        """The pod's (only) container."""
        containers: list[dict[str, Any]] = self.pod["spec"]["containers"]
        return containers[0]

    def pid(self) -> int | None:
        """The pid of the container's process while it lives."""
        process = self.process
        return process.pid if process is not None and process.returncode is None else None


# -- pure helpers ------------------------------------------------------------------


def now() -> str:
    """An RFC 3339 timestamp, as in pod status."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_status(run: PodRun, state: dict[str, Any], ready: bool) -> dict[str, Any]:
    """The status of the pod's container in ``state``."""
    container = run.container
    status: dict[str, Any] = {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": f"docker-pullable://{container.get('image', '')}",
        "containerID": f"fake://{run.uid}/{run.restarts}",
        "ready": ready,
        "started": "running" in state,
        "restartCount": run.restarts,
        "state": state,
    }
    if run.last_terminated is not None:
        status["lastState"] = {"terminated": run.last_terminated}
    return status


def pod_status(run: PodRun, state: dict[str, Any], ready: bool) -> dict[str, Any]:
    """The whole pod status: phase, IPs, conditions and the container's status."""
    flag = "True" if ready else "False"
    return {
        "phase": "Running" if run.ever_started else "Pending",
        "hostIP": "127.0.0.1",
        "podIP": run.ip,
        "podIPs": [{"ip": run.ip}],
        "startTime": run.pod["metadata"].get("creationTimestamp", now()),
        "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag},
            {"type": "Ready", "status": flag},
        ],
        "containerStatuses": [container_status(run, state, ready)],
    }


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    """A container ``waiting`` state."""
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group led by ``pid`` (nothing if it is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# -- the kubelet ----------------------------------------------------------------------


class Kubelet:
    """Runs the pods of one KubernetesApi as local processes (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        probe_period_cap: float | None = None,
        images: Mapping[str, Image] | None = None,
    ) -> None:
        self.root = root
        self.probe_period_cap = probe_period_cap  # read at each start; tests may set it
        self.images: dict[str, Image] = dict(images or {})
        """Image name → the image's files (read at each start; tests may add to it)."""
        self._api: KubernetesApi | None = None
        self.runs: dict[str, PodRun] = {}
        self.current: dict[tuple[str, str], PodRun] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.failed: list[asyncio.Task[None]] = []
        self.started: list[int] = []
        self._ips: set[str] = set()
        self._next_ip = random.randrange(254 * 254)
        """Where the address search starts: random, so kubelets of tests running at once
        (pytest-xdist workers) do not hand out the same addresses (same pod ports)."""

    def attach(self, api: KubernetesApi) -> None:
        """Run the pods ``api`` stores from now on."""
        self._api = api
        api.kubelet = self

    @property
    def api(self) -> KubernetesApi:
        """The API server whose pods this kubelet runs."""
        if self._api is None:
            raise RuntimeError("the kubelet is not attached to an API server")
        return self._api

    # -- hooks the API server calls (on its loop) --------------------------------------

    def pod_added(self, pod: dict[str, Any]) -> None:
        """Give a new pod its IP and Pending status, and start running it."""
        meta = pod["metadata"]
        directory = self.root / "pods" / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
        run = PodRun(
            pod=copy.deepcopy(pod), ip=self._allocate_ip(), directory=directory,
            log_path=self.log_of(meta["namespace"], meta["name"]),
        )  # fmt: skip
        pod["status"] = pod_status(run, waiting("ContainerCreating"), ready=False)
        self.runs[run.uid] = run
        self.current[(run.namespace, run.name)] = run
        task = asyncio.get_running_loop().create_task(self._run(run), name=f"pod {run.name}")
        self.tasks[run.uid] = task
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        """Drop a finished pod task; keep it when it failed, so ``aclose`` raises."""
        self.tasks = {uid: kept for uid, kept in self.tasks.items() if kept is not task}
        if not task.cancelled() and task.exception() is not None:
            self.failed.append(task)

    def pod_removed(self, pod: dict[str, Any]) -> None:
        """Stop a removed pod's process (SIGTERM, grace, SIGKILL)."""
        run = self.runs.get(pod["metadata"]["uid"])
        if run is not None:
            run.deleted.set()
            if self.current.get((run.namespace, run.name)) is run:
                del self.current[(run.namespace, run.name)]

    # -- for tests (thread-safe: reads and signals only) ---------------------------------

    def pid_of(self, namespace: str, pod: str) -> int | None:
        """The pid of the live pod's container process, None while it is not running."""
        run = self.current.get((namespace, pod))
        return run.pid() if run is not None else None

    def pids(self, namespace: str) -> dict[str, int]:
        """Pod name → pid of every running container process in ``namespace``."""
        found = {
            name: run.pid() for (ns, name), run in list(self.current.items()) if ns == namespace
        }
        return {name: pid for name, pid in found.items() if pid is not None}

    def alive(self) -> list[int]:
        """Pids of every started process not yet reaped (stopping ones too)."""
        return [pid for run in list(self.runs.values()) if (pid := run.pid()) is not None]

    def ip_of(self, namespace: str, pod: str) -> str | None:
        """The live pod's IP."""
        run = self.current.get((namespace, pod))
        return run.ip if run is not None else None

    def kill(self, namespace: str, pod: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Signal the pod's container process (as if it crashed); returns its pid."""
        pid = self.pid_of(namespace, pod)
        if pid is None:
            raise LookupError(f"pod {namespace}/{pod} has no running process")
        os.kill(pid, sig)
        return pid

    def log_of(self, namespace: str, pod: str) -> Path:
        """The file the pod's stdout and stderr go to (every run of it, appended)."""
        return self.root / "logs" / f"{namespace}_{pod}.log"

    def log_text(self, namespace: str, pod: str) -> str:
        """What the pod's log holds so far ("" before it was written)."""
        path = self.log_of(namespace, pod)
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        """The tail of every pod's log, one section per pod, for failing tests."""
        sections = []
        for path in sorted((self.root / "logs").glob("*.log")):
            text = path.read_text(errors="replace")
            sections.append(f"===== pod log {path.stem} =====\n{text[-LOG_TAIL:]}")
        return "\n".join(sections) or "(no pod logs)"

    async def aclose(self) -> None:
        """Stop every pod's process (graceful), wait for their tasks, raise a kubelet error."""
        for run in list(self.runs.values()):
            run.deleted.set()
        tasks = list(self.tasks.values()) + self.failed
        if tasks:
            await asyncio.wait(tasks, timeout=GRACE_CAP + 5)
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            raise RuntimeError(f"the test kubelet failed: {errors[0]!r}") from errors[0]

    def kill_all(self) -> None:
        """SIGKILL the process group of every process still alive (teardown safety net)."""
        for pid in self.alive():
            signal_group(pid, signal.SIGKILL)

    # -- one pod's life ------------------------------------------------------------------

    async def _run(self, run: PodRun) -> None:
        """Start, watch and restart one pod's container until the pod is removed."""
        backoff = BACKOFF_FIRST
        try:
            while not run.deleted.is_set():
                try:
                    launch, probe = self._launch_of(run)
                    await self._start(run, launch, ready=probe is None)
                except PodConfigError as error:
                    self._log(run, f"cannot start: {error.reason}: {error}")
                    await self._report(run, waiting(error.reason, str(error)), ready=False)
                    await self._pause(run, backoff)
                    backoff = min(BACKOFF_CAP, backoff * 2)
                    continue
                began = time.monotonic()
                code = await self._wait_probing(run, probe)
                if code is None:
                    break
                if time.monotonic() - began > BACKOFF_RESET_AFTER:
                    backoff = BACKOFF_FIRST
                await self._crashed(run, code, backoff)
                await self._pause(run, backoff)
                backoff = min(BACKOFF_CAP, backoff * 2)
        except Exception:
            self._log(run, f"kubelet error:\n{traceback.format_exc()}")
            raise
        finally:
            await self._terminate(run)
            self._ips.discard(run.ip)
            self.runs.pop(run.uid, None)

    async def _start(self, run: PodRun, launch: Launch, ready: bool) -> None:
        """Start the container's process and report it running (ready, or not yet)."""
        self._log(run, f"starting (restart {run.restarts}): {shlex.join(launch.argv)}")
        with run.log_path.open("ab") as log:
            try:
                run.process = await asyncio.create_subprocess_exec(
                    *launch.argv, env=launch.env, cwd=launch.cwd, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            except OSError as error:
                raise PodConfigError(
                    "RunContainerError", f"exec {launch.argv[0]}: {error}"
                ) from None
        self.started.append(run.process.pid)
        run.ever_started, run.started_at = True, now()
        await self._report(run, {"running": {"startedAt": run.started_at}}, ready=ready)

    async def _wait_probing(self, run: PodRun, probe: Probe | None) -> int | None:
        """``_wait``, with the readiness probe running beside it until it returns."""
        if probe is None:
            return await self._wait(run)
        report = functools.partial(self._readiness_changed, run)
        async with asyncio.TaskGroup() as group:
            prober = group.create_task(watch_readiness(probe, report), name=f"probe {run.name}")
            code = await self._wait(run)
            prober.cancel()
        return code

    async def _readiness_changed(self, run: PodRun, ready: bool, detail: str) -> None:
        """Log and report a change of the container's readiness (it is running)."""
        self._log(run, f"readiness probe: {'ready' if ready else 'not ready'} ({detail})")
        await self._report(run, {"running": {"startedAt": run.started_at}}, ready=ready)

    async def _wait(self, run: PodRun) -> int | None:
        """The exit code when the process exits; None when the pod is removed first."""
        assert run.process is not None
        exited = asyncio.ensure_future(run.process.wait())
        removed = asyncio.ensure_future(run.deleted.wait())
        try:
            await asyncio.wait({exited, removed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            removed.cancel()
        code = run.process.returncode
        if code is None or run.deleted.is_set():
            return None
        signal_group(run.process.pid, signal.SIGKILL)  # the container's other processes
        return code

    async def _crashed(self, run: PodRun, code: int, backoff: float) -> None:
        """Count a restart and report the container crash-looping."""
        self._log(run, f"exited with code {code}; restarting in {backoff:g} s")
        run.restarts += 1
        run.last_terminated = {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": run.started_at,
            "finishedAt": now(),
        }
        message = (
            f"back-off {backoff:g}s restarting failed container={run.container['name']} "
            f"pod={run.name}: exited with code {code}"
        )
        await self._report(run, waiting("CrashLoopBackOff", message), ready=False)

    async def _pause(self, run: PodRun, seconds: float) -> None:
        """Sleep ``seconds`` or until the pod is removed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.deleted.wait(), seconds)

    async def _terminate(self, run: PodRun) -> None:
        """SIGTERM the process group, wait the grace period (≤ 5 s), then SIGKILL it."""
        process = run.process
        if process is None or process.returncode is not None:
            return
        grace = min(GRACE_CAP, float(run.pod["spec"].get("terminationGracePeriodSeconds", 30)))
        self._log(run, f"pod removed: SIGTERM to pid {process.pid}, grace {grace:g} s")
        signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            self._log(run, f"still running after {grace:g} s: SIGKILL")
        finally:
            signal_group(process.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 5)
        self._log(run, f"stopped with code {process.returncode}")

    async def _report(self, run: PodRun, state: dict[str, Any], ready: bool) -> None:
        """Write the pod's status to the API server (a MODIFIED event)."""
        status = pod_status(run, state, ready)
        await self.api.set_pod_status(run.namespace, run.name, run.uid, status)

    def _log(self, run: PodRun, line: str) -> None:
        """A kubelet line in the pod's log."""
        run.log_path.parent.mkdir(parents=True, exist_ok=True)
        with run.log_path.open("a") as log:
            log.write(f"--- kubelet {now()} pod {run.name} ({run.uid[:8]}): {line}\n")

    # -- what to start -----------------------------------------------------------------

    def _launch_of(self, run: PodRun) -> tuple[Launch, Probe | None]:
        """What to start and its readiness probe; PodConfigError if it cannot start."""
        secrets = functools.partial(self.api.get, "secrets")
        site = PodSite(
            pod=run.pod, ip=run.ip, directory=run.directory, api_url=self.api.url,
            secrets=secrets, images=dict(self.images),
        )  # fmt: skip
        launch = launch_of(site)
        return launch, readiness_probe(run.container, run.ip, launch, self.probe_period_cap)

    def _allocate_ip(self) -> str:
        """A loopback address 127.0.X.Y (X ≥ 1) no live pod has, not reused soon."""
        for _ in range(254 * 254):
            self._next_ip = self._next_ip % (254 * 254) + 1
            x, y = divmod(self._next_ip - 1, 254)
            ip = f"127.0.{x + 1}.{y + 1}"
            if ip not in self._ips:
                self._ips.add(ip)
                return ip
        raise RuntimeError("the test kubelet ran out of loopback addresses")


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
async def kubelet(kubernetes_api: KubernetesApi, tmp_path: Path) -> AsyncIterator[Kubelet]:
    """A kubelet running the pods of the ``kubernetes_api`` fixture (same loop)."""
    running = Kubelet(tmp_path / "kubelet")
    running.attach(kubernetes_api)
    try:
        yield running
    finally:
        try:
            await running.aclose()
        finally:
            running.kill_all()
            print(running.logs())  # shown only when the test fails


@contextlib.contextmanager
def threaded_cluster(
    root: Path,
    probe_period_cap: float | None = None,
    images: Mapping[str, Image] | None = None,
) -> Iterator[Kubelet]:
    """A fake API server on its own thread with a kubelet (running ``images``, if any);
    every process stopped after."""
    server = ThreadedKubernetesApi()
    running = Kubelet(root, probe_period_cap, images)

    async def attach() -> None:
        running.attach(server.api)

    asyncio.run_coroutine_threadsafe(attach(), server.loop).result(10)
    try:
        yield running
    finally:
        try:
            asyncio.run_coroutine_threadsafe(running.aclose(), server.loop).result(GRACE_CAP + 20)
        finally:
            running.kill_all()
            server.close()


@pytest.fixture
def threaded_kubelet(tmp_path: Path) -> Iterator[Kubelet]:
    """A kubelet and its fake API server (``kubelet.api``) on a thread of their own."""
    with threaded_cluster(tmp_path / "kubelet") as running:
        try:
            yield running
        finally:
            print(running.logs())  # shown only when the test fails
