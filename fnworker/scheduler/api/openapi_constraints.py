"""The JSON schemas of what the worker accepts, as precise as JSON Schema can say it:
names and topics with the patterns ``fnworker/scheduler/model/names.py`` enforces, and the
FunctionConfig a register or an update may send, with the rules of
``fnworker/scheduler/decide/function_validation.py`` and the admission limits of the worker's
configuration (``SchemaBounds``). Pure, no I/O.

Patterns are ECMA-262 regular expressions (JSON Schema's dialect). What JSON Schema
cannot state, or states in ways schemathesis cannot generate from, is in the
descriptions and the sentence of the 400: the package must define ``className``; the
output may not also be an input; the inputs of all five input fields together may
not exceed ``maxInputTopicsPerFunction``; a JSON document must fit
``maxFunctionConfigBytes``; not both retainOrdering and retainKeyOrdering, nor both
outputSerdeClassName and outputSchemaType; a register sends one package (data, url
or a URL in py).
"""

from __future__ import annotations

import copy
from typing import Any, Final

import msgspec

from fnworker.scheduler.decide.admission_limits import (
    JAVA_INT_MAX,
    MAX_PENDING_ASYNC_REQUESTS,
    MAX_RECEIVER_QUEUE_SIZE,
    MAX_TIMEOUT_MS,
    FunctionLimits,
    limits_of,
)
from fnworker.scheduler.settings.worker_config import WorkerConfig

Schema = dict[str, Any]

_NAME_CHAR = "[-=:.A-Za-z0-9_]"
NAME_PATTERN: Final = rf"^(?!\.$)(?!.*\.\.){_NAME_CHAR}{{1,256}}$"
"""Pulsar's NamedEntity (ASCII letters, digits, -=:._) without '.', '..' or more than 256."""
_SEGMENT = rf"(?!\.(?:/|$))(?![^/]*\.\.){_NAME_CHAR}{{1,256}}"
_LOCAL = r"[^\s\x85/\x00-\x1f\x7f]{1,256}"
_SAFE_LOCAL = f"{_NAME_CHAR}{{1,256}}"
_DOMAIN = "(?:(?:persistent|non-persistent)://)"
TOPIC_PATTERN: Final = rf"^(?:{_LOCAL}|{_DOMAIN}?{_SEGMENT}/{_SEGMENT}/{_LOCAL})$"
"""``topic``, ``tenant/namespace/topic`` or ``persistent://tenant/namespace/topic``."""
TOPIC_OR_EMPTY_PATTERN: Final = rf"^(?:|{_LOCAL}|{_DOMAIN}?{_SEGMENT}/{_SEGMENT}/{_LOCAL})$"
"""A topic, or the empty string (a form part the worker reads as absent)."""
SAFE_TOPIC_PATTERN: Final = rf"^(?:{_SAFE_LOCAL}|{_DOMAIN}?{_SEGMENT}/{_SEGMENT}/{_SAFE_LOCAL})$"
"""A topic whose local name is also a valid regular expression (inputSpecs keys,
which may be topics or patterns)."""
TOPICS_REGEX_PATTERN: Final = (
    rf"^(?:{_SAFE_LOCAL}(?:\.\*)?|{_DOMAIN}?{_SEGMENT}/{_SEGMENT}/{_SAFE_LOCAL}(?:\.\*)?)$"
)
"""A topics pattern whose local part always compiles: a name, optionally ending in ``.*``."""
CLASS_NAME_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$"
"""A dotted Python name (the worker also takes non-ASCII letters after the first
character, as Python does; the document keeps to ASCII, which every regex dialect reads alike)."""
_JSON_MEMBER = r'"[a-zA-Z]{1,16}": ?"[-a-zA-Z0-9_.]{0,32}"'
JSON_OBJECT_TEXT_PATTERN: Final = rf"^\{{(?:{_JSON_MEMBER}(?:, ?{_JSON_MEMBER})*)?\}}$"
"""Flat JSON objects of strings: customRuntimeOptions is any JSON object in a string,
which no regular expression can describe; the document admits this safe part of it."""
INPUT_FIELDS: Final = (
    "inputs",
    "topicsPattern",
    "customSerdeInputs",
    "customSchemaInputs",
    "inputSpecs",
)
IDENTITY_FIELDS: Final = ("tenant", "namespace", "name", "fqfn")


class SchemaBounds(msgspec.Struct, frozen=True, kw_only=True):
    """What the document states: the worker's admission limits, and whether callers
    are authenticated (401) and authorized (403)."""

    limits: FunctionLimits = FunctionLimits()
    secured: bool = False
    authorized: bool = False


def schema_bounds(config: WorkerConfig) -> SchemaBounds:
    """The bounds a worker with this configuration admits functions under
    (``admission_limits.limits_of``), and whether it checks callers."""
    return SchemaBounds(
        limits=limits_of(config),
        secured=config.authentication_enabled,
        authorized=config.authentication_enabled and config.authorization_enabled,
    )


def name_schema() -> Schema:
    """A tenant, namespace or function name."""
    return {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 256}


def topic_schema(pattern: str = TOPIC_PATTERN) -> Schema:
    return {"type": "string", "pattern": pattern}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _empty_or(schema: Schema) -> Schema:
    """A value, or unset: null or the empty string (the worker treats "" as unset)."""
    return {"anyOf": [schema, {"type": "string", "maxLength": 0}, {"type": "null"}]}


def _integer(low: int, high: int) -> Schema:
    return _nullable({"type": "integer", "minimum": low, "maximum": high})


def _topic_map(key_pattern: str, limit: int) -> Schema:
    return {
        "type": "object",
        "propertyNames": {"pattern": key_pattern},
        "additionalProperties": {"type": "string"},
        "maxProperties": limit,
    }


def _resources(bounds: SchemaBounds) -> Schema:
    """cpu, ram and disk within functionInstanceMin/MaxResources (absent: Pulsar's defaults)."""

    def part(kind: str, low: float | None, high: float) -> Schema:
        schema: Schema = {"type": kind, "maximum": high}
        if low is not None:
            schema["minimum"] = low
        else:
            schema["exclusiveMinimum"] = 0
        return schema

    return _nullable(
        {
            "type": "object",
            "properties": {
                "cpu": part("number", bounds.limits.min_cpu, bounds.limits.max_cpu),
                "ram": part("integer", bounds.limits.min_ram, bounds.limits.max_ram),
                "disk": part("integer", bounds.limits.min_disk, bounds.limits.max_disk),
            },
            "additionalProperties": False,
        }
    )


def _consumer_config() -> Schema:
    """One inputSpecs entry: not both schemaType and serdeClassName; a cryptoConfig names
    its key reader."""
    both_set = {
        "properties": {
            "schemaType": {"type": "string", "minLength": 1},
            "serdeClassName": {"type": "string", "minLength": 1},
        },
        "required": ["schemaType", "serdeClassName"],
    }
    crypto = {
        "type": "object",
        "properties": {"cryptoKeyReaderClassName": {"type": "string", "minLength": 1}},
        "additionalProperties": {"$ref": JSON_VALUE_REF},
        "required": ["cryptoKeyReaderClassName"],
    }
    return {
        "type": "object",
        "properties": {
            "schemaType": _nullable({"type": "string"}),
            "serdeClassName": _nullable({"type": "string"}),
            "isRegexPattern": {"type": "boolean"},
            "regexPattern": {"type": "boolean"},
            "receiverQueueSize": _integer(0, MAX_RECEIVER_QUEUE_SIZE),
            "schemaProperties": {"type": "object", "additionalProperties": {"type": "string"}},
            "consumerProperties": {"type": "object", "additionalProperties": {"type": "string"}},
            "cryptoConfig": _nullable(crypto),
            "poolMessages": {"type": "boolean"},
        },
        "not": both_set,
    }


STORABLE_INTEGER: Final[Schema] = {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1}
JSON_VALUE_REF: Final = "#/components/schemas/JsonValue"


def json_value_schema() -> Schema:
    """Any JSON value whose integers the worker can store (64 bits): the values of
    userConfig, secrets and producerConfig."""
    ref = {"$ref": JSON_VALUE_REF}
    return {
        "title": "JsonValue",
        "description": "Any JSON value; integers within 64 bits.",
        "anyOf": [
            {"type": ["null", "boolean", "string"]},
            STORABLE_INTEGER,
            {"type": "number", "not": {"type": "integer"}},
            {"type": "array", "items": ref},
            {"type": "object", "additionalProperties": ref},
        ],
    }


def _json_object() -> Schema:
    return {"type": "object", "additionalProperties": {"$ref": JSON_VALUE_REF}}


def _field_constraints(bounds: SchemaBounds) -> Schema:
    """The schema of every FunctionConfig field the worker restricts."""
    topic = _empty_or(topic_schema())
    topics_limit = bounds.limits.max_input_topics
    return {
        "className": _nullable({"type": "string", "pattern": CLASS_NAME_PATTERN}),
        "inputs": {"type": "array", "items": topic_schema(), "maxItems": topics_limit},
        "topicsPattern": _empty_or(topic_schema(TOPICS_REGEX_PATTERN)),
        "customSerdeInputs": _topic_map(TOPIC_PATTERN, topics_limit),
        "customSchemaInputs": _topic_map(TOPIC_PATTERN, topics_limit),
        "inputSpecs": {
            "type": "object",
            "propertyNames": {"pattern": SAFE_TOPIC_PATTERN},
            "additionalProperties": _consumer_config(),
            "maxProperties": topics_limit,
        },
        "output": topic,
        "logTopic": topic,
        "deadLetterTopic": topic,
        "runtime": _nullable({"enum": ["PYTHON"]}),
        "jar": _nullable({"type": "string", "maxLength": 0}),
        "go": _nullable({"type": "string", "maxLength": 0}),
        "windowConfig": {"type": "null"},
        "parallelism": _integer(1, bounds.limits.max_parallelism),
        "maxMessageRetries": _integer(0, JAVA_INT_MAX),
        "timeoutMs": _integer(1, MAX_TIMEOUT_MS),
        "maxPendingAsyncRequests": _integer(1, MAX_PENDING_ASYNC_REQUESTS),
        "resources": _resources(bounds),
        "userConfig": _json_object(),
        "secrets": _json_object(),
        "producerConfig": _nullable(_json_object()),
        "customRuntimeOptions": _empty_or({"type": "string", "pattern": JSON_OBJECT_TEXT_PATTERN}),
    }


def _set(field: str, schema: Schema) -> Schema:
    """ "``field`` is present and matches ``schema``" (for the cross-field rules)."""
    return {"properties": {field: schema}, "required": [field]}


_UNSET: Final[Schema] = {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 0}]}


def _cross_field_rules() -> list[Schema]:
    """The rules between fields (function_validation's checks) as allOf entries, each
    an anyOf of plain alternatives (schemathesis's generator gives up on documents
    whose alternatives multiply past a few dozen, so two rules stay in words: not both
    retainOrdering and retainKeyOrdering; not both outputSerdeClassName and
    outputSchemaType)."""
    null: Schema = {"type": "null"}
    guarantees = {
        "anyOf": [
            {"properties": {"processingGuarantees": {"anyOf": [{"const": "ATLEAST_ONCE"}, null]}}},
            {  # timeoutMs only with ATLEAST_ONCE
                **_set("processingGuarantees", {"enum": ["ATMOST_ONCE", "MANUAL"]}),
                "properties": {
                    "processingGuarantees": {"enum": ["ATMOST_ONCE", "MANUAL"]},
                    "timeoutMs": null,
                },
            },
            {  # nor maxMessageRetries or retainKeyOrdering with EFFECTIVELY_ONCE
                **_set("processingGuarantees", {"const": "EFFECTIVELY_ONCE"}),
                "properties": {
                    "processingGuarantees": {"const": "EFFECTIVELY_ONCE"},
                    "timeoutMs": null,
                    "maxMessageRetries": null,
                    "retainKeyOrdering": {"enum": [False, None]},
                },
            },
        ]
    }
    dead_letters = {  # deadLetterTopic needs maxMessageRetries
        "anyOf": [
            {"properties": {"deadLetterTopic": _UNSET}},
            _set("maxMessageRetries", {"type": "integer"}),
        ]
    }
    return [guarantees, dead_letters]


def _some_input() -> Schema:
    """At least one input in one of the five input fields."""
    present = {
        "inputs": {"type": "array", "minItems": 1},
        "topicsPattern": {"type": "string", "minLength": 1},
        "customSerdeInputs": {"type": "object", "minProperties": 1},
        "customSchemaInputs": {"type": "object", "minProperties": 1},
        "inputSpecs": {"type": "object", "minProperties": 1},
    }
    return {"anyOf": [_set(field, schema) for field, schema in present.items()]}


def constrained_config(base: Schema, bounds: SchemaBounds, *, new: bool) -> Schema:
    """The FunctionConfig a register (``new``) or an update may send, from the record's
    own schema ``base``: identity fields left out (they come from the path; a body may
    only repeat them), every rule above applied. Fields it does not list are allowed
    (the worker ignores them and logs their names, as Pulsar ignores them)."""
    schema = copy.deepcopy(base)
    properties = {k: v for k, v in schema["properties"].items() if k not in IDENTITY_FIELDS}
    for field, constraint in _field_constraints(bounds).items():
        properties[field] = {**constraint, "description": _describe(field, bounds)}
    schema["properties"] = {k: _without_default(v) for k, v in properties.items()}
    schema["additionalProperties"] = True
    rules = _cross_field_rules()
    if new:
        schema["required"] = ["className"]
        schema["properties"]["className"] = {
            "type": "string",
            "pattern": CLASS_NAME_PATTERN,
            "description": "The function's Python class, module.ClassName.",
        }
        rules.append(_some_input())
        schema["title"] = "NewFunctionConfig"
        schema["description"] = (
            "A function to register (Pulsar's FunctionConfig). tenant, namespace and name "
            "come from the path (a body may repeat them). The package must define "
            "className; the output may not be an input; at most one of retainOrdering and "
            "retainKeyOrdering, and of outputSerdeClassName and outputSchemaType."
        )
    else:
        schema.pop("required", None)
        schema["title"] = "FunctionConfigUpdate"
        schema["description"] = (
            "The fields to change; fields left out keep their value; the rules of "
            "NewFunctionConfig hold for the result. Inputs cannot be added, and "
            "processingGuarantees, retainOrdering, retainKeyOrdering, runtime, "
            "autoAck, subName, outputSerdeClassName, outputSchemaType and subscriptionType "
            "cannot change; subscriptionPosition is ignored (as Pulsar's validateUpdate)."
        )
    schema["allOf"] = rules
    return schema


def _without_default(schema: Schema) -> Schema:
    """A property's schema without msgspec's ``default`` (a request sends what it means)."""
    return {k: v for k, v in schema.items() if k != "default"}


def _describe(field: str, bounds: SchemaBounds) -> str:
    """The limit a constrained field keeps, in words."""
    limits = {
        "parallelism": f"1 to maxFunctionParallelism ({bounds.limits.max_parallelism})",
        "inputs": f"at most maxInputTopicsPerFunction ({bounds.limits.max_input_topics}) topics "
        "across all input fields",
        "resources": "within functionInstanceMinResources and functionInstanceMaxResources",
        "runtime": "fnworker runs Python functions",
        "customRuntimeOptions": "a JSON object in a string",
        "deadLetterTopic": "needs maxMessageRetries",
        "timeoutMs": "only with processingGuarantees ATLEAST_ONCE",
    }
    return limits.get(field, "As Pulsar's FunctionConfig.")
