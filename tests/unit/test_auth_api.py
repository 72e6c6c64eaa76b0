"""The REST API behind authentication and authorization, over real HTTP on loopback
with real signed tokens: 401 without a valid token (and no data), 403 for a role
without the right, nothing changed by a refused request, open endpoints, and a
function config that points outside the caller's namespaces."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fnworker.scheduler.api.app import make_app
from fnworker.scheduler.security.policy import policy_of
from fnworker.scheduler.security.tokens import TokenVerifier
from fnworker.scheduler.security.web_security import WebSecurity
from tests.certs import new_secret, sign
from tests.unit.test_api_routes import CONFIG, FakeAdmin, form

pytestmark = pytest.mark.anyio
SECRET = new_secret()
ACME = "/admin/v3/functions/acme/etl"
Client = TestClient[Any, Any]


def security(**changes: Any) -> WebSecurity:
    settings: dict[str, Any] = {
        "authentication_enabled": True,
        "token": TokenVerifier(key=SECRET, algorithms=("HS256",)),
        "policy": policy_of(
            enabled=True,
            super_users=["root"],
            proxy_roles=["proxy"],
            tenant_admins={"acme": ["acme-admin"]},
            namespace_roles={"acme/etl": ["etl-bot"]},
        ),
    }
    settings.update(changes)
    return WebSecurity(**settings)


def bearer(role: str | None = "root", **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign(SECRET, role, **kwargs)}"}


@pytest.fixture
def admin() -> FakeAdmin:
    return FakeAdmin()


@pytest.fixture
def app_with(admin: FakeAdmin) -> Callable[..., web.Application]:
    def build(**changes: Any) -> web.Application:
        app = make_app(admin, max_body_bytes=8192, security=security(**changes))

        async def metrics(request: web.Request) -> web.Response:
            return web.Response(text="fnworker_up 1\n")

        app.router.add_get("/metrics", metrics)
        return app

    return build


@pytest.fixture
async def client(app_with: Callable[..., web.Application]) -> AsyncIterator[Client]:
    async with TestClient(TestServer(app_with(), host="127.0.0.1")) as test_client:
        yield test_client


async def reason_of(reply: aiohttp.ClientResponse) -> str:
    body = await reply.json()
    assert set(body) == {"reason"}
    return str(body["reason"])


async def register_in_acme(
    client: Client, name: str = "f", **kwargs: Any
) -> aiohttp.ClientResponse:
    return await client.post(f"{ACME}/{name}", data=form(**kwargs), headers=bearer("root"))


# --- authentication --------------------------------------------------------------------


async def test_missing_bad_and_expired_tokens_are_401_without_data(
    client: Client, admin: FakeAdmin
) -> None:
    assert (await register_in_acme(client)).status == 200
    wrong_key = {"Authorization": f"Bearer {sign(new_secret(), 'root')}"}
    cases = {
        "no header": {},
        "wrong key": wrong_key,
        "expired": bearer("root", expires_in=-1),
        "garbage": {"Authorization": "Bearer nonsense"},
        "basic auth": {"Authorization": "Basic cm9vdDpyb290"},
        "no sub": bearer(None),
    }
    for case, headers in cases.items():
        reply = await client.get(f"{ACME}/f", headers=headers)
        assert reply.status == 401, case
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        reason = await reason_of(reply)
        assert "className" not in reason, case
        for value in headers.values():
            assert value.split()[-1] not in reason, case


async def test_a_refused_write_changes_nothing(client: Client, admin: FakeAdmin) -> None:
    assert (await register_in_acme(client)).status == 200
    before = dict(admin.records)
    for method in ("PUT", "DELETE", "POST"):
        path = f"{ACME}/f" if method != "POST" else f"{ACME}/f/stop"
        data = form(config={"parallelism": 3}) if method == "PUT" else None
        assert (await client.request(method, path, data=data)).status == 401
        reply = await client.request(method, path, data=data, headers=bearer("stranger"))
        assert reply.status == 403
    assert admin.records == before
    assert ("stop", None) not in admin.calls


async def test_initialized_and_version_stay_open(client: Client) -> None:
    assert (await client.get("/initialized")).status == 200
    assert (await client.get("/version")).status == 200
    assert (await client.get("/openapi.json")).status == 401
    assert (await client.get("/openapi.json", headers=bearer("stranger"))).status == 200


async def test_metrics_follow_authenticate_metrics_endpoint(
    app_with: Callable[..., web.Application],
) -> None:
    for authenticate, expected in ((True, 401), (False, 200)):
        app = app_with(authenticate_metrics=authenticate)
        async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
            assert (await test_client.get("/metrics")).status == expected
            assert (await test_client.get("/metrics", headers=bearer("anyone"))).status == 200


async def test_time_comes_from_the_clock(admin: FakeAdmin) -> None:
    from fnworker.scheduler.api.auth import security_middleware

    later = time.time() + 7200
    app = web.Application(middlewares=[security_middleware(security(), clock=lambda: later)])

    async def cluster(request: web.Request) -> web.Response:
        return web.json_response([])

    app.router.add_get("/admin/v2/worker/cluster", cluster)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        reply = await test_client.get("/admin/v2/worker/cluster", headers=bearer("root"))
        assert reply.status == 401
        assert "expired" in await reason_of(reply)


# --- authorization -------------------------------------------------------------------


async def test_worker_endpoints_need_a_super_user(client: Client) -> None:
    for path in ("/admin/v2/worker/cluster", "/admin/v2/worker/assignments"):
        assert (await client.get(path, headers=bearer("root"))).status == 200
        reply = await client.get(path, headers=bearer("acme-admin"))
        assert reply.status == 403
        assert "superUserRoles" in await reason_of(reply)


async def test_tenant_admins_and_namespace_grants(client: Client) -> None:
    assert (await register_in_acme(client)).status == 200
    assert (await client.get(f"{ACME}/f", headers=bearer("acme-admin"))).status == 200
    assert (await client.get(f"{ACME}/f", headers=bearer("etl-bot"))).status == 200
    other_ns = "/admin/v3/functions/acme/billing"
    assert (await client.get(other_ns, headers=bearer("acme-admin"))).status == 200
    assert (await client.get(other_ns, headers=bearer("etl-bot"))).status == 403
    reply = await client.get("/admin/v3/functions/public/default", headers=bearer("acme-admin"))
    assert reply.status == 403
    assert "may not manage functions in public/default" in await reason_of(reply)


async def test_a_proxy_acts_for_its_original_principal(client: Client) -> None:
    path = "/admin/v3/functions/acme/etl"
    assert (await client.get(path, headers=bearer("proxy"))).status == 403
    acting = {**bearer("proxy"), "X-Original-Principal": "etl-bot"}
    assert (await client.get(path, headers=acting)).status == 403  # the proxy is not allowed
    app_policy = policy_of(
        enabled=True, proxy_roles=["proxy"], tenant_admins={"acme": ["proxy", "acme-admin"]}
    )
    app = make_app(FakeAdmin(), max_body_bytes=8192, security=security(policy=app_policy))
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        ok = {**bearer("proxy"), "X-Original-Principal": "acme-admin"}
        assert (await test_client.get(path, headers=ok)).status == 200
        spoof = {**bearer("stranger"), "X-Original-Principal": "acme-admin"}
        assert (await test_client.get(path, headers=spoof)).status == 403


async def test_a_tenant_admin_registers_inside_its_tenant(client: Client, admin: FakeAdmin) -> None:
    config = {**CONFIG, "inputs": ["persistent://acme/etl/in"], "output": "acme/billing/out"}
    reply = await client.post(
        f"{ACME}/mine", data=form(config=config), headers=bearer("acme-admin")
    )
    assert reply.status == 200
    assert "acme/etl/mine" in admin.records


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("inputs", ["persistent://globex/secret/in"]),
        ("output", "persistent://globex/secret/out"),
        ("output", "plain-name-means-public-default"),
        ("logTopic", "globex/ns/log"),
        ("deadLetterTopic", "globex/ns/dlq"),  # with maxMessageRetries below
        ("topicsPattern", "persistent://globex/ns/.*"),
        ("customSerdeInputs", {"globex/ns/in": "serde.Class"}),
        ("inputSpecs", {"globex/ns/in": {}}),
    ],
)
async def test_a_config_pointing_outside_the_callers_namespaces_is_403(
    client: Client, admin: FakeAdmin, field: str, value: Any
) -> None:
    config = {**CONFIG, "inputs": ["acme/etl/in"], "output": "acme/etl/out", field: value}
    config["maxMessageRetries"] = 3
    if field in ("topicsPattern", "customSerdeInputs", "inputSpecs"):
        config.pop("inputs")
    reply = await client.post(f"{ACME}/g", data=form(config=config), headers=bearer("etl-bot"))
    assert reply.status == 403, await reply.text()
    assert "globex" in await reason_of(reply) or "public/default" in await reason_of(reply)
    assert "acme/etl/g" not in admin.records


async def test_an_update_cannot_move_a_function_out_of_its_namespaces(
    client: Client, admin: FakeAdmin
) -> None:
    config = {**CONFIG, "inputs": ["acme/etl/in"], "output": "acme/etl/out"}
    assert (
        await client.post(f"{ACME}/h", data=form(config=config), headers=bearer("etl-bot"))
    ).status == 200
    version = admin.records["acme/etl/h"].version
    moved = form(config={"output": "globex/ns/out"}, data=None)
    reply = await client.put(f"{ACME}/h", data=moved, headers=bearer("etl-bot"))
    assert reply.status == 403
    assert admin.records["acme/etl/h"].version == version
    assert (
        await client.put(
            f"{ACME}/h",
            data=form(config={"output": "globex/ns/out"}, data=None),
            headers=bearer("root"),
        )
    ).status == 200


async def test_package_urls_are_for_super_users(client: Client, admin: FakeAdmin) -> None:
    config = {**CONFIG, "inputs": ["acme/etl/in"], "output": "acme/etl/out"}
    for url in ("file:///etc/passwd.py", "http://169.254.169.254/latest/x.py"):
        body = form(config=config, data=None, url=url)
        reply = await client.post(f"{ACME}/u", data=body, headers=bearer("acme-admin"))
        assert reply.status == 403
        assert "url" in await reason_of(reply)
        in_py = form(config={**config, "py": url}, data=None)
        assert (
            await client.post(f"{ACME}/u", data=in_py, headers=bearer("acme-admin"))
        ).status == 403
    assert ("source", None, "file:///etc/passwd.py") not in admin.calls
    root = await client.post(
        f"{ACME}/u",
        data=form(config=config, data=None, url="file:///pkg/f.py"),
        headers=bearer("root"),
    )
    assert root.status == 200


async def test_without_authentication_everything_is_open(admin: FakeAdmin) -> None:
    app = make_app(admin, max_body_bytes=8192)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        assert (await test_client.get("/admin/v2/worker/cluster")).status == 200
        reply = await test_client.post(
            f"{ACME}/f", data=form(config=json.loads(json.dumps(CONFIG)))
        )
        assert reply.status == 200
