"""Pulsar worker endpoints fnworker answers in Pulsar's shape although it has little to
say: the connectors lists (always empty: fnworker runs no connectors), whether this
worker is a ready leader, and the worker's metrics as Pulsar ``Metrics`` objects.
Does network I/O (the request).

``GET /admin/v2/worker-stats/metrics`` answers one ``{"metrics": {...},
"dimensions": {...}}`` per label set of what ``GET /metrics`` renders: the
dimensions are the Prometheus labels (tenant, namespace, name, instance_id, cluster,
fqfn for an instance; reason, cluster for the leader's assignment changes) and the
metrics the samples with those labels, by sample name (e.g.
``pulsar_function_received_total``). Pulsar fills this list from its own JVM and
worker gauges instead; the shape is the same.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from fnworker.scheduler.api.replies import json_reply
from fnworker.scheduler.api.route_table import ADMIN, METRICS_REGISTRY, Route
from fnworker.scheduler.model.errors import unavailable


class ConnectorDefinition(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pulsar's ConnectorDefinition (the connectors lists hold none on fnworker)."""

    name: str
    description: str | None = None
    source_class: str | None = None
    sink_class: str | None = None
    source_config_class: str | None = None
    sink_config_class: str | None = None


class WorkerMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Pulsar's ``org.apache.pulsar.common.stats.Metrics``: values by name, and the
    dimensions (labels) they share."""

    metrics: dict[str, float]
    dimensions: dict[str, str]


def metrics_by_dimensions(families: Iterable[Metric]) -> list[WorkerMetrics]:
    """Prometheus samples grouped by their label sets (finite values only, as JSON
    has no NaN), in the order first seen."""
    groups: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    for family in families:
        for sample in family.samples:
            if math.isfinite(sample.value):
                labels = tuple(sorted(sample.labels.items()))
                groups.setdefault(labels, {})[sample.name] = float(sample.value)
    return [
        WorkerMetrics(metrics=values, dimensions=dict(labels)) for labels, values in groups.items()
    ]


async def connectors(request: web.Request) -> web.Response:
    """No connectors: fnworker runs functions only."""
    return json_reply([])


async def leader_ready(request: web.Request) -> web.Response:
    """``true`` when this worker is the fleet's leader and ready; 503 otherwise
    (Pulsar's WorkerImpl.isLeaderReady)."""
    admin = request.app[ADMIN]
    if not (admin.is_ready() and admin.is_leader()):
        raise unavailable(
            "this worker is not the fleet's ready leader; expected GET "
            "/admin/v2/worker/cluster/leader to name the leader to ask"
        )
    return json_reply(True)


async def worker_metrics(request: web.Request) -> web.Response:
    """The worker's metrics as Pulsar ``Metrics`` objects."""
    registry: CollectorRegistry | None = request.app.get(METRICS_REGISTRY)
    return json_reply(metrics_by_dimensions(registry.collect()) if registry is not None else [])


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/admin/v3/functions/connectors",
        handler=connectors,
        summary="List the connectors (always empty: fnworker runs no connectors)",
        response=list[ConnectorDefinition],
        errors=(),
    ),
    Route(
        method="GET",
        path="/admin/v2/worker/connectors",
        handler=connectors,
        tag="worker",
        summary="List the connectors (always empty: fnworker runs no connectors)",
        response=list[ConnectorDefinition],
        errors=(),
    ),
    Route(
        method="GET",
        path="/admin/v2/worker/cluster/leader/ready",
        handler=leader_ready,
        tag="worker",
        summary="true when this worker is the ready leader (503 otherwise)",
        response=bool,
        errors=(503,),
    ),
    Route(
        method="GET",
        path="/admin/v2/worker-stats/metrics",
        handler=worker_metrics,
        tag="worker",
        summary="The worker's metrics as Pulsar Metrics objects",
        response=list[WorkerMetrics],
        errors=(),
    ),
]
