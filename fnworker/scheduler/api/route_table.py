"""The description of one REST route: method, path, handler, and what it takes and
returns, so the aiohttp router and the OpenAPI document are built from one table.
Also the keys under which handlers find the admin and the settings. No I/O."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry

from fnworker.scheduler.admin.protocol import FunctionsAdmin

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN = web.AppKey("fnworker_admin", FunctionsAdmin)
MAX_BODY_BYTES = web.AppKey("fnworker_max_body_bytes", int)
OPENAPI_DOCUMENT = web.AppKey("fnworker_openapi_document", bytes)
UPLOAD_DIR = web.AppKey("fnworker_upload_dir", Path)
"""Where uploads are read into (the worker's scratch folder, emptied at every start,
so a worker killed mid-upload leaves nothing behind); the system temp folder if unset."""
# The prometheus-client registry GET /metrics renders (set by the worker service).
METRICS_REGISTRY = web.AppKey("fnworker_metrics_registry", CollectorRegistry)

JSON = "application/json"
TEXT = "text/plain"
BINARY = "application/octet-stream"


class FormPart(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a multipart/form-data request body.

    ``schema`` is a record type for a JSON part, ``bytes`` for a file, ``str`` for text.
    """

    name: str
    schema: Any
    description: str
    required: bool = False
    component: str | None = None
    """The name of a constrained schema (openapi_constraints) to describe a JSON part
    with, instead of its record's own schema."""
    file_name: str | None = None
    """An example file name for a file part (how pulsar-admin sends it)."""
    pattern: str | None = None
    """The regular expression a text part matches."""
    max_length: int | None = None
    """The most characters a text part may hold (the text part limit if None)."""


class ErrorReply(msgspec.Struct, frozen=True, kw_only=True):
    """The body of every error answer: one sentence saying what was wrong."""

    reason: str


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """One endpoint. ``response`` is the type of a JSON body (None: no body, or
    ``media`` says text or binary); ``errors`` lists the error statuses it can answer."""

    method: str
    path: str
    handler: Any
    summary: str
    response: Any = None
    media: str = JSON
    form: tuple[FormPart, ...] = ()
    form_rules: dict[str, Any] = {}
    """JSON Schema keywords between the form's parts (e.g. which one of two is needed)."""
    errors: tuple[int, ...] = (400, 404)
    query: tuple[str, ...] = ()
    """Optional string query parameters the handler reads."""
    required_query: dict[str, dict[str, Any]] = {}
    """Required query parameters, each with the JSON Schema of its value."""
    tag: str = "functions"
