"""The Kubernetes runtime's settings: ``KubernetesSettings`` resolved from the worker
config, and the factory keys fnworker refuses with a sentence. Pure, no I/O."""

from __future__ import annotations

from typing import Final

import msgspec

from fnworker.runtimes.kubernetes import names
from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.secrets import selects_kubernetes_secrets
from fnworker.scheduler.settings.worker_config import (
    DEFAULT_FUNCTION_IMAGE,
    RuntimeFactoryConfig,
    WorkerConfig,
    broker_client_settings,
    runtime_factory_config,
    worker_web_address,
)


class KubernetesSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The runtime settings the manifests need, defaults resolved from the worker config."""

    job_namespace: str = "default"
    job_name: str | None = None
    pulsar_docker_image_name: str = DEFAULT_FUNCTION_IMAGE
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
    functions_namespace: str = "public/functions"
    """The cluster's pulsarFunctionsNamespace: where the pods keep function state."""
    cluster_name: str = "standalone"
    kubernetes_secrets: bool = False
    """True when secretsProviderConfiguratorClassName selects the Kubernetes configurator."""


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
        functions_namespace=config.pulsar_functions_namespace,
        cluster_name=config.pulsar_functions_cluster,
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
