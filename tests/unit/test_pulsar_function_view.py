"""GET a function answers Pulsar's FunctionConfig as its worker rebuilds it from
FunctionDetails (FunctionConfigUtils.convert, then convertFromDetails), not the config
as submitted: scheduler/decide/pulsar_function_view.py over records the validator
stores (validate_new_function), encoded as the route encodes it."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from fnworker.runtimes.instance.instance_plan import plan_instance
from fnworker.scheduler.decide.function_decoding import (
    decode_submitted_config,
    function_config_from_mapping,
)
from fnworker.scheduler.decide.function_validation import validate_new_function
from fnworker.scheduler.decide.pulsar_function_view import pulsar_view
from fnworker.scheduler.model.records import Fqfn, FunctionRecord

CLASS = "exclamation_function.ExclamationFunction"
IN = "persistent://public/default/in"


def stored(**submitted: Any) -> FunctionRecord:
    """The record a worker stores for a function registered with ``submitted``."""
    body = {"className": CLASS, "inputs": ["in"], **submitted}
    config, _ = decode_submitted_config(json.dumps(body))
    valid = validate_new_function("public", "default", "fn", config, "f.py")
    return FunctionRecord(fqfn=Fqfn("public/default/fn"), version=1, config=valid)


def answer(**submitted: Any) -> dict[str, Any]:
    """The GET answer (decoded JSON) for a function registered with ``submitted``."""
    return msgspec.json.decode(msgspec.json.encode(pulsar_view(stored(**submitted))))


def test_a_plain_python_function_answers_pulsars_normalised_config() -> None:
    """``pulsar-admin functions create --py /home/me/f.py --inputs in --output out``."""
    got = answer(output="out", py="/home/me/exclamation_function.py")
    assert got == {
        "tenant": "public",
        "namespace": "default",
        "name": "fn",
        "className": CLASS,
        "inputSpecs": {
            IN: {
                "schemaProperties": {},
                "consumerProperties": {},
                "poolMessages": False,
                "regexPattern": False,
            }
        },
        "output": "persistent://public/default/out",
        "producerConfig": {
            "useThreadLocalProducers": False,
            "batchBuilder": "",
            "compressionType": "LZ4",
        },
        "processingGuarantees": "ATLEAST_ONCE",
        "retainOrdering": False,
        "retainKeyOrdering": False,
        "forwardSourceMessageProperty": True,
        "userConfig": {},
        "runtime": "PYTHON",
        "autoAck": True,
        "parallelism": 1,
        "resources": {"cpu": 1.0, "ram": 1073741824, "disk": 10737418240},
        "cleanupSubscription": True,
        "subscriptionPosition": "Latest",
    }


def test_keys_come_in_jacksons_order() -> None:
    got = answer(output="out", subName="sub", timeoutMs=500, logTopic="log")
    assert list(got) == [
        "tenant",
        "namespace",
        "name",
        "className",
        "inputSpecs",
        "output",
        "producerConfig",
        "logTopic",
        "processingGuarantees",
        "retainOrdering",
        "retainKeyOrdering",
        "forwardSourceMessageProperty",
        "userConfig",
        "runtime",
        "autoAck",
        "subName",
        "parallelism",
        "resources",
        "timeoutMs",
        "cleanupSubscription",
        "subscriptionPosition",
    ]


def test_every_input_form_becomes_one_input_spec_per_topic() -> None:
    got = answer(
        inputs=["a", "b"],
        customSerdeInputs={"b": "serde.B", "c": "serde.C"},
        customSchemaInputs={"d": '{"schemaType": "JSON", "schemaProperties": {"k": "v"}}'},
        inputSpecs={"c": {"schemaType": "AVRO", "receiverQueueSize": 5}},
        topicsPattern="public/default/p-.*",
    )["inputSpecs"]
    base = {"schemaProperties": {}, "consumerProperties": {}, "poolMessages": False}
    topic = "persistent://public/default/{}".format
    assert got == {
        topic("a"): {**base, "regexPattern": False},
        topic("b"): {"serdeClassName": "serde.B", **base, "regexPattern": False},
        topic("c"): {
            "schemaType": "AVRO",
            **base,
            "receiverQueueSize": 5,
            "regexPattern": False,
        },
        topic("d"): {**base, "schemaType": "JSON", "schemaProperties": {"k": "v"}}
        | {"regexPattern": False},
        topic("p-.*"): {**base, "regexPattern": True},
    }


def test_a_regex_pattern_spec_says_regex_pattern() -> None:
    specs = answer(inputs=[], inputSpecs={"public/default/x-.*": {"regexPattern": True}})
    assert specs["inputSpecs"]["persistent://public/default/x-.*"]["regexPattern"] is True


def test_submitted_inputs_py_fqfn_and_batch_builder_are_not_answered() -> None:
    got = answer(py="/home/me/f.py", fqfn="public/default/fn", batchBuilder="KEY_BASED")
    assert not {"inputs", "py", "fqfn", "batchBuilder", "jar", "go"} & set(got)
    assert got["producerConfig"]["batchBuilder"] == "KEY_BASED"


def test_set_values_are_answered_as_set() -> None:
    got = answer(
        processingGuarantees="ATMOST_ONCE",
        retainOrdering=True,
        autoAck=True,
        cleanupSubscription=False,
        forwardSourceMessageProperty=False,
        userConfig={"n": 1, "s": "x"},
        secrets={"pw": {"path": "p"}},
        parallelism=3,
        resources={"cpu": 0.5, "ram": 1024},
        maxMessageRetries=0,
        subscriptionPosition="Earliest",
        producerConfig={"maxPendingMessages": 10, "compressionType": "zstd"},
        customRuntimeOptions='{"a": 1}',
    )
    assert got["processingGuarantees"] == "ATMOST_ONCE"
    assert (got["retainOrdering"], got["cleanupSubscription"]) == (True, False)
    assert got["forwardSourceMessageProperty"] is False  # Pulsar leaves it out
    assert got["userConfig"] == {"n": 1, "s": "x"}
    assert got["secrets"] == {"pw": {"path": "p"}}
    assert got["parallelism"] == 3
    assert got["resources"] == {"cpu": 0.5, "ram": 1024, "disk": 10737418240}
    assert got["maxMessageRetries"] == 0
    assert got["subscriptionPosition"] == "Earliest"
    assert got["producerConfig"] == {
        "maxPendingMessages": 10,
        "useThreadLocalProducers": False,
        "batchBuilder": "",
        "compressionType": "ZSTD",
    }
    assert got["customRuntimeOptions"] == '{"a": 1}'


def test_fields_pulsar_loses_are_answered_only_when_set() -> None:
    plain = answer()
    for field in ("logLevel", "skipToLatest", "subscriptionType", "maxPendingAsyncRequests"):
        assert field not in plain
    kept = answer(logLevel="DEBUG", skipToLatest=True, subscriptionType="FAILOVER")
    assert (kept["logLevel"], kept["skipToLatest"]) == ("DEBUG", True)
    assert kept["subscriptionType"] == "FAILOVER"


def test_a_pod_built_from_the_answer_runs_the_stored_function() -> None:
    """A Kubernetes pod decodes this answer into its record (pod_main.fetch_function):
    the instance it plans must be the one the stored config plans."""
    configs: list[dict[str, Any]] = [
        {},
        {"output": "out", "forwardSourceMessageProperty": False, "batchBuilder": "KEY_BASED"},
        {"customSerdeInputs": {"in": "serde.S"}, "subName": "s", "timeoutMs": 100},
        {"inputSpecs": {"in": {"serdeClassName": "serde.T", "receiverQueueSize": 7}}},
        {"processingGuarantees": "EFFECTIVELY_ONCE", "subscriptionPosition": "Earliest"},
        {"autoAck": False, "retainKeyOrdering": True, "maxMessageRetries": 3},
        {"deadLetterTopic": "dlq", "maxMessageRetries": 2, "userConfig": {"n": 1}},
        {"producerConfig": {"compressionType": "ZSTD", "batchBuilder": "KEY_BASED"}},
        {"subscriptionType": "FAILOVER", "secrets": {"pw": "x"}, "parallelism": 3},
    ]
    for submitted in configs:
        record = stored(**submitted)
        view = msgspec.json.decode(msgspec.json.encode(pulsar_view(record)))
        from_answer = msgspec.structs.replace(record, config=function_config_from_mapping(view))
        assert plan_instance(from_answer) == plan_instance(record), submitted
        assert from_answer.config.user_config == record.config.user_config
        assert from_answer.config.secrets == record.config.secrets
