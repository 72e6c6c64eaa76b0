"""Schemathesis hooks for tests/hostile/test_schemathesis.py (loaded by the CLI through
SCHEMATHESIS_HOOKS): the request data the OpenAPI document cannot describe.

A schema-valid register still needs a package that defines its className, and a
config whose output is not one of its inputs, with at most maxInputTopicsPerFunction
inputs across its five input fields, and without the two pairs of fields that may not
both be set (rules the document states in words): for positive cases these hooks
send the example package as ``data`` with its class, drop a ``url`` part, and skip
configs that break a rule between fields. A registered function is deleted right
after, so the run never holds more than one function's instances. Negative cases are
left alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests
import schemathesis

from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.names import normalize_topic

MAX_INPUT_TOPICS = 4
"""The worker's maxInputTopicsPerFunction in the test (the document bounds each input
field by it, but not all five together)."""
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "exclamation_function.py"
CLASS = "exclamation_function.ExclamationFunction"
FUNCTION_PATH = "/admin/v3/functions/{tenant}/{namespace}/{functionName}"


def registers(case: Any) -> bool:
    """A positive register case (the ones these hooks complete)."""
    operation = case.operation
    meta = case.meta
    return (
        operation.method.upper() == "POST"
        and operation.path == FUNCTION_PATH
        and meta is not None
        and meta.generation.mode.is_positive
        and isinstance(case.body, dict)
        and isinstance(case.body.get("functionConfig"), dict)
    )


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """A positive register sends the example package and names its class; a positive
    update that sends a package sends the example too."""
    if registers(case):
        case.body["data"] = EXAMPLE.read_bytes()
        case.body.pop("url", None)
        case.body["functionConfig"]["className"] = CLASS
    elif updates_a_package(case):
        case.body.pop("url", None)
        case.body["data"] = EXAMPLE.read_bytes()
        config = case.body.get("functionConfig")
        config = config if isinstance(config, dict) else {}
        case.body["functionConfig"] = {**config, "className": CLASS}
    return case


def updates_a_package(case: Any) -> bool:
    """A positive update that sends a package (data or url)."""
    meta = case.meta
    return (
        case.operation.method.upper() == "PUT"
        and case.operation.path == FUNCTION_PATH
        and meta is not None
        and meta.generation.mode.is_positive
        and isinstance(case.body, dict)
        and ("data" in case.body or "url" in case.body)
    )


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Skip positive configs breaking a rule the document states only in words."""
    body = case.body
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
        return True
    config = body.get("functionConfig")
    if not isinstance(config, dict):
        return True
    inputs = input_topics(config)
    return not (
        normalized(config.get("output") or "") in inputs
        or len(inputs) > MAX_INPUT_TOPICS
        or both_set(config)
    )


def input_topics(config: dict[str, Any]) -> set[str | None]:
    """The distinct input topics and patterns of all five input fields, normalized."""
    inputs = [*config.get("inputs", []), *config.get("customSerdeInputs", {})]
    inputs += [*config.get("customSchemaInputs", {}), *config.get("inputSpecs", {})]
    inputs += [config["topicsPattern"]] if config.get("topicsPattern") else []
    return {normalized(topic) for topic in inputs}


def normalized(topic: str) -> str | None:
    try:
        return normalize_topic(topic) if topic else None
    except ApiError:
        return None


def both_set(config: dict[str, Any]) -> bool:
    return (config.get("retainOrdering") is True and config.get("retainKeyOrdering") is True) or (
        bool(config.get("outputSerdeClassName")) and bool(config.get("outputSchemaType"))
    )


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    """Delete a function a case registered, so instances do not pile up."""
    if registers(case) and response.status_code == 200:
        credentials = response.request.headers.get("Authorization")
        headers = {"Authorization": credentials} if credentials else {}
        requests.delete(response.request.url, headers=headers, timeout=30)
