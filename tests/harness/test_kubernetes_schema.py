"""tests/harness/kubernetes_schema.py caches one validator per (apiVersion, kind) and must still
judge every object as ``kubernetes_validate.validate(..., "1.30.0", strict=True)`` does."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from fnworker.runtimes.kubernetes.manifests import render
from fnworker.runtimes.kubernetes.settings import KubernetesSettings
from fnworker.scheduler.model.records import FunctionConfig, FunctionRecord, fqfn_of
from tests.harness import kubernetes_schema
from tests.harness.kubernetes_schema import validate


def stateful_set() -> dict[str, Any]:
    record = FunctionRecord(
        fqfn=fqfn_of("public", "default", "cached"),
        version=1,
        config=FunctionConfig(tenant="public", namespace="default", name="cached", parallelism=2),
    )
    return copy.deepcopy(render(record, KubernetesSettings()).stateful_set)


def library_error(manifest: dict[str, Any]) -> kubernetes_validate.ValidationError:
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        kubernetes_validate.validate(manifest, kubernetes_schema.KUBERNETES_VERSION, strict=True)
    return caught.value


def test_a_valid_stateful_set_passes_and_its_validator_is_built_once() -> None:
    validate(stateful_set())
    before = kubernetes_schema._validator.cache_info()
    validate(stateful_set())
    validate(stateful_set())
    after = kubernetes_schema._validator.cache_info()
    assert after.hits == before.hits + 2 and after.misses == before.misses
    assert kubernetes_schema._validator("apps/v1", "StatefulSet") is kubernetes_schema._validator(
        "apps/v1", "StatefulSet"
    )


def test_the_cached_validator_rejects_an_unknown_field_as_the_library_does() -> None:
    validate(stateful_set())  # the validator is cached before the bad bodies come
    broken = stateful_set()
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        validate(broken)
    expected = library_error(broken)
    assert caught.value.message == expected.message
    assert list(caught.value.path) == list(expected.path)
    assert "imagePullPolicyy" in caught.value.message
    assert caught.value.version == expected.version == "1.30"


def test_the_cached_validator_rejects_a_wrong_type_as_the_library_does() -> None:
    validate(stateful_set())
    broken = stateful_set()
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError) as caught:
        validate(broken)
    expected = library_error(broken)
    assert (caught.value.message, list(caught.value.path)) == (
        expected.message,
        list(expected.path),
    )
    assert list(caught.value.path) == ["spec", "replicas"]


def test_a_valid_body_after_an_invalid_one_still_passes() -> None:
    broken = stateful_set()
    broken["metadata"]["labels"] = {"app": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    validate(stateful_set())


def test_other_kinds_and_unknown_kinds() -> None:
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"clusterIP": "None", "selector": {"app": "s"}, "ports": [{"port": 9093}]},
    }
    validate(service)
    service["spec"]["ports"][0]["port"] = "9093"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(service)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})
