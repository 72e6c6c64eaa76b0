"""A real worker (``serve_worker``, memory coordination) serving HTTPS on loopback
with certificates from its own test CA, token and client-certificate
authentication, the CLI talking TLS and tokens to it, and the broker client's TLS
check against the real (plain) pulsar-lite broker and a TLS server it does not trust.
"""

from __future__ import annotations

import base64
import functools
import os
import socket
import ssl
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pulsar
import pytest

from fnworker.coordination.embedded_broker import EmbeddedBroker, free_loopback_port
from fnworker.coordination.memory import MemoryCluster, MemoryCoordination
from fnworker.runtimes.broker_client import make_client, tls_problem
from fnworker.scheduler.model.instances import ClientSettings
from fnworker.scheduler.settings.config_loader import parse_worker_config
from fnworker.scheduler.settings.worker_config import WorkerConfig
from fnworker.scheduler.worker.worker_service import RunningWorker, serve_worker
from tests.certs import Certs, make_certs, new_secret, sign

pytestmark = pytest.mark.anyio
FNWORKER = Path(sys.executable).with_name("fnworker")
TOKEN_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
TLS_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderTls"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"), client_role="admin", other_role="guest")


@pytest.fixture(scope="module")
def secret() -> bytes:
    return new_secret()


def secure_config(state: Path, certs: Certs, secret: bytes, **extra: Any) -> WorkerConfig:
    """A TLS-only worker with token authentication and authorization."""
    document: dict[str, Any] = {
        "workerPort": None,
        "workerPortTls": free_loopback_port(),
        "tlsEnabled": True,
        "tlsCertificateFilePath": str(certs.server.cert),
        "tlsKeyFilePath": str(certs.server.key),
        "tlsTrustCertsFilePath": str(certs.ca),
        "authenticationEnabled": True,
        "authenticationProviders": [TOKEN_PROVIDER],
        "authorizationEnabled": True,
        "superUserRoles": ["admin"],
        "tenantAdminRoles": {"acme": ["acme-admin"]},
        "properties": {"tokenSecretKey": "data:;base64," + base64.b64encode(secret).decode()},
        "stateDirectory": str(state),
        "pulsarServiceUrl": "pulsar://127.0.0.1:1",
        **extra,
    }
    return parse_worker_config(document, {}, source="test").config


@asynccontextmanager
async def running(config: WorkerConfig) -> AsyncIterator[RunningWorker]:
    """One worker, stopped when the block ends."""
    async with anyio.create_task_group() as group:
        backend = MemoryCoordination(MemoryCluster())
        worker: RunningWorker = await group.start(
            functools.partial(serve_worker, config, backend, bind_address="127.0.0.1")
        )
        try:
            yield worker
        finally:
            group.cancel_scope.cancel()


def https(config: WorkerConfig, path: str) -> str:
    return f"https://localhost:{config.worker_port_tls}{path}"


def client_context(certs: Certs, cert: Any = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


async def get(url: str, context: ssl.SSLContext | bool, token: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.get(url, headers=headers) as reply,
    ):
        return reply.status


async def test_https_with_the_test_ca_and_no_plain_http(
    tmp_path: Path, certs: Certs, secret: bytes
) -> None:
    config = secure_config(tmp_path, certs, secret)
    async with running(config) as worker:
        assert worker.admin_url.startswith("https://")
        trusted = client_context(certs)
        assert await get(https(config, "/initialized"), trusted) == 200
        assert await get(https(config, "/admin/v2/worker/cluster"), trusted) == 401
        admin = sign(secret, "admin")
        assert await get(https(config, "/admin/v2/worker/cluster"), trusted, admin) == 200
        guest = sign(secret, "acme-admin")
        assert await get(https(config, "/admin/v2/worker/cluster"), trusted, guest) == 403
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get(https(config, "/initialized"), ssl.create_default_context())
        plain = f"http://127.0.0.1:{config.worker_port_tls}/initialized"
        with pytest.raises(aiohttp.ClientError):
            await get(plain, False)


async def test_a_trusted_client_certificate_can_be_required(
    tmp_path: Path, certs: Certs, secret: bytes
) -> None:
    config = secure_config(tmp_path, certs, secret, tlsRequireTrustedClientCertOnConnect=True)
    async with running(config):
        url = https(config, "/initialized")
        assert await get(url, client_context(certs, certs.client)) == 200
        with pytest.raises(aiohttp.ClientError):
            await get(url, client_context(certs))
        stranger = client_context(certs, certs.untrusted_server)
        with pytest.raises(aiohttp.ClientError):
            await get(url, stranger)


async def test_the_client_certificate_names_the_role(
    tmp_path: Path, certs: Certs, secret: bytes
) -> None:
    config = secure_config(
        tmp_path, certs, secret, authenticationProviders=[TOKEN_PROVIDER, TLS_PROVIDER]
    )
    async with running(config):
        url = https(config, "/admin/v2/worker/cluster")
        assert await get(url, client_context(certs, certs.client)) == 200  # CN=admin
        assert await get(url, client_context(certs, certs.other_client)) == 403  # CN=guest
        assert await get(url, client_context(certs)) == 401


async def test_the_cli_speaks_tls_and_tokens(tmp_path: Path, certs: Certs, secret: bytes) -> None:
    config = secure_config(tmp_path, certs, secret)
    token = sign(secret, "admin")
    token_file = tmp_path / "token"
    token_file.write_text(token)
    async with running(config):
        base = [str(FNWORKER), "functions", "list", "--admin-url", https(config, "")]
        trust = ["--tls-trust-cert-path", str(certs.ca)]
        auth = ["--auth-plugin", "org.apache.pulsar.client.impl.auth.AuthenticationToken"]
        ok = await anyio.run_process(
            [*base, *trust, *auth, "--auth-params", f"file://{token_file}"], check=False
        )
        assert ok.returncode == 0, ok.stderr.decode()
        inline = await anyio.run_process(
            [*base, *trust, *auth, "--auth-params", f"token:{token}"], check=False
        )
        assert inline.returncode == 0, inline.stderr.decode()
        no_token = await anyio.run_process([*base, *trust], check=False)
        assert no_token.returncode == 1
        assert "HTTP 401" in no_token.stderr.decode()
        untrusted = await anyio.run_process(
            [*base, *auth, "--auth-params", f"token:{token}"], check=False
        )
        assert untrusted.returncode == 1
        assert "certificate" in untrusted.stderr.decode().lower()
        assert token not in untrusted.stderr.decode()
        insecure = await anyio.run_process(
            [*base, "--tls-allow-insecure", *auth, "--auth-params", f"token:{token}"], check=False
        )
        assert insecure.returncode == 0, insecure.stderr.decode()


async def test_the_cli_presents_a_client_certificate(
    tmp_path: Path, certs: Certs, secret: bytes
) -> None:
    config = secure_config(
        tmp_path,
        certs,
        secret,
        authenticationProviders=[TOKEN_PROVIDER, TLS_PROVIDER],
        tlsRequireTrustedClientCertOnConnect=True,
    )
    async with running(config):
        command = [
            str(FNWORKER),
            "functions",
            "list",
            "--admin-url",
            https(config, ""),
            "--tls-trust-cert-path",
            str(certs.ca),
            "--auth-plugin",
            "org.apache.pulsar.client.impl.auth.AuthenticationTls",
            "--auth-params",
            f"tlsCertFile:{certs.client.cert},tlsKeyFile:{certs.client.key}",
        ]
        result = await anyio.run_process(command, check=False)
        assert result.returncode == 0, result.stderr.decode()


# --- the worker's broker client ---------------------------------------------------------


def test_pulsar_ssl_to_a_plain_broker_is_one_clear_sentence(broker: EmbeddedBroker) -> None:
    settings = ClientSettings(service_url=f"pulsar+ssl://127.0.0.1:{broker.port}")
    problem = tls_problem(settings, timeout=3.0)
    assert problem is not None
    assert "did not complete a TLS handshake" in problem
    assert "brokerServicePortTls" in problem
    assert tls_problem(ClientSettings(service_url=broker.url)) is None


def test_the_client_itself_fails_against_a_plain_broker(broker: EmbeddedBroker) -> None:
    settings = ClientSettings(
        service_url=f"pulsar+ssl://127.0.0.1:{broker.port}", operation_timeout_seconds=2
    )
    client = make_client(settings)
    try:
        with pytest.raises(pulsar.PulsarException):
            client.create_producer("persistent://public/default/never-over-tls")
    finally:
        client.close()


def test_an_untrusted_broker_certificate_is_named(certs: Certs) -> None:
    with tls_server(certs.untrusted_server) as port:
        settings = ClientSettings(
            service_url=f"pulsar+ssl://localhost:{port}",
            tls_trust_certs_file_path=str(certs.ca),
            tls_hostname_verification=True,
        )
        problem = tls_problem(settings, timeout=3.0)
    assert problem is not None and "does not trust" in problem


def test_a_trusted_broker_certificate_passes(certs: Certs) -> None:
    with tls_server(certs.server) as port:
        settings = ClientSettings(
            service_url=f"pulsar+ssl://localhost:{port}",
            tls_trust_certs_file_path=str(certs.ca),
            tls_hostname_verification=True,
        )
        assert tls_problem(settings, timeout=3.0) is None


def test_an_unreachable_broker_is_not_a_tls_problem() -> None:
    port = free_loopback_port()
    assert tls_problem(ClientSettings(service_url=f"pulsar+ssl://127.0.0.1:{port}")) is None


@contextmanager
def tls_server(pem: Any) -> Iterator[int]:
    """A TLS listener on loopback that completes handshakes, on a thread."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pem.cert), str(pem.key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                with context.wrap_socket(raw, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()
        thread.join(timeout=5)


SECURE_PULSAR = os.environ.get("FNWORKER_SECURE_PULSAR_URL")


@pytest.mark.requires_real_pulsar
@pytest.mark.skipif(
    not SECURE_PULSAR,
    reason="needs a Pulsar with TLS and token auth: set FNWORKER_SECURE_PULSAR_URL, "
    "FNWORKER_SECURE_PULSAR_CA and FNWORKER_SECURE_PULSAR_TOKEN (pulsar-lite has neither)",
)
def test_a_secured_real_pulsar_accepts_the_worker_client() -> None:
    settings = ClientSettings(
        service_url=str(SECURE_PULSAR),
        auth_plugin="org.apache.pulsar.client.impl.auth.AuthenticationToken",
        auth_params="token:" + os.environ["FNWORKER_SECURE_PULSAR_TOKEN"],
        tls_trust_certs_file_path=os.environ.get("FNWORKER_SECURE_PULSAR_CA"),
        tls_hostname_verification=True,
    )
    assert tls_problem(settings) is None
    client = make_client(settings)
    try:
        producer = client.create_producer("persistent://public/default/fnworker-secure-probe")
        producer.send(b"hello over tls")
    finally:
        client.close()
