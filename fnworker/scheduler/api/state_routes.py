"""``GET/POST /admin/v3/functions/{tenant}/{namespace}/{functionName}/state/{key}`` in
Pulsar's shape: the answer and the ``state`` form part are Pulsar's FunctionState
JSON (key, stringValue, byteValue, numberValue, version). Authorized as the
function's other endpoints (tenant scoped). Does network I/O (the request)."""

from __future__ import annotations

from aiohttp import web

from fnworker.scheduler.api.functions_routes import FUNCTION, function_names
from fnworker.scheduler.api.multipart import receive_form
from fnworker.scheduler.api.replies import empty_reply, json_reply
from fnworker.scheduler.api.route_table import ADMIN, FormPart, Route
from fnworker.scheduler.model.function_state import FunctionStateReply

STATE = FUNCTION + "/state/{key}"


async def get_state(request: web.Request) -> web.Response:
    """One key of the function's state; 404 "key '<key>' doesn't exist." when absent."""
    names = function_names(request)
    reply = await request.app[ADMIN].get_state(*names, request.match_info["key"])
    return json_reply(reply)


async def put_state(request: web.Request) -> web.Response:
    """Store the string or bytes value of the ``state`` part (counters cannot be set)."""
    names = function_names(request)
    async with receive_form(request, file_parts=set(), max_file_bytes=0) as form:
        body = form.require("state", "a JSON FunctionState")
    await request.app[ADMIN].put_state(*names, request.match_info["key"], body)
    return empty_reply()


_STATE_PART = FormPart(
    name="state",
    schema=FunctionStateReply,
    required=True,
    description="Pulsar's FunctionState JSON; its key must be the key in the path, and it "
    "sets stringValue or byteValue (base64).",
)

ROUTES: list[Route] = [
    Route(
        method="GET",
        path=STATE,
        handler=get_state,
        summary="Get one key of the function's state",
        response=FunctionStateReply,
        errors=(400, 404, 503),
    ),
    Route(
        method="POST",
        path=STATE,
        handler=put_state,
        summary="Put a value into the function's state",
        form=(_STATE_PART,),
        errors=(400, 404, 413, 503),
    ),
]
