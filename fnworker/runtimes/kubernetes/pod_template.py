"""The pod template of a function's StatefulSet: the ``pulsarfunction`` container that
runs ``python -m fnworker.runtimes.kubernetes.pod_main``, its arguments, environment,
ports, readiness probe, resources and the auth volume. Pure, no I/O."""

from __future__ import annotations

import math
from typing import Any, Final

import msgspec

from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.secrets import SECRETS_PROVIDER, secret_env
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from fnworker.scheduler.model.records import FunctionRecord, split_fqfn

POD_MAIN_MODULE: Final = "fnworker.runtimes.kubernetes.pod_main"
CONTAINER_NAME: Final = "pulsarfunction"
DEFAULT_RAM: Final = 1_073_741_824
DEFAULT_DISK: Final = 10_737_418_240
"""Pulsar's default disk (Resources): not asked for as ephemeral storage."""
AUTH_VOLUME: Final = "function-auth"
AUTH_MOUNT: Final = "/etc/auth"
VERSION_ANNOTATION: Final = "fnworker/function-version"
NOT_READY_TOLERATIONS: Final = (
    "node.kubernetes.io/not-ready",
    "node.alpha.kubernetes.io/notReady",
    "node.alpha.kubernetes.io/unreachable",
)


class AuthMount(msgspec.Struct, frozen=True, kw_only=True):
    """The Secret a function's pods mount at /etc/auth, and whether it holds ``ca.pem``."""

    secret_name: str
    with_ca: bool = False


def pod_annotations(function: FunctionRecord, settings: KubernetesSettings) -> dict[str, str]:
    """Prometheus scraping and the function version (a new version rolls the pods)."""
    annotations = {VERSION_ANNOTATION: str(function.version)}
    if settings.metrics_port is not None:
        annotations["prometheus.io/scrape"] = "true"
        annotations["prometheus.io/port"] = str(settings.metrics_port)
    return annotations


def pod_spec(
    function: FunctionRecord, settings: KubernetesSettings, mount: AuthMount | None
) -> dict[str, Any]:
    """The pod: one container, Pulsar's not-ready tolerations, the auth volume if any."""
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": settings.grace_period_seconds,
        "automountServiceAccountToken": False,
        "tolerations": [
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}
            for key in NOT_READY_TOLERATIONS
        ],
        "containers": [container(function, settings, mount)],
    }
    if mount is not None:
        spec["volumes"] = [{"name": AUTH_VOLUME, "secret": {"secretName": mount.secret_name}}]
    return spec


def container(
    function: FunctionRecord, settings: KubernetesSettings, mount: AuthMount | None
) -> dict[str, Any]:
    """The ``pulsarfunction`` container that runs the instance host."""
    result: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image_of(function, settings),
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python", "-m", POD_MAIN_MODULE],
        "args": pod_args(function, settings, mount),
        "env": pod_env(function, settings),
        "ports": container_ports(settings),
        "readinessProbe": readiness_probe(settings),
        "resources": resources_of(function, settings),
    }
    if mount is not None:
        result["volumeMounts"] = [{"name": AUTH_VOLUME, "mountPath": AUTH_MOUNT, "readOnly": True}]
    return result


def image_of(function: FunctionRecord, settings: KubernetesSettings) -> str:
    """functionDockerImages[runtime] when that map is set, else pulsarDockerImageName."""
    runtime = function.config.runtime or "PYTHON"
    if not settings.function_docker_images:
        return settings.pulsar_docker_image_name
    try:
        return settings.function_docker_images[runtime]
    except KeyError:
        raise ManifestError(
            f"functionRuntimeFactoryConfigs functionDockerImages has no {runtime} image; "
            f"expected a {runtime} key (it has "
            f"{', '.join(sorted(settings.function_docker_images))}) or no functionDockerImages "
            "at all, to use pulsarDockerImageName"
        ) from None


def pod_args(
    function: FunctionRecord, settings: KubernetesSettings, mount: AuthMount | None
) -> list[str]:
    """pod_main's arguments; ``$(POD_NAME)`` is expanded by the kubelet."""
    tenant, namespace, name = split_fqfn(function.fqfn)
    args = [
        "--admin-url", settings.pulsar_admin_url,
        "--service-url", settings.pulsar_service_url,
        "--tenant", tenant,
        "--namespace", namespace,
        "--name", name,
        "--function-version", str(function.version),
        "--function-create-time-ms", str(function.create_time_ms),
        "--pod-name", "$(POD_NAME)",
        "--grpc-port", str(settings.grpc_port),
        "--secrets-provider", SECRETS_PROVIDER if settings.kubernetes_secrets else "clear-text",
        "--cluster-name", settings.cluster_name,
        "--state-namespace", settings.functions_namespace,
    ]  # fmt: skip
    if settings.metrics_port is not None:
        args += ["--metrics-port", str(settings.metrics_port)]
    if mount is not None:
        args += ["--auth-token-file", f"{AUTH_MOUNT}/token"]
        if mount.with_ca:
            args += ["--tls-trust-cert-path", f"{AUTH_MOUNT}/ca.pem"]
    return args


def pod_env(function: FunctionRecord, settings: KubernetesSettings) -> list[dict[str, Any]]:
    """POD_NAME and POD_IP from the pod, PYTHONPATH, and one variable per secret."""
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PYTHONPATH", "value": settings.dependencies_dir},
    ]
    if settings.kubernetes_secrets:
        env += secret_env(function.config.secrets)
    return env


def readiness_probe(settings: KubernetesSettings) -> dict[str, Any]:
    """Ready while the instance's message loop runs (``GET /health`` on the control
    port answers 200; it refuses before the instance started, 503 after it stopped)."""
    return {
        "httpGet": {"path": "/health", "port": settings.grpc_port},
        "periodSeconds": 2,
        "timeoutSeconds": 2,
        "failureThreshold": 1,
    }


def container_ports(settings: KubernetesSettings) -> list[dict[str, Any]]:
    """The control (grpc) port and, when set, the metrics port."""
    ports = [{"name": "grpc", "containerPort": settings.grpc_port, "protocol": "TCP"}]
    if settings.metrics_port is not None:
        ports.append(
            {"name": "prometheus", "containerPort": settings.metrics_port, "protocol": "TCP"}
        )
    return ports


def resources_of(function: FunctionRecord, settings: KubernetesSettings) -> dict[str, Any]:
    """Pulsar's numbers (KubernetesRuntime): the memory limit is ram plus
    ``percentMemoryPadding`` percent rounded half up, the request that limit divided by
    ``memoryOverCommitRatio`` and truncated; cpu limit and request (cpu divided by
    ``cpuOverCommitRatio``) rounded half up to whole millicores. An ``ephemeral-storage``
    request only when the function asks for a disk other than Pulsar's default (Pulsar
    sets none)."""
    resources = function.config.resources
    cpu = resources.cpu if resources is not None and resources.cpu > 0 else 1.0
    ram = resources.ram if resources is not None and resources.ram > 0 else DEFAULT_RAM
    memory_limit = ram + java_round(ram * (settings.percent_memory_padding / 100.0))
    result: dict[str, Any] = {
        "limits": {"cpu": millicores(cpu), "memory": str(memory_limit)},
        "requests": {
            "cpu": millicores(cpu / settings.cpu_over_commit_ratio),
            "memory": str(int(memory_limit / settings.memory_over_commit_ratio)),
        },
    }
    if resources is not None and resources.disk > 0 and resources.disk != DEFAULT_DISK:
        result["requests"]["ephemeral-storage"] = str(resources.disk)
    return result


def java_round(value: float) -> int:
    """Java's ``Math.round``: half up, not Python's half to even."""
    return math.floor(value + 0.5)


def millicores(cpu: float) -> str:
    """Cores as a Kubernetes quantity in whole millicores, rounded half up (at least 1m)."""
    return f"{max(1, java_round(cpu * 1000))}m"
