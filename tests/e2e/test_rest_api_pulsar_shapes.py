"""Requests shaped byte for byte as Pulsar's Java admin client sends them (FunctionsImpl,
Jackson over Pulsar's FunctionConfig: every field in declaration order, unset ones as
``null``, ``ConsumerConfig.isRegexPattern`` written as ``regexPattern`` after the other
members, and ``subscriptionPosition`` always ``"Latest"`` from its ``@Builder.Default``),
sent to a real ``fnworker standalone`` over HTTP; the answers must be Pulsar's."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.e2e.helpers import (
    BASE,
    CLASS,
    EXAMPLE,
    call,
    function_form,
    register,
    running_count,
    wait_for,
)

pytestmark = pytest.mark.slow

UNSET_FIELDS = (
    "runtimeFlags",
    "customSerdeInputs",
    "topicsPattern",
    "customSchemaInputs",
    "customSchemaOutputs",
    "inputTypeClassName",
    "producerConfig",
    "outputSchemaType",
    "outputTypeClassName",
    "outputSerdeClassName",
    "logTopic",
    "logLevel",
    "processingGuarantees",
    "retainOrdering",
    "retainKeyOrdering",
    "batchBuilder",
    "forwardSourceMessageProperty",
    "userConfig",
    "secrets",
    "autoAck",
    "maxMessageRetries",
    "deadLetterTopic",
    "subName",
    "resources",
    "fqfn",
    "windowConfig",
    "timeoutMs",
    "jar",
    "go",
    "functionType",
    "cleanupSubscription",
    "customRuntimeOptions",
    "maxPendingAsyncRequests",
    "exposePulsarAdminClientEnabled",
    "skipToLatest",
)


def java_body(name: str, **set_fields: Any) -> bytes:
    """A FunctionConfig as Jackson writes it: Pulsar's field order, unset fields null,
    compact separators, subscriptionPosition Latest unless set."""
    order = (
        "runtimeFlags tenant namespace name className inputs customSerdeInputs topicsPattern "
        "customSchemaInputs customSchemaOutputs inputSpecs inputTypeClassName output "
        "producerConfig outputSchemaType outputTypeClassName outputSerdeClassName logTopic "
        "logLevel processingGuarantees retainOrdering retainKeyOrdering batchBuilder "
        "forwardSourceMessageProperty userConfig secrets runtime autoAck maxMessageRetries "
        "deadLetterTopic subName parallelism resources fqfn windowConfig timeoutMs jar py go "
        "functionType cleanupSubscription customRuntimeOptions maxPendingAsyncRequests "
        "exposePulsarAdminClientEnabled skipToLatest subscriptionPosition"
    ).split()
    values: dict[str, Any] = {"tenant": "public", "namespace": "default", "name": name}
    values["subscriptionPosition"] = "Latest"
    values.update(set_fields)
    document = {field: values.get(field) for field in order}
    document.update({k: v for k, v in set_fields.items() if k not in document})
    return json.dumps(document, separators=(",", ":")).encode()


def java_consumer_config(**set_fields: Any) -> dict[str, Any]:
    """Pulsar's ConsumerConfig as Jackson writes it (``regexPattern`` last: a getter-only
    name, since the field is ``isRegexPattern``)."""
    return {
        "schemaType": None,
        "serdeClassName": None,
        "schemaProperties": {},
        "consumerProperties": {},
        "receiverQueueSize": None,
        "cryptoConfig": None,
        "messagePayloadProcessorConfig": None,
        "poolMessages": False,
        "regexPattern": False,
        **set_fields,
    }


def java_register(base: str, name: str, **set_fields: Any) -> Any:
    """``pulsar-admin functions create --py exclamation_function.py ...``: the config
    part plus the file in ``data``."""
    fields = {
        "className": CLASS,
        "inputs": [f"persistent://public/default/{name}-in"],
        "output": f"persistent://public/default/{name}-out",
        "runtime": "PYTHON",
        "parallelism": 1,
        "py": f"/home/user/{EXAMPLE.name}",
        **set_fields,
    }
    return call(base, "POST", f"{BASE}/{name}", function_form(java_body(name, **fields)))


def java_update(base: str, name: str, **set_fields: Any) -> Any:
    """``pulsar-admin functions update --name ... <flags>`` without a new package."""
    body = java_body(name, **set_fields)
    return call(base, "PUT", f"{BASE}/{name}", function_form(body, package=None))


@pytest.fixture(scope="module")
def worker(standalone_worker: Any) -> Any:
    return standalone_worker


@pytest.fixture(scope="module")
def base(worker: Any) -> str:
    return str(worker.admin_url)


def test_a_regex_pattern_input_spec_is_registered_as_a_topics_pattern(base: str) -> None:
    pattern = "persistent://public/default/pattern-in-.*"
    reply = java_register(
        base,
        "pattern",
        inputs=None,
        inputSpecs={pattern: java_consumer_config(regexPattern=True)},
    )
    assert reply.status == 200, reply.body
    specs = call(base, "GET", f"{BASE}/pattern").json()["inputSpecs"]
    assert specs == {
        pattern: {
            "schemaProperties": {},
            "consumerProperties": {},
            "poolMessages": False,
            "regexPattern": True,
        }
    }

    def pattern_error() -> str:
        instance = call(base, "GET", f"{BASE}/pattern/status").json()["instances"][0]
        error = str(instance["status"]["error"])
        return error if "pattern" in error else ""

    assert "regex pattern" in wait_for(pattern_error, timeout=30, what="the instance's error")


def test_nulls_are_read_as_absent(base: str) -> None:
    reply = java_register(base, "nulls")
    assert reply.status == 200, reply.body
    config = call(base, "GET", f"{BASE}/nulls").json()
    assert (config["processingGuarantees"], config["autoAck"]) == ("ATLEAST_ONCE", True)
    assert list(config["inputSpecs"]) == ["persistent://public/default/nulls-in"]


def test_unknown_fields_are_ignored_with_one_warning_naming_them(base: str, worker: Any) -> None:
    spec = java_consumer_config(messagePayloadProcessorConfig={"className": "p.P"})
    reply = java_register(
        base,
        "newer",
        functionType="FUNCTION",
        fieldOfANewerPulsar=True,
        inputSpecs={"persistent://public/default/newer-in": spec},
    )
    assert reply.status == 200, reply.body
    assert call(base, "GET", f"{BASE}/newer").status == 200
    lines = [
        line
        for line in worker.log_path.read_text(errors="replace").splitlines()
        if "does not know were ignored" in line and "public/default/newer" in line
    ]
    assert len(lines) == 1, lines
    for field in (
        "functionType",
        "fieldOfANewerPulsar",
        "inputSpecs.persistent://public/default/newer-in.messagePayloadProcessorConfig",
    ):
        assert field in lines[0]


def test_an_update_with_the_clients_default_subscription_position_is_accepted(
    base: str,
) -> None:
    assert java_register(base, "earliest", subscriptionPosition="Earliest").status == 200
    reply = java_update(base, "earliest", parallelism=2)
    assert reply.status == 200, reply.body
    config = call(base, "GET", f"{BASE}/earliest").json()
    assert (config["parallelism"], config["subscriptionPosition"]) == (2, "Earliest")


def test_an_update_of_a_missing_function_is_400_as_in_pulsar(base: str) -> None:
    reply = java_update(base, "nosuch", parallelism=2)
    assert (reply.status, reply.reason) == (400, "Function nosuch doesn't exist")


def test_an_update_that_changes_nothing_is_400_as_in_pulsar(base: str) -> None:
    assert java_register(base, "same").status == 200
    reply = java_update(base, "same", parallelism=1)
    assert (reply.status, reply.reason) == (400, "Update contains no change")
    assert java_update(base, "same", parallelism=3).status == 200


def test_starting_running_or_stopping_stopped_instances_is_400_as_in_pulsar(base: str) -> None:
    assert register(base, "states").status == 200
    wait_for(lambda: running_count(base, "states") == 1)
    for path in (f"{BASE}/states/start", f"{BASE}/states/0/start"):
        reply = call(base, "POST", path)
        assert (reply.status, reply.reason) == (400, "Operation not permitted"), path
    assert call(base, "POST", f"{BASE}/states/stop").status == 200
    for path in (f"{BASE}/states/stop", f"{BASE}/states/0/stop"):
        reply = call(base, "POST", path)
        assert (reply.status, reply.reason) == (400, "Operation not permitted"), path
    assert call(base, "POST", f"{BASE}/states/0/start").status == 200
    wait_for(lambda: running_count(base, "states") == 1)


@pytest.mark.parametrize("scheme", ["function", "sink", "source"])
def test_a_package_management_url_is_400_naming_pulsars_packages_service(
    base: str, scheme: str
) -> None:
    url = f"{scheme}://public/default/pkg@1"
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("url", url)
    form.add_field(
        "functionConfig",
        java_body("pkgurl", className=CLASS, inputs=["pkgurl-in"], runtime="PYTHON").decode(),
        content_type="application/json",
    )
    reply = call(base, "POST", f"{BASE}/pkgurl", form)
    assert reply.status == 400
    assert reply.reason.startswith(f"package url '{url}' is a package-management url, which ")
    assert "needs Pulsar's packages service; fnworker does not use" in reply.reason
    in_py = java_body("pkgurl", className=CLASS, inputs=["pkgurl-in"], py=url)
    reply = call(base, "POST", f"{BASE}/pkgurl", function_form(in_py, package=None))
    assert (reply.status, reply.reason.split(",")[0]) == (
        400,
        f"package url '{url}' is a package-management url",
    )
    assert call(base, "GET", f"{BASE}/pkgurl").status == 404


def java_state_body(key: str, **values: Any) -> tuple[bytes, dict[str, str]]:
    """``FunctionsImpl.putFunctionState``: AsyncHttpClient's multipart with one
    ``StringPart("state", json)`` (text/plain, UTF-8, 8bit), the FunctionState written
    by Jackson with every field, unset ones null."""
    state = {"key": key, "stringValue": None, "byteValue": None, "numberValue": None}
    state.update(values)
    state["version"] = None
    boundary = "ckRIDqHXa4PQnGu0gBfQbSQxaiJH9Rbcl"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="state"\r\n'
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{json.dumps(state, separators=(',', ':'))}\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def put_java_state(base: str, name: str, key: str, **values: Any) -> Any:
    body, headers = java_state_body(key, **values)
    return call(base, "POST", f"{BASE}/{name}/state/{key}", body, headers=headers)  # type: ignore[arg-type]


def test_state_put_and_get_answer_as_pulsar(base: str) -> None:
    assert java_register(base, "stateful").status == 200
    assert put_java_state(base, "stateful", "greeting", stringValue="héllo").status == 200
    got = call(base, "GET", f"{BASE}/stateful/state/greeting")
    assert (got.status, got.json()) == (
        200,
        {"key": "greeting", "stringValue": "héllo", "version": 1},
    )
    assert put_java_state(base, "stateful", "raw", byteValue="AP8=").status == 200
    assert call(base, "GET", f"{BASE}/stateful/state/raw").json() == {
        "key": "raw",
        "byteValue": "AP8=",
        "version": 1,
    }
    missing = call(base, "GET", f"{BASE}/stateful/state/nope")
    assert (missing.status, missing.reason) == (404, "key 'nope' doesn't exist.")
    gone = call(base, "GET", f"{BASE}/no-such-function/state/k")
    assert (gone.status, gone.reason) == (
        404,
        "Function public/default/no-such-function doesn't exist",
    )


def test_state_puts_pulsar_refuses_are_refused_with_its_reasons(base: str) -> None:
    assert java_register(base, "stateful-bad").status == 200
    body, headers = java_state_body("other", stringValue="x")
    wrong_key = call(base, "POST", f"{BASE}/stateful-bad/state/k", body, headers=headers)  # type: ignore[arg-type]
    assert (wrong_key.status, wrong_key.reason) == (400, "Path key doesn't match key in json")
    counter = put_java_state(base, "stateful-bad", "n", numberValue=3)
    assert (counter.status, counter.reason) == (
        400,
        "Setting Counter values not supported in put state",
    )
    huge = put_java_state(base, "stateful-bad", "big", stringValue="x" * (512 * 1024 + 1))
    assert huge.status == 400 and "at most 524288 bytes" in huge.reason
    assert call(base, "GET", f"{BASE}/stateful-bad/state/big").status == 404
