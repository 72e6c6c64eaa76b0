"""The REST API of a real ``fnworker standalone`` process (embedded broker, Pulsar's
example function), driven over HTTP with multipart bodies as curl or pulsar-admin
send them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.helpers import (
    BASE,
    CLASS,
    EXAMPLE,
    call,
    example_config,
    function_form,
    register,
    running_count,
    trigger_until_answered,
    wait_for,
)

STATUS_KEYS = {
    "running",
    "error",
    "numRestarts",
    "numReceived",
    "numSuccessfullyProcessed",
    "numUserExceptions",
    "latestUserExceptions",
    "averageLatency",
    "lastInvocationTime",
    "workerId",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(standalone_worker: Any) -> str:
    return str(standalone_worker.admin_url)


@pytest.fixture(scope="module")
def running(base: str) -> str:
    """One registered example function with its instance running."""
    assert register(base, "excl").status == 200
    wait_for(lambda: running_count(base, "excl") == 1)
    return "excl"


def test_register_get_and_list(base: str, running: str) -> None:
    config = call(base, "GET", f"{BASE}/{running}").json()
    assert config["className"] == CLASS
    assert list(config["inputSpecs"]) == [f"persistent://public/default/{running}-in"]
    assert (config["runtime"], config["parallelism"], config["processingGuarantees"]) == (
        "PYTHON",
        1,
        "ATLEAST_ONCE",
    )
    assert running in call(base, "GET", BASE).json()


def test_status_has_pulsars_shape(base: str, running: str) -> None:
    status = call(base, "GET", f"{BASE}/{running}/status").json()
    assert (status["numInstances"], status["numRunning"]) == (1, 1)
    instance = status["instances"][0]
    assert instance["instanceId"] == 0
    assert STATUS_KEYS <= set(instance["status"])
    assert instance["status"]["running"] is True
    one = call(base, "GET", f"{BASE}/{running}/0/status").json()
    assert STATUS_KEYS <= set(one)


def test_trigger_answers_the_functions_output(base: str, running: str) -> None:
    reply = trigger_until_answered(base, running, "hello")
    assert reply.status == 200
    assert reply.body == b"hello!"


def test_stats_count_processed_messages(base: str, running: str) -> None:
    trigger_until_answered(base, running, "count me")
    stats = call(base, "GET", f"{BASE}/{running}/stats").json()
    assert stats["receivedTotal"] >= 1 and stats["processedSuccessfullyTotal"] >= 1
    assert stats["instances"][0]["instanceId"] == 0
    assert call(base, "GET", f"{BASE}/{running}/0/stats").json()["receivedTotal"] >= 1


def test_download_answers_the_uploaded_package(base: str, running: str) -> None:
    reply = call(base, "GET", f"{BASE}/{running}/download")
    assert reply.status == 200
    assert reply.body == EXAMPLE.read_bytes()


def test_a_duplicate_register_is_409(base: str, running: str) -> None:
    reply = register(base, running)
    assert reply.status == 409
    assert "already exists" in reply.reason


def test_update_stop_start_restart_delete(base: str) -> None:
    name = "lifecycle"
    assert register(base, name).status == 200
    wait_for(lambda: running_count(base, name) == 1)
    update = call(base, "PUT", f"{BASE}/{name}", function_form({"parallelism": 2}, package=None))
    assert update.status == 200
    assert call(base, "GET", f"{BASE}/{name}").json()["parallelism"] == 2
    wait_for(lambda: running_count(base, name) == 2)
    assert call(base, "POST", f"{BASE}/{name}/1/stop").status == 200
    wait_for(lambda: running_count(base, name) == 1)
    assert call(base, "POST", f"{BASE}/{name}/stop").status == 200
    wait_for(lambda: running_count(base, name) == 0)
    assert call(base, "POST", f"{BASE}/{name}/start").status == 200
    wait_for(lambda: running_count(base, name) == 2)
    assert call(base, "POST", f"{BASE}/{name}/restart").status == 200
    assert call(base, "POST", f"{BASE}/{name}/0/restart").status == 200
    wait_for(lambda: running_count(base, name) == 2)
    assert call(base, "DELETE", f"{BASE}/{name}").status in (200, 204)
    gone = call(base, "GET", f"{BASE}/{name}")
    assert gone.status == 404
    assert "doesn't exist" in gone.reason
    assert name not in call(base, "GET", BASE).json()


def test_an_unchangeable_field_in_an_update_is_400(base: str, running: str) -> None:
    reply = call(base, "PUT", f"{BASE}/{running}", function_form({"autoAck": False}, package=None))
    assert reply.status == 400
    assert reply.reason.startswith("autoAck cannot be changed by an update")


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (b'{"className": ', "functionConfig is not valid JSON"),
        (
            {"runtime": "JAVA"},
            "runtime 'JAVA' is not supported; fnworker runs Python functions (runtime PYTHON)",
        ),
        ({"parallelism": 0}, "parallelism 0 is not valid; expected an integer of at least 1"),
        ({"className": None}, "className is required"),
        ({"inputs": ["default/fail"]}, "inputs 'default/fail' is not a valid topic name"),
        ({"output": "domain://t/ns/x"}, "output 'domain://t/ns/x' is not a valid topic name"),
        (
            {"tenant": "other"},
            "functionConfig tenant 'other' differs from the function's tenant 'public'",
        ),
        (
            {"deadLetterTopic": "dlq"},
            "deadLetterTopic 'persistent://public/default/dlq' needs maxMessageRetries",
        ),
    ],
)
def test_invalid_registrations_are_400_with_a_clear_reason(
    base: str, config: Any, reason: str
) -> None:
    body = (
        config
        if isinstance(config, bytes)
        else json.dumps({**example_config("bad"), **config}).encode()
    )
    reply = call(base, "POST", f"{BASE}/bad", function_form(body))
    assert reply.status == 400
    assert reply.reason.startswith(reason)
    assert call(base, "GET", f"{BASE}/bad").status == 404


def test_a_register_without_a_package_is_400(base: str) -> None:
    reply = call(
        base, "POST", f"{BASE}/nopkg", function_form(example_config("nopkg"), package=None)
    )
    assert reply.status == 400
    assert "package" in reply.reason


def test_openapi_is_served_with_the_function_paths(base: str) -> None:
    for path in ("/admin/v3/openapi.json", "/openapi.json"):
        reply = call(base, "GET", path)
        assert reply.status == 200
        document = reply.json()
        assert document["openapi"] == "3.1.0"
        assert "/admin/v3/functions/{tenant}/{namespace}/{functionName}" in document["paths"]
        assert (
            "/admin/v3/functions/{tenant}/{namespace}/{functionName}/trigger" in document["paths"]
        )


def test_worker_endpoints(base: str, running: str) -> None:
    cluster = call(base, "GET", "/admin/v2/worker/cluster").json()
    assert len(cluster) == 1 and {"workerId", "workerHostname", "port"} <= set(cluster[0])
    leader = wait_for(
        lambda: (
            (reply := call(base, "GET", "/admin/v2/worker/cluster/leader")).status == 200 and reply
        )
    )
    assert leader.json()["workerId"] == cluster[0]["workerId"]
    assignments = call(base, "GET", "/admin/v2/worker/assignments").json()
    assert f"public/default/{running}:0" in assignments[cluster[0]["workerId"]]
    assert call(base, "GET", "/initialized").status == 200
    assert "version" in call(base, "GET", "/version").json()


def test_unknown_paths_answer_a_json_reason(base: str) -> None:
    reply = call(base, "GET", "/admin/v3/nothing")
    assert reply.status == 404
    assert "is not an endpoint" in reply.reason
