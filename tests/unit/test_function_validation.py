"""Function-config validation (Pulsar's FunctionConfigUtils rules for Python functions),
decoding of the functionConfig part, and merging of updates (validateUpdate)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnworker.scheduler.decide.function_validation import (
    decode_function_config,
    function_config_from_mapping,
    merge_update,
    validate_new_function,
)
from fnworker.scheduler.model.errors import ApiError
from fnworker.scheduler.model.records import ConsumerConfig, FunctionConfig, Resources

CLASS = "exclamation_function.ExclamationFunction"


def config(**fields: Any) -> FunctionConfig:
    """A minimal valid config with ``fields`` changed."""
    return msgspec.structs.replace(
        FunctionConfig(class_name=CLASS, inputs=["in"], output="out"), **fields
    )


def validate(
    cfg: FunctionConfig, package: str | None = "exclamation_function.py"
) -> FunctionConfig:
    return validate_new_function("public", "default", "ex", cfg, package)


def reason_of(cfg: FunctionConfig, package: str | None = "exclamation_function.py") -> str:
    with pytest.raises(ApiError) as caught:
        validate(cfg, package)
    assert caught.value.status == 400
    return caught.value.reason


# --- complete configs ---------------------------------------------------------


def test_a_minimal_config_is_completed_with_identity_defaults_and_full_topic_names() -> None:
    complete = validate(config())
    assert (complete.tenant, complete.namespace, complete.name) == ("public", "default", "ex")
    assert complete.runtime == "PYTHON"
    assert complete.parallelism == 1
    assert complete.processing_guarantees == "ATLEAST_ONCE"
    assert complete.auto_ack is True
    assert complete.inputs == ["persistent://public/default/in"]
    assert complete.output == "persistent://public/default/out"


def test_validating_a_complete_config_returns_it_unchanged() -> None:
    complete = validate(config(log_topic="logs", custom_serde_inputs={"t/ns/other": "serde.S"}))
    assert validate(complete) == complete


def test_given_values_are_kept() -> None:
    cfg = config(parallelism=3, processing_guarantees="ATMOST_ONCE", auto_ack=False)
    complete = validate(cfg)
    assert (complete.parallelism, complete.processing_guarantees, complete.auto_ack) == (
        3,
        "ATMOST_ONCE",
        False,
    )


def test_a_body_naming_the_same_identity_as_the_path_is_fine() -> None:
    validate(config(tenant="public", namespace="default", name="ex", fqfn="public/default/ex"))


# --- every rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("tenant", "other"), ("namespace", "other"), ("name", "other"), ("fqfn", "a/b/c")],
)
def test_a_body_naming_another_function_is_400(field: str, value: str) -> None:
    reason = reason_of(config(**{field: value}))
    assert f"functionConfig {field} '{value}' differs from the function's {field}" in reason


@pytest.mark.parametrize("runtime", ["JAVA", "GO"])
def test_runtimes_other_than_python_are_400(runtime: str) -> None:
    assert reason_of(config(runtime=runtime)) == (
        f"runtime '{runtime}' is not supported; fnworker runs Python functions (runtime PYTHON)"
    )


def test_an_unknown_runtime_in_json_is_400_with_the_same_sentence() -> None:
    with pytest.raises(ApiError) as caught:
        decode_function_config(b'{"runtime": "NODE"}')
    assert (
        caught.value.reason
        == "runtime 'NODE' is not supported; fnworker runs Python functions (runtime PYTHON)"
    )


@pytest.mark.parametrize("parallelism", [0, -2])
def test_parallelism_below_one_is_400(parallelism: int) -> None:
    assert reason_of(config(parallelism=parallelism)) == (
        f"parallelism {parallelism} is not valid; expected an integer of at least 1"
    )


def test_missing_class_name_is_400() -> None:
    assert reason_of(config(class_name=None)).startswith("className is required")
    assert reason_of(config(class_name="")).startswith("className is required")


def test_a_class_name_that_is_not_a_python_name_is_400() -> None:
    assert reason_of(config(class_name="my module.Class")).startswith(
        "className 'my module.Class' is not valid"
    )


def test_no_input_at_all_is_400() -> None:
    assert reason_of(config(inputs=[])).startswith(
        "inputs is empty; expected at least one input topic"
    )


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"inputs": ["default/fail"]}, "inputs 'default/fail'"),
        ({"inputs": ["in", ""]}, "inputs ''"),
        ({"inputs": ["domain://t/ns/x"]}, "inputs 'domain://t/ns/x'"),
        ({"output": "persistent://t/ns"}, "output 'persistent://t/ns'"),
        ({"log_topic": "a/b"}, "logTopic 'a/b'"),
        ({"dead_letter_topic": "x y", "max_message_retries": 2}, "deadLetterTopic 'x y'"),
        ({"custom_serde_inputs": {"a/b": "S"}}, "customSerdeInputs 'a/b'"),
        ({"topics_pattern": "public/default/in-("}, "topicsPattern 'public/default/in-('"),
        ({"input_specs": {"p//x": ConsumerConfig()}}, "inputSpecs 'p//x'"),
    ],
)
def test_topic_names_pulsar_rejects_are_400_naming_the_field(
    fields: dict[str, Any], named: str
) -> None:
    assert reason_of(config(**fields)).startswith(f"{named} is not a valid topic name")


def test_inputs_may_come_from_a_pattern_serde_map_or_input_specs() -> None:
    assert (
        validate(config(inputs=[], topics_pattern="in-.*")).topics_pattern
        == "persistent://public/default/in-.*"
    )
    assert validate(config(inputs=[], custom_serde_inputs={"in": "S"})).custom_serde_inputs == {
        "persistent://public/default/in": "S"
    }
    assert list(validate(config(inputs=[], input_specs={"in": ConsumerConfig()})).input_specs) == [
        "persistent://public/default/in"
    ]


def test_the_output_may_not_be_an_input() -> None:
    reason = reason_of(config(inputs=["in"], output="persistent://public/default/in"))
    assert reason.startswith("output 'persistent://public/default/in' is also an input topic")


def test_negative_max_message_retries_is_400() -> None:
    assert reason_of(config(max_message_retries=-1)).startswith("maxMessageRetries -1 is not valid")


def test_a_dead_letter_topic_needs_max_message_retries() -> None:
    assert reason_of(config(dead_letter_topic="dlq")).startswith(
        "deadLetterTopic 'persistent://public/default/dlq' needs maxMessageRetries"
    )
    assert validate(config(dead_letter_topic="dlq", max_message_retries=0)).max_message_retries == 0


def test_retries_do_not_mix_with_effectively_once() -> None:
    reason = reason_of(config(max_message_retries=2, processing_guarantees="EFFECTIVELY_ONCE"))
    assert reason.startswith(
        "maxMessageRetries 2 cannot be used with processingGuarantees EFFECTIVELY_ONCE"
    )


@pytest.mark.parametrize("timeout", [0, -5])
def test_timeout_must_be_positive(timeout: int) -> None:
    assert reason_of(config(timeout_ms=timeout)).startswith(f"timeoutMs {timeout} is not valid")


def test_timeout_only_with_atleast_once() -> None:
    assert reason_of(config(timeout_ms=100, processing_guarantees="ATMOST_ONCE")).startswith(
        "timeoutMs 100 cannot be used with processingGuarantees ATMOST_ONCE"
    )


def test_both_orderings_is_400() -> None:
    assert reason_of(config(retain_ordering=True, retain_key_ordering=True)).startswith(
        "retainOrdering and retainKeyOrdering are both true"
    )


@pytest.mark.parametrize(
    ("resources", "field"),
    [(Resources(cpu=0), "cpu"), (Resources(ram=-1), "ram"), (Resources(disk=0), "disk")],
)
def test_resources_must_be_positive(resources: Resources, field: str) -> None:
    assert reason_of(config(resources=resources)).startswith(f"resources.{field} ")


@pytest.mark.parametrize("options", ["not json", "[1]", '"x"'])
def test_custom_runtime_options_must_be_a_json_object(options: str) -> None:
    assert reason_of(config(custom_runtime_options=options)).startswith(
        f"customRuntimeOptions '{options}'"
    )


def test_custom_runtime_options_json_object_is_accepted() -> None:
    assert validate(config(custom_runtime_options='{"jobNamespace": "x"}')).custom_runtime_options


def test_input_spec_rules() -> None:
    assert "receiverQueueSize -1" in reason_of(
        config(input_specs={"x": ConsumerConfig(receiver_queue_size=-1)})
    )
    both = ConsumerConfig(schema_type="JSON", serde_class_name="S")
    assert "sets both schemaType and serdeClassName" in reason_of(config(input_specs={"x": both}))
    crypto = ConsumerConfig(crypto_config={})
    assert "cryptoKeyReaderClassName" in reason_of(config(input_specs={"x": crypto}))


def test_output_serde_and_schema_exclude_each_other() -> None:
    reason = reason_of(config(output_serde_class_name="S", output_schema_type="JSON"))
    assert reason.startswith("outputSerdeClassName and outputSchemaType are both set")


@pytest.mark.parametrize(("field", "value"), [("jar", "f.jar"), ("go", "f")])
def test_java_and_go_packages_are_400(field: str, value: str) -> None:
    assert reason_of(config(**{field: value})).startswith(f"{field} '{value}' is not supported")


def test_windowing_is_400_for_python() -> None:
    assert reason_of(config(window_config={"windowLengthCount": 10})).startswith(
        "windowConfig is not supported"
    )


@pytest.mark.parametrize("package", [None, ""])
def test_a_package_is_required(package: str | None) -> None:
    assert reason_of(config(), package).startswith("no function package was given")


@pytest.mark.parametrize("package", ["f.jar", "f.tar.gz", "f"])
def test_the_package_must_be_py_zip_or_whl(package: str) -> None:
    assert reason_of(config(), package) == (
        f"package file name '{package}' is not valid; expected a .py, .zip or .whl file"
    )


@pytest.mark.parametrize("package", ["f.py", "f.zip", "f-1.0-py3-none-any.whl", "F.PY"])
def test_py_zip_and_whl_packages_are_accepted(package: str) -> None:
    validate(config(), package)


def test_invalid_path_names_are_400() -> None:
    with pytest.raises(ApiError) as caught:
        validate_new_function("public", "..", "ex", config(), "f.py")
    assert caught.value.reason.startswith("namespace '..' is not valid")


# --- decoding the functionConfig part -------------------------------------------


def test_decoding_reads_pulsars_camel_case_json() -> None:
    cfg = decode_function_config(
        b'{"className": "m.C", "inputs": ["in"], "userConfig": {"k": 1}, "autoAck": false}'
    )
    assert (cfg.class_name, cfg.inputs, cfg.user_config, cfg.auto_ack) == (
        "m.C",
        ["in"],
        {"k": 1},
        False,
    )


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{", "functionConfig is not valid JSON"),
        (b"[1, 2]", "functionConfig is a list; expected a JSON object"),
        (
            b'{"classNam": "m.C"}',
            (
                "functionConfig field 'classNam' is not a FunctionConfig field "
                "(did you mean className?)"
            ),
        ),
        (
            b'{"resources": {"cpus": 1}}',
            "functionConfig field 'resources.cpus' is not a FunctionConfig field",
        ),
        (
            b'{"parallelism": "2"}',
            "functionConfig field 'parallelism' is not valid: expected `int | null`, got `str`",
        ),
        (
            b'{"userConfig": [1]}',
            "functionConfig field 'userConfig' is not valid: expected `object`, got `array`",
        ),
        (
            b'{"processingGuarantees": "SOMETIMES"}',
            "functionConfig field 'processingGuarantees' is not valid",
        ),
    ],
)
def test_decoding_errors_are_400_naming_the_part_or_field(raw: bytes, reason: str) -> None:
    with pytest.raises(ApiError) as caught:
        decode_function_config(raw)
    assert caught.value.status == 400
    assert caught.value.reason.startswith(reason)


def test_a_mapping_from_a_file_decodes_the_same_way() -> None:
    assert function_config_from_mapping({"className": "m.C"}, "file").class_name == "m.C"
    with pytest.raises(ApiError) as caught:
        function_config_from_mapping("text", "file")
    assert caught.value.reason == "file is a str; expected a JSON object"


# --- updates (validateUpdate) --------------------------------------------------------


@pytest.fixture
def stored() -> FunctionConfig:
    return validate(
        config(
            user_config={"a": 1}, log_topic="logs", custom_serde_inputs={"in": "S"}, parallelism=2
        )
    )


def test_an_empty_update_changes_nothing(stored: FunctionConfig) -> None:
    assert merge_update(stored, FunctionConfig()) == stored


def test_given_fields_replace_and_absent_fields_keep(stored: FunctionConfig) -> None:
    merged = merge_update(
        stored, FunctionConfig(parallelism=4, user_config={"b": 2}, output="out2")
    )
    assert merged.parallelism == 4
    assert merged.user_config == {"b": 2}
    assert merged.output == "persistent://public/default/out2"
    assert merged.log_topic == stored.log_topic
    assert merged.class_name == CLASS


def test_repeating_unchangeable_fields_with_the_same_value_is_fine(stored: FunctionConfig) -> None:
    same = FunctionConfig(
        tenant="public",
        runtime="PYTHON",
        auto_ack=True,
        processing_guarantees="ATLEAST_ONCE",
        retain_ordering=False,
        inputs=["persistent://public/default/in"],
    )
    assert merge_update(stored, same) == stored


@pytest.mark.parametrize(
    ("update", "field"),
    [
        (FunctionConfig(processing_guarantees="ATMOST_ONCE"), "processingGuarantees"),
        (FunctionConfig(auto_ack=False), "autoAck"),
        (FunctionConfig(retain_ordering=True), "retainOrdering"),
        (FunctionConfig(retain_key_ordering=True), "retainKeyOrdering"),
        (FunctionConfig(sub_name="mine"), "subName"),
        (FunctionConfig(output_serde_class_name="S2"), "outputSerdeClassName"),
        (FunctionConfig(output_schema_type="JSON"), "outputSchemaType"),
        (FunctionConfig(subscription_type="FAILOVER"), "subscriptionType"),
    ],
)
def test_fields_pulsar_forbids_changing_are_400_naming_them(
    stored: FunctionConfig, update: FunctionConfig, field: str
) -> None:
    with pytest.raises(ApiError) as caught:
        merge_update(stored, update)
    assert caught.value.reason.startswith(f"{field} cannot be changed by an update")


@pytest.mark.parametrize("field", ["tenant", "namespace", "name"])
def test_another_identity_in_an_update_is_400(stored: FunctionConfig, field: str) -> None:
    with pytest.raises(ApiError) as caught:
        merge_update(stored, FunctionConfig(**{field: "other"}))
    assert f"functionConfig {field} 'other' differs" in caught.value.reason


def test_new_input_topics_are_400(stored: FunctionConfig) -> None:
    with pytest.raises(ApiError) as caught:
        merge_update(stored, FunctionConfig(inputs=["in", "more"]))
    assert caught.value.reason.startswith(
        "input topic 'persistent://public/default/more' is not an input of the function"
    )


def test_an_input_may_not_turn_into_a_pattern(stored: FunctionConfig) -> None:
    with pytest.raises(ApiError) as caught:
        merge_update(
            stored, FunctionConfig(input_specs={"in": ConsumerConfig(is_regex_pattern=True)})
        )
    assert "cannot change between topic and topics pattern" in caught.value.reason


def test_the_serde_of_an_existing_input_may_change(stored: FunctionConfig) -> None:
    merged = merge_update(stored, FunctionConfig(custom_serde_inputs={"in": "S2"}))
    assert merged.custom_serde_inputs == {"persistent://public/default/in": "S2"}


def test_the_merged_config_is_validated(stored: FunctionConfig) -> None:
    with pytest.raises(ApiError) as caught:
        merge_update(stored, FunctionConfig(parallelism=0))
    assert caught.value.reason.startswith("parallelism 0 is not valid")
    with pytest.raises(ApiError):
        merge_update(stored, FunctionConfig(output="in"))


def test_merging_is_idempotent(stored: FunctionConfig) -> None:
    merged = merge_update(stored, FunctionConfig(parallelism=5, class_name="m.Other"))
    assert merge_update(stored, merged) == merged


@given(
    parallelism=st.integers(min_value=1, max_value=1000),
    retries=st.none() | st.integers(min_value=0, max_value=100),
    guarantee=st.sampled_from(["ATLEAST_ONCE", "ATMOST_ONCE", "MANUAL"]),
)
def test_generated_valid_configs_validate_idempotently(
    parallelism: int, retries: int | None, guarantee: str
) -> None:
    cfg = config(
        parallelism=parallelism, max_message_retries=retries, processing_guarantees=guarantee
    )
    complete = validate(cfg)
    assert validate(complete) == complete
    assert merge_update(complete, FunctionConfig()) == complete
