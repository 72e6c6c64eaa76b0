"""Turns ``fnworker functions create|update`` flags (pulsar-admin's names) and an
optional ``--function-config-file`` into a FunctionConfig. Pure, except
``load_config_file`` which reads the file.

Flags override the file, as in pulsar-admin. The file is YAML or JSON with
Pulsar's FunctionConfig keys (camelCase); an unknown key is an error.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fnworker.scheduler.decide.function_validation import function_config_from_mapping
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.names import DEFAULT_NAMESPACE, DEFAULT_TENANT
from fnworker.scheduler.model.records import FunctionConfig


class CliError(Exception):
    """A mistake the user can fix; its message is printed as is."""


FLAG_KEYS: Mapping[str, str] = {
    "classname": "className",
    "inputs": "inputs",
    "topics_pattern": "topicsPattern",
    "output": "output",
    "log_topic": "logTopic",
    "parallelism": "parallelism",
    "user_config": "userConfig",
    "secrets": "secrets",
    "processing_guarantees": "processingGuarantees",
    "custom_serde_inputs": "customSerdeInputs",
    "custom_schema_inputs": "customSchemaInputs",
    "output_serde_classname": "outputSerdeClassName",
    "schema_type": "outputSchemaType",
    "max_message_retries": "maxMessageRetries",
    "dead_letter_topic": "deadLetterTopic",
    "subs_name": "subName",
    "subs_position": "subscriptionPosition",
    "retain_ordering": "retainOrdering",
    "retain_key_ordering": "retainKeyOrdering",
    "auto_ack": "autoAck",
    "timeout_ms": "timeoutMs",
    "custom_runtime_options": "customRuntimeOptions",
    "runtime_flags": "runtimeFlags",
    "cleanup_subscription": "cleanupSubscription",
    "py": "py",
}
"""argparse destination → FunctionConfig key, for every flag that sets one field."""

RESOURCE_FLAGS = ("cpu", "ram", "disk")


def load_config_file(path: str) -> dict[str, Any]:
    """The mapping in a YAML or JSON function config file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        document = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise CliError(f"--function-config-file {path} cannot be read: {error}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise CliError(
            f"--function-config-file {path} holds a {type(document).__name__}; "
            "expected a mapping of FunctionConfig keys"
        )
    return document


def config_from_args(
    args: argparse.Namespace, file_document: Mapping[str, Any] | None = None
) -> FunctionConfig:
    """The FunctionConfig the flags and the file describe (flags win)."""
    document = dict(file_document or {})
    document.update(flag_values(args))
    resources = resource_values(args)
    if resources:
        document["resources"] = {**(document.get("resources") or {}), **resources}
    tenant, namespace, name = function_names(args, document)
    document.update(tenant=tenant, namespace=namespace, name=name)
    try:
        return function_config_from_mapping(document, source="function config")
    except ApiError as error:
        raise CliError(error.reason) from None


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The FunctionConfig keys set by flags that were given."""
    given = {
        FLAG_KEYS[dest]: value
        for dest, value in vars(args).items()
        if dest in FLAG_KEYS and value is not None
    }
    if isinstance(given.get("inputs"), str):
        given["inputs"] = [topic.strip() for topic in given["inputs"].split(",")]
    return given


def resource_values(args: argparse.Namespace) -> dict[str, Any]:
    """``--cpu``, ``--ram`` and ``--disk`` as a partial Resources mapping."""
    return {
        flag: getattr(args, flag)
        for flag in RESOURCE_FLAGS
        if getattr(args, flag, None) is not None
    }


def function_names(
    args: argparse.Namespace, document: Mapping[str, Any] | None = None
) -> tuple[str, str, str]:
    """tenant, namespace and name from ``--fqfn``, or the flags, the file and defaults.

    Like pulsar-admin, a missing name is inferred from the class name (its last part).
    """
    document = document or {}
    if args.fqfn:
        return _split_fqfn(args)
    tenant = args.tenant or document.get("tenant") or DEFAULT_TENANT
    namespace = args.namespace or document.get("namespace") or DEFAULT_NAMESPACE
    name = args.name or document.get("name") or _inferred_name(document)
    if not name:
        raise CliError(
            "--name is required; expected --name NAME, --fqfn tenant/namespace/name, "
            "or a name in the config file"
        )
    return str(tenant), str(namespace), str(name)


def _split_fqfn(args: argparse.Namespace) -> tuple[str, str, str]:
    """``--fqfn`` split into its three parts; it excludes --tenant, --namespace and --name."""
    if args.tenant or args.namespace or args.name:
        raise CliError(
            "--fqfn cannot be combined with --tenant, --namespace or --name; "
            "expected one or the other"
        )
    parts = args.fqfn.split("/")
    if len(parts) != 3 or not all(parts):
        raise CliError(f"--fqfn {args.fqfn} is not valid; expected tenant/namespace/name")
    return parts[0], parts[1], parts[2]


def _inferred_name(document: Mapping[str, Any]) -> str | None:
    """The last part of the class name, as pulsar-admin infers a missing function name."""
    class_name = document.get("className")
    return str(class_name).rsplit(".", 1)[-1] if class_name else None
