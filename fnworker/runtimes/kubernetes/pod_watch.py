"""What the Kubernetes driver knows of its pods: one label-selected pod watch per
namespace keeps ``PodState`` current (phase, readiness, restarts, a waiting reason,
the pod IP), re-opened with backoff when it ends or fails. ``pod_state_of`` is pure;
``PodWatches.watch`` does network I/O through the API caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec
import structlog

from fnworker.runtimes.kubernetes import names
from fnworker.runtimes.kubernetes.api_calls import ApiCaller, Forbidden, KubernetesError
from fnworker.scheduler.model.clock import SYSTEM_CLOCK, Clock

log = structlog.get_logger("fnworker.runtime.kubernetes")

POD_SELECTOR: Final = f"component=function,{names.JOB_LABEL}"
MAX_BACKOFF_ATTEMPT: Final = 8


class PodState(msgspec.Struct, kw_only=True):
    """What the watch last saw of one pod."""

    phase: str = ""
    ready: bool = False
    restarts: int = 0
    waiting: str = ""
    ip: str = ""


def pod_state_of(pod: dict[str, Any]) -> PodState:
    """A pod's state from its raw object: running and ready, restarts, why it waits."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    waiting = [
        f"container {c.get('name')} is waiting: {w.get('reason', '')} {w.get('message', '')}"
        for c in containers
        if (w := (c.get("state") or {}).get("waiting"))
    ]
    return PodState(
        phase=status.get("phase", ""),
        ready=bool(containers) and all(c.get("ready") for c in containers),
        restarts=sum(int(c.get("restartCount", 0)) for c in containers),
        waiting=waiting[0].strip() if waiting else "",
        ip=status.get("podIP", "") or "",
    )


class PodWatches:
    """The pods of every watched namespace, and why a namespace's watch fails."""

    def __init__(
        self, api: ApiCaller, report: Callable[[str], None], clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.api = api
        self.report = report
        self.clock = clock
        self.pods: dict[str, dict[str, PodState]] = {}
        self.errors: dict[str, str] = {}

    def pod(self, namespace: str, name: str) -> PodState | None:
        """What the watch last saw of pod ``name``; None if it has not seen it."""
        return self.pods.get(namespace, {}).get(name)

    def error(self, namespace: str) -> str:
        """Why the namespace's watch fails now (empty: it does not)."""
        return self.errors.get(namespace, "")

    async def watch(self, namespace: str) -> None:
        """Keep ``pods[namespace]`` current from a label-selected pod watch, forever."""
        self.pods.setdefault(namespace, {})
        attempt = 0
        while True:
            fresh = True

            def on_event(kind: str, pod: dict[str, Any]) -> None:
                nonlocal fresh, attempt
                if fresh:
                    self.pods[namespace] = {}
                    fresh = False
                self.errors.pop(namespace, None)
                attempt = 0
                self.on_event(namespace, kind, pod)

            try:
                await self.api.watch_pods(namespace, POD_SELECTOR, on_event)
            except Forbidden as error:
                self.errors[namespace] = str(error)
                self.report(str(error))
            except KubernetesError as error:
                log.warning(
                    "pod watch failed", namespace=namespace, status=error.code, error=str(error)
                )
            except Exception as error:  # noqa: BLE001 - the watch must go on
                log.warning("pod watch failed", namespace=namespace, error=repr(error))
            await self.clock.sleep(self.api.retry.delay(min(attempt, MAX_BACKOFF_ATTEMPT)))
            attempt += 1

    def on_event(self, namespace: str, kind: str, pod: dict[str, Any]) -> None:
        """Apply one watch event (ADDED, MODIFIED, DELETED) to ``pods[namespace]``."""
        name = pod.get("metadata", {}).get("name", "")
        if kind == "DELETED":
            self.pods[namespace].pop(name, None)
        elif kind in ("ADDED", "MODIFIED"):
            self.pods[namespace][name] = pod_state_of(pod)
