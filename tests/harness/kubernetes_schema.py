"""Checks Kubernetes objects against the official schemas of one pinned version
(kubernetes-validate, strict: unknown fields fail). Test helper; reads schema files.

Validates exactly as ``kubernetes_validate.validate(manifest, "1.30.0", strict=True)``
does (the same schema files it ships, the same jsonschema Draft 2020-12 validator and
referencing registry, the same exceptions), but builds each validator once:
the library re-reads the 1.3 MB ``_definitions.json`` and builds a new validator and
registry on every call, which made the in-test API server (``tests/harness/kubernetes_api.py``)
spend most of its time there. Here the definitions are read once and one validator
per (apiVersion, kind) is cached for the process.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.30.0"


@functools.cache
def _schema_version() -> str:
    """The schema version kubernetes-validate uses for ``KUBERNETES_VERSION``: the
    latest it ships that is not newer (same selection as ``utils.validate``)."""
    wanted = utils.major_minor(KUBERNETES_VERSION)
    if wanted > utils.latest_version():
        raise utils.VersionNotSupportedError(version=wanted)
    return str([v for v in utils.all_versions() if utils.major_minor(v) <= wanted][-1])


def _schema_dir() -> str:
    return f"kubernetes-json-schema/v{_schema_version()}-local-strict"


@functools.cache
def _definitions() -> Resource[Any]:
    """The shared ``_definitions.json`` every kind's schema refers to (read once)."""
    contents = utils.schema_contents(f"{_schema_dir()}/_definitions.json", KUBERNETES_VERSION)
    return Resource.from_contents(contents)


@functools.cache
def _validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    """The strict validator of one (apiVersion, kind), built once.

    Raises kubernetes_validate.SchemaNotFoundError for a kind without a schema
    (not cached: ``functools.cache`` keeps only results)."""
    # rbac.authorization.k8s.io/v1 -> rbac-v1, apps/v1 -> apps-v1 (as the library does)
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(
            f"{_schema_dir()}/{kind.lower()}-{group_version}.json", KUBERNETES_VERSION
        )
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(
            version=utils.major_minor(KUBERNETES_VERSION), kind=kind, api_version=api_version
        ) from None
    registry: Registry[Any] = _definitions() @ (Resource.from_contents(schema) @ Registry())
    # Index every subresource once (12 ms per kind; measured ~3 % faster per call).
    registry = registry.crawl()
    validator: jsonschema.protocols.Validator = jsonschema.validators.Draft202012Validator(
        schema, registry=registry
    )
    return validator


def validate(manifest: Mapping[str, Any]) -> None:
    """Raise kubernetes_validate.ValidationError if ``manifest`` is not a valid object
    (kubernetes_validate.SchemaNotFoundError if its apiVersion/kind has no schema)."""
    data = dict(manifest)
    validator = _validator(data["apiVersion"], data["kind"])
    try:
        validator.validate(data)
    except jsonschema.ValidationError as error:
        raise kubernetes_validate.ValidationError(
            error, version=utils.major_minor(_schema_version())
        ) from error
