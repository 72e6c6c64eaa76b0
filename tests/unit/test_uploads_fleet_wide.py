"""Uploads shared by the fleet, over real HTTP on loopback: two workers' REST apps on
one memory cluster (the coordination backend every fleet member shares) with a folder
each, so a file uploaded through one is downloaded through the other, a re-upload is
never answered from a stale copy, and the path limit counts the whole fleet's paths.
``/download?tenant=&namespace=&function=`` answers the function's package and is
authorized like the function's other endpoints (real signed tokens)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
from fnworker.scheduler.admin.upload_service import UploadService
from fnworker.scheduler.api.app import make_app
from fnworker.scheduler.api.uploads_routes import UPLOADS_DIR
from fnworker.scheduler.model.records import Fqfn, FunctionConfig, FunctionRecord
from fnworker.scheduler.security.web_security import OPEN, WebSecurity
from tests.unit.test_api_routes import FakeAdmin
from tests.unit.test_auth_api import bearer, security

pytestmark = pytest.mark.anyio
Client = TestClient[Any, Any]
DOWNLOAD = "/admin/v3/functions/download"


class UploadingAdmin(FakeAdmin):
    """FakeAdmin whose uploads go through the real UploadService on a memory backend,
    and whose functions' packages are files under ``packages``."""

    def __init__(self, uploads: UploadService, packages: Path | None = None) -> None:
        super().__init__()
        self.uploads = uploads
        self.package_dir = packages

    async def store_upload(self, root: Path, path: str, data: Path) -> None:
        await self.uploads.store(root, path, data)

    async def uploaded_file(self, root: Path, path: str) -> Path:
        return await self.uploads.file_for(root, path)

    async def package_file(self, tenant: str, namespace: str, name: str) -> tuple[Path, str]:
        record = self.get_function(tenant, namespace, name)
        assert self.package_dir is not None
        return self.package_dir / str(record.fqfn).replace("/", "_"), f"{name}.py"


def upload_form(data: bytes, path: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("data", data, filename="f.py", content_type="application/octet-stream")
    form.add_field("path", path, content_type="text/plain")
    return form


async def open_worker(
    admin: FakeAdmin, uploads_dir: Path, web_security: WebSecurity = OPEN
) -> Client:
    app = make_app(admin, max_body_bytes=1 << 20, security=web_security)
    app[UPLOADS_DIR] = uploads_dir
    client: Client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def fleet(tmp_path: Path) -> AsyncIterator[tuple[Client, Client]]:
    """Two workers of one cluster, at most 3 uploaded paths for the fleet."""
    cluster = MemoryCluster()
    first = await open_worker(
        UploadingAdmin(UploadService(MemoryCoordination(cluster), max_paths=3)),
        tmp_path / "w1" / "uploads",
    )
    second = await open_worker(
        UploadingAdmin(UploadService(MemoryCoordination(cluster), max_paths=3)),
        tmp_path / "w2" / "uploads",
    )
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def download(client: Client, path: str) -> tuple[int, bytes]:
    reply = await client.get(DOWNLOAD, params={"path": path})
    return reply.status, await reply.read()


async def test_a_file_uploaded_through_one_worker_is_served_by_the_other(
    fleet: tuple[Client, Client],
) -> None:
    w1, w2 = fleet
    assert (await w1.post("/admin/v3/functions/upload", data=upload_form(b"v1", "a/f"))).ok
    assert await download(w2, "a/f") == (200, b"v1")
    assert (await w2.post("/admin/v3/functions/upload", data=upload_form(b"v2", "a/f"))).ok
    assert await download(w1, "a/f") == (200, b"v2"), "w1's copy of v1 is stale"
    assert await download(w2, "a/f") == (200, b"v2")
    status, body = await download(w2, "never/uploaded")
    assert status == 404 and b"never/uploaded" in body


async def test_the_path_limit_counts_the_fleets_paths(fleet: tuple[Client, Client]) -> None:
    w1, w2 = fleet
    for path in ("p/1", "p/2", "p/3"):
        assert (await w1.post("/admin/v3/functions/upload", data=upload_form(b"x", path))).ok
    refused = await w2.post("/admin/v3/functions/upload", data=upload_form(b"x", "p/4"))
    assert refused.status == 400
    assert "already keeps 3 uploaded paths, the limit is 3" in (await refused.json())["reason"]
    assert (await download(w2, "p/4"))[0] == 404
    replaced = await w2.post("/admin/v3/functions/upload", data=upload_form(b"new", "p/2"))
    assert replaced.ok and await download(w1, "p/2") == (200, b"new")


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[Client, FakeAdmin]]:
    packages = tmp_path / "packages"
    packages.mkdir()
    admin = UploadingAdmin(UploadService(MemoryCoordination(MemoryCluster())), packages)
    for fqfn in ("acme/etl/f", "public/default/f"):
        tenant, namespace, name = fqfn.split("/")
        config = FunctionConfig(tenant=tenant, namespace=namespace, name=name)
        admin.records[fqfn] = FunctionRecord(fqfn=Fqfn(fqfn), version=1, config=config)
        (packages / fqfn.replace("/", "_")).write_bytes(f"code of {fqfn}".encode())
    client = await open_worker(admin, tmp_path / "uploads", security())
    try:
        yield client, admin
    finally:
        await client.close()


async def test_the_function_form_answers_the_package_to_whoever_may_manage_it(
    secured: tuple[Client, FakeAdmin],
) -> None:
    client, _ = secured
    acme = {"tenant": "acme", "namespace": "etl", "function": "f"}
    public = {"tenant": "public", "namespace": "default", "function": "f"}
    for role in ("acme-admin", "etl-bot", "root"):
        reply = await client.get(DOWNLOAD, params=acme, headers=bearer(role))
        assert (reply.status, await reply.read()) == (200, b"code of acme/etl/f"), role
        assert reply.headers["Content-Disposition"] == 'attachment; filename="f.py"'
    assert (await client.get(DOWNLOAD, params=public, headers=bearer("acme-admin"))).status == 403
    assert (await client.get(DOWNLOAD, params=public, headers=bearer("root"))).status == 200
    assert (await client.get(DOWNLOAD, params=acme)).status == 401
    missing = await client.get(DOWNLOAD, params={**acme, "function": "g"}, headers=bearer("root"))
    assert missing.status == 404 and "doesn't exist" in (await missing.json())["reason"]
    partial = await client.get(DOWNLOAD, params={"tenant": "acme"}, headers=bearer("root"))
    assert partial.status == 400 and "'namespace'" in (await partial.json())["reason"]


async def test_a_path_is_authorized_as_pulsar_does(secured: tuple[Client, FakeAdmin]) -> None:
    """Super users upload; a path of four segments (tenant/namespace/function/file) may
    be read by whoever manages that namespace, any other path by super users only."""
    client, _ = secured
    for path in ("acme/etl/f/pkg.py", "shared/file.py"):
        reply = await client.post(
            "/admin/v3/functions/upload", data=upload_form(b"x", path), headers=bearer("root")
        )
        assert reply.status == 200
        refused = await client.post(
            "/admin/v3/functions/upload", data=upload_form(b"y", path), headers=bearer("acme-admin")
        )
        assert refused.status == 403
    tenant_path = {"path": "acme/etl/f/pkg.py"}
    assert (await client.get(DOWNLOAD, params=tenant_path, headers=bearer("etl-bot"))).status == 200
    other = {"path": "shared/file.py"}
    assert (await client.get(DOWNLOAD, params=other, headers=bearer("acme-admin"))).status == 403
    foreign = {"path": "public/default/f/pkg.py"}
    assert (await client.get(DOWNLOAD, params=foreign, headers=bearer("acme-admin"))).status == 403
