"""Rendering a function's StatefulSet, Service and Secret (pure), every object
validated against the Kubernetes 1.30 schemas in strict mode."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import kubernetes_validate
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnworker.runtimes.kubernetes import manifests
from fnworker.runtimes.kubernetes.customizer import BasicCustomizer, NoOpCustomizer, load_customizer
from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.manifests import AuthMaterial, render
from fnworker.runtimes.kubernetes.names import JOB_LABEL
from fnworker.runtimes.kubernetes.pod_template import VERSION_ANNOTATION
from fnworker.runtimes.kubernetes.settings import KubernetesSettings, settings_from_worker
from fnworker.scheduler.model.records import (
    FunctionAuthSpec,
    FunctionConfig,
    FunctionRecord,
    Resources,
    fqfn_of,
)
from fnworker.scheduler.settings.worker_config import WorkerConfig
from tests.harness.kubernetes_schema import validate

TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXN1YmplY3Q.signature"


def function(**fields: Any) -> FunctionRecord:
    name = fields.pop("name", "exclamation")
    version = fields.pop("version", 1)
    config = FunctionConfig(tenant="public", namespace="default", name=name, **fields)
    return FunctionRecord(fqfn=fqfn_of("public", "default", name), version=version, config=config)


def rendered(record: FunctionRecord | None = None, **settings: Any) -> manifests.RenderedJob:
    job = render(record or function(), KubernetesSettings(**settings))
    for manifest in job.objects():
        validate(manifest)
    return job


def pod(job: manifests.RenderedJob) -> dict[str, Any]:
    return job.stateful_set["spec"]["template"]  # type: ignore[no-any-return]


def main_container(job: manifests.RenderedJob) -> dict[str, Any]:
    return pod(job)["spec"]["containers"][0]  # type: ignore[no-any-return]


def test_stateful_set_has_one_pod_per_instance_started_in_parallel() -> None:
    job = rendered(function(parallelism=3))
    spec = job.stateful_set["spec"]
    assert job.name == "pf-public-default-exclamation" and job.namespace == "default"
    assert spec["replicas"] == 3 and spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == job.name
    assert spec["selector"]["matchLabels"] == pod(job)["metadata"]["labels"]


def test_stateful_set_rolls_one_pod_at_a_time_on_update() -> None:
    spec = rendered(function(parallelism=3)).stateful_set["spec"]
    assert spec["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"partition": 0},
    }
    assert spec["minReadySeconds"] == 0
    assert (
        pod(rendered())["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/health"
    )


def test_service_is_headless_with_the_grpc_port() -> None:
    job = rendered(grpc_port=7000)
    assert job.service["metadata"]["name"] == job.name
    assert job.service["spec"]["clusterIP"] == "None"
    assert job.service["spec"]["ports"] == [{"name": "grpc", "port": 7000, "protocol": "TCP"}]
    assert job.service["spec"]["selector"] == job.stateful_set["spec"]["selector"]["matchLabels"]


def test_labels_carry_the_function_and_custom_labels() -> None:
    job = rendered(function(name="Ex_cl"), custom_labels={"team": "Data Eng", "component": "x"})
    labels = job.stateful_set["metadata"]["labels"]
    assert labels == {
        "team": "data-eng",
        "tenant": "public",
        "namespace": "default",
        "name": "ex_cl",
        "component": "function",
        JOB_LABEL: job.name,
        "fnworker/cluster": "standalone",
    }
    assert "team" not in job.stateful_set["spec"]["selector"]["matchLabels"]
    assert job.service["metadata"]["labels"] == labels


def test_resources_pad_memory_limits_and_over_commit_requests() -> None:
    record = function(resources=Resources(cpu=0.5, ram=1_000_000_000, disk=2_000_000_000))
    job = rendered(
        record, percent_memory_padding=10, cpu_over_commit_ratio=2.0, memory_over_commit_ratio=4.0
    )
    assert main_container(job)["resources"] == {
        "limits": {"cpu": "500m", "memory": "1100000000"},
        "requests": {"cpu": "250m", "memory": "275000000", "ephemeral-storage": "2000000000"},
    }


def test_resources_default_to_one_core_and_one_gib_padded_by_ten_percent() -> None:
    resources = main_container(rendered())["resources"]
    assert resources["limits"] == {"cpu": "1000m", "memory": str(int(1024**3 * 1.1))}
    unpadded = main_container(rendered(percent_memory_padding=0))["resources"]
    assert unpadded["limits"] == {"cpu": "1000m", "memory": str(1024**3)}


def test_image_comes_from_function_docker_images_then_the_pulsar_image() -> None:
    assert main_container(rendered(pulsar_docker_image_name="me/fnworker:1"))["image"] == (
        "me/fnworker:1"
    )
    job = rendered(function_docker_images={"PYTHON": "me/python:2"}, image_pull_policy="Always")
    assert main_container(job)["image"] == "me/python:2"
    assert main_container(job)["imagePullPolicy"] == "Always"


def test_function_docker_images_without_the_runtime_key_is_an_error_not_a_null_image() -> None:
    with pytest.raises(ManifestError, match="functionDockerImages has no PYTHON image; expected"):
        rendered(function_docker_images={"JAVA": "me/java"})


def test_pod_boots_the_instance_host_which_downloads_from_the_worker() -> None:
    job = rendered(
        function(version=7),
        pulsar_admin_url="http://func-worker.pulsar:8080",
        pulsar_service_url="pulsar://broker.pulsar:6650",
    )
    container = main_container(job)
    assert container["command"] == ["python", "-m", "fnworker.runtimes.kubernetes.pod_main"]
    args = container["args"]
    pairs = dict(zip(args[::2], args[1::2], strict=False))
    assert pairs["--admin-url"] == "http://func-worker.pulsar:8080"
    assert pairs["--service-url"] == "pulsar://broker.pulsar:6650"
    assert (pairs["--tenant"], pairs["--namespace"], pairs["--name"]) == (
        "public",
        "default",
        "exclamation",
    )
    assert pairs["--pod-name"] == "$(POD_NAME)"
    assert pairs["--function-version"] == "7"
    assert container["env"][0] == {
        "name": "POD_NAME",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
    }
    assert pod(job)["metadata"]["annotations"][VERSION_ANNOTATION] == "7"


def test_a_new_version_changes_the_pod_template_so_pods_roll() -> None:
    assert pod(rendered(function(version=1))) != pod(rendered(function(version=2)))


def test_ports_and_prometheus_annotations_follow_the_metrics_port() -> None:
    job = rendered(grpc_port=9000, metrics_port=9001)
    assert [p["containerPort"] for p in main_container(job)["ports"]] == [9000, 9001]
    assert pod(job)["metadata"]["annotations"]["prometheus.io/port"] == "9001"
    job = rendered(metrics_port=None)
    assert [p["name"] for p in main_container(job)["ports"]] == ["grpc"]
    assert "prometheus.io/scrape" not in pod(job)["metadata"]["annotations"]


def test_pods_are_ready_while_the_instance_health_endpoint_answers() -> None:
    container = main_container(rendered(grpc_port=9000))
    probe = container["readinessProbe"]
    assert probe["httpGet"] == {"path": "/health", "port": 9000}
    env = {e["name"]: e.get("valueFrom") for e in container["env"]}
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_a_record_naming_its_token_secret_mounts_it_without_rendering_it() -> None:
    record = msgspec.structs.replace(
        function(), auth=FunctionAuthSpec(secret_name="pf-public-default-exclamation-auth")
    )
    job = rendered(record)
    assert job.secret is None and job.auth_secret_name == "pf-public-default-exclamation-auth"
    assert [o["kind"] for o in job.objects()] == ["Service", "StatefulSet"]
    volume = pod(job)["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == "pf-public-default-exclamation-auth"
    args = main_container(job)["args"]
    assert "/etc/auth/token" in args and "--tls-trust-cert-path" not in args


def test_secrets_become_env_only_with_the_kubernetes_configurator() -> None:
    record = function(secrets={"PW": {"path": "db", "key": "password"}})
    names = [e["name"] for e in main_container(rendered(record, kubernetes_secrets=True))["env"]]
    assert "PW" in names
    assert "--secrets-provider" in main_container(rendered(record, kubernetes_secrets=True))["args"]
    assert "PW" not in [e["name"] for e in main_container(rendered(record))["env"]]


def test_token_auth_adds_a_secret_mounted_read_only_and_never_plain() -> None:
    job = render(function(), KubernetesSettings(), auth=AuthMaterial(TOKEN, b"-----CA-----"))
    for manifest in job.objects():
        validate(manifest)
    assert job.secret is not None
    assert [o["kind"] for o in job.objects()] == ["Secret", "Service", "StatefulSet"]
    assert base64.b64decode(job.secret["data"]["token"]).decode() == TOKEN
    assert base64.b64decode(job.secret["data"]["ca.pem"]) == b"-----CA-----"
    assert TOKEN not in json.dumps(job.objects())
    assert TOKEN not in repr(AuthMaterial(TOKEN))
    volume = pod(job)["spec"]["volumes"][0]
    assert volume["secret"]["secretName"] == job.secret["metadata"]["name"]
    assert main_container(job)["volumeMounts"][0]["readOnly"] is True
    assert "/etc/auth/ca.pem" in main_container(job)["args"]


def test_without_a_ca_the_pod_is_not_told_to_trust_one() -> None:
    job = render(function(), KubernetesSettings(), auth=AuthMaterial(TOKEN))
    assert "ca.pem" not in job.secret["data"]  # type: ignore[index]
    assert "--tls-trust-cert-path" not in main_container(job)["args"]


def test_basic_customizer_options_apply_and_validate() -> None:
    options = {
        "jobNamespace": "functions",
        "jobName": "orders",
        "extractLabels": {"team": "a"},
        "extraAnnotations": {"example.com/owner": "data team"},
        "nodeSelectorLabels": {"disk": "ssd"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "resourceRequirements": {"limits": {"cpu": "2"}, "requests": {"memory": "512Mi"}},
    }
    record = function(custom_runtime_options=json.dumps(options))
    job = render(record, KubernetesSettings(), load_customizer(None, {}))
    for manifest in job.objects():
        validate(manifest)
    assert job.namespace == "functions" and job.name.startswith("orders-")
    assert job.stateful_set["metadata"]["namespace"] == "functions"
    assert job.service["metadata"]["labels"]["team"] == "a"
    spec = pod(job)["spec"]
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"][-1]["key"] == "gpu"
    assert spec["containers"][0]["resources"]["limits"]["cpu"] == "2"
    assert spec["containers"][0]["resources"]["requests"]["memory"] == "512Mi"


def test_factory_job_name_is_used_and_hashed() -> None:
    job = rendered(job_name="shared")
    assert job.name.startswith("shared-") and len(job.name) == len("shared-") + 8


class RenamingCustomizer(NoOpCustomizer):
    """Returns new objects with another name: the name is forced back."""

    def customize_service(
        self, function: FunctionRecord, service: dict[str, Any]
    ) -> dict[str, Any]:
        return {**service, "metadata": {**service["metadata"], "name": "other"}}

    def customize_stateful_set(
        self, function: FunctionRecord, stateful_set: dict[str, Any]
    ) -> dict[str, Any]:
        result = json.loads(json.dumps(stateful_set))
        result["metadata"]["name"] = "other"
        result["spec"]["template"]["spec"]["priorityClassName"] = "high"
        return result  # type: ignore[no-any-return]


def test_a_customizers_returned_objects_are_used_but_keep_the_job_name() -> None:
    job = render(function(), KubernetesSettings(), RenamingCustomizer())
    assert job.service["metadata"]["name"] == job.name
    assert job.stateful_set["metadata"]["name"] == job.name
    assert pod(job)["spec"]["priorityClassName"] == "high"


def test_strict_schema_rejects_an_unknown_field() -> None:
    job = rendered()
    broken = json.loads(json.dumps(job.stateful_set))
    broken["spec"]["replicaz"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def worker(document: dict[str, Any]) -> WorkerConfig:
    return msgspec.convert(document, WorkerConfig)


def test_settings_default_to_the_workers_own_urls() -> None:
    settings = settings_from_worker(
        worker({"pulsarServiceUrl": "pulsar://b:6650", "workerHostname": "w", "workerPort": 6750})
    )
    assert settings.pulsar_service_url == "pulsar://b:6650"
    assert settings.pulsar_admin_url == "http://w:6750"
    assert settings.dependencies_dir == "/pulsar/instances/deps"
    assert settings.kubernetes_secrets is False


def test_settings_take_the_factory_keys() -> None:
    settings = settings_from_worker(
        worker(
            {
                "secretsProviderConfiguratorClassName": "org.apache.pulsar.functions."
                "secretsproviderconfigurator.KubernetesSecretsProviderConfigurator",
                "functionRuntimeFactoryConfigs": {
                    "pulsarServiceUrl": "pulsar://broker.pulsar:6650",
                    "pulsarAdminUrl": "http://func-worker.pulsar:8080",
                    "pulsarRootDir": "/opt/pulsar",
                    "extraFunctionDependenciesDir": "deps",
                    "jobNamespace": "functions",
                    "percentMemoryPadding": 10,
                },
            }
        )
    )
    assert settings.pulsar_admin_url == "http://func-worker.pulsar:8080"
    assert settings.dependencies_dir == "/opt/pulsar/deps"
    assert settings.job_namespace == "functions" and settings.percent_memory_padding == 10
    assert settings.kubernetes_secrets is True


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        ({"changeConfigMap": "cm"}, "changeConfigMap is not supported"),
        ({"installUserCodeDependencies": True}, "installUserCodeDependencies is not supported"),
        ({"narExtractionDirectory": "/tmp"}, "narExtractionDirectory applies to Java"),
        ({"jobNamespace": "Bad"}, "jobNamespace 'Bad' is not a valid Kubernetes namespace"),
        ({"customLabels": {"-bad": "x"}}, "customLabels key '-bad' is not valid"),
    ],
)
def test_unsupported_or_invalid_factory_keys_are_rejected(
    factory: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        settings_from_worker(worker({"functionRuntimeFactoryConfigs": factory}))


def test_basic_customizer_class_is_the_default() -> None:
    assert isinstance(load_customizer("basic", {}), BasicCustomizer)


def pulsar_resources(
    cpu: float, ram: int, padding: int, cpu_ratio: float, memory_ratio: float
) -> dict[str, dict[str, str]]:
    """Pulsar's KubernetesRuntime numbers, re-derived for this test from its docs and
    code: Java doubles are IEEE doubles as Python's are; Java's Math.round is half up
    (floor(x + 0.5)); a (long) cast truncates; roundDecimal(x, 3) is
    Math.round(x * 1000) / 1000, which as a quantity is Math.round(x * 1000) millicores."""
    padded = ram + math.floor(ram * (padding / 100.0) + 0.5)
    return {
        "limits": {"cpu": f"{math.floor(cpu * 1000 + 0.5)}m", "memory": str(padded)},
        "requests": {
            "cpu": f"{math.floor(cpu / cpu_ratio * 1000 + 0.5)}m",
            "memory": str(math.trunc(padded / memory_ratio)),
        },
    }


def test_resources_match_pulsars_numbers_on_the_issue_example() -> None:
    record = function(resources=Resources(cpu=0.5, ram=256 * 1024**2))
    job = rendered(
        record, percent_memory_padding=10, cpu_over_commit_ratio=2.0, memory_over_commit_ratio=1.5
    )
    assert main_container(job)["resources"] == {
        "limits": {"cpu": "500m", "memory": "295279002"},
        "requests": {"cpu": "250m", "memory": "196852668"},
    }


@given(
    cpu=st.integers(1, 64_000).map(lambda m: m / 1000) | st.floats(0.001, 64),
    ram=st.integers(1, 256 * 1024**3),
    padding=st.integers(0, 100),
    cpu_ratio=st.sampled_from([1.0, 1.5, 2.0, 3.0, 4.0, 2.5]),
    memory_ratio=st.sampled_from([1.0, 1.5, 2.0, 3.0, 1.1]),
)
def test_resources_equal_pulsars_for_any_input(
    cpu: float, ram: int, padding: int, cpu_ratio: float, memory_ratio: float
) -> None:
    record = function(resources=Resources(cpu=cpu, ram=ram))
    job = rendered(
        record,
        percent_memory_padding=padding,
        cpu_over_commit_ratio=cpu_ratio,
        memory_over_commit_ratio=memory_ratio,
    )
    expected = pulsar_resources(cpu, ram, padding, cpu_ratio, memory_ratio)
    if expected["requests"]["cpu"] == "0m":
        expected["requests"]["cpu"] = "1m"  # deliberate: Kubernetes has no 0.0004 cores
    assert main_container(job)["resources"] == expected


def test_no_ephemeral_storage_is_asked_for_when_the_function_sets_no_disk() -> None:
    record = function(resources=Resources(cpu=0.5, ram=1024**3))
    assert "ephemeral-storage" not in main_container(rendered(record))["resources"]["requests"]
