"""Decoding and merging FunctionConfigs as Pulsar's Java admin client writes them (Jackson:
unset fields null, ``regexPattern`` for ``isRegexPattern``, fields of newer clients) and
as Pulsar's validateUpdate reads them (subscriptionPosition ignored on update)."""

from __future__ import annotations

import json

import msgspec
import pytest

from fnworker.scheduler.decide.function_validation import (
    decode_function_config,
    decode_submitted_config,
    merge_update,
    validate_new_function,
)
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.records import ConsumerConfig, FunctionConfig

CLASS = "exclamation_function.ExclamationFunction"
PATTERN = "persistent://public/default/in-.*"


def submitted(document: dict[str, object]) -> tuple[FunctionConfig, list[str]]:
    return decode_submitted_config(json.dumps(document).encode())


def test_null_members_are_absent_at_every_level() -> None:
    cfg, unknown = submitted(
        {
            "className": CLASS,
            "inputs": None,
            "customSerdeInputs": None,
            "resources": {"cpu": None, "ram": 2048, "disk": None},
            "inputSpecs": {"in": {"schemaType": None, "receiverQueueSize": None}},
            "autoAck": None,
        }
    )
    assert (cfg.inputs, cfg.custom_serde_inputs, cfg.auto_ack) == ([], {}, None)
    assert cfg.resources is not None and (cfg.resources.cpu, cfg.resources.ram) == (1.0, 2048)
    assert cfg.input_specs == {"in": ConsumerConfig()}
    assert unknown == []


def test_regex_pattern_is_read_as_is_regex_pattern_and_stays_a_pattern() -> None:
    cfg, _ = submitted({"className": CLASS, "inputSpecs": {PATTERN: {"regexPattern": True}}})
    assert cfg.input_specs[PATTERN].is_regex_pattern is True
    complete = validate_new_function("public", "default", "ex", cfg, "f.py")
    assert complete.input_specs == {PATTERN: ConsumerConfig(is_regex_pattern=True)}


def test_regex_pattern_and_is_regex_pattern_that_disagree_are_400() -> None:
    with pytest.raises(ApiError) as caught:
        submitted({"inputSpecs": {"t": {"regexPattern": True, "isRegexPattern": False}}})
    assert caught.value.status == 400
    assert caught.value.reason.startswith(
        "functionConfig inputSpecs['t'] sets isRegexPattern False and regexPattern True"
    )


def test_unknown_fields_of_a_request_are_ignored_and_named() -> None:
    cfg, unknown = submitted(
        {
            "className": CLASS,
            "functionType": "FUNCTION",
            "parallelizm": 2,
            "resources": {"gpu": 1},
            "inputSpecs": {"in": {"messagePayloadProcessorConfig": {"className": "p.P"}}},
        }
    )
    assert cfg.class_name == CLASS
    assert unknown == [
        "functionType",
        "parallelizm (did you mean parallelism?)",
        "resources.gpu",
        "inputSpecs.in.messagePayloadProcessorConfig",
    ]


def test_a_file_the_user_wrote_still_names_an_unknown_field_as_400() -> None:
    with pytest.raises(ApiError) as caught:
        decode_function_config(b'{"classNam": "m.C", "output": null}')
    assert caught.value.reason.startswith("functionConfig field 'classNam' is not a")


@pytest.fixture
def earliest() -> FunctionConfig:
    return validate_new_function(
        "public",
        "default",
        "ex",
        FunctionConfig(class_name=CLASS, inputs=["in"], subscription_position="Earliest"),
        "f.py",
    )


def test_an_update_ignores_subscription_position_as_pulsar_does(
    earliest: FunctionConfig,
) -> None:
    update = FunctionConfig(parallelism=2, subscription_position="Latest")
    merged = merge_update(earliest, update)
    assert merged == msgspec.structs.replace(earliest, parallelism=2)


def test_an_update_still_refuses_a_different_subscription_type(
    earliest: FunctionConfig,
) -> None:
    with pytest.raises(ApiError) as caught:
        merge_update(earliest, FunctionConfig(subscription_type="FAILOVER"))
    assert caught.value.reason.startswith("subscriptionType cannot be changed by an update")
