"""Builds HTTP answers: JSON bodies encoded by msgspec (camelCase records, defaults
omitted where the record says so), empty successes and error replies. No I/O."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fnworker.scheduler.api.route_table import JSON, ErrorReply


def json_reply(value: Any, status: int = 200) -> web.Response:
    """``value`` as a JSON body."""
    return web.Response(status=status, body=msgspec.json.encode(value), content_type=JSON)


def empty_reply() -> web.Response:
    """200 with no body, as Pulsar answers a register, update or delete."""
    return web.Response(status=200)


def error_reply(status: int, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    """``{"reason": ...}`` with ``status``."""
    body = msgspec.json.encode(ErrorReply(reason=reason))
    return web.Response(status=status, body=body, content_type=JSON, headers=headers)
