"""Assembles the aiohttp application: routes from the route tables, the OpenAPI
document, and the middleware that turns errors into ``{"reason": ...}`` answers.
Builds objects only; serving (I/O) is the caller's ``web.AppRunner``.

Errors: an ``ApiError`` answers its status and reason; aiohttp's own HTTP errors
(unknown path, wrong method, body too large) answer their status with a reason;
a client that disconnected mid-request is logged as such (info); anything else is
logged with a request id and answered 500 without internals.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec
import structlog
from aiohttp import hdrs, web

from fnworker.scheduler.admin.forwarding import track_hops
from fnworker.scheduler.admin.protocol import FunctionsAdmin
from fnworker.scheduler.api import (
    functions_routes,
    state_routes,
    uploads_routes,
    worker_extras_routes,
    worker_routes,
)
from fnworker.scheduler.api.auth import SECURITY, security_middleware
from fnworker.scheduler.api.connection_guard import CONNECTION_GUARD, ConnectionGuard
from fnworker.scheduler.api.openapi import build_document
from fnworker.scheduler.api.openapi_constraints import SchemaBounds
from fnworker.scheduler.api.replies import error_reply
from fnworker.scheduler.api.route_table import (
    ADMIN,
    MAX_BODY_BYTES,
    OPENAPI_DOCUMENT,
    Handler,
    Route,
)
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.security.web_security import OPEN, WebSecurity

log = structlog.get_logger("fnworker.api")

ALL_ROUTES: Sequence[Route] = (
    *state_routes.ROUTES,  # first: a key named 'status' is not instance 'state'
    *functions_routes.ROUTES,
    *uploads_routes.ROUTES,
    *worker_routes.ROUTES,
    *worker_extras_routes.ROUTES,
)


def make_app(
    admin: FunctionsAdmin,
    *,
    max_body_bytes: int,
    security: WebSecurity = OPEN,
    max_package_bytes: int | None = None,
    guard: ConnectionGuard | None = None,
    bounds: SchemaBounds | None = None,
) -> web.Application:
    """The REST API over ``admin``; bodies larger than ``max_body_bytes`` and packages
    larger than ``max_package_bytes`` answer 413; callers are authenticated and
    authorized as ``security`` says (docs/security.md); with a ``guard``, served by
    ``guarded_runner``/``guarded_site``, connections are capped and timed; the OpenAPI
    document states ``bounds`` (the worker's admission limits)."""
    if max_body_bytes < 1:
        raise ValueError(
            f"max_body_bytes {max_body_bytes} is not valid; expected a positive integer"
        )
    app = web.Application(
        middlewares=[
            *([guard.middleware] if guard is not None else []),
            answer_errors,
            refuse_large_bodies,
            security_middleware(security),
            track_hops,
        ],
        client_max_size=max_body_bytes,
    )
    if guard is not None:
        app[CONNECTION_GUARD] = guard
    app[ADMIN] = admin
    app[SECURITY] = security
    app[MAX_BODY_BYTES] = max_body_bytes
    app[functions_routes.MAX_PACKAGE_BYTES] = min(
        max_package_bytes or max_body_bytes, max_body_bytes
    )
    app[OPENAPI_DOCUMENT] = openapi_bytes(bounds)
    for route in ALL_ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    return app


def openapi_bytes(bounds: SchemaBounds | None = None) -> bytes:
    """The OpenAPI document of every route, encoded once."""
    document = build_document(ALL_ROUTES, worker_routes.fnworker_version(), bounds)
    return msgspec.json.encode(document)


@web.middleware
async def refuse_large_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """413 before reading a body whose Content-Length is over the limit."""
    limit = request.app[MAX_BODY_BYTES]
    if request.content_length is not None and request.content_length > limit:
        return error_reply(413, f"the request body is too large; expected at most {limit} bytes")
    return await handler(request)


@web.middleware
async def answer_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON ``{"reason": ...}`` answer."""
    try:
        return await handler(request)
    except ApiError as error:
        return error_reply(error.status, error.reason)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _http_error_reply(request, error)
    except Exception as error:
        if client_gone(request, error):
            log.info(
                "client disconnected before the answer",
                method=request.method,
                path=request.path,
                error=str(error) or type(error).__name__,
            )
            return error_reply(400, "the client closed the connection before the request was read")
        request_id = uuid.uuid4().hex[:12]
        log.exception(
            "request failed", method=request.method, path=request.path, request_id=request_id
        )
        return error_reply(
            500, f"internal error (request {request_id}); the worker log has the details"
        )


def client_gone(request: web.Request, error: Exception) -> bool:
    """Whether ``error`` only says the client closed its connection (nobody to answer;
    not a server error)."""
    transport = request.transport
    return isinstance(error, ConnectionError) and (transport is None or transport.is_closing())


def _http_error_reply(request: web.Request, error: web.HTTPException) -> web.Response:
    """aiohttp's own errors (routing, size) as ``{"reason": ...}``."""
    allowed = error.headers.get(hdrs.ALLOW, "another method")
    reasons = {
        404: f"{request.path} is not an endpoint of this worker; "
        "expected a path listed in /openapi.json",
        405: f"{request.method} is not allowed on {request.path}; expected {allowed}",
        413: f"the request body is too large; expected at most {request.app[MAX_BODY_BYTES]} bytes",
    }
    allow = {"Allow": error.headers[hdrs.ALLOW]} if hdrs.ALLOW in error.headers else None
    return error_reply(error.status, reasons.get(error.status, error.reason), headers=allow)
