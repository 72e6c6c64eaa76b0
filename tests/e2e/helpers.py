"""HTTP helpers shared by the end-to-end tests: multipart requests as curl and
pulsar-admin send them, and polling until a condition holds."""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "exclamation_function.py"
CLASS = "exclamation_function.ExclamationFunction"
BASE = "/admin/v3/functions/public/default"


class Reply:
    """What a request answered."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self.body, self.headers = status, body, headers

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def reason(self) -> str:
        return str(self.json()["reason"])


def call(
    base: str,
    method: str,
    path: str,
    form: aiohttp.FormData | None = None,
    *,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Reply:
    """One HTTP request, synchronously; ``headers`` and ``ssl_context`` for a secured worker."""

    async def send() -> Reply:
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(ssl=ssl_context) if ssl_context else None
        async with (
            aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
            session.request(method, base + path, data=form, headers=headers) as reply,
        ):
            return Reply(reply.status, await reply.read(), dict(reply.headers))

    return asyncio.run(send())


def function_form(
    config: dict[str, Any] | bytes, package: Path | None = EXAMPLE
) -> aiohttp.FormData:
    """``-F functionConfig=...;type=application/json -F data=@exclamation_function.py``."""
    form = aiohttp.FormData(default_to_multipart=True)
    raw = config.decode() if isinstance(config, bytes) else json.dumps(config)
    form.add_field("functionConfig", raw, content_type="application/json")
    if package is not None:
        form.add_field(
            "data",
            package.read_bytes(),
            filename=package.name,
            content_type="application/octet-stream",
        )
    return form


def example_config(name: str, **extra: Any) -> dict[str, Any]:
    return {"className": CLASS, "inputs": [f"{name}-in"], "output": f"{name}-out", **extra}


def register(base: str, name: str, **extra: Any) -> Reply:
    return call(base, "POST", f"{BASE}/{name}", function_form(example_config(name, **extra)))


def wait_for(check: Any, timeout: float = 60.0, what: str = "", every: float = 0.25) -> Any:
    """Poll ``check`` every ``every`` seconds until it returns something truthy; an
    exception from ``check`` fails at once; the timeout's message names ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s: {what or check}")


def running_count(base: str, name: str) -> int:
    return int(call(base, "GET", f"{BASE}/{name}/status").json()["numRunning"])


def trigger(base: str, name: str, value: str) -> Reply:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("data", value)
    return call(base, "POST", f"{BASE}/{name}/trigger", form)


def trigger_until_answered(base: str, name: str, value: str) -> Reply:
    """Trigger, retrying while the instance's subscription is still being created (408)."""
    return wait_for(lambda: (reply := trigger(base, name, value)).status != 408 and reply)
