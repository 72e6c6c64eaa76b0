"""A small HTTP client for the worker's REST API, on aiohttp. Does network I/O.

Every non-2xx answer becomes a ``CliError`` carrying the server's ``reason``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec

from fnworker.scheduler.cli.connection import Connection, request_headers, ssl_context
from fnworker.scheduler.cli.function_config import CliError

DEFAULT_ADMIN_URL = "http://127.0.0.1:6750"
ADMIN_URL_ENV = "FNWORKER_ADMIN_URL"
FUNCTIONS = "/admin/v3/functions"
_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=10)


def function_path(tenant: str, namespace: str, name: str | None = None, *rest: str) -> str:
    """``/admin/v3/functions/tenant/namespace[/name[/rest...]]`` with each part quoted."""
    parts = [tenant, namespace, *([name] if name else []), *rest]
    return FUNCTIONS + "".join("/" + quote(part, safe="") for part in parts)


class AdminClient:
    """Calls on one worker's REST API within one aiohttp session."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    async def call(self, method: str, path: str, data: Any = None) -> bytes:
        """The body of a successful answer."""
        async with self._request(method, path, data) as reply:
            return await reply.read()

    async def download(self, path: str, target: Path) -> None:
        """Stream a successful answer into ``target``."""
        async with self._request("GET", path, None) as reply:
            with target.open("wb") as out:
                async for chunk in reply.content.iter_chunked(1 << 16):
                    out.write(chunk)

    @asynccontextmanager
    async def _request(
        self, method: str, path: str, data: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """A request whose answer is 2xx, else a CliError with the server's reason."""
        url = self.base_url + path
        try:
            async with self.session.request(method, url, data=data) as reply:
                if reply.status >= 400:
                    raise CliError(reason_of(reply.status, await reply.read()))
                yield reply
        except aiohttp.ClientError as error:
            raise CliError(f"cannot reach the worker at {self.base_url}: {error}") from None


def reason_of(status: int, body: bytes) -> str:
    """The ``reason`` of an error answer, or its text."""
    try:
        reason = msgspec.json.decode(body).get("reason")
    except (msgspec.DecodeError, AttributeError):
        reason = None
    text = reason if isinstance(reason, str) else body.decode("utf-8", "replace").strip()
    return f"{text or 'no reason given'} (HTTP {status})"


@asynccontextmanager
async def admin_client(
    base_url: str, connection: Connection | None = None
) -> AsyncIterator[AdminClient]:
    """A client with its own session, closed on exit; ``connection`` adds credentials
    and, for an ``https://`` URL, the TLS settings."""
    connection = connection or Connection()
    headers = request_headers(connection)
    secure = base_url.lower().startswith("https://")
    connector = aiohttp.TCPConnector(ssl=ssl_context(connection)) if secure else None
    async with aiohttp.ClientSession(
        timeout=_TIMEOUT, headers=headers, connector=connector
    ) as session:
        yield AdminClient(base_url, session)
