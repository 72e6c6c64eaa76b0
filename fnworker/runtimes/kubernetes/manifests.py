"""A function's Kubernetes objects as plain dicts: the StatefulSet, the headless
Service and, when the function authenticates with a token, its Secret. Pure, no I/O.

The StatefulSet has one pod per instance (``replicas`` = parallelism,
``podManagementPolicy: Parallel``). Each pod boots the instance host with
``python -m fnworker.runtimes.kubernetes.pod_main``; its arguments tell it where the
worker's REST API is (it downloads the package from
``GET /admin/v3/functions/{tenant}/{namespace}/{name}/download``), the broker URL,
the function version and its pod name, whose ordinal is the instance (shard) id.
The pod template carries the function version as an annotation, so an update rolls
the pods. See docs/kubernetes-runtime.md for every decision and Pulsar difference.

The pod template (container, arguments, probes, resources) is ``pod_template.py``;
``KubernetesSettings`` and its reading from the worker config are ``settings.py``.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from fnworker.runtimes.kubernetes import names
from fnworker.runtimes.kubernetes.claims import CLUSTER_ANNOTATION, FQFN_ANNOTATION
from fnworker.runtimes.kubernetes.customizer import ManifestCustomizer, NoOpCustomizer
from fnworker.runtimes.kubernetes.pod_template import AuthMount, pod_annotations, pod_spec
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from fnworker.scheduler.model.records import FunctionRecord, split_fqfn

CLUSTER_LABEL: Final = "fnworker/cluster"
"""Label with the worker cluster's name (``pulsarFunctionsCluster``), in every selector:
two clusters sharing a jobNamespace never select each other's pods."""


def update_strategy() -> dict[str, Any]:
    """How a new pod template reaches the pods: one pod at a time, highest ordinal
    first, the next only once the replaced pod is Ready (its ``/health`` probe), so at
    least parallelism-1 pods are ready throughout; every ordinal is updated (partition
    0); ``podManagementPolicy: Parallel`` does not change it. No ``maxUnavailable``:
    with the MaxUnavailableStatefulSet gate, any value makes a pod that never got Ready
    block every later rollout (the controller waits while unavailable pods reach it),
    where the default algorithm replaces an old-revision pod whatever its health, so a
    fixed version rolls over a broken one."""
    return {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}


@dataclasses.dataclass(frozen=True)
class AuthMaterial:
    """What a function's pods authenticate with: the token (never printed) and the CA."""

    token: str = dataclasses.field(repr=False)
    ca_pem: bytes | None = dataclasses.field(default=None, repr=False)


class JobIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """A function's job name, Kubernetes namespace and labels (after customizing)."""

    name: str
    namespace: str
    selector: dict[str, str]
    labels: dict[str, str]


class RenderedJob(msgspec.Struct, frozen=True, kw_only=True):
    """Every object of one function, ready to apply, with where it goes."""

    name: str
    namespace: str
    service: dict[str, Any]
    stateful_set: dict[str, Any]
    secret: dict[str, Any] | None = None
    """The auth Secret to apply (only when rendered from an AuthMaterial, as the CLI does)."""
    auth_secret_name: str | None = None
    """The Secret the pods mount their token from, deleted with the function."""

    def objects(self) -> list[dict[str, Any]]:
        """The objects in the order to create them: Secret, Service, StatefulSet."""
        first = [self.secret] if self.secret is not None else []
        return [*first, self.service, self.stateful_set]


def job_identity(
    function: FunctionRecord,
    settings: KubernetesSettings,
    customizer: ManifestCustomizer | None = None,
) -> JobIdentity:
    """The job name, namespace and labels of ``function`` (the customizer may rename)."""
    customizer = customizer or NoOpCustomizer()
    tenant, namespace, name = split_fqfn(function.fqfn)
    custom_name = customizer.customize_name(function, settings.job_name)
    job = names.job_name(tenant, namespace, name, custom_name)
    job_namespace = names.check_namespace(
        "jobNamespace", customizer.customize_namespace(function, settings.job_namespace)
    )
    selector = selector_labels(function, job, settings.cluster_name)
    return JobIdentity(
        name=job, namespace=job_namespace, selector=selector,
        labels={**custom_labels(settings), **selector},
    )  # fmt: skip


def render(
    function: FunctionRecord,
    settings: KubernetesSettings,
    customizer: ManifestCustomizer | None = None,
    auth: AuthMaterial | None = None,
) -> RenderedJob:
    """The Service and StatefulSet of ``function``; its pods mount the Secret its
    ``auth`` record names. With ``auth`` material (the CLI's preview) the Secret
    itself is rendered too."""
    customizer = customizer or NoOpCustomizer()
    identity = job_identity(function, settings, customizer)
    job, job_namespace = identity.name, identity.namespace
    labels, selector = identity.labels, identity.selector
    secret = auth_secret(identity, auth) if auth is not None else None
    mount = auth_mount(function, secret)
    service = customizer.customize_service(
        function, service_manifest(job, job_namespace, labels, selector, settings)
    )
    service["metadata"].update(name=job, namespace=job_namespace)
    stateful_set = customizer.customize_stateful_set(
        function,
        stateful_set_manifest(function, job, job_namespace, labels, selector, settings, mount),
    )
    stateful_set["metadata"].update(name=job, namespace=job_namespace)
    return RenderedJob(
        name=job, namespace=job_namespace, service=service, stateful_set=stateful_set,
        secret=secret, auth_secret_name=mount.secret_name if mount is not None else None,
    )  # fmt: skip


def auth_mount(function: FunctionRecord, secret: Mapping[str, Any] | None) -> AuthMount | None:
    """What the pods mount: the rendered Secret, else the one the function's record names."""
    if secret is not None:
        return AuthMount(secret_name=secret["metadata"]["name"], with_ca="ca.pem" in secret["data"])
    if function.auth is not None:
        return AuthMount(secret_name=function.auth.secret_name, with_ca=function.auth.with_ca)
    return None


def selector_labels(function: FunctionRecord, job: str, cluster: str) -> dict[str, str]:
    """Pulsar's tenant, namespace, name and component labels plus the unique job label
    and the worker cluster's name."""
    tenant, namespace, name = split_fqfn(function.fqfn)
    return {
        "tenant": names.label_value(tenant),
        "namespace": names.label_value(namespace),
        "name": names.label_value(name),
        "component": "function",
        names.JOB_LABEL: job,
        CLUSTER_LABEL: names.label_value(cluster),
    }


def custom_labels(settings: KubernetesSettings) -> dict[str, str]:
    """customLabels with their values sanitized (Pulsar's rule)."""
    return {key: names.label_value(value) for key, value in settings.custom_labels.items()}


def service_manifest(
    job: str,
    job_namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    settings: KubernetesSettings,
) -> dict[str, Any]:
    """The headless Service that gives each pod a stable DNS name."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": job, "namespace": job_namespace, "labels": dict(labels)},
        "spec": {
            "clusterIP": "None",
            "ports": [{"name": "grpc", "port": settings.grpc_port, "protocol": "TCP"}],
            "selector": dict(selector),
        },
    }


def stateful_set_manifest(
    function: FunctionRecord,
    job: str,
    job_namespace: str,
    labels: Mapping[str, str],
    selector: Mapping[str, str],
    settings: KubernetesSettings,
    mount: AuthMount | None,
) -> dict[str, Any]:
    """One pod per instance, all started at once, behind the headless Service."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": job,
            "namespace": job_namespace,
            "labels": dict(labels),
            "annotations": {
                FQFN_ANNOTATION: function.fqfn,
                CLUSTER_ANNOTATION: settings.cluster_name,
            },
        },
        "spec": {
            "serviceName": job,
            "replicas": function.parallelism(),
            "podManagementPolicy": "Parallel",
            "updateStrategy": update_strategy(),
            "minReadySeconds": 0,
            "selector": {"matchLabels": dict(selector)},
            "template": {
                "metadata": {
                    "labels": dict(labels),
                    "annotations": pod_annotations(function, settings),
                },
                "spec": pod_spec(function, settings, mount),
            },
        },
    }


def auth_secret(identity: JobIdentity, auth: AuthMaterial, suffix: str = "") -> dict[str, Any]:
    """The Secret ``<job>-auth[-<suffix>]`` the pods read their token (and the cluster
    CA) from, base64-encoded."""
    data = {"token": _b64(auth.token.encode())}
    if auth.ca_pem is not None:
        data["ca.pem"] = _b64(auth.ca_pem)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": f"{identity.name}-auth" + (f"-{suffix}" if suffix else ""),
            "namespace": identity.namespace,
            "labels": dict(identity.labels),
        },
        "type": "Opaque",
        "data": data,
    }


def _b64(raw: bytes) -> str:
    """Base64 text, as Secret ``data`` holds it."""
    return base64.b64encode(raw).decode("ascii")
