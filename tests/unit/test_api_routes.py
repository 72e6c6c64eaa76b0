"""The REST layer over real HTTP (aiohttp test server on loopback) with an in-memory
``FunctionsAdmin`` that keeps records the way the worker does: routes, multipart
parsing, status codes, error bodies and size limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from fnworker.scheduler.api.app import make_app
from fnworker.scheduler.decide.function_validation import merge_update, validate_new_function
from fnworker.scheduler.model.admin_records import FunctionStats, InstanceStats, PackageSource
from fnworker.scheduler.model.errors import ApiError, conflict, not_found
from fnworker.scheduler.model.instances import InstanceMetrics
from fnworker.scheduler.model.records import (
    FunctionConfig,
    FunctionRecord,
    FunctionStatus,
    InstanceStatus,
    InstanceStatusData,
    WorkerInfo,
    fqfn_of,
)

pytestmark = pytest.mark.anyio
BASE = "/admin/v3/functions/public/default"
CONFIG = {
    "className": "exclamation_function.ExclamationFunction",
    "inputs": ["in"],
    "output": "out",
}
ME = WorkerInfo(worker_id="w1", worker_hostname="localhost", port=6750)


class FakeAdmin:
    """Keeps functions in a dict; validates as the worker does; records calls."""

    def __init__(self) -> None:
        self.records: dict[str, FunctionRecord] = {}
        self.packages: dict[str, tuple[bytes, str]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.ready = True
        self.trigger_answer: bytes | None = b"hello!"

    def get_function(self, tenant: str, namespace: str, name: str) -> FunctionRecord:
        record = self.records.get(fqfn_of(tenant, namespace, name))
        if record is None:
            raise not_found(f"Function {fqfn_of(tenant, namespace, name)} doesn't exist")
        return record

    async def register(
        self,
        tenant: str,
        namespace: str,
        name: str,
        config: FunctionConfig,
        source: PackageSource,
        auth_token: str | None = None,
    ) -> FunctionRecord:
        fqfn = fqfn_of(tenant, namespace, name)
        if fqfn in self.records:
            raise conflict(f"Function {fqfn} already exists")
        file_name = (
            source.upload.file_name if source.upload else (source.url or "").rsplit("/", 1)[-1]
        )
        complete = validate_new_function(tenant, namespace, name, config, file_name)
        self._keep(source)
        self.records[fqfn] = FunctionRecord(fqfn=fqfn, version=1, config=complete)
        if source.upload:
            self.packages[fqfn] = (source.upload.path.read_bytes(), source.upload.file_name)
        return self.records[fqfn]

    def _keep(self, source: PackageSource) -> None:
        self.calls.append(
            ("source", source.upload.file_name if source.upload else None, source.url)
        )

    async def update(
        self,
        tenant: str,
        namespace: str,
        name: str,
        config: FunctionConfig,
        source: PackageSource,
        auth_token: str | None = None,
    ) -> FunctionRecord:
        existing = self.get_function(tenant, namespace, name)
        merged = merge_update(existing.config, config)
        self._keep(source)
        record = msgspec.structs.replace(existing, version=existing.version + 1, config=merged)
        self.records[existing.fqfn] = record
        return record

    async def deregister(self, tenant: str, namespace: str, name: str) -> None:
        del self.records[self.get_function(tenant, namespace, name).fqfn]

    def list_functions(self, tenant: str, namespace: str) -> list[str]:
        prefix = f"{tenant}/{namespace}/"
        return sorted(f[len(prefix) :] for f in self.records if f.startswith(prefix))

    async def function_status(self, tenant: str, namespace: str, name: str) -> FunctionStatus:
        self.get_function(tenant, namespace, name)
        one = InstanceStatus(
            instance_id=0, status=await self.instance_status(tenant, namespace, name, 0)
        )
        return FunctionStatus(num_instances=1, num_running=1, instances=[one])

    async def instance_status(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceStatusData:
        self.get_function(tenant, namespace, name)
        if index != 0:
            raise ApiError(400, f"instanceId {index} is not valid; expected 0")
        return InstanceStatusData(running=True, worker_id="w1")

    async def function_stats(self, tenant: str, namespace: str, name: str) -> FunctionStats:
        return FunctionStats(
            received_total=3,
            instances=[InstanceStats(instance_id=0, metrics=InstanceMetrics(received_total=3))],
        )

    async def instance_stats(
        self, tenant: str, namespace: str, name: str, index: int
    ) -> InstanceMetrics:
        return InstanceMetrics(received_total=3)

    async def start(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        self.get_function(tenant, namespace, name)
        self.calls.append(("start", index))

    async def stop(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        self.get_function(tenant, namespace, name)
        self.calls.append(("stop", index))

    async def restart(self, tenant: str, namespace: str, name: str, index: int | None) -> None:
        self.get_function(tenant, namespace, name)
        self.calls.append(("restart", index))

    async def trigger(
        self, tenant: str, namespace: str, name: str, value: bytes, topic: str | None
    ) -> bytes | None:
        self.get_function(tenant, namespace, name)
        self.calls.append(("trigger", value, topic))
        if value == b"slow":
            raise ApiError(408, "no output within 10 s")
        return self.trigger_answer

    def package_path(self, tenant: str, namespace: str, name: str) -> tuple[Path, str]:
        raise NotImplementedError  # replaced per test through tmp_path

    async def package_file(self, tenant: str, namespace: str, name: str) -> tuple[Path, str]:
        return self.package_path(tenant, namespace, name)

    async def get_state(self, tenant: str, namespace: str, name: str, key: str) -> Any:
        self.get_function(tenant, namespace, name)
        self.calls.append(("get_state", key))
        raise not_found(f"key '{key}' doesn't exist.")

    async def put_state(
        self, tenant: str, namespace: str, name: str, key: str, body: bytes
    ) -> None:
        self.get_function(tenant, namespace, name)
        self.calls.append(("put_state", key, body))

    def cluster(self) -> list[WorkerInfo]:
        return [ME]

    def leader(self) -> WorkerInfo | None:
        return ME if self.ready else None

    async def assignments(self) -> dict[str, list[str]]:
        return {"w1": [f"{fqfn}:0" for fqfn in self.records]}

    def is_ready(self) -> bool:
        return self.ready


@pytest.fixture
def admin() -> FakeAdmin:
    return FakeAdmin()


@pytest.fixture
async def client(admin: FakeAdmin) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(
        TestServer(make_app(admin, max_body_bytes=4096), host="127.0.0.1")
    ) as test_client:
        yield test_client


def form(
    config: Any = CONFIG,
    data: bytes | None = b"code",
    file_name: str = "exclamation_function.py",
    **texts: str,
) -> aiohttp.FormData:
    """A register/update body as curl -F or pulsar-admin send it."""
    body = aiohttp.FormData()
    if config is not None:
        raw = config.decode() if isinstance(config, bytes) else json.dumps(config)
        body.add_field("functionConfig", raw, content_type="application/json")
    if data is not None:
        body.add_field("data", data, filename=file_name, content_type="application/octet-stream")
    for name, value in texts.items():
        body.add_field(name, value)
    return body


async def reason(reply: aiohttp.ClientResponse) -> str:
    assert reply.content_type == "application/json"
    return str((await reply.json())["reason"])


async def register(
    client: TestClient[Any, Any], name: str = "ex", **kwargs: Any
) -> aiohttp.ClientResponse:
    return await client.post(f"{BASE}/{name}", data=form(**kwargs))


# --- register, get, list, update, delete -----------------------------------------------


async def test_register_answers_200_with_an_empty_body_and_stores_the_upload(
    client: TestClient[Any, Any], admin: FakeAdmin
) -> None:
    reply = await register(client)
    assert reply.status == 200
    assert await reply.read() == b""
    assert admin.packages["public/default/ex"] == (b"code", "exclamation_function.py")


async def test_the_temporary_upload_is_removed_after_the_request(
    client: TestClient[Any, Any], admin: FakeAdmin
) -> None:
    seen: list[Path] = []
    original = admin.register

    async def spy(*args: Any, **kwargs: Any) -> FunctionRecord:
        seen.append(args[4].upload.path)
        assert seen[0].exists()
        return await original(*args, **kwargs)

    admin.register = spy  # type: ignore[method-assign]
    assert (await register(client)).status == 200
    assert not seen[0].exists()


async def test_get_answers_the_complete_config_in_camel_case(client: TestClient[Any, Any]) -> None:
    await register(client)
    reply = await client.get(f"{BASE}/ex")
    assert reply.status == 200
    body = await reply.json()
    assert body["className"] == CONFIG["className"]
    assert list(body["inputSpecs"]) == ["persistent://public/default/in"]  # as Pulsar answers
    assert body["runtime"] == "PYTHON" and body["parallelism"] == 1 and body["autoAck"] is True
    assert "customSerdeInputs" not in body and "inputs" not in body


async def test_list_answers_a_json_array_of_names(client: TestClient[Any, Any]) -> None:
    await register(client, "b")
    await register(client, "a")
    reply = await client.get(BASE)
    assert await reply.json() == ["a", "b"]


async def test_a_url_part_is_passed_on_as_the_package_source(
    client: TestClient[Any, Any], admin: FakeAdmin
) -> None:
    reply = await client.post(
        f"{BASE}/ex", data=form(data=None, url="file:///tmp/exclamation_function.py")
    )
    assert reply.status == 200
    assert ("source", None, "file:///tmp/exclamation_function.py") in admin.calls


async def test_data_and_url_together_are_400(client: TestClient[Any, Any]) -> None:
    reply = await client.post(f"{BASE}/ex", data=form(url="http://x/f.py"))
    assert reply.status == 400
    assert "both a data part and a url part" in await reason(reply)


async def test_a_second_register_is_409(client: TestClient[Any, Any]) -> None:
    await register(client)
    reply = await register(client)
    assert reply.status == 409
    assert await reason(reply) == "Function public/default/ex already exists"


async def test_update_merges_and_keeps_absent_fields(
    client: TestClient[Any, Any], admin: FakeAdmin
) -> None:
    await register(client)
    reply = await client.put(
        f"{BASE}/ex", data=form({"parallelism": 3}, data=None, updateOptions="{}")
    )
    assert reply.status == 200
    stored = admin.records["public/default/ex"]
    assert (stored.version, stored.config.parallelism, stored.config.class_name) == (
        2,
        3,
        CONFIG["className"],
    )


async def test_update_of_an_unchangeable_field_is_400(client: TestClient[Any, Any]) -> None:
    await register(client)
    reply = await client.put(f"{BASE}/ex", data=form({"autoAck": False}, data=None))
    assert reply.status == 400
    assert (await reason(reply)).startswith("autoAck cannot be changed by an update")


async def test_update_options_must_be_a_json_object(client: TestClient[Any, Any]) -> None:
    await register(client)
    reply = await client.put(
        f"{BASE}/ex", data=form({"parallelism": 2}, data=None, updateOptions="nope")
    )
    assert reply.status == 400
    assert "updateOptions" in await reason(reply)


async def test_update_of_a_missing_function_is_404(client: TestClient[Any, Any]) -> None:
    reply = await client.put(f"{BASE}/nope", data=form({"parallelism": 2}, data=None))
    assert reply.status == 404


async def test_delete_then_get_is_404(client: TestClient[Any, Any]) -> None:
    await register(client)
    assert (await client.delete(f"{BASE}/ex")).status == 200
    reply = await client.get(f"{BASE}/ex")
    assert reply.status == 404
    assert await reason(reply) == "Function public/default/ex doesn't exist"


# --- 400s and 413s ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (b"{not json", "functionConfig is not valid JSON"),
        ({**CONFIG, "runtime": "JAVA"}, "runtime 'JAVA' is not supported"),
        ({**CONFIG, "parallelism": 0}, "parallelism 0 is not valid"),
        ({**CONFIG, "className": None}, "className is required"),
        ({**CONFIG, "inputs": ["a/b"]}, "inputs 'a/b' is not a valid topic name"),
        ({**CONFIG, "tenant": "other"}, "functionConfig tenant 'other' differs"),
    ],
)
async def test_invalid_configs_are_400_with_a_clear_reason(
    client: TestClient[Any, Any], config: Any, expected: str
) -> None:
    reply = await register(client, config=config)
    assert reply.status == 400
    assert (await reason(reply)).startswith(expected)


async def test_a_missing_function_config_part_is_400(client: TestClient[Any, Any]) -> None:
    reply = await register(client, config=None)
    assert reply.status == 400
    assert await reason(reply) == "part 'functionConfig' is missing; expected a JSON FunctionConfig"


async def test_a_body_that_is_not_multipart_is_400(client: TestClient[Any, Any]) -> None:
    reply = await client.post(f"{BASE}/ex", json=CONFIG)
    assert reply.status == 400
    assert (await reason(reply)).startswith(
        "request body is application/json; expected multipart/form-data"
    )


@pytest.mark.parametrize("path", [f"{BASE}/bad name", "/admin/v3/functions/pub..lic/default/ex"])
async def test_invalid_names_in_the_path_are_400(client: TestClient[Any, Any], path: str) -> None:
    reply = await client.post(path, data=form())
    assert reply.status == 400


async def test_an_upload_over_the_limit_is_413(client: TestClient[Any, Any]) -> None:
    reply = await register(client, data=b"x" * 5000)
    assert reply.status == 413
    # Refused from its Content-Length, before the body is read.
    assert await reason(reply) == "the request body is too large; expected at most 4096 bytes"


# --- status, stats, lifecycle, trigger ------------------------------------------------------


async def test_status_has_pulsars_shape(client: TestClient[Any, Any]) -> None:
    await register(client)
    body = await (await client.get(f"{BASE}/ex/status")).json()
    assert (body["numInstances"], body["numRunning"]) == (1, 1)
    assert body["instances"][0]["instanceId"] == 0
    assert body["instances"][0]["status"]["running"] is True
    one = await (await client.get(f"{BASE}/ex/0/status")).json()
    assert one["workerId"] == "w1"


async def test_a_non_numeric_instance_id_is_400(client: TestClient[Any, Any]) -> None:
    await register(client)
    reply = await client.get(f"{BASE}/ex/x1/status")
    assert reply.status == 400
    assert await reason(reply) == "instanceId 'x1' is not valid; expected an integer of at least 0"


async def test_stats_answer_counters(client: TestClient[Any, Any]) -> None:
    await register(client)
    assert (await (await client.get(f"{BASE}/ex/stats")).json())["receivedTotal"] == 3
    assert (await (await client.get(f"{BASE}/ex/0/stats")).json())["receivedTotal"] == 3


@pytest.mark.parametrize("action", ["start", "stop", "restart"])
async def test_lifecycle_actions_reach_the_admin(
    client: TestClient[Any, Any], admin: FakeAdmin, action: str
) -> None:
    await register(client)
    assert (await client.post(f"{BASE}/ex/{action}")).status == 200
    assert (await client.post(f"{BASE}/ex/1/{action}")).status == 200
    assert (action, None) in admin.calls and (action, 1) in admin.calls


async def test_trigger_answers_the_output_as_text(
    client: TestClient[Any, Any], admin: FakeAdmin
) -> None:
    await register(client)
    body = aiohttp.FormData()
    body.add_field("data", "hello")
    body.add_field("topic", "in")
    reply = await client.post(f"{BASE}/ex/trigger", data=body)
    assert reply.status == 200
    assert await reply.text() == "hello!"
    assert ("trigger", b"hello", "persistent://public/default/in") in admin.calls


async def test_trigger_reads_a_data_stream_file(
    client: TestClient[Any, Any], admin: FakeAdmin
) -> None:
    await register(client)
    body = aiohttp.FormData()
    body.add_field("dataStream", b"from a file", filename="value.txt")
    assert (await client.post(f"{BASE}/ex/trigger", data=body)).status == 200
    assert ("trigger", b"from a file", None) in admin.calls


async def test_trigger_without_a_value_is_400_and_a_timeout_is_408(
    client: TestClient[Any, Any],
) -> None:
    await register(client)
    empty = aiohttp.FormData()
    empty.add_field("topic", "in")
    assert (await client.post(f"{BASE}/ex/trigger", data=empty)).status == 400
    slow = aiohttp.FormData()
    slow.add_field("data", "slow")
    reply = await client.post(f"{BASE}/ex/trigger", data=slow)
    assert reply.status == 408
    assert await reason(reply) == "no output within 10 s"


async def test_download_answers_the_package(
    client: TestClient[Any, Any], admin: FakeAdmin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "stored.py"
    package.write_bytes(b"print('hi')")
    monkeypatch.setattr(admin, "package_path", lambda *names: (package, "exclamation_function.py"))
    reply = await client.get(f"{BASE}/ex/download")
    assert reply.status == 200
    assert await reply.read() == b"print('hi')"
    assert 'filename="exclamation_function.py"' in reply.headers["Content-Disposition"]


# --- worker endpoints, errors ----------------------------------------------------------------


async def test_worker_endpoints(client: TestClient[Any, Any], admin: FakeAdmin) -> None:
    await register(client)
    cluster = await (await client.get("/admin/v2/worker/cluster")).json()
    assert cluster == [{"workerId": "w1", "workerHostname": "localhost", "port": 6750}]
    assert (await (await client.get("/admin/v2/worker/cluster/leader")).json())["workerId"] == "w1"
    assert await (await client.get("/admin/v2/worker/assignments")).json() == {
        "w1": ["public/default/ex:0"]
    }
    assert (await client.get("/initialized")).status == 200
    assert "version" in await (await client.get("/version")).json()


async def test_not_ready_is_503(client: TestClient[Any, Any], admin: FakeAdmin) -> None:
    admin.ready = False
    assert (await client.get("/initialized")).status == 503
    reply = await client.get("/admin/v2/worker/cluster/leader")
    assert reply.status == 503
    assert (await reason(reply)).startswith("no leader is known yet")


async def test_unknown_paths_and_methods_answer_a_json_reason(client: TestClient[Any, Any]) -> None:
    missing = await client.get("/admin/v3/nothing")
    assert missing.status == 404
    assert "is not an endpoint of this worker" in await reason(missing)
    wrong = await client.patch(f"{BASE}/ex")
    assert wrong.status == 405
    assert (await reason(wrong)).startswith("PATCH is not allowed")


async def test_an_unexpected_error_is_500_without_internals(
    client: TestClient[Any, Any], admin: FakeAdmin
) -> None:
    def explode(*names: str) -> list[str]:
        raise RuntimeError("secret internal detail")

    admin.list_functions = explode  # type: ignore[method-assign]
    reply = await client.get(BASE)
    assert reply.status == 500
    text = await reason(reply)
    assert text.startswith("internal error (request ") and "secret" not in text
