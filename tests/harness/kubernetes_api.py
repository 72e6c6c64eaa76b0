"""An in-test Kubernetes API server on aiohttp, bound to 127.0.0.1: what the
Kubernetes runtime driver uses, answering with real Kubernetes Status bodies.

Resources: apps/v1 ``statefulsets``; v1 ``services``, ``secrets``, ``pods``.
Verbs: create (POST, 409 AlreadyExists), get (404 NotFound), list (with
``labelSelector``: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``), patch, update (PUT),
delete (200 with a Status body; ``preconditions.resourceVersion`` honoured, 409 on
mismatch) and watch (``?watch=true``: newline-delimited JSON events ADDED /
MODIFIED / DELETED with increasing ``resourceVersion``; without a resourceVersion
the existing objects come first as ADDED, with one the events after it are replayed).

Simplifications, on purpose:

- patch: strategic-merge and merge patches are both applied as a JSON merge patch
  (RFC 7386: maps merge recursively, ``null`` removes a key, lists are replaced).
  JSON patch (a list body) answers 415.
- Every body the client sends (create, update, the result of a patch) is validated
  with ``tests/harness/kubernetes_schema.py`` (Kubernetes 1.30, strict); an invalid one
  answers 422 Invalid.
- A toy StatefulSet controller keeps pods ``<set>-<ordinal>`` for ordinals below
  ``replicas`` (phase Running, one ready container status per container, with
  ``restartCount``; podManagementPolicy Parallel: all created at once), labels each with
  ``controller-revision-hash: <set>-<hash of the template>``, and deletes a set's pods
  with the set (background propagation). A template change is rolled out as
  Kubernetes' controller does it (``rolling_update_victims``): ``RollingUpdate`` (the
  default) deletes the pod of the highest ordinal not on the new revision and goes on
  only once its replacement is Ready (``rollingUpdate.partition``: ordinals below it keep,
  and are recreated at, the last completed revision; ``maxUnavailable``, as with the
  MaxUnavailableStatefulSet gate: that many pods not Ready at once); ``OnDelete``
  replaces nothing, a deleted pod comes back on the new revision. The controller runs
  after every change of a set, pod deletion and pod status write; without a kubelet
  pods are Ready at once, so a rollout finishes within the request that started it.
  With a kubelet, the pods the controller deletes (rolled, scaled down) terminate
  gracefully: ``deletionTimestamp`` set (a MODIFIED event), the kubelet stops the
  process within ``terminationGracePeriodSeconds``, then the pod is removed and its
  replacement created, so an ordinal never runs twice (``settled()`` awaits those
  deletions). Pod DELETE requests and a set's deletion remove pods at once. Not
  simulated: ``minReadySeconds`` (Ready counts as available), recreation of Failed
  pods and OrderedReady's one-by-one creation.

Faults: ``forbid(verb, resource)`` answers 403 Forbidden to every such request;
``fail_once(verb, resource, code)`` answers ``code`` (500, 429, 409...) once.
``requests`` records ``(verb, resource, namespace, name)`` of every request.

Pods are only objects unless a kubelet is attached (``KubernetesApi(kubelet=...)``,
``tests/harness/kubernetes_kubelet.py``): it is told of every pod stored new or removed and
writes their status back with ``set_pod_status`` (MODIFIED events).
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import datetime
import json
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, Protocol

import kubernetes_validate
import pytest
from aiohttp import web

from tests.harness.kubernetes_schema import validate
from tests.harness.stateful_set_rollout import (
    REVISION_LABEL,
    pod_ready,
    pod_revision,
    rolling_update_victims,
    template_hash,
)

KINDS: dict[str, tuple[str, str, str]] = {
    # resource: (group, apiVersion, kind)
    "statefulsets": ("apps", "apps/v1", "StatefulSet"),
    "services": ("", "v1", "Service"),
    "secrets": ("", "v1", "Secret"),
    "pods": ("", "v1", "Pod"),
}
USER = "system:serviceaccount:pulsar:func-worker"
TERMINATION_BOUND_S = 60.0
"""The longest a terminating pod waits for the kubelet (which stops it within 10 s)."""
MAX_PASSES = 1000
"""Controller passes per event before it is called stuck (one pass per pod rolled)."""


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A Kubernetes ``Status`` object, as the API server answers errors (and deletes)."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "details": details,
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (used for strategic-merge patches too)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based label selector matching."""
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class PodRunner(Protocol):
    """What runs the stored pods (the fake kubelet): told of every pod added or removed."""

    def pod_added(self, pod: dict[str, Any]) -> None:
        """A pod is about to be stored new; may fill in its ``status``."""

    def pod_removed(self, pod: dict[str, Any]) -> None:
        """A pod was removed from the store, or is terminating (``deletionTimestamp``):
        stop it."""

    @property
    def runs(self) -> Mapping[str, Any]:
        """uid → run of every pod whose process has not finished stopping."""


class KubernetesApi:
    """The server's state, its fault switches and the aiohttp application."""

    def __init__(self, kubelet: PodRunner | None = None) -> None:
        self.kubelet = kubelet
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.resource_version = 0
        self.history: list[tuple[int, str, str, str, dict[str, Any]]] = []
        self.changed = asyncio.Condition()
        self.forbidden: set[tuple[str, str]] = set()
        self.faults: list[tuple[str, str, int]] = []
        self.requests: list[tuple[str, str, str, str]] = []
        self.revisions: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        """(namespace, set) → revision name → pod template (the ControllerRevisions)."""
        self.current_revision: dict[tuple[str, str], str] = {}
        """(namespace, set) → the revision of the last complete rollout."""
        self._controlling = asyncio.Lock()
        self._terminations: set[asyncio.Task[None]] = set()
        self.url = ""
        self.app = web.Application()
        for prefix in ("/api/{version}", "/apis/{group}/{version}"):
            base = prefix + "/namespaces/{namespace}/{resource}"
            self.app.router.add_route("*", base, self.collection)
            self.app.router.add_route("*", base + "/{name}", self.item)

    # -- switches and helpers for tests -------------------------------------------

    def forbid(self, verb: str, resource: str) -> None:
        """Answer 403 Forbidden to every ``verb`` on ``resource`` from now on."""
        self.forbidden.add((verb, resource))

    def fail_once(self, verb: str, resource: str, code: int) -> None:
        """Answer the next ``verb`` on ``resource`` with ``code`` (500, 429, 409...)."""
        self.faults.append((verb, resource, code))

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The stored object, or None."""
        return self.objects.get((resource, namespace, name))

    def names(self, resource: str, namespace: str = "default") -> list[str]:
        """Names of the stored objects of one resource in one namespace, sorted."""
        return sorted(n for r, ns, n in self.objects if r == resource and ns == namespace)

    def count(self, verb: str, resource: str) -> int:
        """How many ``verb`` requests on ``resource`` were received."""
        return sum(1 for v, r, _, _ in self.requests if v == verb and r == resource)

    async def restart_container(self, namespace: str, pod: str) -> None:
        """Bump the restartCount of a pod's containers (as the kubelet does on a crash)."""
        stored = copy.deepcopy(self.objects[("pods", namespace, pod)])
        for status in stored["status"]["containerStatuses"]:
            status["restartCount"] += 1
        await self._store("MODIFIED", "pods", namespace, pod, stored)

    async def crash_loop(self, namespace: str, pod: str, message: str) -> None:
        """Make a pod's containers crash-looping (not ready, waiting, one more restart)."""
        stored = copy.deepcopy(self.objects[("pods", namespace, pod)])
        for status in stored["status"]["containerStatuses"]:
            status["restartCount"] += 1
            status["ready"] = False
            status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        await self._store("MODIFIED", "pods", namespace, pod, stored)

    async def set_pod_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> bool:
        """Replace the status of pod ``uid`` (a MODIFIED event); False if it is gone."""
        stored = self.objects.get(("pods", namespace, name))
        if stored is None or stored["metadata"]["uid"] != uid:
            return False
        stored = {**stored, "status": status}
        await self._store("MODIFIED", "pods", namespace, name, stored)
        owner = name.rsplit("-", 1)[0]
        if ("statefulsets", namespace, owner) in self.objects:  # its controller may go on
            await self._controller("statefulsets", namespace, owner)
        return True

    # -- handlers ------------------------------------------------------------------

    async def collection(self, request: web.Request) -> web.StreamResponse:
        resource, namespace = request.match_info["resource"], request.match_info["namespace"]
        if request.method == "POST":
            return await self._guarded("create", resource, namespace, "", request)
        if request.method == "GET":
            verb = "watch" if request.query.get("watch") in ("true", "1", "True") else "list"
            return await self._guarded(verb, resource, namespace, "", request)
        return self._status(405, "MethodNotAllowed", f"{request.method} is not supported")

    async def item(self, request: web.Request) -> web.StreamResponse:
        resource, namespace = request.match_info["resource"], request.match_info["namespace"]
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
            request.method
        )
        if verb is None:
            return self._status(405, "MethodNotAllowed", f"{request.method} is not supported")
        return await self._guarded(verb, resource, namespace, request.match_info["name"], request)

    async def _guarded(
        self, verb: str, resource: str, namespace: str, name: str, request: web.Request
    ) -> web.StreamResponse:
        self.requests.append((verb, resource, namespace, name))
        if resource not in KINDS:
            return self._status(404, "NotFound", f"the server could not find resource {resource}")
        group, _, kind = KINDS[resource]
        if (verb, resource) in self.forbidden:
            where = f'resource "{resource}" in API group "{group}" in the namespace "{namespace}"'
            full = f"{resource}.{group}" if group else resource
            label = f'{full} "{name}"' if name else full
            return self._status(
                403, "Forbidden", f'{label} is forbidden: User "{USER}" cannot {verb} {where}',
                name=name, group=group, kind=resource,
            )  # fmt: skip
        for fault in self.faults:
            if fault[:2] == (verb, resource):
                self.faults.remove(fault)
                code = fault[2]
                reason = {429: "TooManyRequests", 409: "Conflict"}.get(code, "InternalError")
                response = self._status(code, reason, f"injected {code} for {verb} {resource}")
                if code == 429:
                    response.headers["Retry-After"] = "0"
                return response
        handler = getattr(self, f"_{verb}")
        result: web.StreamResponse = await handler(request, resource, namespace, name, kind)
        return result

    async def _create(
        self, request: web.Request, resource: str, namespace: str, _: str, kind: str
    ) -> web.Response:
        body = await request.json()
        name = body.get("metadata", {}).get("name", "")
        if (resource, namespace, name) in self.objects:
            return self._status(
                409,
                "AlreadyExists",
                f'{resource} "{name}" already exists',
                name=name,
                kind=resource,
            )
        invalid = self._invalid(body, kind, name)
        if invalid is not None:
            return invalid
        body["metadata"].setdefault("namespace", namespace)
        body["metadata"]["uid"] = str(uuid.uuid4())
        body["metadata"]["creationTimestamp"] = _now()
        if resource == "statefulsets":
            body["metadata"]["generation"] = 1
        stored = await self._store("ADDED", resource, namespace, name, body)
        await self._controller(resource, namespace, name)
        return web.json_response(stored, status=201)

    async def _get(
        self, _: web.Request, resource: str, namespace: str, name: str, kind: str
    ) -> web.Response:
        stored = self.objects.get((resource, namespace, name))
        if stored is None:
            return self._not_found(resource, name)
        return web.json_response(stored)

    async def _list(
        self, request: web.Request, resource: str, namespace: str, _: str, kind: str
    ) -> web.Response:
        selector = request.query.get("labelSelector", "")
        items = [
            obj
            for (r, ns, _n), obj in sorted(self.objects.items())
            if r == resource and ns == namespace and selector_matches(selector, _labels(obj))
        ]
        return web.json_response(
            {
                "kind": f"{kind}List",
                "apiVersion": KINDS[resource][1],
                "metadata": {"resourceVersion": str(self.resource_version)},
                "items": items,
            }
        )

    async def _patch(
        self, request: web.Request, resource: str, namespace: str, name: str, kind: str
    ) -> web.Response:
        stored = self.objects.get((resource, namespace, name))
        if stored is None:
            return self._not_found(resource, name)
        patch = await request.json()
        if not isinstance(patch, dict):
            return self._status(415, "UnsupportedMediaType", "only merge patches are supported")
        merged = merge_patch(stored, patch)
        return await self._replace_with(merged, resource, namespace, name, kind)

    async def _update(
        self, request: web.Request, resource: str, namespace: str, name: str, kind: str
    ) -> web.Response:
        if (resource, namespace, name) not in self.objects:
            return self._not_found(resource, name)
        body = await request.json()
        wanted = body.get("metadata", {}).get("resourceVersion")
        current = self.objects[(resource, namespace, name)]["metadata"]["resourceVersion"]
        if wanted and wanted != current:
            return self._status(409, "Conflict", f'the object "{name}" has been modified')
        return await self._replace_with(body, resource, namespace, name, kind)

    async def _replace_with(
        self, body: dict[str, Any], resource: str, namespace: str, name: str, kind: str
    ) -> web.Response:
        stored = self.objects[(resource, namespace, name)]
        for key in ("uid", "creationTimestamp", "generation"):
            if key in stored["metadata"]:
                body.setdefault("metadata", {})[key] = stored["metadata"][key]
        body["metadata"].pop("resourceVersion", None)
        body.pop("status", None)
        invalid = self._invalid(body, kind, name)
        if invalid is not None:
            return invalid
        if resource == "statefulsets":
            if body["spec"]["selector"] != stored["spec"]["selector"]:
                return self._status(
                    422, "Invalid", f'StatefulSet.apps "{name}" is invalid: spec: Forbidden: '
                    "updates to statefulset spec for fields other than 'replicas', 'template', "
                    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
                    "'minReadySeconds' are forbidden", name=name, kind=kind,
                )  # fmt: skip
            if body["spec"] != stored["spec"]:
                body["metadata"]["generation"] = stored["metadata"].get("generation", 1) + 1
        stored = await self._store("MODIFIED", resource, namespace, name, body)
        await self._controller(resource, namespace, name)
        return web.json_response(stored)

    async def _delete(
        self, request: web.Request, resource: str, namespace: str, name: str, kind: str
    ) -> web.Response:
        stored = self.objects.get((resource, namespace, name))
        if stored is None:
            return self._not_found(resource, name)
        options = await request.json() if request.can_read_body else {}
        wanted = ((options or {}).get("preconditions") or {}).get("resourceVersion")
        if wanted and wanted != stored["metadata"]["resourceVersion"]:
            return self._status(
                409, "Conflict", f"Precondition failed: ResourceVersion: {wanted}, "
                f"ResourceVersion in object: {stored['metadata']['resourceVersion']}",
                name=name, kind=resource,
            )  # fmt: skip
        await self._remove(resource, namespace, name)
        if resource == "statefulsets":
            await self._controller(resource, namespace, name)
        owner = name.rsplit("-", 1)[0]
        if resource == "pods" and ("statefulsets", namespace, owner) in self.objects:
            await self._controller("statefulsets", namespace, owner)  # starts it again
        return web.json_response(
            status_body(200, "", "", name=name, group=KINDS[resource][0], kind=resource,
                        uid=stored["metadata"]["uid"])
        )  # fmt: skip

    async def _watch(
        self, request: web.Request, resource: str, namespace: str, _: str, kind: str
    ) -> web.StreamResponse:
        selector = request.query.get("labelSelector", "")
        since = request.query.get("resourceVersion")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        def wanted(r: str, ns: str, obj: dict[str, Any]) -> bool:
            return r == resource and ns == namespace and selector_matches(selector, _labels(obj))

        if since:
            position = int(since)
        else:
            position = self.resource_version
            for (r, ns, _n), obj in sorted(self.objects.items()):
                if wanted(r, ns, obj):
                    await _send(response, "ADDED", obj)
        # Each pass reads only the events it has not read (history is in
        # resourceVersion order); rescanning all of it on every change cost N squared.
        index = bisect.bisect_right(self.history, position, key=lambda entry: entry[0])
        while True:
            while index < len(self.history):  # events stored while sending are read too
                _version, event, r, ns, obj = self.history[index]
                index += 1
                if wanted(r, ns, obj):
                    await _send(response, event, obj)
            position = self.resource_version
            async with self.changed:
                await self.changed.wait_for(self._newer_than(position))

    def _newer_than(self, position: int) -> Callable[[], bool]:
        return lambda: self.resource_version > position

    # -- state ---------------------------------------------------------------------

    async def _store(
        self, event: str, resource: str, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        self.resource_version += 1
        body = copy.deepcopy(body)
        body["apiVersion"], body["kind"] = KINDS[resource][1:]
        body["metadata"]["namespace"] = namespace
        body["metadata"]["resourceVersion"] = str(self.resource_version)
        if resource == "pods" and event == "ADDED" and self.kubelet is not None:
            self.kubelet.pod_added(body)
        self.objects[(resource, namespace, name)] = body
        self.history.append((self.resource_version, event, resource, namespace, body))
        async with self.changed:
            self.changed.notify_all()
        return body

    async def _remove(self, resource: str, namespace: str, name: str) -> None:
        body = copy.deepcopy(self.objects.pop((resource, namespace, name)))
        if resource == "pods" and self.kubelet is not None:
            self.kubelet.pod_removed(body)
        self.resource_version += 1
        body["metadata"]["resourceVersion"] = str(self.resource_version)
        self.history.append((self.resource_version, "DELETED", resource, namespace, body))
        async with self.changed:
            self.changed.notify_all()

    async def _controller(self, resource: str, namespace: str, name: str) -> None:
        """The toy StatefulSet controller (``stateful_set_control.py``): passes until
        nothing more can be done now; the next pod status change runs it again."""
        if resource != "statefulsets":
            return
        async with self._controlling:
            for _pass in range(MAX_PASSES):
                if not await self._reconcile(namespace, name):
                    return
            raise RuntimeError(f"the StatefulSet controller of {name} does not settle")

    async def _reconcile(self, namespace: str, name: str) -> bool:
        """One pass: remove pods beyond ``replicas``, create the missing ones, then one
        step of the update strategy; True when it deleted a pod to update it."""
        stateful_set = self.objects.get(("statefulsets", namespace, name))
        replicas = stateful_set["spec"].get("replicas", 1) if stateful_set else 0
        for ordinal, pod_name in self._set_pods(namespace, name).items():
            if stateful_set is None:
                await self._remove("pods", namespace, pod_name)
            elif ordinal >= replicas:
                await self._terminate_pod(namespace, pod_name)
        if stateful_set is None:
            self.revisions.pop((namespace, name), None)
            self.current_revision.pop((namespace, name), None)
            return False
        spec = stateful_set["spec"]
        update = self._revision(namespace, name, spec["template"])
        current = self.current_revision.setdefault((namespace, name), update)
        strategy = spec.get("updateStrategy") or {"type": "RollingUpdate"}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
        for ordinal in range(replicas):
            pod_name = f"{name}-{ordinal}"
            if ("pods", namespace, pod_name) not in self.objects:
                revision = current if rolling and ordinal < partition else update
                template = self.revisions[(namespace, name)][revision]
                pod = _pod(pod_name, ordinal, template, revision)
                await self._store("ADDED", "pods", namespace, pod_name, pod)
        pods = [self.objects[("pods", namespace, f"{name}-{i}")] for i in range(replicas)]
        deleted = []
        if rolling:
            deleted = rolling_update_victims(pods, update, partition, strategy, replicas)
        for pod in deleted:
            await self._terminate_pod(namespace, pod["metadata"]["name"])
        self._write_set_status(namespace, name, update, replicas)
        return bool(deleted)

    async def _terminate_pod(self, namespace: str, name: str) -> None:
        """The controller deletes a pod as Kubernetes does: with a kubelet, gracefully
        (``deletionTimestamp`` set, the kubelet stops it within the pod's grace period,
        the pod is removed once its process stopped, then the controller goes on);
        without one, at once."""
        stored = self.objects.get(("pods", namespace, name))
        if stored is None or "deletionTimestamp" in stored["metadata"]:
            return
        if self.kubelet is None:
            await self._remove("pods", namespace, name)
            return
        pod = copy.deepcopy(stored)
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        pod["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=grace)
        pod = await self._store("MODIFIED", "pods", namespace, name, pod)
        self.kubelet.pod_removed(pod)
        uid = pod["metadata"]["uid"]
        task = asyncio.get_running_loop().create_task(
            self._finish_termination(namespace, name, uid)
        )
        self._terminations.add(task)
        task.add_done_callback(self._terminations.discard)

    async def _finish_termination(self, namespace: str, name: str, uid: str) -> None:
        """Remove a terminating pod once the kubelet has stopped it (bounded), and let
        its set's controller go on."""
        deadline = asyncio.get_running_loop().time() + TERMINATION_BOUND_S
        while self.kubelet is not None and uid in self.kubelet.runs:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        stored = self.objects.get(("pods", namespace, name))
        if stored is not None and stored["metadata"]["uid"] == uid:
            await self._remove("pods", namespace, name)
        owner = name.rsplit("-", 1)[0]
        if ("statefulsets", namespace, owner) in self.objects:
            await self._controller("statefulsets", namespace, owner)

    async def settled(self) -> None:
        """Wait until every graceful pod deletion under way has finished."""
        while self._terminations:
            await asyncio.gather(*list(self._terminations), return_exceptions=True)

    def _set_pods(self, namespace: str, name: str) -> dict[int, str]:
        """Ordinal → name of the stored pods ``<name>-<ordinal>`` of one set."""
        prefix = f"{name}-"
        found = {}
        for resource, ns, pod_name in list(self.objects):
            suffix = pod_name[len(prefix) :]
            if resource == "pods" and ns == namespace and pod_name.startswith(prefix):
                if suffix.isdigit():
                    found[int(suffix)] = pod_name
        return found

    def _revision(self, namespace: str, name: str, template: dict[str, Any]) -> str:
        """The revision name ``<set>-<hash of the template>`` (kept, as a ControllerRevision)."""
        revision = f"{name}-{template_hash(template)}"
        self.revisions.setdefault((namespace, name), {})[revision] = copy.deepcopy(template)
        return revision

    def _write_set_status(self, namespace: str, name: str, update: str, replicas: int) -> None:
        """The set's status; the rollout is complete (currentRevision moves) when every
        pod is on the update revision and ready."""
        pods = [self.objects.get(("pods", namespace, f"{name}-{i}")) for i in range(replicas)]
        live = [pod for pod in pods if pod is not None]
        ready = sum(1 for pod in live if pod_ready(pod))
        updated = sum(1 for pod in live if pod_revision(pod) == update)
        if updated == ready == replicas:
            self.current_revision[(namespace, name)] = update
        current = self.current_revision[(namespace, name)]
        stored = copy.deepcopy(self.objects[("statefulsets", namespace, name)])
        stored["status"] = {
            "observedGeneration": stored["metadata"].get("generation", 1),
            "replicas": len(live),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": sum(1 for pod in live if pod_revision(pod) == current),
            "updatedReplicas": updated,
            "currentRevision": current,
            "updateRevision": update,
        }
        self.objects[("statefulsets", namespace, name)] = stored

    # -- answers -------------------------------------------------------------------

    def _invalid(self, body: dict[str, Any], kind: str, name: str) -> web.Response | None:
        try:
            validate(body)
        except kubernetes_validate.ValidationError as error:
            return self._status(
                422, "Invalid", f'{kind} "{name}" is invalid: {error.message}',
                name=name, kind=kind,
            )  # fmt: skip
        except kubernetes_validate.SchemaNotFoundError as error:
            return self._status(422, "Invalid", f"no schema: {error}")
        return None

    def _not_found(self, resource: str, name: str) -> web.Response:
        group = KINDS[resource][0]
        full = f"{resource}.{group}" if group else resource
        return self._status(404, "NotFound", f'{full} "{name}" not found', name=name, kind=resource)

    @staticmethod
    def _status(code: int, reason: str, message: str, **details: Any) -> web.Response:
        return web.json_response(status_body(code, reason, message, **details), status=code)


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = obj.get("metadata", {}).get("labels") or {}
    return labels


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod(name: str, ordinal: int, template: dict[str, Any], revision: str) -> dict[str, Any]:
    """A running pod made from a StatefulSet's template at ``revision``, labelled as
    the controller labels it."""
    spec = copy.deepcopy(template["spec"])
    metadata = copy.deepcopy(template["metadata"])
    metadata.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=_now())
    metadata["labels"] = {
        **metadata.get("labels", {}),
        REVISION_LABEL: revision,
        "statefulset.kubernetes.io/pod-name": name,
        "apps.kubernetes.io/pod-index": str(ordinal),
    }
    statuses = [
        {
            "name": container["name"],
            "image": container["image"],
            "imageID": f"docker-pullable://{container['image']}",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": _now()}},
        }
        for container in spec["containers"]
    ]
    return {
        "metadata": metadata,
        "spec": spec,
        "status": {"phase": "Running", "containerStatuses": statuses},
    }


async def _send(response: web.StreamResponse, event: str, obj: dict[str, Any]) -> None:
    await response.write(json.dumps({"type": event, "object": obj}).encode() + b"\n")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def kubernetes_api() -> AsyncIterator[KubernetesApi]:
    """A fake Kubernetes API server on a free port of 127.0.0.1, stopped in teardown."""
    api = KubernetesApi()
    runner = web.AppRunner(api.app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    api.url = f"http://127.0.0.1:{port}"
    try:
        yield api
    finally:
        await runner.cleanup()


class ThreadedKubernetesApi:
    """The fake API server on an event loop of its own thread, for tests whose
    worker runs in another process and that block while waiting for it."""

    def __init__(self) -> None:
        import threading

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.api = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> KubernetesApi:
        api = KubernetesApi()
        self.runner = web.AppRunner(api.app, shutdown_timeout=0.1)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        api.url = f"http://127.0.0.1:{port}"
        return api

    async def _stop(self) -> None:
        await self.runner.cleanup()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Stop the server and its loop."""
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def threaded_kubernetes_api() -> Iterator[KubernetesApi]:
    """The fake API server on a thread of its own (for blocking, multi-process tests)."""
    server = ThreadedKubernetesApi()
    try:
        yield server.api
    finally:
        server.close()
