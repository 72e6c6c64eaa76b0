"""Who may call the upload/download, connectors, leader-ready and worker-metrics
endpoints, over real HTTP on loopback with real signed tokens: super users only, as
Pulsar's ComponentImpl and WorkerImpl decide; a refused upload stores nothing."""

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
from tests.unit.test_api_routes import FakeAdmin
from tests.unit.test_auth_api import bearer, security
from tests.unit.test_uploads_fleet_wide import UploadingAdmin

pytestmark = pytest.mark.anyio
Client = TestClient[Any, Any]
SUPER_USER_ONLY = (
    ("GET", "/admin/v3/functions/connectors"),
    ("GET", "/admin/v2/worker/connectors"),
    ("GET", "/admin/v2/worker-stats/metrics"),
    ("GET", "/admin/v3/functions/download?path=a/b"),
)


def upload_form(path: str) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("data", b"bytes", filename="f.py", content_type="application/octet-stream")
    form.add_field("path", path, content_type="text/plain")
    return form


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    admin = UploadingAdmin(UploadService(MemoryCoordination(MemoryCluster())))
    app = make_app(admin, max_body_bytes=8192, security=security())
    app[UPLOADS_DIR] = tmp_path / "uploads"
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def test_a_tenant_admin_may_not_upload_download_or_read_worker_data(
    client: Client, tmp_path: Path
) -> None:
    headers = bearer("acme-admin")
    reply = await client.post(
        "/admin/v3/functions/upload", data=upload_form("a/b"), headers=headers
    )
    assert reply.status == 403 and "superUserRoles" in (await reply.json())["reason"]
    assert not (tmp_path / "uploads").exists()
    for method, path in SUPER_USER_ONLY:
        assert (await client.request(method, path, headers=headers)).status == 403, path
        assert (await client.request(method, path)).status == 401, path


async def test_a_super_user_uploads_and_downloads(client: Client) -> None:
    headers = bearer("root")
    reply = await client.post(
        "/admin/v3/functions/upload", data=upload_form("a/b"), headers=headers
    )
    assert reply.status == 200
    got = await client.get("/admin/v3/functions/download?path=a/b", headers=headers)
    assert (got.status, await got.read()) == (200, b"bytes")
    listed = await client.get("/admin/v2/worker/connectors", headers=headers)
    assert (listed.status, await listed.json()) == (200, [])


class FollowerAdmin(FakeAdmin):
    """A ready worker that is not the leader."""

    def is_ready(self) -> bool:
        return True

    def is_leader(self) -> bool:
        return False


async def test_leader_ready_answers_503_on_a_worker_that_does_not_lead() -> None:
    async with TestClient(TestServer(make_app(FollowerAdmin(), max_body_bytes=8192))) as client:
        reply = await client.get("/admin/v2/worker/cluster/leader/ready")
        assert (
            reply.status == 503 and "not the fleet's ready leader" in (await reply.json())["reason"]
        )


async def test_state_is_authorized_like_the_functions_other_endpoints(
    tmp_path: Path,
) -> None:
    admin = FakeAdmin()
    app = make_app(admin, max_body_bytes=8192, security=security())
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        for fqfn in ("acme/etl/f", "public/default/f"):
            tenant, namespace, name = fqfn.split("/")
            config = FunctionConfig(tenant=tenant, namespace=namespace, name=name)
            admin.records[fqfn] = FunctionRecord(fqfn=Fqfn(fqfn), version=1, config=config)
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("state", '{"key":"k","stringValue":"v"}')
        acme, public = "/admin/v3/functions/acme/etl/f", "/admin/v3/functions/public/default/f"
        headers = bearer("acme-admin")
        assert (await test_client.get(f"{acme}/state/k", headers=headers)).status == 404
        reply = await test_client.post(f"{acme}/state/k", data=form, headers=headers)
        assert reply.status == 200
        assert admin.calls == [
            ("get_state", "k"),
            ("put_state", "k", b'{"key":"k","stringValue":"v"}'),
        ]
        assert (await test_client.get(f"{public}/state/k", headers=headers)).status == 403
        assert (
            await test_client.post(f"{public}/state/k", data=form, headers=headers)
        ).status == 403
        assert (await test_client.get(f"{acme}/state/k")).status == 401
        assert len(admin.calls) == 2, "a refused caller reaches nothing"
