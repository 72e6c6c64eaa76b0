"""Builds the OpenAPI 3.1 document from the route table; request and response
schemas come from ``msgspec.json.schema_components`` over the records, so the
document cannot drift from what the handlers encode. Pure, no I/O."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from fnworker.scheduler.api.route_table import BINARY, JSON, TEXT, ErrorReply, FormPart, Route

REF_TEMPLATE = "#/components/schemas/{name}"
_PATH_PARAMETER = re.compile(r"\{(\w+)\}")
_STATUS_TEXT = {
    200: "OK",
    400: "The request is invalid; the reason names the field and what is valid",
    404: "The function (or instance) does not exist",
    408: "No output arrived in time",
    409: "The function already exists, or a concurrent change won",
    413: "A part is larger than the worker accepts",
    503: "The worker is not ready, or no leader is known",
}


def build_document(routes: Sequence[Route], version: str) -> dict[str, Any]:
    """The OpenAPI document describing ``routes``."""
    types = list(dict.fromkeys(_schema_types(routes)))
    schemas, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    by_type = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, by_type)
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
    for route in routes:
        if route.response is not None:
            yield route.response
        yield from (part.schema for part in route.form if part.schema not in (str, bytes))


def _operation(route: Route, by_type: dict[Any, Any]) -> dict[str, Any]:
    """One operation object."""
    operation: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": _responses(route, by_type),
    }
    parameters = [_path_parameter(name) for name in _PATH_PARAMETER.findall(route.path)]
    if parameters:
        operation["parameters"] = parameters
    if route.form:
        operation["requestBody"] = _form_body(route.form, by_type)
    return operation


def _operation_id(route: Route) -> str:
    """A unique id: method, then the path's fixed words and parameters."""
    words = re.sub(r"[^A-Za-z0-9]+", " ", route.path.replace("{", "by ").replace("}", "")).split()
    return route.method.lower() + "".join(word[:1].upper() + word[1:] for word in words)


def _path_parameter(name: str) -> dict[str, Any]:
    """A path parameter; instanceId is an integer, the rest are names."""
    schema = {"type": "integer", "minimum": 0} if name == "instanceId" else {"type": "string"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _responses(route: Route, by_type: dict[Any, Any]) -> dict[str, Any]:
    """The success answer and every error answer of a route."""
    success: dict[str, Any] = {"description": _STATUS_TEXT[200]}
    content = _success_content(route, by_type)
    if content:
        success["content"] = content
    responses = {"200": success}
    error = {JSON: {"schema": by_type[ErrorReply]}}
    for status in (*route.errors, 500):
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


def _form_body(parts: Sequence[FormPart], by_type: dict[Any, Any]) -> dict[str, Any]:
    """A multipart/form-data request body."""
    properties = {part.name: _part_schema(part, by_type) for part in parts}
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    required = [part.name for part in parts if part.required]
    if required:
        schema["required"] = required
    encoding = {
        part.name: {"contentType": JSON} for part in parts if part.schema not in (str, bytes)
    }
    media: dict[str, Any] = {"schema": schema}
    if encoding:
        media["encoding"] = encoding
    return {"required": True, "content": {"multipart/form-data": media}}


def _part_schema(part: FormPart, by_type: dict[Any, Any]) -> dict[str, Any]:
    """The schema of one part, with its description."""
    if part.schema is bytes:
        base: dict[str, Any] = {"type": "string", "contentMediaType": BINARY}
    elif part.schema is str:
        base = {"type": "string"}
    else:
        base = dict(by_type[part.schema])
    return {**base, "description": part.description}
