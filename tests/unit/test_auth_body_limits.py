"""Body limits against hostile uploads, over real HTTP on loopback: a declared
Content-Length over the limit is refused before the body is read, a chunked body
cannot grow memory through many text parts, a package over maxPackageSizeBytes is
413 even when the body limit is larger, and broken bodies are 400 (never 500)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fnworker.scheduler.api.app import make_app
from tests.unit.test_api_routes import BASE, FakeAdmin, form

pytestmark = pytest.mark.anyio
MIB = 1 << 20


@pytest.fixture
def admin() -> FakeAdmin:
    return FakeAdmin()


@pytest.fixture
async def client(admin: FakeAdmin) -> AsyncIterator[TestClient[Any, Any]]:
    app = make_app(admin, max_body_bytes=16 * MIB, max_package_bytes=64 * 1024)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_a_package_over_max_package_bytes_is_413(
    client: TestClient[Any, Any], admin: FakeAdmin
) -> None:
    reply = await client.post(f"{BASE}/big", data=form(data=b"#" * (64 * 1024 + 1)))
    assert reply.status == 413
    assert "65536" in (await reply.json())["reason"]
    assert admin.records == {}


async def test_a_declared_length_over_the_limit_is_refused_unread(
    client: TestClient[Any, Any],
) -> None:
    headers = {"Content-Length": str(17 * MIB), "Content-Type": "multipart/form-data; boundary=b"}
    reply = await client.post(f"{BASE}/big", data=b"x" * 1024, headers=headers, chunked=False)
    assert reply.status == 413


async def test_many_text_parts_cannot_fill_memory(client: TestClient[Any, Any]) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for index in range(6):
            yield (
                f'--b\r\nContent-Disposition: form-data; name="t{index}"\r\n\r\n'.encode()
                + b"y" * (MIB - 10)
                + b"\r\n"
            )
        yield b"--b--\r\n"

    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    reply = await client.post(f"{BASE}/many", data=parts(), headers=headers)
    assert reply.status == 413
    assert "together" in (await reply.json())["reason"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"--x\r\nContent-Disposition: form-data\r\n\r\nx", "multipart/form-data; boundary=x"),
        (b"garbage", "multipart/form-data; boundary="),
        (
            (
                b'--b\r\nContent-Disposition: form-data; name="data"; filename="\x1f.py"\r\n'
                b"\r\nx\r\n--b--\r\n"
            ),
            "multipart/form-data; boundary=b",
        ),
        (b"\x80=\xff", "application/x-www-form-urlencoded"),
        (
            b'--b\r\nContent-Disposition: form-data; name="functionConfig"\r\n\r\n'
            + b"[" * 100_000
            + b"\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
    ],
)
async def test_broken_bodies_are_400(
    client: TestClient[Any, Any], body: bytes, content_type: str
) -> None:
    reply = await client.post(f"{BASE}/broken", data=body, headers={"Content-Type": content_type})
    assert reply.status == 400
    assert "reason" in await reply.json()


async def test_deeply_nested_update_options_are_400(client: TestClient[Any, Any]) -> None:
    await client.post(f"{BASE}/ex", data=form())
    body = aiohttp.FormData()
    body.add_field("updateOptions", "[" * 100_000)
    assert (await client.put(f"{BASE}/ex", data=body)).status == 400
