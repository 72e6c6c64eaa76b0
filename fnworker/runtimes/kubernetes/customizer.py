"""Customizing a function's Kubernetes objects: the plugin interface, the basic
customizer Pulsar ships, and loading the one named by ``runtimeCustomizerClassName``.
Pure except ``load_customizer``, which imports the plugin's module.

**The plugin interface** (Pulsar's KubernetesManifestCustomizer, in Python). A
class named by a dotted path (``my_package.module.MyCustomizer`` or
``my_package.module:MyCustomizer``) is constructed with no arguments, then
``initialize(runtimeCustomizerConfig)`` is called once. For each function the
renderer calls, in order: ``customize_name`` (return a jobName override or
``current``; an override is hash-suffixed), ``customize_namespace``,
``customize_service`` and ``customize_stateful_set``. The last two receive plain
dicts and **their return value is used** (Pulsar ignored a returned StatefulSet);
they may also mutate and return the argument. Every rendered object is still
validated against the Kubernetes schema in the tests, not at run time. Subclass
``NoOpCustomizer`` (or ``BasicCustomizer``) to override only some methods.

**The basic customizer** reads ``customRuntimeOptions`` (a JSON object string) of
the function, merged over ``runtimeCustomizerConfig`` (cluster defaults): maps
merge by key with the function winning, tolerations append, scalars override.
Keys: jobNamespace, jobName, extraLabels (``extractLabels``, the misspelling in
Pulsar's sample yml, is accepted as a synonym), extraAnnotations,
nodeSelectorLabels, tolerations, resourceRequirements (``limits``/``requests`` of
``cpu`` and ``memory``). An unknown key is an error naming it, not ignored.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from fnworker.runtimes.kubernetes.errors import ManifestError
from fnworker.runtimes.kubernetes.names import (
    check_label_key,
    check_label_value,
    check_namespace,
)
from fnworker.scheduler.model.records import FunctionRecord

BASIC_CUSTOMIZER_NAMES = (
    "basic",
    "org.apache.pulsar.functions.runtime.kubernetes.BasicKubernetesManifestCustomizer",
)
RESOURCE_KEYS = ("cpu", "memory")
MISSPELLED_LABELS_KEY = "extractLabels"
CUSTOMIZER_METHODS = (
    "initialize",
    "customize_name",
    "customize_namespace",
    "customize_service",
    "customize_stateful_set",
)


class ManifestCustomizer(Protocol):
    """What ``runtimeCustomizerClassName`` names (Pulsar's KubernetesManifestCustomizer)."""

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Receive ``runtimeCustomizerConfig`` once, before any other call."""
        ...

    def customize_name(self, function: FunctionRecord, current: str | None) -> str | None:
        """A jobName override for ``function`` (hash-suffixed), or ``current``."""
        ...

    def customize_namespace(self, function: FunctionRecord, current: str) -> str:
        """The namespace ``function``'s objects go to."""
        ...

    def customize_service(
        self, function: FunctionRecord, service: dict[str, Any]
    ) -> dict[str, Any]:
        """The headless Service to create (its name is forced back to the job name)."""
        ...

    def customize_stateful_set(
        self, function: FunctionRecord, stateful_set: dict[str, Any]
    ) -> dict[str, Any]:
        """The StatefulSet to create."""
        ...


class NoOpCustomizer:
    """A customizer that changes nothing: subclass it to override only some methods."""

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Ignore the config."""

    def customize_name(self, function: FunctionRecord, current: str | None) -> str | None:
        """Keep ``current``."""
        return current

    def customize_namespace(self, function: FunctionRecord, current: str) -> str:
        """Keep ``current``."""
        return current

    def customize_service(
        self, function: FunctionRecord, service: dict[str, Any]
    ) -> dict[str, Any]:
        """Keep ``service``."""
        return service

    def customize_stateful_set(
        self, function: FunctionRecord, stateful_set: dict[str, Any]
    ) -> dict[str, Any]:
        """Keep ``stateful_set``."""
        return stateful_set


class Toleration(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A pod toleration, as the Kubernetes API spells it."""

    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


class ResourceRequirements(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``resourceRequirements``: container limits and requests of cpu and memory."""

    limits: dict[str, str] = {}
    requests: dict[str, str] = {}


class RuntimeOpts(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """The basic customizer's options (Pulsar's BasicKubernetesManifestCustomizer.RuntimeOpts)."""

    job_namespace: str | None = None
    job_name: str | None = None
    extra_labels: dict[str, str] = {}
    extra_annotations: dict[str, str] = {}
    node_selector_labels: dict[str, str] = {}
    tolerations: list[Toleration] = []
    resource_requirements: ResourceRequirements | None = None


def parse_options(document: Any, source: str) -> RuntimeOpts:
    """``document`` (a mapping) as RuntimeOpts; ManifestError naming ``source`` otherwise."""
    if not isinstance(document, Mapping):
        raise ManifestError(f"{source} is {type(document).__name__}; expected a JSON object")
    fields = dict(document)
    if MISSPELLED_LABELS_KEY in fields:
        fields["extraLabels"] = {
            **fields.pop(MISSPELLED_LABELS_KEY),
            **fields.get("extraLabels", {}),
        }
    try:
        options = msgspec.convert(fields, RuntimeOpts)
    except msgspec.ValidationError as error:
        raise ManifestError(f"{source} is not valid: {error}") from None
    return check_options(options, source)


def function_options(function: FunctionRecord) -> RuntimeOpts:
    """The function's ``customRuntimeOptions`` (an empty string or absent: no options)."""
    text = function.config.custom_runtime_options
    if not text or not text.strip():
        return RuntimeOpts()
    try:
        document = json.loads(text)
    except ValueError:
        raise ManifestError(
            "customRuntimeOptions is not valid JSON; expected a JSON object string such as "
            '\'{"jobNamespace": "functions"}\''
        ) from None
    return parse_options(document, "customRuntimeOptions")


def check_options(options: RuntimeOpts, source: str) -> RuntimeOpts:
    """Check names, labels and resource keys Kubernetes would reject; return ``options``."""
    if options.job_namespace is not None:
        check_namespace(f"{source} jobNamespace", options.job_namespace)
    for field, labels in (
        ("extraLabels", options.extra_labels),
        ("nodeSelectorLabels", options.node_selector_labels),
    ):
        for key, value in labels.items():
            check_label_key(f"{source} {field}", key)
            check_label_value(f"{source} {field}", value)
    for key in options.extra_annotations:
        check_label_key(f"{source} extraAnnotations", key)
    if options.resource_requirements is not None:
        _check_resource_keys(options.resource_requirements, source)
    return options


def _check_resource_keys(requirements: ResourceRequirements, source: str) -> None:
    """Only cpu and memory may be set, as in Pulsar's basic customizer."""
    for part in ("limits", "requests"):
        for key in getattr(requirements, part):
            if key not in RESOURCE_KEYS:
                raise ManifestError(
                    f"{source} resourceRequirements.{part} key '{key}' is not supported; "
                    "expected cpu or memory"
                )


def merge_options(cluster: RuntimeOpts, function: RuntimeOpts) -> RuntimeOpts:
    """Cluster defaults overridden by a function's options (maps by key, tolerations append)."""
    return RuntimeOpts(
        job_namespace=function.job_namespace or cluster.job_namespace,
        job_name=function.job_name or cluster.job_name,
        extra_labels={**cluster.extra_labels, **function.extra_labels},
        extra_annotations={**cluster.extra_annotations, **function.extra_annotations},
        node_selector_labels={**cluster.node_selector_labels, **function.node_selector_labels},
        tolerations=[*cluster.tolerations, *function.tolerations],
        resource_requirements=_merge_resources(
            cluster.resource_requirements, function.resource_requirements
        ),
    )


def _merge_resources(
    cluster: ResourceRequirements | None, function: ResourceRequirements | None
) -> ResourceRequirements | None:
    """Limits and requests merged by key, the function's winning."""
    if cluster is None or function is None:
        return function or cluster
    return ResourceRequirements(
        limits={**cluster.limits, **function.limits},
        requests={**cluster.requests, **function.requests},
    )


class BasicCustomizer:
    """Pulsar's BasicKubernetesManifestCustomizer: options from config and the function."""

    def __init__(self) -> None:
        self.cluster = RuntimeOpts()

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Take the cluster defaults from ``runtimeCustomizerConfig``."""
        self.cluster = parse_options(config, "runtimeCustomizerConfig")

    def options(self, function: FunctionRecord) -> RuntimeOpts:
        """The options in effect for ``function``."""
        return merge_options(self.cluster, function_options(function))

    def customize_name(self, function: FunctionRecord, current: str | None) -> str | None:
        """``jobName`` from the options, else ``current``."""
        return self.options(function).job_name or current

    def customize_namespace(self, function: FunctionRecord, current: str) -> str:
        """``jobNamespace`` from the options, else ``current``."""
        return self.options(function).job_namespace or current

    def customize_service(
        self, function: FunctionRecord, service: dict[str, Any]
    ) -> dict[str, Any]:
        """Add the extra labels and annotations to the Service."""
        options = self.options(function)
        result = copy.deepcopy(service)
        _add_metadata(result["metadata"], options)
        return result

    def customize_stateful_set(
        self, function: FunctionRecord, stateful_set: dict[str, Any]
    ) -> dict[str, Any]:
        """Add labels, annotations, node selector, tolerations and resources."""
        options = self.options(function)
        result = copy.deepcopy(stateful_set)
        _add_metadata(result["metadata"], options)
        pod = result["spec"]["template"]
        _add_metadata(pod["metadata"], options)
        _customize_pod_spec(pod["spec"], options)
        return result


def _add_metadata(metadata: dict[str, Any], options: RuntimeOpts) -> None:
    """Merge extraLabels and extraAnnotations into ``metadata`` (existing keys kept)."""
    if options.extra_labels:
        metadata["labels"] = {**options.extra_labels, **metadata.get("labels", {})}
    if options.extra_annotations:
        metadata["annotations"] = {**metadata.get("annotations", {}), **options.extra_annotations}


def _customize_pod_spec(spec: dict[str, Any], options: RuntimeOpts) -> None:
    """Node selector, tolerations and container resources from ``options``."""
    if options.node_selector_labels:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), **options.node_selector_labels}
    if options.tolerations:
        spec["tolerations"] = [
            *spec.get("tolerations", []),
            *msgspec.to_builtins(options.tolerations),
        ]
    if options.resource_requirements is not None:
        for container in spec["containers"]:
            _set_resources(container.setdefault("resources", {}), options.resource_requirements)


def _set_resources(resources: dict[str, Any], requirements: ResourceRequirements) -> None:
    """Copy cpu and memory of limits and requests onto a container's resources."""
    for part in ("limits", "requests"):
        given = getattr(requirements, part)
        if given:
            resources[part] = {**resources.get(part, {}), **given}


def load_customizer(class_name: str | None, config: Mapping[str, Any]) -> ManifestCustomizer:
    """The initialized customizer ``runtimeCustomizerClassName`` names (default: basic)."""
    if not class_name or class_name in BASIC_CUSTOMIZER_NAMES:
        customizer: ManifestCustomizer = BasicCustomizer()
    else:
        customizer = _import_class(class_name)()
    customizer.initialize(config)
    return customizer


def _import_class(path: str) -> type[ManifestCustomizer]:
    """The class at ``module.Class`` or ``module:Class``; ManifestError if it is not there."""
    module_name, _, attribute = path.replace(":", ".").rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise ManifestError(
            f"runtimeCustomizerClassName '{path}' cannot be loaded ({error}); expected basic, "
            f"{BASIC_CUSTOMIZER_NAMES[1]} or a Python class as module.Class"
        ) from None
    missing = [
        method for method in CUSTOMIZER_METHODS if not callable(getattr(found, method, None))
    ]
    if not isinstance(found, type) or missing:
        raise ManifestError(
            f"runtimeCustomizerClassName '{path}' is not a manifest customizer; expected a "
            "class with initialize, customize_name, customize_namespace, customize_service "
            "and customize_stateful_set"
        )
    return found
