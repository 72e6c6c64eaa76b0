"""Asks another worker of the fleet on a caller's behalf, as Pulsar's workers do:
status, stats and restart of an instance go to the worker that runs it, and
fleet-wide questions (assignments, rebalance, drain) to the leader. Does HTTP I/O.

A forwarded request carries ``X-Fnworker-Hops``; a worker forwards a request at
most twice in all (follower -> leader -> owner), so no request can loop.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from fnworker.scheduler.model.errors import ApiError, unavailable
from fnworker.scheduler.model.records import WorkerInfo

HOPS_HEADER = "X-Fnworker-Hops"
MAX_HOPS = 2

_hops: ContextVar[int] = ContextVar("fnworker_forward_hops", default=0)
T = TypeVar("T")


def current_hops() -> int:
    """How many workers the request being served has already passed through."""
    return _hops.get()


def may_forward() -> bool:
    """True when the request being served may be sent on to another worker."""
    return current_hops() < MAX_HOPS


@web.middleware
async def track_hops(request: web.Request, handler: Any) -> web.StreamResponse:
    """Remember the request's hop count for the admin methods it reaches."""
    try:
        hops = int(request.headers.get(HOPS_HEADER, "0"))
    except ValueError:
        hops = MAX_HOPS
    token = _hops.set(hops)
    try:
        return await handler(request)  # type: ignore[no-any-return]
    finally:
        _hops.reset(token)


def base_url(worker: WorkerInfo) -> str:
    """Where a worker's REST API answers."""
    return f"http://{worker.worker_hostname}:{worker.port}"


class Forwarder:
    """An HTTP client for worker-to-worker calls (one connection pool per worker)."""

    def __init__(self, auth_header: str | None = None) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.auth_header = auth_header

    def headers(self) -> dict[str, str]:
        """The hop count (and the worker's own credentials, when it has some)."""
        headers = {HOPS_HEADER: str(current_hops() + 1)}
        if self.auth_header:
            headers["Authorization"] = self.auth_header
        return headers

    async def call(self, method: str, worker: WorkerInfo, path: str, kind: type[T]) -> T:
        """One request to another worker; its error answers pass through unchanged."""
        if self.session is None:
            self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self.session.request(
                method, base_url(worker) + path, headers=self.headers()
            ) as reply:
                body = await reply.read()
                if reply.status >= 400:
                    raise ApiError(reply.status, reason_of(body, worker))
                return msgspec.json.decode(body, type=kind) if body else kind()
        except aiohttp.ClientError as error:
            raise unavailable(f"worker {worker.worker_id} did not answer: {error}") from error

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self.session is not None:
            await self.session.close()
            self.session = None


def reason_of(body: bytes, worker: WorkerInfo) -> str:
    """The ``reason`` of another worker's error answer."""
    try:
        return str(msgspec.json.decode(body)["reason"])
    except (msgspec.DecodeError, KeyError, TypeError):
        return f"worker {worker.worker_id} answered an error"
