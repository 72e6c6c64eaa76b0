"""Loads ``functions_worker.yml`` plus environment overrides into a ``WorkerConfig``.

Only ``load_worker_config`` does I/O (it reads the file); the rest is pure.

The file is Pulsar's own format: a Pulsar ``conf/functions_worker.yml`` loads
unchanged. Keys fnworker does not read (BookKeeper, ZooKeeper, JVM-only and
unknown keys) are not errors: they produce one warning listing them all.

Environment overrides, applied after the file::

    FNWORKER_workerPort=7000                                    # a top-level key
    FNWORKER_functionRuntimeFactoryConfigs__logDirectory=/x     # "__" descends one level
    FNWORKER_superUserRoles=[admin,ops]                         # YAML flow collection
    FNWORKER_properties__tokenPublicKey=file:///k.pem           # a key inside a map

The part after ``FNWORKER_`` is the camelCase key exactly as in the file; values
are parsed as YAML (``7000`` is a number, ``true`` a boolean, an empty value null).
Variables whose key part starts with an upper-case letter (``FNWORKER_LOG_LEVEL``)
are not configuration keys and are left alone; a lower-case one that names no key
fnworker reads produces a warning.

Every invalid value raises ``ConfigError`` with one sentence naming where it came
from, the key path, the value and what is valid, for example
``functions_worker.yml: workerPort = 'abc' is not valid; expected an integer from 1 to 65535.``
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import msgspec
import yaml

from fnworker.scheduler.settings.config_validation import (
    Violation,
    explain,
    ignored_keys,
    inconsistencies,
    nested_shape,
    normalize,
    struct_fields,
)
from fnworker.scheduler.settings.worker_config import ConfigError, WorkerConfig

ENV_PREFIX: Final = "FNWORKER_"
ENV_NESTING: Final = "__"
DEFAULTS_SOURCE: Final = "built-in defaults"

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LoadedConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A validated configuration and the warnings to log once at start-up."""

    config: WorkerConfig
    warnings: tuple[str, ...] = ()


class EnvOverrides(msgspec.Struct, frozen=True, kw_only=True):
    """A document with the environment applied, where each override came from,
    and the variables that named no key."""

    document: dict[str, Any]
    origins: dict[str, str]
    unknown: tuple[str, ...]


def load_worker_config(path: Path | None, environ: Mapping[str, str]) -> LoadedConfig:
    """Read ``path`` (None: built-in defaults), apply ``FNWORKER_*`` overrides, validate."""
    if path is None:
        return parse_worker_config({}, environ, source=DEFAULTS_SOURCE)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: the file cannot be read ({error.strerror}).") from error
    return parse_worker_config(parse_yaml(text, str(path)), environ, source=str(path))


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """The top-level mapping of a YAML document; an empty document is an empty mapping."""
    try:
        document = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        raise ConfigError(_yaml_sentence(source, error)) from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: the file is not valid YAML ({error}).") from error
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{source}: the top level = {_show(document)} is not valid; "
            "expected a mapping of keys to values."
        )
    return document


def _yaml_sentence(source: str, error: yaml.MarkedYAMLError) -> str:
    """One sentence naming the line and column of a YAML syntax error."""
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the document"
    problem = error.problem or error.context or "syntax error"
    return f"{source}: {where} is not valid YAML; {problem}."


def parse_worker_config(
    document: Mapping[str, Any], environ: Mapping[str, str], *, source: str
) -> LoadedConfig:
    """Validate a parsed document with the environment's overrides applied."""
    overrides = apply_environ(document, environ)
    prepared = normalize(overrides.document)
    try:
        config = msgspec.convert(prepared, WorkerConfig, strict=False)
    except msgspec.ValidationError as error:
        violation = explain(error, prepared)
        raise ConfigError(_sentence(violation, overrides.origins, source)) from error
    conflict = next(inconsistencies(config), None)
    if conflict is not None:
        raise ConfigError(_sentence(conflict, overrides.origins, source))
    return LoadedConfig(config=config, warnings=_warnings(prepared, overrides.unknown))


DEFAULT_DOMAIN_SUFFIX: Final = ".svc.cluster.local"


def _warnings(document: Mapping[str, Any], unknown_env: tuple[str, ...]) -> tuple[str, ...]:
    """At most one warning for ignored keys and one for ignored variables."""
    warnings: list[str] = []
    ignored = list(ignored_keys(document))
    if ignored:
        warnings.append("ignoring keys fnworker does not implement: " + ", ".join(ignored))
    factory = document.get("functionRuntimeFactoryConfigs")
    suffix = factory.get("kubernetesServiceDomainSuffix") if isinstance(factory, Mapping) else None
    if suffix not in (None, "", DEFAULT_DOMAIN_SUFFIX):
        warnings.append(
            f"functionRuntimeFactoryConfigs kubernetesServiceDomainSuffix {suffix!r} is not "
            "used: the worker reaches function pods at the IPs its pod watch reports, not "
            "through cluster DNS"
        )
    state_url = document.get("stateStorageServiceUrl")
    if state_url:
        namespace = document.get("pulsarFunctionsNamespace", "public/functions")
        warnings.append(
            f"stateStorageServiceUrl {state_url} is not used: fnworker keeps function state "
            f"on the broker instead of BookKeeper's table service, one topic per function in "
            f"{namespace} (docs/state.md)"
        )
    if unknown_env:
        warnings.append(
            "ignoring environment variables naming no key fnworker reads: " + ", ".join(unknown_env)
        )
    return tuple(warnings)


def _sentence(violation: Violation, origins: Mapping[str, str], source: str) -> str:
    """``<source>: <key> = <value> is not valid; expected <what>.``"""
    return (
        f"{_origin(violation.key, origins, source)}: {violation.key} = "
        f"{_show(violation.value)} is not valid; expected {violation.expected}."
    )


def _origin(key: str, origins: Mapping[str, str], source: str) -> str:
    """The variable that set ``key`` or one of its parents, else the file."""
    parts = key.split(".")
    for length in range(len(parts), 0, -1):
        variable = origins.get(".".join(parts[:length]))
        if variable is not None:
            return variable
    return source


def _show(value: Any) -> str:
    """A value as the user wrote it: YAML's null/true/false, Python's repr otherwise."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def apply_environ(document: Mapping[str, Any], environ: Mapping[str, str]) -> EnvOverrides:
    """The document with every ``FNWORKER_<key>`` override applied, in name order."""
    result = dict(document)
    origins: dict[str, str] = {}
    unknown: list[str] = []
    for variable in sorted(environ):
        name = variable.removeprefix(ENV_PREFIX)
        if name == variable or not name[:1].islower():
            continue
        keys = resolve_env_key(name.split(ENV_NESTING))
        if keys is None:
            unknown.append(variable)
            continue
        result = _set_path(result, keys, _env_value(variable, keys, environ[variable]))
        origins[".".join(keys)] = variable
    return EnvOverrides(document=result, origins=origins, unknown=tuple(unknown))


def resolve_env_key(parts: list[str]) -> list[str] | None:
    """The key path an override names, or None if fnworker reads no such key.
    Below a free-form map (``properties``, ``customLabels``...) any key is accepted."""
    record: type | None = WorkerConfig
    for index, part in enumerate(parts):
        if not part:
            return None
        if record is None:
            continue  # inside a free-form map
        field = struct_fields(record).get(part)
        if field is None:
            return None
        record, is_map = nested_shape(field.type)
        if record is None and not is_map and index < len(parts) - 1:
            return None  # a scalar key has nothing below it
    return parts


def _env_value(variable: str, keys: list[str], text: str) -> Any:
    """An override's value parsed as a YAML scalar or flow collection."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"{variable}: {'.'.join(keys)} = {text!r} is not valid; "
            "expected a YAML value such as 7000, true, pulsar://host:6650 or [admin, ops]."
        ) from error


def _set_path(document: Mapping[str, Any], keys: list[str], value: Any) -> dict[str, Any]:
    """A copy of ``document`` with the value at ``keys`` replaced (maps created as needed)."""
    result = dict(document)
    head, rest = keys[0], keys[1:]
    if not rest:
        result[head] = value
        return result
    child = result.get(head)
    result[head] = _set_path(child if isinstance(child, Mapping) else {}, rest, value)
    return result
