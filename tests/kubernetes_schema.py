"""Checks Kubernetes objects against the official schemas of one pinned version
(kubernetes-validate, strict: unknown fields fail). Test helper; reads schema files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.30.0"


def validate(manifest: Mapping[str, Any]) -> None:
    """Raise kubernetes_validate.ValidationError if ``manifest`` is not a valid object."""
    kubernetes_validate.validate(dict(manifest), KUBERNETES_VERSION, strict=True)
