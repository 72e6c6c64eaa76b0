"""Whose StatefulSet is already at a function's job name, and what applying the
function may do with it: create, patch, delete-and-recreate, or refuse with one
sentence. Pure (docs/kubernetes-runtime.md, "Objects that are not ours").

- Ours (fnworker's function and cluster annotations match): patch, unless its
  selector differs from the one rendered now (a StatefulSet's selector cannot be
  patched: Kubernetes answers 422), then recreate.
- Made by Pulsar's own functions worker for the same function (no fnworker
  annotation; Pulsar's tenant/namespace/name labels match): recreate, after one log
  line; Pulsar's worker recreates its sets on every update too. Stop Pulsar's worker
  before moving its functions, or it will fight back.
- Another cluster's (its cluster annotation differs): refuse — two clusters sharing
  a jobNamespace must never overwrite each other's functions.
- Another function's, or unknown: refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec

FQFN_ANNOTATION: Final = "fnworker/fqfn"
CLUSTER_ANNOTATION: Final = "fnworker/cluster"
PULSAR_LABELS: Final = ("tenant", "namespace", "name")


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """What to do with the existing StatefulSet, and the sentence to log or report."""

    action: Literal["create", "patch", "recreate", "refuse"]
    sentence: str = ""


def claim_of(
    existing: Mapping[str, Any] | None,
    desired: Mapping[str, Any],
    fqfn: str,
    cluster: str,
) -> Claim:
    """The claim on the StatefulSet ``existing`` (None: there is none) for ``desired``."""
    if existing is None:
        return Claim(action="create")
    metadata = existing.get("metadata") or {}
    where = f"StatefulSet {metadata.get('name')} in namespace {metadata.get('namespace')}"
    annotations = metadata.get("annotations") or {}
    owner = annotations.get(FQFN_ANNOTATION)
    if owner is None:
        return _foreign(existing, desired, where)
    owner_cluster = annotations.get(CLUSTER_ANNOTATION)
    if owner_cluster not in (None, cluster):
        return Claim(
            action="refuse",
            sentence=f"{where} runs function {owner} of cluster {owner_cluster}; refusing to "
            f"touch it from cluster {cluster} (give each cluster its own "
            "functionRuntimeFactoryConfigs jobNamespace)",
        )
    if owner != fqfn:
        return Claim(
            action="refuse",
            sentence=f"{where} already runs function {owner}; refusing to take it over for "
            f"{fqfn} (set jobName in its customRuntimeOptions to give it a different name)",
        )
    if _selector(existing) != _selector(desired):
        return Claim(
            action="recreate",
            sentence=f"{where} has a selector this version of fnworker no longer renders "
            "(a selector cannot be patched); deleting and recreating it",
        )
    return Claim(action="patch")


def _foreign(existing: Mapping[str, Any], desired: Mapping[str, Any], where: str) -> Claim:
    """A set fnworker did not make: Pulsar's for this function, or someone else's."""
    labels = (existing.get("metadata") or {}).get("labels") or {}
    wanted = (desired.get("metadata") or {}).get("labels") or {}
    if all(labels.get(key) == wanted.get(key) for key in PULSAR_LABELS):
        return Claim(
            action="recreate",
            sentence=f"{where} was made by Pulsar's functions worker for this function; "
            "deleting it and creating fnworker's (its selector cannot be patched)",
        )
    return Claim(
        action="refuse",
        sentence=f"{where} was not made by fnworker for this function; refusing to take "
        "it over (delete it, or set jobName in the function's customRuntimeOptions)",
    )


def _selector(stateful_set: Mapping[str, Any]) -> Any:
    """The set's ``spec.selector`` (None when absent)."""
    return (stateful_set.get("spec") or {}).get("selector")
