"""Guards the REST server's connections: at most ``maxHttpServerConnections`` open at
once, a deadline for each request's line and headers, and a minimum rate for its body.
aiohttp has neither a header-read timeout nor a connection cap (its keep-alive timer
only closes connections that sit idle between requests), so a client sending headers
one byte at a time, or a body trickling in, would hold a connection for ever.

How: ``GuardedSite`` serves the runner's aiohttp handlers through ``GuardedConnection``,
an asyncio protocol wrapped around each one. It counts connections (one over the cap
is answered 503 and closed before aiohttp sees it) and keeps one timer per connection:
from a request's first byte until the app starts handling it, the header deadline;
while the handler reads the body, the body deadline (``body_deadline``: the base time
plus one second per ``httpBodyMinBytesPerSecond`` bytes received), pushed back as
bytes arrive. ``ConnectionGuard.middleware`` tells the connection when a request's
handling starts and ends. Does network I/O; the decisions are the pure functions here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

import msgspec
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader

from fnworker.scheduler.api.route_table import JSON, ErrorReply, Handler
from fnworker.scheduler.settings.worker_config import WorkerConfig

log = structlog.get_logger("fnworker.api")

CLOSE_GRACE_S = 1.0
"""How long a refused or timed-out connection may take to flush its short answer
before it is cut (a client that reads nothing cannot hold it either)."""


class HttpLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The connection bounds of the REST server (config/functions_worker.yml)."""

    max_connections: int = 2048
    """0: no limit."""
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    body_min_bytes_per_s: int = 16384
    keep_alive_timeout_s: float = 15.0


def http_limits(config: WorkerConfig) -> HttpLimits:
    """The limits a worker's configuration sets."""
    return HttpLimits(
        max_connections=config.max_http_server_connections,
        header_timeout_s=config.http_header_read_timeout_seconds,
        body_timeout_s=config.http_body_read_timeout_seconds,
        body_min_bytes_per_s=config.http_body_min_bytes_per_second,
        keep_alive_timeout_s=config.http_keep_alive_timeout_seconds,
    )


def at_capacity(limits: HttpLimits, open_connections: int) -> bool:
    """Whether one more connection would exceed the cap."""
    return 0 < limits.max_connections <= open_connections


def body_deadline(limits: HttpLimits, started: float, received: int) -> float:
    """When a body that began at ``started`` and has brought ``received`` bytes is too slow:
    a body keeping up the minimum rate never reaches it."""
    return started + limits.body_timeout_s + received / limits.body_min_bytes_per_s


def plain_answer(status: int, reason: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, for a connection aiohttp
    never handles (over the cap, or headers too slow)."""
    body = msgspec.json.encode(ErrorReply(reason=reason))
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"Content-Type: {JSON}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's handler inside, the deadlines around it."""

    def __init__(self, guard: ConnectionGuard, make_handler: Callable[[], asyncio.Protocol]):
        self.guard = guard
        self.make_handler = make_handler
        self.handler: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.headers_since: float | None = None
        self.body: tuple[float, StreamReader] | None = None
        self.handling = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the connection to aiohttp, or answer 503 when at the cap."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.guard.admit(self):
            limit = self.guard.limits.max_connections
            self.close_with(
                503, f"the worker serves at most {limit} connections at once; retry shortly"
            )
            return
        self.handler = self.make_handler()
        self.handler.connection_made(transport)
        self.await_headers()

    def data_received(self, data: bytes) -> None:
        """Start the header clock at a new request's first byte, then let aiohttp parse."""
        if self.handler is None:
            return
        if not self.handling and self.headers_since is None:
            self.await_headers()
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received() if self.handler is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timer()
        if self.handler is not None:
            self.guard.release(self)
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()

    # -- the request's phases (the middleware reports them) --------------------------

    def await_headers(self) -> None:
        """A request's line and headers are on their way: they have until the deadline."""
        self.headers_since = self.loop.time()
        self.schedule(self.headers_since + self.guard.limits.header_timeout_s)

    def request_started(self, payload: StreamReader) -> None:
        """The app handles a request: its headers are in; watch its body, if any comes."""
        self.handling = True
        self.headers_since = None
        self.stop_timer()
        if not payload.is_eof():
            self.body = (self.loop.time(), payload)
            self.schedule(body_deadline(self.guard.limits, self.body[0], payload.total_bytes))

    def request_finished(self) -> None:
        """The app answered: nothing to watch until the next request's first byte (an
        idle connection is aiohttp's keep-alive timer's)."""
        self.handling = False
        self.body = None
        self.stop_timer()

    # -- the timer ---------------------------------------------------------------------

    def schedule(self, when: float) -> None:
        self.stop_timer()
        self.timer = self.loop.call_at(when, self.check_deadline)

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def check_deadline(self) -> None:
        """Drop a connection whose headers or body are late; else look again later."""
        self.timer = None
        now = self.loop.time()
        limits = self.guard.limits
        if self.headers_since is not None:
            log.debug("http headers too slow; closing", peer=self.peer())
            self.close_with(
                408,
                f"the request's headers did not arrive within {limits.header_timeout_s:g} s",
            )
        elif self.body is not None:
            started, payload = self.body
            if payload.is_eof():
                self.body = None
                return
            deadline = body_deadline(limits, started, payload.total_bytes)
            if now < deadline:
                self.schedule(deadline)
                return
            log.debug("http body too slow; closing", peer=self.peer(), received=payload.total_bytes)
            if self.transport is not None:
                self.transport.abort()

    def close_with(self, status: int, reason: str) -> None:
        """Send a short answer and close; cut the connection if it cannot flush soon."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(plain_answer(status, reason))
        transport.close()
        self.loop.call_later(CLOSE_GRACE_S, transport.abort)

    def peer(self) -> Any:
        return self.transport.get_extra_info("peername") if self.transport else None


class ConnectionGuard:
    """Counts the server's connections and finds the one a request came on."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.connections: dict[asyncio.BaseTransport, GuardedConnection] = {}
        self.full = False

    def protocol_factory(self, server: web.Server) -> Callable[[], GuardedConnection]:
        """What ``loop.create_server`` calls for every accepted connection."""
        return lambda: GuardedConnection(self, server)

    def admit(self, connection: GuardedConnection) -> bool:
        """Count a new connection in, unless the cap is reached (logged once per episode)."""
        if at_capacity(self.limits, len(self.connections)):
            if not self.full:
                log.warning(
                    "http connections at the limit; refusing new ones",
                    limit=self.limits.max_connections,
                )
            self.full = True
            return False
        assert connection.transport is not None
        self.connections[connection.transport] = connection
        return True

    def release(self, connection: GuardedConnection) -> None:
        """Count a closed connection out."""
        if connection.transport is not None:
            self.connections.pop(connection.transport, None)
        if self.full and not at_capacity(self.limits, len(self.connections)):
            self.full = False
            log.info("http connections below the limit again", open=len(self.connections))

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Tell the request's connection when its handling starts and ends."""
        connection = self.connections.get(request.transport) if request.transport else None
        if connection is None:
            return await handler(request)
        connection.request_started(request.content)
        try:
            return await handler(request)
        finally:
            connection.request_finished()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through a ConnectionGuard (TLS included: the
    TLS handshake gets the header deadline too)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int | None,
        guard: ConnectionGuard,
        *,
        ssl_context: Any = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self.host, self.port, self.guard = host, port, guard

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self.guard.protocol_factory(server),
            self.host,
            self.port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self.guard.limits.header_timeout_s if self._ssl_context else None,
            reuse_address=True,
        )


CONNECTION_GUARD = web.AppKey("fnworker_connection_guard", ConnectionGuard)


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server log, where a request aiohttp cannot parse (a client's mistake,
    answered 400) is one info line, not an error with a traceback."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            log.info("malformed request", status=error.code, reason=error.message)
            return
        super().exception(msg, *args, **kwargs)


def guarded_runner(app: web.Application) -> web.AppRunner:
    """An AppRunner for an app made with a guard: idle keep-alive connections close
    after the configured time; malformed requests are not logged as server errors."""
    return web.AppRunner(
        app,
        keepalive_timeout=app[CONNECTION_GUARD].limits.keep_alive_timeout_s,
        logger=cast(logging.Logger, ServerLog(logging.getLogger("aiohttp.server"))),
    )


def guarded_site(
    runner: web.AppRunner, host: str, port: int | None, *, ssl_context: Any = None
) -> GuardedSite:
    """A site serving ``runner``'s app through the app's guard."""
    return GuardedSite(runner, host, port, runner.app[CONNECTION_GUARD], ssl_context=ssl_context)
