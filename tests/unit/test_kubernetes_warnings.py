"""The start-up warnings of the Kubernetes runtime: the worker logs and ``fnworker
kubernetes render`` prints the same sentences (kubernetes_warnings)."""

from __future__ import annotations

import argparse
from pathlib import Path

import msgspec
import pytest
import yaml

from fnworker.runtimes.kubernetes.factory import kubernetes_warnings
from fnworker.runtimes.kubernetes.settings import settings_from_worker
from fnworker.scheduler.cli.kubernetes_commands import render_command
from fnworker.scheduler.settings.worker_config import WorkerConfig


def warnings_of(factory: dict[str, object], **worker: object) -> list[str]:
    config = msgspec.convert({"functionRuntimeFactoryConfigs": factory, **worker}, WorkerConfig)
    return kubernetes_warnings(config, settings_from_worker(config))


def test_a_good_config_has_no_warning() -> None:
    assert (
        warnings_of(
            {"pulsarDockerImageName": "registry/fnworker:1", "pulsarAdminUrl": "http://w.ns:8080"}
        )
        == []
    )


def test_pulsars_own_image_and_a_loopback_admin_url_are_named() -> None:
    found = warnings_of({"pulsarDockerImageName": "apachepulsar/pulsar:3.1.0"})
    assert any(w.startswith("functionRuntimeFactoryConfigs image apachepulsar/pulsar:3.1.0 is "
                            "Pulsar's own image") for w in found)  # fmt: skip
    assert any("pulsarAdminUrl is http://localhost:6750" in w for w in found)


def test_ignored_keys_are_named() -> None:
    found = warnings_of(
        {
            "pulsarDockerImageName": "registry/fnworker:1",
            "pulsarAdminUrl": "http://w.ns:8080",
            "configAdminCLI": "/opt/pulsar/bin/pulsar-admin",
            "changeConfigMapNamespace": "ops",
        }
    )
    assert [w.split(" is ignored")[0] for w in found] == [
        "functionRuntimeFactoryConfigs configAdminCLI",
        "functionRuntimeFactoryConfigs changeConfigMapNamespace",
    ]


def test_render_prints_the_warnings_the_worker_would_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "worker.yml"
    config.write_text(yaml.safe_dump({"functionRuntimeFactoryConfigs": {"jobNamespace": "f"}}))
    function = tmp_path / "f.yml"
    function.write_text(yaml.safe_dump({"name": "f", "className": "m.F", "inputs": ["in"]}))
    args = argparse.Namespace(config=str(config), function_config_file=str(function))
    rendered = render_command(args, {})
    assert "kind: StatefulSet" in rendered
    err = capsys.readouterr().err
    assert (
        err.count("warning: ") == len(warnings_of({"jobNamespace": "f"}))
        and err.count("warning: ") >= 1
    )
