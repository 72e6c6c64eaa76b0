"""What Kubernetes' StatefulSet controller decides during a rollout, as pure functions
for the in-test API server's toy controller (tests/harness/kubernetes_api.py): a
template's revision hash, whether a pod is Ready, and which pods an update deletes
now (``RollingUpdate`` with ``partition`` and ``maxUnavailable``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

REVISION_LABEL = "controller-revision-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
"""The characters of Kubernetes' generated names and revision hashes (no vowels)."""


def template_hash(template: dict[str, Any]) -> str:
    """A short, stable hash of a pod template in the alphabet Kubernetes' revision
    hashes use (``rand.SafeEncodeString``), at most 10 characters."""
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    number = int.from_bytes(digest[:8], "big")
    chars: list[str] = []
    while number and len(chars) < 10:
        number, index = divmod(number, len(SAFE_ALPHABET))
        chars.append(SAFE_ALPHABET[index])
    return "".join(chars) or SAFE_ALPHABET[0]


def pod_revision(pod: dict[str, Any]) -> str:
    """The revision a pod was made from (its controller-revision-hash label)."""
    labels: dict[str, str] = pod.get("metadata", {}).get("labels") or {}
    return labels.get(REVISION_LABEL, "")


def terminating(pod: dict[str, Any]) -> bool:
    """Deleted, still stopping (``deletionTimestamp`` set)."""
    return "deletionTimestamp" in (pod.get("metadata") or {})


def pod_ready(pod: dict[str, Any]) -> bool:
    """Running, Ready and not terminating: the Ready condition when the kubelet wrote
    one, else every container ready."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or terminating(pod):
        return False
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    statuses = status.get("containerStatuses") or []
    return bool(statuses) and all(one.get("ready") for one in statuses)


def max_unavailable(strategy: dict[str, Any], replicas: int) -> int | None:
    """``rollingUpdate.maxUnavailable`` as a number (a percentage rounds down, at least
    1); None when unset (Kubernetes' one-at-a-time algorithm)."""
    value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable")
    if value is None:
        return None
    if isinstance(value, str) and value.endswith("%"):
        value = replicas * int(value[:-1]) // 100
    return max(1, int(value))


def rolling_update_victims(
    pods: list[dict[str, Any]],
    update: str,
    partition: int,
    strategy: dict[str, Any],
    replicas: int,
) -> list[dict[str, Any]]:
    """The pods (ordinal order, all present) a RollingUpdate deletes now, as Kubernetes'
    StatefulSet controller picks them, from the highest ordinal down to ``partition``.

    Without ``maxUnavailable``: the highest pod not on ``update`` (and not already
    terminating) is deleted, but the walk stops at a pod that is not ready (one pod at
    a time, each waits for its successor to be Running and Ready). With it (the
    MaxUnavailableStatefulSet gate): as many old pods as ``maxUnavailable`` minus the
    pods not ready now."""
    limit = max_unavailable(strategy, replicas)
    if limit is None:
        for pod in reversed(pods[partition:]):
            if pod_revision(pod) != update and not terminating(pod):
                return [pod]
            if not pod_ready(pod):
                return []
        return []
    room = limit - sum(1 for pod in pods if not pod_ready(pod))
    old = [
        pod
        for pod in reversed(pods[partition:])
        if pod_revision(pod) != update and not terminating(pod)
    ]
    return old[: max(0, room)]
