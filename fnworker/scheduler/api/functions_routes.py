"""The ``/admin/v3/functions`` endpoints in Pulsar's shape: they turn HTTP into
``FunctionsAdmin`` calls and render the answers. Does network I/O (the request).

The handlers decode (``function_forms``, over ``decode_submitted_config``: bad JSON and
wrong types are 400s naming the part or field, unknown fields are logged and ignored)
and hand the admin the config as sent; the admin validates (``validate_new_function``),
merges updates (``merge_update``), and decides existence (404, 409) and versions.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import msgspec
from aiohttp import hdrs, web

from fnworker.scheduler.admin.trigger import ValueTooLarge, too_large_reason
from fnworker.scheduler.api.auth import check_register, check_update, submitted_token
from fnworker.scheduler.api.function_forms import (
    check_update_options,
    decoded_config,
    package_source,
    trigger_value,
)
from fnworker.scheduler.api.multipart import Form, receive_form
from fnworker.scheduler.api.openapi_constraints import TOPIC_OR_EMPTY_PATTERN
from fnworker.scheduler.api.replies import empty_reply, json_reply
from fnworker.scheduler.api.route_table import (
    ADMIN,
    BINARY,
    MAX_BODY_BYTES,
    TEXT,
    FormPart,
    Handler,
    Route,
)
from fnworker.scheduler.decide.pulsar_function_view import pulsar_view
from fnworker.scheduler.model.admin_records import FunctionStats
from fnworker.scheduler.model.errors import ApiError, bad_request
from fnworker.scheduler.model.function_view import FunctionConfigView
from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.names import check_function_name, check_name, normalize_topic
from fnworker.scheduler.model.records import (
    FunctionConfig,
    FunctionStatus,
    InstanceStatusData,
)


class UpdateOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The ``updateOptions`` part: a JSON object (Pulsar's UpdateOptions), accepted and
    ignored (fnworker has no function auth data to update)."""


BASE = "/admin/v3/functions/{tenant}/{namespace}"
FUNCTION = BASE + "/{functionName}"
INSTANCE = FUNCTION + "/{instanceId}"
CONFIG_WHAT = "a JSON FunctionConfig"
MAX_PACKAGE_BYTES = web.AppKey("fnworker_max_package_bytes", int)
"""The largest uploaded package (``maxPackageSizeBytes``); the body limit when unset."""


def function_names(request: web.Request) -> tuple[str, str, str]:
    """tenant, namespace and function name from the path, checked."""
    info = request.match_info
    tenant, namespace, name = info["tenant"], info["namespace"], info["functionName"]
    check_function_name(tenant, namespace, name)
    return tenant, namespace, name


def instance_index(request: web.Request) -> int | None:
    """The instance id from the path, or None for routes about the whole function."""
    raw = request.match_info.get("instanceId")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdecimal()):
        raise bad_request(f"instanceId '{raw}' is not valid; expected an integer of at least 0")
    return int(raw)


# --- register, update, delete, get, list ---------------------------------------


async def register_function(request: web.Request) -> web.Response:
    """Multipart ``functionConfig`` plus ``data`` (a file) or ``url``."""
    names = function_names(request)
    async with _package_form(request) as form:
        config = decoded_config(form.require("functionConfig", CONFIG_WHAT), "/".join(names))
        source = package_source(form)
        check_register(request, names, config, source)
        await request.app[ADMIN].register(
            *names, config, source, auth_token=submitted_token(request)
        )
    return empty_reply()


async def update_function(request: web.Request) -> web.Response:
    """Multipart ``functionConfig`` (the changes), optional ``data``/``url``, ``updateOptions``."""
    names = function_names(request)
    async with _package_form(request) as form:
        raw = form.texts.get("functionConfig")
        update = decoded_config(raw, "/".join(names)) if raw is not None else FunctionConfig()
        check_update_options(form.texts.get("updateOptions"))
        source = package_source(form)
        check_update(request, names, update, source)
        await request.app[ADMIN].update(*names, update, source, auth_token=submitted_token(request))
    return empty_reply()


def _package_form(request: web.Request) -> AbstractAsyncContextManager[Form]:
    """The multipart form of a register or update, ``data`` streamed to disk."""
    limit = request.app.get(MAX_PACKAGE_BYTES, request.app[MAX_BODY_BYTES])
    return receive_form(request, file_parts={"data"}, max_file_bytes=limit)


async def deregister_function(request: web.Request) -> web.Response:
    """Remove the function and stop its instances."""
    await request.app[ADMIN].deregister(*function_names(request))
    return empty_reply()


async def get_function(request: web.Request) -> web.Response:
    """The function's FunctionConfig as Pulsar answers it: rebuilt from what is stored
    (``pulsar_view``: inputs as ``inputSpecs``, defaults written out, no package path)."""
    return json_reply(pulsar_view(request.app[ADMIN].get_function(*function_names(request))))


async def list_functions(request: web.Request) -> web.Response:
    """The names of the functions in a namespace."""
    tenant = check_name("tenant", request.match_info["tenant"])
    namespace = check_name("namespace", request.match_info["namespace"])
    return json_reply(request.app[ADMIN].list_functions(tenant, namespace))


# --- status, stats, lifecycle ---------------------------------------------------


async def function_status(request: web.Request) -> web.Response:
    """Status of every instance, or of the one in the path."""
    names = function_names(request)
    index = instance_index(request)
    admin = request.app[ADMIN]
    if index is None:
        return json_reply(await admin.function_status(*names))
    return json_reply(await admin.instance_status(*names, index))


async def function_stats(request: web.Request) -> web.Response:
    """Counters of every instance, or of the one in the path."""
    names = function_names(request)
    index = instance_index(request)
    admin = request.app[ADMIN]
    if index is None:
        return json_reply(await admin.function_stats(*names))
    return json_reply(await admin.instance_stats(*names, index))


async def start_function(request: web.Request) -> web.Response:
    """Start every instance, or the one in the path."""
    await request.app[ADMIN].start(*function_names(request), instance_index(request))
    return empty_reply()


async def stop_function(request: web.Request) -> web.Response:
    """Stop every instance, or the one in the path."""
    await request.app[ADMIN].stop(*function_names(request), instance_index(request))
    return empty_reply()


async def restart_function(request: web.Request) -> web.Response:
    """Restart every instance, or the one in the path."""
    await request.app[ADMIN].restart(*function_names(request), instance_index(request))
    return empty_reply()


# --- trigger and download -------------------------------------------------------


async def trigger_function(request: web.Request) -> web.Response:
    """Send ``data`` (text) or ``dataStream`` (file) to an input; answer the output as text."""
    names = function_names(request)
    async with receive_form(
        request, file_parts={"dataStream"}, max_file_bytes=request.app[MAX_BODY_BYTES]
    ) as form:
        part, value = await trigger_value(form)
        topic = form.text("topic")
    topic = normalize_topic(topic, "topic") if topic else None
    try:
        output = await request.app[ADMIN].trigger(*names, value, topic)
    except ValueTooLarge as error:
        raise ApiError(413, too_large_reason(f"part '{part}'", error.size)) from None
    return web.Response(body=output or b"", content_type=TEXT, charset="utf-8")


async def download_function(request: web.Request) -> web.StreamResponse:
    """The function's package file, as uploaded (fetched from the broker first when this
    worker holds no copy: a Kubernetes pod may ask any worker of the fleet)."""
    path, file_name = await request.app[ADMIN].package_file(*function_names(request))
    disposition = f'attachment; filename="{file_name}"'
    return web.FileResponse(
        path, headers={hdrs.CONTENT_DISPOSITION: disposition, hdrs.CONTENT_TYPE: BINARY}
    )


# --- the table ------------------------------------------------------------------

_CONFIG_PART = FormPart(
    name="functionConfig",
    schema=FunctionConfig,
    component="NewFunctionConfig",
    required=True,
    description="The function's FunctionConfig as JSON (Pulsar's camelCase field names).",
)
_DATA_PART = FormPart(
    name="data",
    schema=bytes,
    file_name="exclamation_function.py",
    description="The package: a .py, .zip or .whl file (its file name says which). A "
    "register sends data, url or a URL in functionConfig's py: exactly one.",
)
_URL_PART = FormPart(
    name="url",
    schema=str,
    pattern="^(?:$|(?:file|https?)://)",
    description="Where the worker fetches the package: file://, http:// or https:// (empty: none).",
)
_UPDATE_CONFIG_PART = FormPart(
    name="functionConfig",
    schema=FunctionConfig,
    component="FunctionConfigUpdate",
    description="The fields to change; fields left out keep their value.",
)
_OPTIONS_PART = FormPart(
    name="updateOptions", schema=UpdateOptions, description="A JSON object; accepted and ignored."
)
_TRIGGER_PARTS = (
    FormPart(name="data", schema=str, description="The value to send, as text."),
    FormPart(
        name="dataStream",
        schema=bytes,
        file_name="value.bin",
        description="The value to send, as a file.",
    ),
    FormPart(
        name="topic",
        schema=str,
        pattern=TOPIC_OR_EMPTY_PATTERN,
        description="The input topic to send to (empty or absent: the first input).",
    ),
)
_NOT_BOTH_PACKAGES = {"not": {"required": ["data", "url"]}}
"""An update sends at most one new package. (A register needs exactly one, data, url
or a URL in py: said in the parts' descriptions, as schemathesis cannot generate from
a rule between parts beside the constrained functionConfig.)"""
_TRIGGER_VALUE = {"anyOf": [{"required": ["data"]}, {"required": ["dataStream"]}]}


def _per_instance(
    method: str,
    action: str,
    handler: Handler,
    summary: str,
    responses: tuple[object, object] = (None, None),
    errors: tuple[int, ...] = (400, 404, 503),
) -> list[Route]:
    """The same action on the whole function and on one instance (404: no such instance;
    503: the worker running it did not answer)."""
    whole, one = responses
    return [
        Route(
            method=method,
            path=f"{FUNCTION}/{action}",
            handler=handler,
            summary=summary,
            response=whole,
            errors=errors,
        ),
        Route(
            method=method,
            path=f"{INSTANCE}/{action}",
            handler=handler,
            summary=f"{summary} (one instance)",
            response=one,
            errors=errors,
        ),
    ]


WRITES = (400, 404, 409, 503)
"""What a route that writes a new version can answer (409: a concurrent change won)."""

ROUTES: list[Route] = [
    Route(
        method="POST",
        path=FUNCTION,
        handler=register_function,
        summary="Register a function",
        form=(_CONFIG_PART, _DATA_PART, _URL_PART),
        errors=(400, 409, 413, 503),
    ),
    Route(
        method="PUT",
        path=FUNCTION,
        handler=update_function,
        summary="Update a function",
        form=(_UPDATE_CONFIG_PART, _DATA_PART, _URL_PART, _OPTIONS_PART),
        form_rules=_NOT_BOTH_PACKAGES,
        errors=(400, 404, 409, 413, 503),
    ),
    Route(
        method="DELETE",
        path=FUNCTION,
        handler=deregister_function,
        summary="Delete a function",
        errors=WRITES,
    ),
    Route(
        method="GET",
        path=FUNCTION,
        handler=get_function,
        summary="Get a function's config",
        response=FunctionConfigView,
    ),
    Route(
        method="GET",
        path=BASE,
        handler=list_functions,
        summary="List the functions of a namespace",
        response=list[str],
    ),
    *_per_instance(
        "GET", "status", function_status, "Get status", (FunctionStatus, InstanceStatusData)
    ),
    *_per_instance("GET", "stats", function_stats, "Get stats", (FunctionStats, InstanceMetrics)),
    *_per_instance("POST", "start", start_function, "Start instances", errors=WRITES),
    *_per_instance("POST", "stop", stop_function, "Stop instances", errors=WRITES),
    *_per_instance("POST", "restart", restart_function, "Restart instances"),
    Route(
        method="POST",
        path=f"{FUNCTION}/trigger",
        handler=trigger_function,
        media=TEXT,
        summary="Send a value to the function and answer its output",
        form=_TRIGGER_PARTS,
        form_rules=_TRIGGER_VALUE,
        errors=(400, 404, 408, 409, 413, 502, 503),
    ),
    Route(
        method="GET",
        path=f"{FUNCTION}/download",
        handler=download_function,
        media=BINARY,
        summary="Download the function's package",
    ),
]
