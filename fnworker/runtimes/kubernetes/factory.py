"""The Kubernetes driver made from a worker config, and the start-up warnings about
that config the worker logs and ``fnworker kubernetes render`` prints (both from
``kubernetes_warnings``, so they never differ). ``kubernetes_warnings`` is pure;
``from_worker_config`` builds the driver and logs them."""

from __future__ import annotations

from typing import Final

import structlog

from fnworker.runtimes.kubernetes.customizer import load_customizer
from fnworker.runtimes.kubernetes.driver import KubernetesRuntime
from fnworker.runtimes.kubernetes.settings import KubernetesSettings, settings_from_worker
from fnworker.scheduler.settings.worker_config import WorkerConfig, runtime_factory_config

PULSAR_IMAGES: Final = ("apachepulsar/pulsar", "apachepulsar/pulsar-all")
LOOPBACK_HOSTS: Final = ("localhost", "127.0.0.1", "[::1]")
DEFAULT_ADMIN_CLI: Final = "/bin/pulsar-admin"
log = structlog.get_logger("fnworker.runtime.kubernetes")


def from_worker_config(config: WorkerConfig, *, worker_id: str = "") -> KubernetesRuntime:
    """The driver for a worker config (settings, customizer, k8Uri, rate limit)."""
    factory = runtime_factory_config(config)
    settings = settings_from_worker(config)
    for warning in kubernetes_warnings(config, settings):
        log.warning(warning)
    return KubernetesRuntime(
        settings,
        k8_uri=factory.k8_uri,
        customizer=load_customizer(
            config.runtime_customizer_class_name, config.runtime_customizer_config
        ),
        requests_per_second=factory.k8_requests_per_second,
        burst=factory.k8_request_burst,
        worker_id=worker_id,
        collect_interval_seconds=float(factory.expected_metrics_collection_interval),
        in_cluster_only=factory.submitting_inside_pod and not factory.k8_uri,
    )


def kubernetes_warnings(config: WorkerConfig, settings: KubernetesSettings) -> list[str]:
    """One sentence per setting that would make function pods fail or that is ignored."""
    factory = runtime_factory_config(config)
    warnings = []
    images = [settings.pulsar_docker_image_name, *settings.function_docker_images.values()]
    for image in images:
        if image.split(":", 1)[0] in PULSAR_IMAGES:
            warnings.append(
                f"functionRuntimeFactoryConfigs image {image} is Pulsar's own image, which "
                "does not contain fnworker: function pods would crash; build fnworker's image "
                "(the repo's Dockerfile; docs/kubernetes-runtime.md, section The image) and "
                "set pulsarDockerImageName to it"
            )
    host = settings.pulsar_admin_url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    if host in LOOPBACK_HOSTS:
        warnings.append(
            f"functionRuntimeFactoryConfigs pulsarAdminUrl is {settings.pulsar_admin_url} "
            "(the worker's own address when unset): pods cannot reach a loopback address to "
            "download their package; set it to the worker's Service, e.g. "
            "http://func-worker.pulsar:8080"
        )
    for key, value in (
        ("configAdminCLI", factory.config_admin_cli not in ("", DEFAULT_ADMIN_CLI)),
        ("changeConfigMapNamespace", bool(factory.change_config_map_namespace)),
    ):
        if value:
            warnings.append(
                f"functionRuntimeFactoryConfigs {key} is ignored: fnworker's pods download "
                "their package over HTTP and the worker does not reload its settings"
            )
    return warnings
