"""Applying and deleting one function's objects (Secret, Service, StatefulSet) on the
cluster: create, else merge-patch; never take over another function's or another
cluster's StatefulSet (claims.py); delete only what this worker applied last. Does
network I/O through the API caller.

``with_owner`` (pure) stamps the StatefulSet with the worker that applies it, so a
worker never deletes a set another worker applied since (the owner annotation, and a
``resourceVersion`` precondition on the delete).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import structlog

from fnworker.runtimes.kubernetes.api_calls import RESOURCES, ApiCaller, KubernetesError
from fnworker.runtimes.kubernetes.claims import CLUSTER_ANNOTATION, FQFN_ANNOTATION, claim_of
from fnworker.runtimes.kubernetes.manifests import RenderedJob
from fnworker.scheduler.model.records import FunctionRecord

log = structlog.get_logger("fnworker.runtime.kubernetes")

OWNER_ANNOTATION: Final = "fnworker/owner-worker"
PLURALS: Final = {"StatefulSet": "statefulsets", "Service": "services", "Secret": "secrets"}
MERGE_PATCH: Final = "application/merge-patch+json"


def with_owner(rendered: RenderedJob, worker_id: str) -> list[dict[str, Any]]:
    """The objects to apply; the StatefulSet names the worker that applied it."""
    objects = [dict(obj) for obj in rendered.objects()]
    stateful_set = objects[-1]
    metadata = dict(stateful_set["metadata"])
    metadata["annotations"] = {
        **metadata.get("annotations", {}),
        OWNER_ANNOTATION: worker_id or "unknown",
    }
    stateful_set["metadata"] = metadata
    return objects


class JobObjects:
    """Creates, patches and deletes functions' objects for one worker."""

    def __init__(self, api: ApiCaller, worker_id: str, report: Callable[..., None]) -> None:
        self.api = api
        self.worker_id = worker_id
        self.report = report

    async def apply(
        self,
        function: FunctionRecord,
        rendered: RenderedJob,
        objects: list[dict[str, Any]],
        *,
        cluster: str,
    ) -> None:
        """Create or patch the Secret, Service and StatefulSet, in that order, after
        deciding what may be done with a StatefulSet already at the name (claims.py)."""
        namespace, name = rendered.namespace, rendered.name
        existing = await self.api.read_stateful_set(namespace, name)
        claim = claim_of(existing, rendered.stateful_set, function.fqfn, cluster)
        if claim.action == "refuse":
            raise KubernetesError(claim.sentence)
        if claim.action == "recreate":
            log.warning(claim.sentence, job=name, namespace=namespace)
            await self.delete("statefulsets", namespace, name)
        for obj in objects:
            resource = PLURALS[obj["kind"]]
            if claim.action == "patch":
                await self.patch(resource, namespace, obj["metadata"]["name"], obj)
            else:
                await self.create_or_patch(resource, namespace, obj)

    async def create_or_patch(self, resource: str, namespace: str, obj: dict[str, Any]) -> None:
        """Create one object; one that exists already (a race with another worker of
        the same cluster) is patched."""
        name = obj["metadata"]["name"]
        suffix = RESOURCES[resource][2]
        try:
            await self.api.call(
                "create", resource, namespace, name, f"create_namespaced_{suffix}",
                namespace, obj,
            )  # fmt: skip
        except KubernetesError as error:
            if error.code != 409:
                raise
            await self.patch(resource, namespace, name, obj)

    async def patch(self, resource: str, namespace: str, name: str, obj: dict[str, Any]) -> None:
        """A JSON merge patch with the whole rendered object (lists are replaced)."""
        suffix = RESOURCES[resource][2]
        await self.api.call(
            "patch", resource, namespace, name, f"patch_namespaced_{suffix}",
            name, namespace, obj, _content_type=MERGE_PATCH,
        )  # fmt: skip

    async def delete_job(self, rendered: RenderedJob) -> None:
        """Delete the StatefulSet (if this worker still owns it), Service and Secret."""
        namespace, name = rendered.namespace, rendered.name
        if not await self._delete_stateful_set(rendered):
            return
        others = [("services", name)]
        if rendered.auth_secret_name is not None:
            others.append(("secrets", rendered.auth_secret_name))
        for resource, object_name in others:
            try:
                await self.delete(resource, namespace, object_name)
            except KubernetesError as error:
                self.report(str(error), job=name)
        log.info("function deleted", job=name, namespace=namespace)

    async def _delete_stateful_set(self, rendered: RenderedJob) -> bool:
        """Delete the set unless it is not this function's and cluster's, or another
        worker applied it since; False to stop there."""
        namespace, name = rendered.namespace, rendered.name
        try:
            existing = await self.api.read_stateful_set(namespace, name)
        except KubernetesError as error:
            self.report(str(error), job=name)
            return False
        if existing is None:
            return True
        annotations = existing["metadata"].get("annotations") or {}
        mine = rendered.stateful_set["metadata"]["annotations"]
        if any(annotations.get(key) != mine[key] for key in (FQFN_ANNOTATION, CLUSTER_ANNOTATION)):
            log.info("not deleting: the StatefulSet is not this function's", job=name)
            return False
        owner = annotations.get(OWNER_ANNOTATION)
        if self.worker_id and owner not in (None, self.worker_id):
            log.info("not deleting: another worker applied it since", job=name, owner=owner)
            return False
        body = {"preconditions": {"resourceVersion": existing["metadata"]["resourceVersion"]}}
        try:
            await self.api.call(
                "delete", "statefulsets", namespace, name, "delete_namespaced_stateful_set",
                name, namespace, body=body,
            )  # fmt: skip
        except KubernetesError as error:
            if error.code == 409:
                log.info("not deleting: the StatefulSet changed meanwhile", job=name)
                return False
            if error.code != 404:
                self.report(str(error), job=name)
                return False
        return True

    async def delete(self, resource: str, namespace: str, name: str) -> None:
        """Delete one object; one already gone is fine."""
        suffix = RESOURCES[resource][2]
        try:
            await self.api.call(
                "delete", resource, namespace, name, f"delete_namespaced_{suffix}", name, namespace
            )
        except KubernetesError as error:
            if error.code != 404:
                raise
