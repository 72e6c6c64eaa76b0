"""The basic manifest customizer, option merging and plugin loading (pure)."""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from fnworker.runtimes.kubernetes.customizer import (
    BasicCustomizer,
    NoOpCustomizer,
    RuntimeOpts,
    load_customizer,
    merge_options,
    parse_options,
)
from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.scheduler.model.records import FunctionConfig, FunctionRecord, fqfn_of


def record(options: dict[str, Any] | str | None = None) -> FunctionRecord:
    text = options if isinstance(options, str) or options is None else json.dumps(options)
    config = FunctionConfig(
        tenant="public", namespace="default", name="f", custom_runtime_options=text
    )
    return FunctionRecord(fqfn=fqfn_of("public", "default", "f"), version=1, config=config)


def stateful_set() -> dict[str, Any]:
    return {
        "metadata": {"name": "x", "labels": {"name": "f"}},
        "spec": {
            "template": {
                "metadata": {"labels": {"name": "f"}},
                "spec": {"tolerations": [{"key": "k"}], "containers": [{"name": "c"}]},
            }
        },
    }


def test_every_key_is_read() -> None:
    options = parse_options(
        {
            "jobNamespace": "functions",
            "jobName": "orders",
            "extraLabels": {"team": "a"},
            "extraAnnotations": {"example.com/owner": "b c"},
            "nodeSelectorLabels": {"disk": "ssd"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "resourceRequirements": {"limits": {"cpu": "2"}, "requests": {"memory": "1Gi"}},
        },
        "customRuntimeOptions",
    )
    assert options.job_namespace == "functions" and options.job_name == "orders"
    assert options.tolerations[0].key == "gpu"
    assert options.resource_requirements is not None
    assert options.resource_requirements.requests == {"memory": "1Gi"}


def test_the_seeds_misspelling_extract_labels_is_accepted() -> None:
    options = parse_options({"extractLabels": {"a": "1", "b": "1"}, "extraLabels": {"b": "2"}}, "x")
    assert options.extra_labels == {"a": "1", "b": "2"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"jobNamespce": "x"},
            "customRuntimeOptions is not valid: Object contains unknown field `jobNamespce`",
        ),
        ({"jobNamespace": "Bad_NS"}, "jobNamespace 'Bad_NS' is not a valid Kubernetes namespace"),
        ({"extraLabels": {"team": "a b"}}, "extraLabels value 'a b' is not valid"),
        ({"nodeSelectorLabels": {"-x": "a"}}, "nodeSelectorLabels key '-x' is not valid"),
        ({"resourceRequirements": {"limits": {"gpu": "1"}}}, "limits key 'gpu' is not supported"),
        ([], "customRuntimeOptions is list; expected a JSON object"),
    ],
)
def test_bad_options_name_the_key(document: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_options(document, "customRuntimeOptions")


def test_function_options_that_are_not_json_are_one_sentence() -> None:
    with pytest.raises(ManifestError, match="^customRuntimeOptions is not valid JSON"):
        BasicCustomizer().options(record("{not json"))


def test_function_options_override_cluster_defaults() -> None:
    cluster = RuntimeOpts(
        job_namespace="cluster", extra_labels={"a": "1", "b": "1"}, tolerations=[]
    )
    function = parse_options(
        {"extraLabels": {"b": "2"}, "tolerations": [{"key": "t"}]}, "customRuntimeOptions"
    )
    merged = merge_options(cluster, function)
    assert merged.job_namespace == "cluster"
    assert merged.extra_labels == {"a": "1", "b": "2"}
    assert [t.key for t in merged.tolerations] == ["t"]


def test_resource_requirements_merge_by_key() -> None:
    cluster = parse_options(
        {"resourceRequirements": {"limits": {"cpu": "1", "memory": "1Gi"}}}, "c"
    )
    function = parse_options({"resourceRequirements": {"limits": {"cpu": "2"}}}, "f")
    merged = merge_options(cluster, function)
    assert merged.resource_requirements is not None
    assert merged.resource_requirements.limits == {"cpu": "2", "memory": "1Gi"}


def test_basic_customizer_changes_name_namespace_and_objects() -> None:
    customizer = load_customizer(
        "org.apache.pulsar.functions.runtime.kubernetes.BasicKubernetesManifestCustomizer",
        {"jobNamespace": "functions", "tolerations": [{"key": "cluster"}]},
    )
    function = record(
        {
            "jobName": "orders",
            "extraLabels": {"team": "a", "name": "ignored"},
            "extraAnnotations": {"note": "x"},
            "nodeSelectorLabels": {"disk": "ssd"},
            "tolerations": [{"key": "function"}],
            "resourceRequirements": {"limits": {"cpu": "2"}},
        }
    )
    assert customizer.customize_name(function, None) == "orders"
    assert customizer.customize_namespace(function, "default") == "functions"
    original = stateful_set()
    result = customizer.customize_stateful_set(function, original)
    assert original == stateful_set()
    assert result["metadata"]["labels"] == {"team": "a", "name": "f"}
    assert result["metadata"]["annotations"] == {"note": "x"}
    pod = result["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["spec"]["nodeSelector"] == {"disk": "ssd"}
    assert [t["key"] for t in pod["spec"]["tolerations"]] == ["k", "cluster", "function"]
    assert pod["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "2"}}
    service = customizer.customize_service(function, {"metadata": {"name": "x"}})
    assert service["metadata"]["labels"] == {"team": "a", "name": "ignored"}


def test_without_options_the_basic_customizer_keeps_the_defaults() -> None:
    customizer = load_customizer(None, {})
    assert customizer.customize_name(record(), "factory-name") == "factory-name"
    assert customizer.customize_namespace(record(""), "default") == "default"
    assert customizer.customize_stateful_set(record(), stateful_set()) == stateful_set()


class GpuCustomizer(NoOpCustomizer):
    """A plugin that only changes the StatefulSet, returning a new object."""

    def initialize(self, config: Any) -> None:
        self.gpus = config["gpus"]

    def customize_stateful_set(
        self, function: FunctionRecord, stateful_set: dict[str, Any]
    ) -> dict[str, Any]:
        return {**stateful_set, "gpus": self.gpus}


def test_a_plugin_is_loaded_by_dotted_path_and_initialized(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("my_customizers")
    module.GpuCustomizer = GpuCustomizer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "my_customizers", module)
    for path in ("my_customizers.GpuCustomizer", "my_customizers:GpuCustomizer"):
        customizer = load_customizer(path, {"gpus": 2})
        assert customizer.customize_stateful_set(record(), {})["gpus"] == 2


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_module.Customizer", "cannot be loaded"),
        ("json.NoSuchClass", "cannot be loaded"),
        ("json.JSONDecoder", "is not a manifest customizer"),
    ],
)
def test_a_bad_plugin_path_is_one_sentence(path: str, message: str) -> None:
    with pytest.raises(ManifestError, match=f"^runtimeCustomizerClassName '{path}' {message}"):
        load_customizer(path, {})
