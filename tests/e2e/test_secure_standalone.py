"""A secured ``fnworker standalone`` as a user with a secured cluster configures it:
HTTPS only (certificates from the test's own CA), token authentication with a
key file, authorization with super users and tenant admins, and the worker's own
broker client configured with a token. A function runs end to end through it;
refused requests change nothing; no secret reaches the log or an answer; broken
security settings stop the worker with one sentence."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from fnworker.coordination.embedded_broker import EmbeddedBroker, free_loopback_port
from tests.certs import Certs, make_certs, new_secret, sign
from tests.e2e.conftest import StandaloneWorker, launch, stop, wait_ready
from tests.e2e.helpers import BASE, call, example_config, function_form, wait_for

TOKEN_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
TOKEN_PLUGIN = "org.apache.pulsar.client.impl.auth.AuthenticationToken"


@dataclass
class Secured:
    """The running worker and the secrets it was given."""

    worker: StandaloneWorker
    certs: Certs
    secret: bytes
    broker_token: str

    def as_role(self, role: str | None, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {sign(self.secret, role, **kwargs)}"}

    def call(self, method: str, path: str, role: str | None = "admin", **kwargs: Any) -> Any:
        headers = self.as_role(role) if role else {}
        return call(
            self.worker.admin_url,
            method,
            path,
            headers=headers,
            ssl_context=self.worker.ssl_context,
            **kwargs,
        )


def secured_document(folder: Path, certs: Certs, secret: bytes, tls_port: int) -> dict[str, Any]:
    """The keys of a TLS-only worker with token authentication and authorization
    (super user ``admin``); writes the token key into ``folder``."""
    (folder / "secret.key").write_bytes(secret)
    return {
        "workerPort": None,
        "workerPortTls": tls_port,
        "tlsEnabled": True,
        "tlsCertificateFilePath": str(certs.server.cert),
        "tlsKeyFilePath": str(certs.server.key),
        "tlsTrustCertsFilePath": str(certs.ca),
        "authenticationEnabled": True,
        "authenticationProviders": [TOKEN_PROVIDER],
        "authorizationEnabled": True,
        "superUserRoles": ["admin"],
        "properties": {"tokenSecretKey": f"file://{folder / 'secret.key'}"},
        "coordinationBackend": "memory",
    }


def write_yml(folder: Path, document: dict[str, Any]) -> Path:
    """``folder/functions_worker.yml`` holding ``document``."""
    path = folder / "functions_worker.yml"
    path.write_text(yaml.safe_dump(document))
    return path


def secure_yml(folder: Path, certs: Certs, secret: bytes, broker_token: str, tls_port: int) -> Path:
    """The worker config of a TLS-only, token-secured worker with tenant admins and an
    authenticated broker client."""
    document = secured_document(folder, certs, secret, tls_port)
    document.update(
        tenantAdminRoles={"public": ["public-admin"]},
        brokerClientAuthenticationPlugin=TOKEN_PLUGIN,
        brokerClientAuthenticationParameters=f"token:{broker_token}",
    )
    return write_yml(folder, document)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    folder = tmp_path_factory.mktemp("secure")
    certs = make_certs(folder / "certs")
    secret, broker_token = new_secret(), sign(new_secret(), "worker-broker-role")
    tls_port = free_loopback_port()
    config = secure_yml(folder, certs, secret, broker_token, tls_port)
    context = ssl.create_default_context(cafile=str(certs.ca))
    worker = launch(
        folder / "state", "--config", str(config), tls_port=tls_port, ssl_context=context
    )
    try:
        wait_ready(worker)
        yield Secured(worker, certs, secret, broker_token)
    finally:
        stop(worker)


def test_a_tenant_admin_runs_a_function_over_tls(secured: Secured) -> None:
    name = "secure-ex"
    form = function_form(example_config(name))
    assert secured.call("POST", f"{BASE}/{name}", "public-admin", form=form).status == 200

    def running() -> bool:
        reply = secured.call("GET", f"{BASE}/{name}/status", "public-admin")
        return reply.status == 200 and reply.json()["numRunning"] == 1

    wait_for(running)

    def triggered() -> Any:
        data = {"data": "hi"}
        reply = secured.call("POST", f"{BASE}/{name}/trigger", "public-admin", form=_form(data))
        return reply if reply.status == 200 else None

    assert wait_for(triggered).body == b"hi!"


def _form(texts: dict[str, str]) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for key, value in texts.items():
        form.add_field(key, value)
    return form


def test_refused_requests_answer_401_or_403_and_change_nothing(secured: Secured) -> None:
    name = "guarded"
    assert (
        secured.call("POST", f"{BASE}/{name}", form=function_form(example_config(name))).status
        == 200
    )
    before = secured.call("GET", f"{BASE}/{name}").body
    update = function_form({"parallelism": 2}, package=None)
    assert secured.call("PUT", f"{BASE}/{name}", None, form=update).status == 401
    update = function_form({"parallelism": 2}, package=None)
    assert secured.call("PUT", f"{BASE}/{name}", "acme-admin", form=update).status == 403
    assert secured.call("DELETE", f"{BASE}/{name}", "acme-admin").status == 403
    assert secured.call("POST", f"{BASE}/{name}/stop", "acme-admin").status == 403
    expired = call(
        secured.worker.admin_url,
        "DELETE",
        f"{BASE}/{name}",
        headers=secured.as_role("admin", expires_in=-10),
        ssl_context=secured.worker.ssl_context,
    )
    assert expired.status == 401 and "expired" in expired.reason
    assert secured.call("GET", "/admin/v2/worker/cluster", "public-admin").status == 403
    assert secured.call("GET", "/admin/v2/worker/cluster", "admin").status == 200
    assert secured.call("GET", f"{BASE}/{name}").body == before


def test_a_config_reaching_into_another_tenant_is_403(secured: Secured) -> None:
    config = example_config("sneaky", output="persistent://acme/private/out")
    reply = secured.call("POST", f"{BASE}/sneaky", "public-admin", form=function_form(config))
    assert reply.status == 403
    assert "acme/private" in reply.reason
    assert secured.call("GET", f"{BASE}/sneaky").status == 404


def test_secrets_never_reach_the_log_or_an_answer(secured: Secured) -> None:
    """Runs last: every secret the module used must be absent everywhere."""
    wrong_key_token = sign(new_secret(), "admin")
    for headers in (
        {"Authorization": f"Bearer {wrong_key_token}"},
        secured.as_role("x", expires_in=-1),
    ):
        reply = call(
            secured.worker.admin_url,
            "GET",
            f"{BASE}/secure-ex",
            headers=headers,
            ssl_context=secured.worker.ssl_context,
        )
        assert reply.status == 401
    answers = [
        secured.call("GET", f"{BASE}/secure-ex").body,
        secured.call("GET", f"{BASE}/secure-ex/status").body,
        secured.call("GET", f"{BASE}/secure-ex/stats").body,
    ]
    secrets = {
        "broker token": secured.broker_token,
        "wrong-key token": wrong_key_token,
        "token secret (base64)": base64.b64encode(secured.secret).decode(),
        "a valid REST token": secured.as_role("admin")["Authorization"].split()[1],
    }
    log = secured.worker.log_path.read_text(errors="replace")
    assert "worker started" in log
    for what, value in secrets.items():
        assert value not in log, what
        for answer in answers:
            assert value.encode() not in answer, what
    signature = secured.broker_token.rsplit(".", 1)[1]
    assert signature not in log


# --- settings that stop the worker --------------------------------------------------


def exit_of(worker: StandaloneWorker) -> tuple[int, str]:
    try:
        code = worker.process.wait(timeout=30)
    finally:
        stop(worker)
    return code, worker.log_path.read_text(errors="replace")


def test_pulsar_ssl_to_a_plain_broker_stops_with_one_sentence(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    worker = launch(tmp_path, "--broker-url", f"pulsar+ssl://127.0.0.1:{broker.port}")
    code, log = exit_of(worker)
    assert code == 2
    assert "did not complete a TLS handshake" in log
    assert "Traceback" not in log


def test_an_unreadable_token_key_stops_with_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "functions_worker.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "authenticationEnabled": True,
                "authenticationProviders": [TOKEN_PROVIDER],
                "properties": {"tokenSecretKey": f"file://{tmp_path / 'missing.key'}"},
                "coordinationBackend": "memory",
            }
        )
    )
    code, log = exit_of(launch(tmp_path / "state", "--config", str(config)))
    assert code == 2
    assert "properties.tokenSecretKey names the file" in log
    assert "Traceback" not in log


def test_a_missing_certificate_stops_with_one_sentence(tmp_path: Path) -> None:
    config = tmp_path / "functions_worker.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "workerPortTls": free_loopback_port(),
                "tlsEnabled": True,
                "tlsCertificateFilePath": str(tmp_path / "nope.pem"),
                "tlsKeyFilePath": str(tmp_path / "nope.key"),
                "coordinationBackend": "memory",
            }
        )
    )
    code, log = exit_of(launch(tmp_path / "state", "--config", str(config)))
    assert code == 2
    assert "tlsCertificateFilePath" in log
    assert "Traceback" not in log
