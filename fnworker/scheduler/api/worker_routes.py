"""The worker endpoints: the fleet (``/admin/v2/worker/...``), readiness, version
and the OpenAPI document. Does network I/O (the request)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
from aiohttp import web

from fnworker.scheduler.admin.fleet_admin import DrainStatus, InstanceOnWorker
from fnworker.scheduler.api.replies import json_reply
from fnworker.scheduler.api.route_table import (
    ADMIN,
    JSON,
    METRICS_REGISTRY,
    OPENAPI_DOCUMENT,
    TEXT,
    Route,
)
from fnworker.scheduler.model.errors import unavailable
from fnworker.scheduler.model.prometheus import CONTENT_TYPE, render
from fnworker.scheduler.model.records import WorkerInfo


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What ``/version`` answers."""

    version: str


def fnworker_version() -> str:
    """The installed distribution's version."""
    try:
        return version("fnworker")
    except PackageNotFoundError:
        return "unknown"


async def cluster(request: web.Request) -> web.Response:
    """Every live worker."""
    return json_reply(request.app[ADMIN].cluster())


async def leader(request: web.Request) -> web.Response:
    """The current leader; 503 while none is known."""
    current = request.app[ADMIN].leader()
    if current is None:
        raise unavailable(
            "no leader is known yet; expected one within a few heartbeats, retry shortly"
        )
    return json_reply(current)


async def assignments(request: web.Request) -> web.Response:
    """``{workerId: [instanceId, ...]}``."""
    return json_reply(await request.app[ADMIN].assignments())


async def rebalance(request: web.Request) -> web.Response:
    """Even out instances across workers (the leader does it)."""
    await request.app[ADMIN].rebalance()
    return web.Response(status=200)


def drained_worker(request: web.Request) -> str | None:
    """The ``workerId`` a leader drain names (None: the worker answering)."""
    return request.query.get("workerId") or None


async def drain(request: web.Request) -> web.Response:
    """Move every instance off a worker and keep it empty until it leaves."""
    await request.app[ADMIN].drain(drained_worker(request))
    return web.Response(status=200)


async def drain_status(request: web.Request) -> web.Response:
    """How the last drain of a worker went (Pulsar's LongRunningProcessStatus)."""
    return json_reply(await request.app[ADMIN].drain_status(drained_worker(request)))


async def functions_metrics(request: web.Request) -> web.Response:
    """The instances this worker holds, with their counters."""
    return json_reply(request.app[ADMIN].local_instances())


async def initialized(request: web.Request) -> web.Response:
    """200 once the worker serves requests, else 503."""
    if not request.app[ADMIN].is_ready():
        raise unavailable(
            "the worker is still starting; expected ready within seconds, retry shortly"
        )
    return web.Response(status=200)


async def version_info(request: web.Request) -> web.Response:
    """The fnworker version."""
    return json_reply(VersionInfo(version=fnworker_version()))


async def prometheus_metrics(request: web.Request) -> web.Response:
    """Every instance's counters in Prometheus text format (empty without a registry)."""
    registry = request.app.get(METRICS_REGISTRY)
    body = render(registry) if registry is not None else b""
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi_document(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this API."""
    return web.Response(body=request.app[OPENAPI_DOCUMENT], content_type=JSON)


_WORKER = "/admin/v2/worker"

ROUTES: list[Route] = [
    Route(
        method="GET",
        path=f"{_WORKER}/cluster",
        handler=cluster,
        tag="worker",
        summary="List the live workers",
        response=list[WorkerInfo],
        errors=(),
    ),
    Route(
        method="GET",
        path=f"{_WORKER}/cluster/leader",
        handler=leader,
        tag="worker",
        summary="Get the leader",
        response=WorkerInfo,
        errors=(503,),
    ),
    Route(
        method="GET",
        path=f"{_WORKER}/assignments",
        handler=assignments,
        tag="worker",
        summary="List instance assignments by worker",
        response=dict[str, list[str]],
        errors=(),
    ),
    Route(
        method="PUT",
        path=f"{_WORKER}/rebalance",
        handler=rebalance,
        tag="worker",
        summary="Even out instances across workers (the leader does it)",
        errors=(400, 503),
    ),
    Route(
        method="PUT",
        path=f"{_WORKER}/drain",
        handler=drain,
        tag="worker",
        summary="Drain this worker",
        errors=(400, 409, 503),
    ),
    Route(
        method="GET",
        path=f"{_WORKER}/drain",
        handler=drain_status,
        tag="worker",
        summary="Status of this worker's drain",
        response=DrainStatus,
        errors=(503,),
    ),
    Route(
        method="PUT",
        path=f"{_WORKER}/leader/drain",
        handler=drain,
        tag="worker",
        summary="Drain the worker named by workerId",
        query=("workerId",),
        errors=(400, 409, 503),
    ),
    Route(
        method="GET",
        path=f"{_WORKER}/leader/drain",
        handler=drain_status,
        tag="worker",
        summary="Status of the drain of the worker named by workerId",
        response=DrainStatus,
        query=("workerId",),
        errors=(503,),
    ),
    Route(
        method="GET",
        path="/admin/v2/worker-stats/functionsmetrics",
        handler=functions_metrics,
        tag="worker",
        summary="The instances this worker holds, with their counters",
        response=list[InstanceOnWorker],
        errors=(),
    ),
    Route(
        method="GET",
        path="/initialized",
        handler=initialized,
        tag="worker",
        summary="Readiness: 200 once the worker is ready",
        errors=(503,),
    ),
    Route(
        method="GET",
        path="/version",
        handler=version_info,
        tag="worker",
        summary="The fnworker version",
        response=VersionInfo,
        errors=(),
    ),
    Route(
        method="GET",
        path="/metrics",
        handler=prometheus_metrics,
        tag="worker",
        summary="Function instance metrics in Prometheus text format",
        media=TEXT,
        errors=(),
    ),
    Route(
        method="GET",
        path="/admin/v3/openapi.json",
        handler=openapi_document,
        tag="meta",
        summary="This document",
        response=dict[str, Any],
        errors=(),
    ),
    Route(
        method="GET",
        path="/openapi.json",
        handler=openapi_document,
        tag="meta",
        summary="This document",
        response=dict[str, Any],
        errors=(),
    ),
]
