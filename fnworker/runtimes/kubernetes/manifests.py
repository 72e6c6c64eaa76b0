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
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from fnworker.runtimes.kubernetes import names
from fnworker.runtimes.kubernetes.customizer import ManifestCustomizer, NoOpCustomizer
from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.secrets import (
    SECRETS_PROVIDER,
    secret_env,
    selects_kubernetes_secrets,
)
from fnworker.scheduler.model.records import FunctionRecord, split_fqfn
from fnworker.scheduler.settings.worker_config import (
    RuntimeFactoryConfig,
    WorkerConfig,
    broker_client_settings,
    runtime_factory_config,
    worker_web_address,
)

POD_MAIN_MODULE: Final = "fnworker.runtimes.kubernetes.pod_main"
CONTAINER_NAME: Final = "pulsarfunction"
DEFAULT_RAM: Final = 1_073_741_824
AUTH_VOLUME: Final = "function-auth"
AUTH_MOUNT: Final = "/etc/auth"
VERSION_ANNOTATION: Final = "fnworker/function-version"
FQFN_ANNOTATION: Final = "fnworker/fqfn"
NOT_READY_TOLERATIONS: Final = (
    "node.kubernetes.io/not-ready",
    "node.alpha.kubernetes.io/notReady",
    "node.alpha.kubernetes.io/unreachable",
)


class KubernetesSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The runtime settings the manifests need, defaults resolved from the worker config."""

    job_namespace: str = "default"
    job_name: str | None = None
    pulsar_docker_image_name: str = "apachepulsar/pulsar"
    function_docker_images: dict[str, str] = {}
    image_pull_policy: str = "IfNotPresent"
    custom_labels: dict[str, str] = {}
    percent_memory_padding: int = 10
    cpu_over_commit_ratio: float = 1.0
    memory_over_commit_ratio: float = 1.0
    grpc_port: int = 9093
    metrics_port: int | None = 9094
    grace_period_seconds: int = 5
    pulsar_service_url: str = "pulsar://localhost:6650"
    pulsar_admin_url: str = "http://localhost:6750"
    dependencies_dir: str = "/pulsar/instances/deps"
    kubernetes_secrets: bool = False
    """True when secretsProviderConfiguratorClassName selects the Kubernetes configurator."""


@dataclasses.dataclass(frozen=True)
class AuthMaterial:
    """What a function's pods authenticate with: the token (never printed) and the CA."""

    token: str = dataclasses.field(repr=False)
    ca_pem: bytes | None = dataclasses.field(default=None, repr=False)


class AuthMount(msgspec.Struct, frozen=True, kw_only=True):
    """The Secret a function's pods mount at /etc/auth, and whether it holds ``ca.pem``."""

    secret_name: str
    with_ca: bool = False


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


UNSUPPORTED_KEYS: Final = {
    "change_config_map": "changeConfigMap is not supported (fnworker does not rewrite its "
    "settings at run time); remove it and restart the worker with the new settings",
    "install_user_code_dependencies": "installUserCodeDependencies is not supported yet; "
    "remove it and ship dependencies in the function's .zip or .whl",
    "python_dependency_repository": "pythonDependencyRepository is not supported yet; remove "
    "it and ship dependencies in the function's .zip or .whl",
    "python_extra_dependency_repository": "pythonExtraDependencyRepository is not supported "
    "yet; remove it and ship dependencies in the function's .zip or .whl",
    "nar_extraction_directory": "narExtractionDirectory applies to Java functions only, which "
    "fnworker does not run; remove it",
    "function_instance_class_path": "functionInstanceClassPath applies to Java functions only, "
    "which fnworker does not run; remove it",
}


def check_factory(factory: RuntimeFactoryConfig) -> None:
    """Raise ManifestError for a Kubernetes key fnworker does not implement."""
    for attribute, sentence in UNSUPPORTED_KEYS.items():
        if getattr(factory, attribute):
            raise ManifestError(f"functionRuntimeFactoryConfigs {sentence}")


def settings_from_worker(config: WorkerConfig) -> KubernetesSettings:
    """KubernetesSettings from the worker config (its own URLs when the factory sets none)."""
    factory = runtime_factory_config(config)
    check_factory(factory)
    names.check_namespace("functionRuntimeFactoryConfigs jobNamespace", factory.job_namespace)
    for key in factory.custom_labels:
        names.check_label_key("functionRuntimeFactoryConfigs customLabels", key)
    return KubernetesSettings(
        job_namespace=factory.job_namespace,
        job_name=factory.job_name,
        pulsar_docker_image_name=factory.pulsar_docker_image_name,
        function_docker_images=dict(factory.function_docker_images),
        image_pull_policy=factory.image_pull_policy,
        custom_labels=dict(factory.custom_labels),
        percent_memory_padding=factory.percent_memory_padding,
        cpu_over_commit_ratio=factory.cpu_over_commit_ratio,
        memory_over_commit_ratio=factory.memory_over_commit_ratio,
        grpc_port=factory.grpc_port,
        metrics_port=factory.metrics_port,
        grace_period_seconds=factory.grace_period_seconds,
        pulsar_service_url=factory.pulsar_service_url or broker_client_settings(config).service_url,
        pulsar_admin_url=factory.pulsar_admin_url or worker_web_address(config),
        dependencies_dir=dependencies_dir(factory),
        kubernetes_secrets=selects_kubernetes_secrets(
            config.secrets_provider_configurator_class_name
        ),
    )


def dependencies_dir(factory: RuntimeFactoryConfig) -> str:
    """extraFunctionDependenciesDir made absolute under pulsarRootDir (default instances/deps)."""
    given = factory.extra_function_dependencies_dir or "instances/deps"
    if given.startswith("/"):
        return given
    return f"{factory.pulsar_root_dir.rstrip('/')}/{given}"


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
    selector = selector_labels(function, job)
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


def selector_labels(function: FunctionRecord, job: str) -> dict[str, str]:
    """Pulsar's tenant, namespace, name and component labels plus the unique job label."""
    tenant, namespace, name = split_fqfn(function.fqfn)
    return {
        "tenant": names.label_value(tenant),
        "namespace": names.label_value(namespace),
        "name": names.label_value(name),
        "component": "function",
        names.JOB_LABEL: job,
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
            "annotations": {FQFN_ANNOTATION: function.fqfn},
        },
        "spec": {
            "serviceName": job,
            "replicas": function.parallelism(),
            "podManagementPolicy": "Parallel",
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
        "--pod-name", "$(POD_NAME)",
        "--grpc-port", str(settings.grpc_port),
        "--secrets-provider", SECRETS_PROVIDER if settings.kubernetes_secrets else "clear-text",
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
    """Limits from the function's resources plus memory padding; requests over-committed."""
    resources = function.config.resources
    cpu = resources.cpu if resources is not None and resources.cpu > 0 else 1.0
    ram = resources.ram if resources is not None and resources.ram > 0 else DEFAULT_RAM
    memory_limit = ram * (100 + settings.percent_memory_padding) // 100
    result: dict[str, Any] = {
        "limits": {"cpu": millicores(cpu), "memory": str(memory_limit)},
        "requests": {
            "cpu": millicores(round(cpu / settings.cpu_over_commit_ratio, 3)),
            "memory": str(int(memory_limit / settings.memory_over_commit_ratio)),
        },
    }
    if resources is not None and resources.disk > 0:
        result["requests"]["ephemeral-storage"] = str(resources.disk)
    return result


def millicores(cpu: float) -> str:
    """Cores as a Kubernetes quantity in millicores (at least 1m)."""
    return f"{max(1, round(cpu * 1000))}m"


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
