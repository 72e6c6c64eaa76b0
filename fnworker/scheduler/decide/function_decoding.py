"""Decoding a FunctionConfig from JSON or a parsed document (Pulsar's camelCase keys),
with one-sentence 400s for unknown fields, wrong types and runtimes other than Python.
Pure, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from fnworker.scheduler.model.errors import bad_request
from fnworker.scheduler.model.records import FunctionConfig
from fnworker.scheduler.settings.config_validation import ignored_keys

PYTHON = "PYTHON"
_ERROR_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")


def decode_function_config(raw: bytes | str, source: str = "functionConfig") -> FunctionConfig:
    """Decode a JSON FunctionConfig; unknown fields and wrong types are 400s."""
    try:
        document = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as error:  # too deep a nesting: RecursionError
        raise bad_request(f"{source} is not valid JSON ({error}); expected a JSON object") from None
    return function_config_from_mapping(document, source)


def function_config_from_mapping(document: Any, source: str = "functionConfig") -> FunctionConfig:
    """Convert a parsed JSON/YAML document (Pulsar's camelCase keys) into a FunctionConfig."""
    if not isinstance(document, Mapping):
        raise bad_request(f"{source} is a {type(document).__name__}; expected a JSON object")
    unknown = next(ignored_keys(document, FunctionConfig), None)
    if unknown is not None:
        key, _, hint = unknown.partition(" (")
        raise bad_request(
            f"{source} field '{key}' is not a FunctionConfig field{' (' + hint if hint else ''}; "
            "expected Pulsar's FunctionConfig field names (camelCase)"
        )
    runtime = document.get("runtime")
    if runtime is not None and runtime != PYTHON:
        raise unsupported_runtime(runtime)
    try:
        return msgspec.convert(document, FunctionConfig)
    except msgspec.ValidationError as error:
        raise bad_request(_explain(error, source)) from None


def _explain(error: msgspec.ValidationError, source: str) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.parallelism`" as one sentence."""
    match = _ERROR_AT.match(str(error))
    if match is None:
        return f"{source} is not valid: {error}"
    return f"{source} field '{match.group(2)}' is not valid: {match.group(1).lower()}"


def unsupported_runtime(runtime: object) -> Exception:
    """The 400 for any runtime but PYTHON."""
    return bad_request(
        f"runtime '{runtime}' is not supported; fnworker runs Python functions (runtime PYTHON)"
    )
