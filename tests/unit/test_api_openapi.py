"""The OpenAPI document: built from the route table, every route present, every
reference resolvable, schemas in the records' camelCase names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from fnworker.scheduler.api.app import ALL_ROUTES, openapi_bytes

FUNCTION = "/admin/v3/functions/{tenant}/{namespace}/{functionName}"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(openapi_bytes())


def refs(node: Any) -> Iterator[str]:
    """Every $ref in a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_it_is_openapi_3_1_with_every_route(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    for route in ALL_ROUTES:
        assert route.method.lower() in document["paths"][route.path], route.path
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert len(operations) == len(ALL_ROUTES)
    assert len({op["operationId"] for op in operations}) == len(operations)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    found = set(refs(document))
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas


def test_path_parameters_match_the_path(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        expected = re.findall(r"\{(\w+)\}", path)
        for operation in item.values():
            parameters = operation.get("parameters", [])
            assert [p["name"] for p in parameters if p["in"] == "path"] == expected


def test_register_takes_a_multipart_function_config_and_package(document: dict[str, Any]) -> None:
    body = document["paths"][FUNCTION]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["functionConfig"]
    assert set(body["schema"]["properties"]) == {"functionConfig", "data", "url"}
    assert body["encoding"]["functionConfig"]["contentType"] == "application/json"
    assert set(document["paths"][FUNCTION]["post"]["responses"]) >= {"200", "400", "409", "413"}


def test_schemas_use_pulsars_field_names(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert {"className", "inputs", "processingGuarantees", "autoAck"} <= set(
        schemas["FunctionConfig"]["properties"]
    )
    assert {"numInstances", "numRunning", "instances"} <= set(
        schemas["FunctionStatus"]["properties"]
    )
    assert schemas["ErrorReply"]["required"] == ["reason"]


def test_status_answers_reference_the_status_records(document: dict[str, Any]) -> None:
    ok = document["paths"][f"{FUNCTION}/status"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FunctionStatus"
    }


def test_the_document_passes_the_openapi_validator(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)
