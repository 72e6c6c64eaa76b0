"""Hostile input against a real ``fnworker standalone`` with token authentication: a
table of known-bad requests (malformed JSON and multipart, oversized bodies and
packages, path traversal, unicode and names Pulsar rejects, a config naming another
tenant). Every answer is below 500, the worker stays up, no function changes, and no
token reaches the log. Requests generated from the served OpenAPI document are
schemathesis's job: tests/hostile/test_schemathesis.py.
"""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.certs import new_secret, sign
from tests.e2e.conftest import StandaloneWorker, launch, stop, wait_ready
from tests.e2e.helpers import EXAMPLE, example_config, wait_for

TOKEN_PROVIDER = "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"
MAX_PACKAGE = 64 * 1024
MAX_BODY = 256 * 1024
EXISTING = ("fz-one", "fz-two", "fz-three")
BASE = "/admin/v3/functions/public/default"


@dataclass
class Target:
    """The worker under attack and what the test knows about it."""

    worker: StandaloneWorker
    secret: bytes
    tokens: dict[str, str]
    snapshot: dict[str, bytes] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.worker.admin_url.rsplit(":", 1)[1])

    def send(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """One raw HTTP request: the path is sent exactly as given."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            if body or method in ("POST", "PUT"):
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            reply = connection.getresponse()
            return reply.status, reply.read()
        finally:
            connection.close()

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


def multipart(parts: list[tuple[str, bytes, str | None, str | None]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (name, value, filename, content type) parts."""
    boundary = uuid.uuid4().hex
    chunks = []
    for name, value, file_name, content_type in parts:
        disposition = f'form-data; name="{name}"'
        if file_name is not None:
            disposition += f'; filename="{file_name}"'
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        chunks.append(head.encode("utf-8", "surrogatepass") + b"\r\n" + value + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def register_body(config: dict[str, Any], package: bytes, file_name: str) -> tuple[bytes, str]:
    return multipart(
        [
            ("functionConfig", json.dumps(config).encode(), None, "application/json"),
            ("data", package, file_name, "application/octet-stream"),
        ]
    )


def config_yml(folder: Path, secret: bytes) -> Path:
    document = {
        "authenticationEnabled": True,
        "authenticationProviders": [TOKEN_PROVIDER],
        "authorizationEnabled": True,
        "superUserRoles": ["admin"],
        "tenantAdminRoles": {"public": ["public-admin"]},
        "properties": {"tokenSecretKey": "data:;base64," + base64.b64encode(secret).decode()},
        "maxPackageSizeBytes": MAX_PACKAGE,
        "maxRequestBodyBytes": MAX_BODY,
        "coordinationBackend": "memory",
    }
    path = folder / "functions_worker.yml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    folder = tmp_path_factory.mktemp("fuzz")
    secret = new_secret()
    worker = launch(folder / "state", "--config", str(config_yml(folder, secret)))
    tokens = {role: sign(secret, role) for role in ("admin", "public-admin", "acme-admin")}
    try:
        wait_ready(worker)
        found = Target(worker=worker, secret=secret, tokens=tokens)
        for name in EXISTING:
            body, kind = register_body(example_config(name), EXAMPLE.read_bytes(), EXAMPLE.name)
            status, reply = found.send(
                "POST", f"{BASE}/{name}", body, {**found.auth(), "Content-Type": kind}
            )
            assert status == 200, reply
        for name in EXISTING:
            wait_for(
                lambda n=name: (
                    b'"numRunning":1'
                    in found.send("GET", f"{BASE}/{n}/status", headers=found.auth())[1]
                )
            )
            found.snapshot[name] = found.send("GET", f"{BASE}/{name}", headers=found.auth())[1]
        yield found
    finally:
        stop(worker)


def assert_unchanged(target: Target) -> None:
    for name, before in target.snapshot.items():
        status, now = target.send("GET", f"{BASE}/{name}", headers=target.auth())
        assert (status, now) == (200, before), name


# --- known hostile requests ---------------------------------------------------------


def test_malformed_json_and_multipart_are_400(target: Target) -> None:
    path = f"{BASE}/fz-one"
    for raw in (
        b"{",
        b"null",
        b"[]",
        b'{"className": 7}',
        b'{"parallelism": "many"}',
        b"[" * 100_000,
        b"\xff\xfe",
        b'{"tenant": "acme"}',
    ):
        body, kind = multipart([("functionConfig", raw, None, "application/json")])
        status, reply = target.send("PUT", path, body, {**target.auth(), "Content-Type": kind})
        assert status == 400, (raw[:20], reply)
        assert set(json.loads(reply)) == {"reason"}
    broken = [
        (b"--nope\r\nContent-Disposition: form-data\r\n\r\nx", "multipart/form-data; boundary=x"),
        (b"garbage", "multipart/form-data"),
        (b"garbage", "multipart/form-data; boundary="),
        (b'{"parallelism": 2}', "application/json"),
        (b"", "text/plain"),
        (b"\x80=\xff", "application/x-www-form-urlencoded"),
        (
            b'--b\r\nContent-Disposition: form-data; name="data"; filename="\x1f.py"\r\n'
            b"\r\nx\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
        ),
    ]
    for body, kind in broken:
        status, reply = target.send("PUT", path, body, {**target.auth(), "Content-Type": kind})
        assert 400 <= status < 500, (body, kind, reply)
    assert_unchanged(target)


def test_oversized_bodies_and_packages_are_413(target: Target) -> None:
    big_package = b"#" * (MAX_PACKAGE + 1)
    body, kind = register_body(example_config("fz-big"), big_package, "big.py")
    assert len(body) < MAX_BODY
    status, reply = target.send(
        "POST", f"{BASE}/fz-big", body, {**target.auth(), "Content-Type": kind}
    )
    assert status == 413, reply
    huge = b"x" * (MAX_BODY + 1)
    status, reply = target.send(
        "POST", f"{BASE}/fz-big", huge, {**target.auth(), "Content-Type": kind}
    )
    assert status == 413, reply
    status, _ = target.send("GET", f"{BASE}/fz-big", headers=target.auth())
    assert status == 404


@pytest.mark.parametrize(
    "name",
    [
        "..",
        ".",
        "...",
        "a..b",
        "%2E%2E",
        "..%2F..%2Fetc",
        "f%00",
        "na%20me",
        "%C3%BCber",
        "%E5%90%8D%E5%89%8D",
        "x" * 300,
        "a%2Fb",
        "%5C..%5C",
    ],
)
def test_names_pulsar_rejects_are_400_and_touch_no_disk(target: Target, name: str) -> None:
    body, kind = register_body(example_config("fz-x"), EXAMPLE.read_bytes(), EXAMPLE.name)
    status, reply = target.send(
        "POST",
        f"/admin/v3/functions/public/{name}/fz-x",
        body,
        {**target.auth(), "Content-Type": kind},
    )
    assert status in (400, 404), reply
    assert target.send("GET", f"{BASE}/fz-x", headers=target.auth())[0] == 404
    assert not list((target.worker.state_dir / "packages").rglob("fz-x"))


def test_a_package_file_name_cannot_escape_the_store(target: Target, tmp_path: Path) -> None:
    escape = tmp_path / f"escaped-{uuid.uuid4().hex}.py"
    traversal = "../" * 12 + str(escape).lstrip("/")
    for file_name in (traversal, traversal.replace("/", "\\"), str(escape)):
        name = f"fz-path-{uuid.uuid4().hex[:6]}"
        body, kind = register_body(example_config(name), EXAMPLE.read_bytes(), file_name)
        status, reply = target.send(
            "POST", f"{BASE}/{name}", body, {**target.auth(), "Content-Type": kind}
        )
        assert status in (200, 400), reply
        assert not escape.exists()
        if status == 200:
            stored = list((target.worker.state_dir / "packages").rglob(escape.name))
            assert stored and all(target.worker.state_dir in p.parents for p in stored)
            target.send("DELETE", f"{BASE}/{name}", headers=target.auth())


def test_a_config_naming_another_tenant_is_refused(target: Target) -> None:
    config = example_config("fz-one", tenant="acme")
    body, kind = register_body(config, EXAMPLE.read_bytes(), EXAMPLE.name)
    status, reply = target.send(
        "PUT", f"{BASE}/fz-one", body, {**target.auth(), "Content-Type": kind}
    )
    assert status == 400 and b"acme" in reply
    tenant_admin = {**target.auth("public-admin"), "Content-Type": kind}
    body, kind = register_body(
        {"output": "persistent://acme/ns/out"}, EXAMPLE.read_bytes(), EXAMPLE.name
    )
    status, reply = target.send(
        "PUT", f"{BASE}/fz-one", body, {**tenant_admin, "Content-Type": kind}
    )
    assert status == 403, reply
    assert_unchanged(target)


def test_no_token_or_key_reaches_the_log(target: Target) -> None:
    log = target.worker.log_path.read_text(errors="replace")
    assert "request failed" not in log  # no 500 was logged
    for role, token in target.tokens.items():
        assert token not in log, role
        assert token.rsplit(".", 1)[1] not in log, role
    assert base64.b64encode(target.secret).decode() not in log
