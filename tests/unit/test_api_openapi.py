"""The OpenAPI document: built from the route table, every route present, every
reference resolvable, schemas in the records' camelCase names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnworker.scheduler.api.app import ALL_ROUTES, openapi_bytes
from fnworker.scheduler.api.function_forms import decoded_config as decode_function_config
from fnworker.scheduler.api.openapi import build_document
from fnworker.scheduler.api.openapi_constraints import SchemaBounds, name_schema, topic_schema
from fnworker.scheduler.decide.admission_limits import FunctionLimits
from fnworker.scheduler.decide.function_validation import complete_function_config
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.names import check_name, is_valid_topic

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


# --- the document admits what the worker accepts ----------------------------------------


def validator(document: dict[str, Any], name: str) -> Any:
    """A JSON Schema validator (ECMA regexes, as schemathesis reads them) for a component."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = {**document["components"]["schemas"][name], "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


NAME_ALPHABET = st.sampled_from(list("ab.-_=:/ %\x00é\u00a0\t") + ["..", "xyz"])


@settings(max_examples=300, deadline=None)
@given(value=st.lists(NAME_ALPHABET, max_size=6).map("".join))
def test_the_name_pattern_is_the_workers_rule(value: str) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    accepted_by_document = jsonschema_rs.validator_for(name_schema()).is_valid(value)
    try:
        check_name("tenant", value)
        accepted_by_worker = True
    except ApiError:
        accepted_by_worker = False
    assert accepted_by_document == accepted_by_worker, value


TOPIC_PARTS = st.sampled_from(
    ["a", "b.c", "..", ".", "", " ", "persistent://", "non-persistent://", "x://", "/", "é", "\t"]
)


@settings(max_examples=400, deadline=None)
@given(value=st.lists(TOPIC_PARTS, max_size=7).map("".join))
def test_the_topic_pattern_is_the_workers_rule(value: str) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    accepted_by_document = jsonschema_rs.validator_for(topic_schema()).is_valid(value)
    assert accepted_by_document == is_valid_topic(value), value


def worker_accepts(config: dict[str, Any], limits: FunctionLimits) -> bool:
    try:
        decoded = decode_function_config(json.dumps(config).encode())
        complete_function_config("public", "default", "f", decoded, limits)
    except ApiError:
        return False
    return True


BASE_CONFIG = {"className": "m.C", "inputs": ["in"]}
CONFIGS = [
    {},
    {"parallelism": 7},
    {"parallelism": 8},
    {"parallelism": 0},
    {"className": "1x"},
    {"className": None},
    {"inputs": []},
    {"inputs": [], "topicsPattern": "in-.*"},
    {"inputs": [], "inputSpecs": {"a": {"receiverQueueSize": 5}}},
    {"inputSpecs": {"a": {"receiverQueueSize": -1}}},
    {"inputSpecs": {"a": {"schemaType": "JSON", "serdeClassName": "x.Y"}}},
    {"inputSpecs": {"a": {"cryptoConfig": {}}}},
    {"inputs": ["a", "b", "c", "d", "e"]},
    {"runtime": "JAVA"},
    {"jar": "x.jar"},
    {"windowConfig": {}},
    {"processingGuarantees": "EFFECTIVELY_ONCE", "maxMessageRetries": 1},
    {"processingGuarantees": "EFFECTIVELY_ONCE", "retainKeyOrdering": True},
    {"processingGuarantees": "ATMOST_ONCE", "timeoutMs": 5},
    {"processingGuarantees": "ATLEAST_ONCE", "timeoutMs": 5},
    {"timeoutMs": 0},
    {"deadLetterTopic": "dlq"},
    {"deadLetterTopic": "dlq", "maxMessageRetries": 3},
    {"resources": {"cpu": 0}},
    {"resources": {"cpu": 65}},
    {"resources": {"cpu": 0.5, "ram": 1024, "disk": 1024}},
    {"userConfig": {"n": 2**64}},
    {"userConfig": {"n": [2**63 - 1, "x", None, 1.5]}},
    {"customRuntimeOptions": "{}"},
    {"customRuntimeOptions": "[]"},
    {"output": "persistent://public/default/out", "logTopic": "a/b/log"},
    {"output": "bad://x/y/z"},
    {"tenantz": "x"},
    {"maxPendingAsyncRequests": 0},
]


@pytest.mark.parametrize("change", CONFIGS, ids=[json.dumps(c)[:60] for c in CONFIGS])
def test_the_new_function_schema_agrees_with_the_validator(change: dict[str, Any]) -> None:
    bounds = SchemaBounds(limits=FunctionLimits(max_parallelism=7, max_input_topics=4))
    limits = FunctionLimits(max_parallelism=7, max_input_topics=4)
    document = build_document(ALL_ROUTES, "test", bounds)
    config = {**BASE_CONFIG, **change}
    config = {k: v for k, v in config.items() if v is not None or k != "className"}
    by_document = validator(document, "NewFunctionConfig").is_valid(config)
    assert by_document == worker_accepts(config, limits), config


def test_the_document_states_the_configured_limits() -> None:
    document = build_document(
        ALL_ROUTES, "test", SchemaBounds(limits=FunctionLimits(max_parallelism=3), secured=True)
    )
    config = document["components"]["schemas"]["NewFunctionConfig"]["properties"]
    assert config["parallelism"]["anyOf"][0]["maximum"] == 3
    responses = document["paths"][FUNCTION]["post"]["responses"]
    assert {"401", "413", "500"} <= set(responses)
