"""Validates function configs as Pulsar's FunctionConfigUtils does, for Python functions,
and merges updates as its ``validateUpdate`` does. Pure, no I/O.

``validate_new_function`` returns a complete config: tenant, namespace and name from
the request path, defaults filled in (runtime PYTHON, parallelism 1, ATLEAST_ONCE,
autoAck true) and every topic in its complete form, so validating the result again
returns it unchanged. ``merge_update`` applies an update onto a stored config and
validates the result. Every error is an ``ApiError(400, ...)`` whose one sentence
names the field, the value and what would be valid.

Decoding lives in ``function_decoding`` and the per-field rules in ``function_checks``;
this module re-exports the decoders so callers have one place to import from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from fnworker.scheduler.decide.admission_limits import (
    FunctionLimits,
    config_size_problem,
    limit_problem,
)
from fnworker.scheduler.decide.function_checks import CHECKS, input_topics
from fnworker.scheduler.decide.function_decoding import (
    PYTHON,
    decode_function_config,
    decode_submitted_config,
    function_config_from_mapping,
    unsupported_runtime,
)
from fnworker.scheduler.model.errors import bad_request
from fnworker.scheduler.model.names import (
    PACKAGE_SUFFIXES,
    check_function_name,
    normalize_topic,
    normalize_topics_pattern,
)
from fnworker.scheduler.model.records import ConsumerConfig, FunctionConfig

__all__ = [
    "PYTHON",
    "complete_function_config",
    "decode_function_config",
    "decode_submitted_config",
    "function_config_from_mapping",
    "input_topics",
    "merge_update",
    "validate_new_function",
]

IDENTITY_FIELDS = ("tenant", "namespace", "name")
IMMUTABLE_DEFAULTS: Mapping[str, Any] = {
    "processing_guarantees": "ATLEAST_ONCE",
    "retain_ordering": False,
    "retain_key_ordering": False,
    "runtime": PYTHON,
    "auto_ack": True,
    "sub_name": None,
    "output_serde_class_name": None,
    "output_schema_type": None,
    "subscription_type": None,
}
"""Fields an update may not change, with the value an unset field stands for."""

IGNORED_ON_UPDATE = ("subscription_position",)
"""Fields an update leaves as they are whatever it sends, as Pulsar's validateUpdate does:
its Java client always sends subscriptionPosition (``@Builder.Default`` Latest), so an
update of an Earliest function must not be refused for it."""

INPUT_FIELDS = (
    "inputs",
    "topics_pattern",
    "custom_serde_inputs",
    "custom_schema_inputs",
    "input_specs",
)
ENCODE_NAMES = {field.name: field.encode_name for field in msgspec.structs.fields(FunctionConfig)}
REPLACEABLE_FIELDS = tuple(
    name
    for name in ENCODE_NAMES
    if name
    not in (*IDENTITY_FIELDS, "fqfn", *IMMUTABLE_DEFAULTS, *IGNORED_ON_UPDATE, *INPUT_FIELDS)
)


# --- new functions ------------------------------------------------------------


def validate_new_function(
    tenant: str,
    namespace: str,
    name: str,
    config: FunctionConfig,
    package_file_name: str | None,
    limits: FunctionLimits | None = None,
) -> FunctionConfig:
    """The complete config of a function about to be registered, or a 400."""
    check_function_name(tenant, namespace, name)
    complete = complete_function_config(tenant, namespace, name, config, limits)
    check_package_file_name(package_file_name)
    return complete


def check_package_file_name(file_name: str | None) -> str:
    """The package's file name if it ends in .py, .zip or .whl."""
    if not file_name:
        raise bad_request(
            "no function package was given; expected a data file part, a url part, "
            "or py set to a file://, http:// or https:// url of a .py, .zip or .whl file"
        )
    if not file_name.lower().endswith(PACKAGE_SUFFIXES):
        raise bad_request(
            f"package file name '{file_name}' is not valid; expected a .py, .zip or .whl file"
        )
    return file_name


def complete_function_config(
    tenant: str,
    namespace: str,
    name: str,
    config: FunctionConfig,
    limits: FunctionLimits | None = None,
) -> FunctionConfig:
    """Check the identity, fill defaults, normalize topics and run every check.

    With ``limits`` (every caller that admits a function passes them) the admission
    limits are checked first, so no other check echoes an oversized value; without,
    only the rules (authorization scoping uses that form: it decides who may act).
    """
    if limits is not None:
        _raise_if(config_size_problem(config, limits))
    _check_identity(config, tenant, namespace, name)
    if config.runtime not in (None, PYTHON):
        raise unsupported_runtime(config.runtime)
    complete = _with_normalized_topics(_with_defaults(config, tenant, namespace, name))
    if limits is not None:
        _raise_if(limit_problem(complete, limits))
    for check in CHECKS:
        check(complete)
    return complete


def _raise_if(problem: str | None) -> None:
    """A limit's sentence as a 400."""
    if problem is not None:
        raise bad_request(problem)


def _check_identity(config: FunctionConfig, tenant: str, namespace: str, name: str) -> None:
    """A body that names a tenant, namespace, name or fqfn must agree with the path."""
    expected = {"tenant": tenant, "namespace": namespace, "name": name}
    expected["fqfn"] = f"{tenant}/{namespace}/{name}"
    for field, value in expected.items():
        given = getattr(config, field)
        if given and given != value:
            raise bad_request(
                f"functionConfig {field} '{given}' differs from the function's {field} "
                f"'{value}' in the request path; omit it or make them equal"
            )


def _with_defaults(
    config: FunctionConfig, tenant: str, namespace: str, name: str
) -> FunctionConfig:
    """Identity from the path and Pulsar's defaults for unset fields."""
    return msgspec.structs.replace(
        config,
        tenant=tenant,
        namespace=namespace,
        name=name,
        runtime=PYTHON,
        parallelism=1 if config.parallelism is None else config.parallelism,
        processing_guarantees=config.processing_guarantees or "ATLEAST_ONCE",
        auto_ack=True if config.auto_ack is None else config.auto_ack,
    )


def _with_normalized_topics(config: FunctionConfig) -> FunctionConfig:
    """Every topic in its complete form; empty optional topics mean unset."""
    return msgspec.structs.replace(
        config,
        inputs=list(dict.fromkeys(normalize_topic(t, "inputs") for t in config.inputs)),
        topics_pattern=_optional(config.topics_pattern, normalize_topics_pattern, "topicsPattern"),
        custom_serde_inputs=_normalize_keys(config.custom_serde_inputs, "customSerdeInputs"),
        custom_schema_inputs=_normalize_keys(config.custom_schema_inputs, "customSchemaInputs"),
        input_specs={_spec_topic(k, v): v for k, v in config.input_specs.items()},
        output=_optional(config.output, normalize_topic, "output"),
        log_topic=_optional(config.log_topic, normalize_topic, "logTopic"),
        dead_letter_topic=_optional(config.dead_letter_topic, normalize_topic, "deadLetterTopic"),
    )


def _optional(value: str | None, normalize: Callable[[str, str], str], field: str) -> str | None:
    """A normalized topic, or None when unset or empty."""
    return normalize(value, field) if value else None


def _normalize_keys(topics: Mapping[str, str], field: str) -> dict[str, str]:
    """A topic-keyed map with complete topic names as keys."""
    return {normalize_topic(topic, field): value for topic, value in topics.items()}


def _spec_topic(topic: str, spec: ConsumerConfig) -> str:
    """An inputSpecs key: a topics pattern when the spec says so, else a topic."""
    if spec.is_regex_pattern:
        return normalize_topics_pattern(topic, "inputSpecs")
    return normalize_topic(topic, "inputSpecs")


# --- updates ------------------------------------------------------------------


def merge_update(
    existing: FunctionConfig, update: FunctionConfig, limits: FunctionLimits | None = None
) -> FunctionConfig:
    """The stored config with the update applied, validated, as Pulsar's validateUpdate.

    Identity, processing guarantees, ordering, runtime, autoAck, the subscription name
    and type and the output serde/schema cannot change; subscriptionPosition is ignored
    (Pulsar's client always sends it); input topics may be given again (to
    change their serde or spec) but not added; every other field replaces the old
    value when the update sets it (a non-empty value) and keeps it otherwise.
    """
    tenant, namespace, name = _identity_of(existing)
    if limits is not None:
        _raise_if(config_size_problem(update, limits))
    _check_identity(update, tenant, namespace, name)
    _check_unchanged(existing, update)
    merged = _merge_inputs(existing, update)
    replaced = {
        field: getattr(update, field)
        for field in REPLACEABLE_FIELDS
        if _given(getattr(update, field))
    }
    merged = msgspec.structs.replace(merged, **replaced)
    return complete_function_config(tenant, namespace, name, merged, limits)


def _identity_of(config: FunctionConfig) -> tuple[str, str, str]:
    """tenant, namespace and name of a stored (complete) config."""
    if not (config.tenant and config.namespace and config.name):
        raise ValueError(
            "merge_update needs a complete stored config with tenant, namespace and name"
        )
    return config.tenant, config.namespace, config.name


def _given(value: object) -> bool:
    """Whether an update sets a field: empty strings, lists and maps mean "keep"."""
    return value is not None and not (isinstance(value, str | list | dict) and not value)


def _check_unchanged(existing: FunctionConfig, update: FunctionConfig) -> None:
    """Fields an update may repeat but not change."""
    for field, default in IMMUTABLE_DEFAULTS.items():
        new = getattr(update, field)
        old = getattr(existing, field)
        old = default if old is None else old
        if _given(new) and new != old:
            raise bad_request(
                f"{ENCODE_NAMES[field]} cannot be changed by an update (from {_show(old)} "
                f"to {_show(new)}); expected it left out or equal to {_show(old)}"
            )


def _show(value: object) -> str:
    """A value as the user wrote it in JSON."""
    return json.dumps(value)


def _merge_inputs(existing: FunctionConfig, update: FunctionConfig) -> FunctionConfig:
    """Serde, schema and spec changes for existing input topics; new topics are a 400."""
    normalized = _with_normalized_topics(
        msgspec.structs.replace(update, output=None, log_topic=None, dead_letter_topic=None)
    )
    known = input_topics(existing)
    for topic, is_pattern in input_topics(normalized).items():
        if topic not in known:
            raise bad_request(
                f"input topic '{topic}' is not an input of the function and inputs cannot be "
                f"changed by an update; expected one of {sorted(known)}"
            )
        if known[topic] != is_pattern:
            raise bad_request(
                f"input '{topic}' cannot change between topic and topics pattern in an update; "
                f"expected isRegexPattern {str(known[topic]).lower()}"
            )
    return msgspec.structs.replace(
        existing,
        custom_serde_inputs={**existing.custom_serde_inputs, **normalized.custom_serde_inputs},
        custom_schema_inputs={**existing.custom_schema_inputs, **normalized.custom_schema_inputs},
        input_specs={**existing.input_specs, **normalized.input_specs},
    )
