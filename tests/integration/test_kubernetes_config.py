"""The shipped Kubernetes files (RBAC, worker fleet, example worker config) and
``fnworker kubernetes render``, every object validated against the 1.30 schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fnworker.scheduler.cli.main import main
from fnworker.scheduler.settings.config_loader import load_worker_config
from fnworker.scheduler.settings.worker_config import runtime_name
from tests.harness.kubernetes_schema import validate

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = ROOT / "config" / "kubernetes"
EXAMPLE = ROOT / "config" / "examples" / "kubernetes.yml"
FUNCTION = {
    "name": "Exclamation_Fn",
    "className": "exclamation_function.ExclamationFunction",
    "inputs": ["persistent://public/default/in"],
    "output": "persistent://public/default/out",
    "parallelism": 2,
    "secrets": {"PASSWORD": {"path": "db", "key": "password"}},
    "customRuntimeOptions": '{"extractLabels": {"team": "a"}, "jobNamespace": "functions"}',
}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def shipped() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted(KUBERNETES_DIR.glob("*.yml")):
        for document in documents(path):
            found[(document["kind"], document["metadata"]["name"])] = document
    return found


def test_every_shipped_object_is_valid() -> None:
    objects = shipped()
    assert len(objects) == 5
    for document in objects.values():
        validate(document)


def test_rbac_uses_v1() -> None:
    # What it grants is checked against the driver's calls in test_kubernetes_rbac.py.
    role = shipped()[("ClusterRole", "func-worker")]
    assert role["apiVersion"] == "rbac.authorization.k8s.io/v1"


def test_the_worker_runs_as_the_bound_service_account() -> None:
    objects = shipped()
    binding = objects[("ClusterRoleBinding", "func-worker")]
    deployment = objects[("Deployment", "func-worker")]
    account = objects[("ServiceAccount", "func-worker")]
    subject = binding["subjects"][0]
    assert (subject["name"], subject["namespace"]) == (
        account["metadata"]["name"],
        account["metadata"]["namespace"],
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == subject["name"]
    service = objects[("Service", "func-worker")]
    assert service["spec"]["ports"][0]["port"] == 8080


def test_the_example_config_selects_kubernetes_with_the_in_cluster_urls() -> None:
    config = load_worker_config(EXAMPLE, {}).config
    factory = config.function_runtime_factory_configs
    assert runtime_name(config) == "kubernetes"
    assert factory.pulsar_service_url == "pulsar://broker.pulsar:6650"
    assert factory.pulsar_admin_url == "http://func-worker.pulsar:8080"
    assert factory.submitting_inside_pod and factory.k8_uri is None


def render(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[dict[str, Any]]:
    function_file = tmp_path / "function.yml"
    function_file.write_text(yaml.safe_dump(FUNCTION), encoding="utf-8")
    code = main(["kubernetes", "render", "--function-config-file", str(function_file), *extra])
    assert code == 0
    return list(yaml.safe_load_all(capsys.readouterr().out))


def test_render_prints_valid_manifests_with_the_example_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = render(tmp_path, capsys, "--config", str(EXAMPLE))
    assert [o["kind"] for o in objects] == ["Service", "StatefulSet"]
    for document in objects:
        validate(document)
        assert document["metadata"]["namespace"] == "functions"
        assert document["metadata"]["labels"]["team"] == "a"
        assert document["metadata"]["labels"]["managed-by"] == "fnworker"
    container = objects[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][1] == "http://func-worker.pulsar:8080"
    assert {
        "name": "PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
    } in (container["env"])


def test_render_with_auth_prints_a_placeholder_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "worker.yml"
    config.write_text("authenticationEnabled: true\n", encoding="utf-8")
    objects = render(tmp_path, capsys, "--config", str(config))
    assert [o["kind"] for o in objects] == ["Secret", "Service", "StatefulSet"]
    for document in objects:
        validate(document)


def test_render_reports_a_bad_option_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "worker.yml"
    config.write_text(
        "functionRuntimeFactoryConfigs:\n  functionDockerImages: {JAVA: me/java}\n",
        encoding="utf-8",
    )
    function_file = tmp_path / "function.yml"
    function_file.write_text(yaml.safe_dump(FUNCTION), encoding="utf-8")
    code = main(
        [
            "kubernetes",
            "render",
            "--function-config-file",
            str(function_file),
            "--config",
            str(config),
        ]
    )
    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith(
        "error: functionRuntimeFactoryConfigs functionDockerImages has no PYTHON"
    )
    assert error.count("\n") == 1
