"""Checks a parsed ``functions_worker.yml`` document against ``WorkerConfig``. No I/O.

Everything here walks the record types through ``msgspec.inspect``, so the schema
in ``worker_config`` stays the single source of key names, types and ranges:
``normalize`` prepares a document the way Pulsar's Jackson reader would see it,
``ignored_keys`` lists keys fnworker does not read, ``explain`` turns a msgspec
validation error into a ``Violation`` naming the key, and ``inconsistencies`` finds
values that are valid alone but not together.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import msgspec
import msgspec.inspect as mi

from fnworker.scheduler.settings.security_checks import security_problems
from fnworker.scheduler.settings.worker_config import WorkerConfig, web_tls_enabled

_ERROR_PATH = re.compile(r" - at `\$((?:\.[^.\[`]+|\[[^\]]*\])*)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[[^\]]*\]")


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    """One invalid value: its dotted key path, the value as given and what is valid."""

    key: str
    value: Any
    expected: str


@cache
def struct_fields(cls: type) -> dict[str, mi.Field]:
    """A record's fields by their YAML (encode) name."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return {field.encode_name: field for field in info.fields}


def _bare(kind: mi.Type) -> mi.Type:
    """The type without its ``Annotated`` metadata."""
    return kind.type if isinstance(kind, mi.Metadata) else kind


def _members(kind: mi.Type) -> tuple[mi.Type, ...]:
    """The alternatives of a union (metadata removed), or the type alone."""
    kind = _bare(kind)
    parts = kind.types if isinstance(kind, mi.UnionType) else (kind,)
    return tuple(_bare(part) for part in parts)


def _accepts_none(kind: mi.Type) -> bool:
    """Whether ``null`` is a valid value of this type."""
    return any(isinstance(part, mi.NoneType) for part in _members(kind))


def _record_of(kind: mi.Type) -> type | None:
    """The record class if the type is a (possibly optional) nested record."""
    for part in _members(kind):
        if isinstance(part, mi.StructType):
            return part.cls
    return None


def nested_shape(kind: mi.Type) -> tuple[type | None, bool]:
    """The nested record class of a field type, and whether it is a free-form map."""
    for part in _members(kind):
        if isinstance(part, mi.StructType):
            return part.cls, False
        if isinstance(part, mi.DictType):
            return None, True
    return None, False


def normalize(document: Mapping[str, Any], cls: type = WorkerConfig) -> dict[str, Any]:
    """Drop nulls of keys that cannot be null (they mean the default) and stringify numbers
    given for string keys, as Jackson does; recurses into nested records."""
    fields = struct_fields(cls)
    result: dict[str, Any] = {}
    for key, value in document.items():
        field = fields.get(key)
        if field is None:
            result[key] = value
        elif value is not None or _accepts_none(field.type):
            result[key] = _normalize_value(value, field.type)
    return result


def _normalize_value(value: Any, kind: mi.Type) -> Any:
    """One value made ready for conversion into ``kind``."""
    parts = _members(kind)
    record = _record_of(kind)
    if record is not None and isinstance(value, Mapping):
        return normalize(value, record)
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number and any(isinstance(part, mi.StrType) for part in parts):
        return str(value)
    for part in parts:
        if isinstance(part, mi.DictType) and isinstance(value, Mapping):
            return {k: _normalize_value(v, part.value_type) for k, v in value.items()}
    return value


def ignored_keys(
    document: Mapping[str, Any], cls: type = WorkerConfig, prefix: str = ""
) -> Iterator[str]:
    """Dotted paths of keys no record field reads, nested records included, in file order.
    A key close to a real one is followed by a hint, such as ``(did you mean workerPort?)``."""
    fields = struct_fields(cls)
    for key, value in document.items():
        field = fields.get(key)
        if field is None:
            yield prefix + str(key) + _hint(str(key), fields)
            continue
        record = _record_of(field.type)
        if record is not None and isinstance(value, Mapping):
            yield from ignored_keys(value, record, f"{prefix}{key}.")


def _hint(key: str, fields: Mapping[str, mi.Field]) -> str:
    """`` (did you mean X?)`` when ``key`` is a field name with one or two typos."""
    for candidate in difflib.get_close_matches(key, list(fields), n=3, cutoff=0.8):
        if _edit_distance(key, candidate) <= 2:
            return f" (did you mean {candidate}?)"
    return ""


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: single-character insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def describe(kind: mi.Type) -> str:
    """The phrase completing "expected ..." for a type; null is left unmentioned."""
    if isinstance(kind, mi.Metadata):
        text = (kind.extra_json_schema or {}).get("description")
        return str(text) if text else describe(kind.type)
    if isinstance(kind, mi.UnionType):
        parts = [describe(part) for part in kind.types if not isinstance(part, mi.NoneType)]
        return " or ".join(parts)
    return _describe_simple(kind)


def _describe_simple(kind: mi.Type) -> str:
    """The phrase for a type that is neither annotated nor a union."""
    if isinstance(kind, mi.IntType | mi.FloatType):
        return _describe_number(kind)
    if isinstance(kind, mi.VarTupleType | mi.ListType | mi.SetType | mi.FrozenSetType):
        item = kind.item_type
        return "a list of strings" if isinstance(_bare(item), mi.StrType) else "a list"
    if isinstance(kind, mi.LiteralType):
        return "one of " + ", ".join(str(value) for value in kind.values)
    phrases: dict[type, str] = {
        mi.BoolType: "true or false",
        mi.StrType: "a string",
        mi.DictType: "a mapping of keys to values",
        mi.StructType: "a mapping of keys to values",
    }
    return phrases.get(type(kind), "a valid value")


def _describe_number(kind: mi.IntType | mi.FloatType) -> str:
    """Phrases such as "an integer from 1 to 65535" or "a positive number"."""
    noun = "integer" if isinstance(kind, mi.IntType) else "number"
    article = "an" if noun == "integer" else "a"
    if kind.ge is not None and kind.le is not None:
        return f"{article} {noun} from {kind.ge} to {kind.le}"
    if kind.gt == 0 and kind.le is not None:
        return f"a positive {noun} of at most {kind.le}"
    if kind.gt == 0:
        return f"a positive {noun}"
    if kind.ge is not None:
        return f"{article} {noun} of at least {kind.ge}"
    return f"{article} {noun}"


def explain(error: msgspec.ValidationError, document: Mapping[str, Any]) -> Violation:
    """The key, value and valid range behind a msgspec validation error."""
    match = _ERROR_PATH.search(str(error))
    names = [m.group(1) for m in _PATH_PART.finditer(match.group(1))] if match else []
    keys: list[str] = []
    kind: mi.Type = mi.type_info(WorkerConfig)
    value: Any = document
    for name in names:
        if name is None or _record_of(kind) is None or not isinstance(value, Mapping):
            break  # a list index or mapping key: report the whole field
        field = struct_fields(_record_of(kind)).get(name)
        if field is None:
            break
        keys.append(name)
        kind, value = field.type, value.get(name)
    if not keys:
        return Violation(key="(document)", value=None, expected=str(error))
    return Violation(key=".".join(keys), value=value, expected=describe(kind))


def inconsistencies(config: WorkerConfig) -> Iterator[Violation]:
    """Values that are valid alone but not together, in key order."""
    if config.worker_port is None and not web_tls_enabled(config):
        yield Violation(
            key="workerPort",
            value=None,
            expected=(
                "an integer from 1 to 65535 unless tlsEnabled is true and workerPortTls is set"
            ),
        )
    if config.tls_enabled and not config.tls_certificate_file_path:
        yield Violation(
            key="tlsCertificateFilePath",
            value=config.tls_certificate_file_path,
            expected="the path of a certificate file when tlsEnabled is true",
        )
    if config.tls_enabled and not config.tls_key_file_path:
        yield Violation(
            key="tlsKeyFilePath",
            value=config.tls_key_file_path,
            expected="the path of a private key file when tlsEnabled is true",
        )
    yield from _timing_inconsistencies(config)
    yield from _limit_inconsistencies(config)
    for key, value, expected in security_problems(config):
        yield Violation(key=key, value=value, expected=expected)


def _timing_inconsistencies(config: WorkerConfig) -> Iterator[Violation]:
    """fnworker's liveness and lease timers must leave room for at least one renewal."""
    if config.heartbeat_interval_ms >= config.worker_dead_timeout_ms:
        yield Violation(
            key="heartbeatIntervalMs",
            value=config.heartbeat_interval_ms,
            expected=(
                f"a positive integer below workerDeadTimeoutMs ({config.worker_dead_timeout_ms})"
            ),
        )
    if config.lease_renew_ms >= config.lease_timeout_ms:
        yield Violation(
            key="leaseRenewMs",
            value=config.lease_renew_ms,
            expected=f"a positive integer below leaseTimeoutMs ({config.lease_timeout_ms})",
        )
    if config.max_request_body_bytes < config.max_package_size_bytes:
        yield Violation(
            key="maxRequestBodyBytes",
            value=config.max_request_body_bytes,
            expected=(
                "a positive integer of at least maxPackageSizeBytes "
                f"({config.max_package_size_bytes})"
            ),
        )


def _limit_inconsistencies(config: WorkerConfig) -> Iterator[Violation]:
    """Admission limits that would refuse every function, or contradict each other."""
    if config.max_function_parallelism > config.max_fleet_instances:
        yield Violation(
            key="maxFunctionParallelism",
            value=config.max_function_parallelism,
            expected=(
                f"a positive integer of at most maxFleetInstances ({config.max_fleet_instances})"
            ),
        )
    low = config.function_instance_min_resources
    high = config.function_instance_max_resources
    for part in ("cpu", "ram", "disk"):
        least = getattr(low, part) if low is not None else None
        most = getattr(high, part) if high is not None else None
        if least is not None and most is not None and least > most:
            yield Violation(
                key=f"functionInstanceMinResources.{part}",
                value=least,
                expected=f"at most functionInstanceMaxResources.{part} ({most})",
            )
