"""Decoding a FunctionConfig from JSON or a parsed document (Pulsar's camelCase keys),
with one-sentence 400s for wrong types and runtimes other than Python. Pure, no I/O.

Bodies are read as Pulsar's Java admin client writes them (Jackson over Pulsar's
FunctionConfig): ``"field": null`` means the field is absent, and an inputSpecs entry's
``regexPattern`` (Jackson's name for ``ConsumerConfig.isRegexPattern``) is read as
``isRegexPattern``. A field FunctionConfig does not have is a 400 in a file the user
wrote (``function_config_from_mapping``); a request body may carry fields of a newer
Pulsar client, so ``decode_submitted_config`` ignores them and names them for the log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from fnworker.scheduler.model.errors import bad_request
from fnworker.scheduler.model.records import ConsumerConfig, FunctionConfig
from fnworker.scheduler.settings.config_validation import ignored_keys

PYTHON = "PYTHON"
_ERROR_AT = re.compile(r"^(.*) - at `\$\.?(.*)`$")
_REGEX_PATTERN_NAMES = ("isRegexPattern", "regexPattern")
_RECORD_FIELDS = ("resources",)
"""FunctionConfig fields that hold a nested record (whose null members mean absent too)."""


def decode_function_config(raw: bytes | str, source: str = "functionConfig") -> FunctionConfig:
    """Decode a JSON FunctionConfig; unknown fields and wrong types are 400s."""
    return function_config_from_mapping(_parsed(raw, source), source)


def decode_submitted_config(
    raw: bytes | str, source: str = "functionConfig"
) -> tuple[FunctionConfig, list[str]]:
    """Decode a FunctionConfig a client sent: fields fnworker does not know are ignored
    (as Pulsar does) and returned, dotted, so the caller can log them."""
    document = _parsed(raw, source)
    _require_object(document, source)
    unknown = [key for key in ignored_keys(_present(document), FunctionConfig)]
    unknown += _unknown_spec_fields(document)
    return _converted(document, source), unknown


def function_config_from_mapping(document: Any, source: str = "functionConfig") -> FunctionConfig:
    """Convert a parsed JSON/YAML document (Pulsar's camelCase keys) into a FunctionConfig;
    a field FunctionConfig does not have is a 400."""
    _require_object(document, source)
    unknown = next(ignored_keys(_present(document), FunctionConfig), None)
    if unknown is not None:
        key, _, hint = unknown.partition(" (")
        raise bad_request(
            f"{source} field '{key}' is not a FunctionConfig field{' (' + hint if hint else ''}; "
            "expected Pulsar's FunctionConfig field names (camelCase)"
        )
    return _converted(document, source)


def _parsed(raw: bytes | str, source: str) -> Any:
    """The JSON document, or a 400."""
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError) as error:  # too deep a nesting: RecursionError
        raise bad_request(f"{source} is not valid JSON ({error}); expected a JSON object") from None


def _require_object(document: Any, source: str) -> None:
    """A FunctionConfig is a JSON object."""
    if not isinstance(document, Mapping):
        raise bad_request(f"{source} is a {type(document).__name__}; expected a JSON object")


def _converted(document: Mapping[str, Any], source: str) -> FunctionConfig:
    """The FunctionConfig of a document whose nulls mean absent."""
    present = _present(document)
    runtime = present.get("runtime")
    if runtime is not None and runtime != PYTHON:
        raise unsupported_runtime(runtime)
    for field in _RECORD_FIELDS:
        if isinstance(present.get(field), Mapping):
            present[field] = _present(present[field])
    specs = present.get("inputSpecs")
    if isinstance(specs, Mapping):
        present["inputSpecs"] = {
            topic: _spec(topic, spec, source) if isinstance(spec, Mapping) else spec
            for topic, spec in specs.items()
        }
    try:
        return msgspec.convert(present, FunctionConfig)
    except msgspec.ValidationError as error:
        raise bad_request(_explain(error, source)) from None


def _present(document: Mapping[str, Any]) -> dict[str, Any]:
    """The document without its null members (Pulsar reads ``null`` as absent)."""
    return {key: value for key, value in document.items() if value is not None}


def _spec(topic: str, spec: Mapping[str, Any], source: str) -> dict[str, Any]:
    """An inputSpecs entry with ``regexPattern`` read as ``isRegexPattern``."""
    present = _present(spec)
    given = {name: present.pop(name) for name in _REGEX_PATTERN_NAMES if name in present}
    if len(set(map(repr, given.values()))) > 1:
        raise bad_request(
            f"{source} inputSpecs['{topic}'] sets isRegexPattern {given['isRegexPattern']!r} "
            f"and regexPattern {given['regexPattern']!r}; expected one of them, or both equal"
        )
    if given:
        present["isRegexPattern"] = next(iter(given.values()))
    return present


def _unknown_spec_fields(document: Mapping[str, Any]) -> list[str]:
    """Dotted names of inputSpecs members ConsumerConfig does not have."""
    specs = document.get("inputSpecs")
    if not isinstance(specs, Mapping):
        return []
    known = {field.encode_name for field in msgspec.structs.fields(ConsumerConfig)}
    known.update(_REGEX_PATTERN_NAMES)
    return [
        f"inputSpecs.{topic}.{key}"
        for topic, spec in specs.items()
        if isinstance(spec, Mapping)
        for key, value in spec.items()
        if key not in known and value is not None
    ]


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
