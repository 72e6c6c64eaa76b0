"""Builds the OpenAPI 3.1 document from the route table; response schemas come from
``msgspec.json.schema_components`` over the records, so the document cannot drift
from what the handlers encode, and request schemas from ``openapi_constraints``
with the worker's limits, so the document admits what the worker accepts. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from fnworker.scheduler.api.multipart import PART_NAME, TEXT_PART_LIMIT
from fnworker.scheduler.api.openapi_constraints import (
    SchemaBounds,
    constrained_config,
    json_value_schema,
    name_schema,
)
from fnworker.scheduler.api.route_table import BINARY, JSON, TEXT, ErrorReply, FormPart, Route
from fnworker.scheduler.model.records import FunctionConfig

REF_TEMPLATE = "#/components/schemas/{name}"
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")
_STATUS_TEXT = {
    200: "OK",
    400: "The request is invalid; the reason names the field and what is valid",
    401: "No credentials, or credentials the worker does not accept",
    403: "The caller may not do this",
    404: "The function (or instance, or worker) does not exist",
    408: "No output arrived in time",
    409: "The function already exists, a concurrent change won, or the fleet's state "
    "does not allow it",
    413: "The body, or a part of it, is larger than the worker accepts",
    502: "The broker refused the request",
    503: "The worker is not ready, no leader is known, or the broker or another worker "
    "did not answer",
}
CONSTRAINED = {"NewFunctionConfig": True, "FunctionConfigUpdate": False}
"""The request schemas built by ``constrained_config`` (True: for a new function)."""


def build_document(
    routes: Sequence[Route], version: str, bounds: SchemaBounds | None = None
) -> dict[str, Any]:
    """The OpenAPI document describing ``routes`` for a worker with ``bounds``."""
    bounds = bounds or SchemaBounds()
    types = list(dict.fromkeys(_schema_types(routes)))
    schemas, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    by_type = dict(zip(types, schemas, strict=True))
    components["JsonValue"] = json_value_schema()
    for name, new in CONSTRAINED.items():
        components[name] = constrained_config(components["FunctionConfig"], bounds, new=new)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, by_type, bounds)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fnworker REST API",
            "version": version,
            "description": "The Apache Pulsar Functions worker REST API "
            "(/admin/v3/functions), served by fnworker.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }


def _schema_types(routes: Sequence[Route]) -> Iterator[Any]:
    """Every record type a route reads or answers, ErrorReply first."""
    yield ErrorReply
    yield FunctionConfig
    for route in routes:
        if route.response is not None:
            yield route.response
        yield from (part.schema for part in route.form if part.schema not in (str, bytes))


def _operation(route: Route, by_type: dict[Any, Any], bounds: SchemaBounds) -> dict[str, Any]:
    """One operation object."""
    operation: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": _responses(route, by_type, bounds),
    }
    parameters = [_path_parameter(name) for name in _PATH_PARAMETER.findall(route.path)]
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in route.query
    ]
    parameters += [
        {"name": name, "in": "query", "required": True, "schema": schema}
        for name, schema in route.required_query.items()
    ]
    if parameters:
        operation["parameters"] = parameters
    if route.form:
        operation["requestBody"] = _form_body(route.form, by_type, route.form_rules)
    return operation


def _operation_id(route: Route) -> str:
    """A unique id: method, then the path's fixed words and parameters."""
    words = re.sub(r"[^A-Za-z0-9]+", " ", route.path.replace("{", "by ").replace("}", "")).split()
    return route.method.lower() + "".join(word[:1].upper() + word[1:] for word in words)


def _path_parameter(name: str) -> dict[str, Any]:
    """A path parameter; instanceId is an integer, the rest are names."""
    schema = {"type": "integer", "minimum": 0} if name == "instanceId" else name_schema()
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _error_statuses(route: Route, bounds: SchemaBounds) -> list[int]:
    """Every error status a route can answer: its own, the security ones when the
    worker checks callers, 413 for a body, and 500."""
    statuses = set(route.errors) | {500}
    if bounds.secured:
        statuses |= {401, 403} if bounds.authorized else {401}
    if route.form:
        statuses.add(413)
    return sorted(statuses)


def _responses(route: Route, by_type: dict[Any, Any], bounds: SchemaBounds) -> dict[str, Any]:
    """The success answer and every error answer of a route."""
    success: dict[str, Any] = {"description": _STATUS_TEXT[200]}
    content = _success_content(route, by_type)
    if content:
        success["content"] = content
    responses = {"200": success}
    error = {JSON: {"schema": by_type[ErrorReply]}}
    for status in _error_statuses(route, bounds):
        text = _STATUS_TEXT.get(status, "An internal error; the worker log has the details")
        responses[str(status)] = {"description": text, "content": error}
    return responses


def _success_content(route: Route, by_type: dict[Any, Any]) -> dict[str, Any]:
    """The media type and schema of a successful answer, if it has a body."""
    if route.response is not None:
        return {JSON: {"schema": by_type[route.response]}}
    if route.media == TEXT:
        return {TEXT: {"schema": {"type": "string"}}}
    if route.media == BINARY:
        return {BINARY: {"schema": {"type": "string", "contentMediaType": BINARY}}}
    return {}


def _form_body(
    parts: Sequence[FormPart], by_type: dict[Any, Any], rules: dict[str, Any]
) -> dict[str, Any]:
    """A multipart/form-data request body; ``rules`` are schema keywords between parts."""
    properties = {part.name: _part_schema(part, by_type) for part in parts}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "propertyNames": {"pattern": PART_NAME},
        **rules,
    }
    required = [part.name for part in parts if part.required]
    if required:
        schema["required"] = required
    encoding = {part.name: _part_encoding(part) for part in parts if _part_encoding(part)}
    media: dict[str, Any] = {"schema": schema}
    if encoding:
        media["encoding"] = encoding
    return {"required": True, "content": {"multipart/form-data": media}}


def _part_encoding(part: FormPart) -> dict[str, Any]:
    """How a part is sent: JSON parts as application/json, a file part with its name."""
    if part.schema not in (str, bytes):
        return {"contentType": JSON}
    if part.file_name:
        disposition = f'form-data; name="{part.name}"; filename="{part.file_name}"'
        return {
            "headers": {
                "Content-Disposition": {"schema": {"type": "string"}, "example": disposition}
            }
        }
    return {}


def _part_schema(part: FormPart, by_type: dict[Any, Any]) -> dict[str, Any]:
    """The schema of one part, with its description."""
    if part.component is not None:
        base: dict[str, Any] = {"$ref": REF_TEMPLATE.format(name=part.component)}
    elif part.schema is bytes:
        base = {"type": "string", "contentMediaType": BINARY}
    elif part.schema is str:
        limit = part.max_length or TEXT_PART_LIMIT  # bytes; non-ASCII takes 2-4
        base = {"type": "string", "maxLength": limit}
        if part.pattern is not None:
            base["pattern"] = part.pattern
    else:
        base = dict(by_type[part.schema])
    return {**base, "description": part.description}
