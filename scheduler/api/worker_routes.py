"""The worker endpoints: the fleet (``/admin/v2/worker/...``), readiness, version
and the OpenAPI document. Does network I/O (the request)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import msgspec
from aiohttp import web

from fnworker.scheduler.api.replies import json_reply
from fnworker.scheduler.api.route_table import ADMIN, JSON, OPENAPI_DOCUMENT, Route
from fnworker.scheduler.errors import unavailable
from fnworker.scheduler.records import WorkerInfo


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
    return json_reply(request.app[ADMIN].assignments())


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
