"""The pure derivation of an instance's consumer, acknowledgement and output plan."""

from __future__ import annotations

import pytest

from fnworker.runtimes.instance.instance_plan import (
    PlanError,
    base_topic_name,
    full_topic_name,
    plan_instance,
)
from fnworker.scheduler.model.records import ConsumerConfig, Fqfn, FunctionConfig, FunctionRecord


def record(**config: object) -> FunctionRecord:
    base: dict[str, object] = {"class_name": "m.F", "inputs": ["in"]}
    base.update(config)
    return FunctionRecord(fqfn=Fqfn("acme/ns/fn"), version=1, config=FunctionConfig(**base))  # type: ignore[arg-type]


def test_pulsar_defaults() -> None:
    plan = plan_instance(record(output="out"))
    assert plan.inputs.subscription == "acme/ns/fn"
    assert plan.inputs.subscription_type == "SHARED"
    assert plan.inputs.position == "Latest"
    assert plan.ack_mode == "ATLEAST_ONCE"
    assert plan.output.topic == "out" and plan.output.forward_properties
    assert plan.inputs.max_message_retries is None


def test_subscription_type_follows_ordering_and_guarantee() -> None:
    assert plan_instance(record(retain_ordering=True)).inputs.subscription_type == "FAILOVER"
    assert plan_instance(record(retain_key_ordering=True)).inputs.subscription_type == "KEY_SHARED"
    effectively = plan_instance(record(processing_guarantees="EFFECTIVELY_ONCE"))
    assert effectively.inputs.subscription_type == "FAILOVER"
    assert effectively.ack_mode == "EFFECTIVELY_ONCE"


def test_auto_ack_false_means_manual_but_not_for_at_most_once() -> None:
    assert plan_instance(record(auto_ack=False)).ack_mode == "MANUAL"
    assert plan_instance(record(processing_guarantees="MANUAL")).ack_mode == "MANUAL"
    at_most = record(auto_ack=False, processing_guarantees="ATMOST_ONCE")
    assert plan_instance(at_most).ack_mode == "ATMOST_ONCE"


def test_every_input_source_is_consumed_once_with_its_serde() -> None:
    plan = plan_instance(
        record(
            inputs=["a", "public/default/b"],
            custom_serde_inputs={"persistent://public/default/b": "serde.PickleSerDe"},
            input_specs={"c": ConsumerConfig(serde_class_name="m.S", receiver_queue_size=50)},
            sub_name=" mysub ",
            subscription_position="Earliest",
            max_message_retries=3,
        )
    )
    assert plan.inputs.topics == ("a", "public/default/b", "c")
    assert plan.inputs.serde_by_topic == {
        "persistent://public/default/a": None,
        "persistent://public/default/b": "serde.PickleSerDe",
        "persistent://public/default/c": "m.S",
    }
    assert plan.inputs.subscription == "mysub"
    assert plan.inputs.position == "Earliest"
    assert plan.inputs.receiver_queue_size == 50
    assert plan.inputs.max_message_retries == 3


def test_what_the_thread_runtime_cannot_run_is_a_plan_error() -> None:
    with pytest.raises(PlanError, match="regex pattern"):
        plan_instance(record(input_specs={"in-.*": ConsumerConfig(is_regex_pattern=True)}))
    with pytest.raises(PlanError, match="no input topics"):
        plan_instance(record(inputs=[]))
    with pytest.raises(PlanError, match="no className"):
        plan_instance(record(class_name=None))


def test_output_options() -> None:
    plan = plan_instance(record(forward_source_message_property=False, batch_builder="KEY_BASED"))
    assert plan.output.topic is None
    assert not plan.output.forward_properties
    assert plan.output.key_based_batching


def test_topic_names() -> None:
    assert full_topic_name("t") == "persistent://public/default/t"
    assert full_topic_name("a/b/t") == "persistent://a/b/t"
    assert full_topic_name("non-persistent://a/b/t") == "non-persistent://a/b/t"
    assert base_topic_name("a/b/t-partition-3") == "persistent://a/b/t"
    assert base_topic_name("a/b/t-partition-x") == "persistent://a/b/t-partition-x"
