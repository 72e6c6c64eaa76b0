"""Turns a function's config into what its instance host does: which topics to
consume with which serde, the subscription (name, type, start position, dead
letters), the acknowledgement mode and the output. Pure: no I/O.

Pulsar's defaults apply: subscription ``{tenant}/{namespace}/{name}``, Shared
unless ``retainOrdering`` or EFFECTIVELY_ONCE (Failover) or ``retainKeyOrdering``
(KeyShared), position Latest, ATLEAST_ONCE, forwarding of source properties on.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from fnworker.scheduler.model.records import FunctionConfig, FunctionRecord, split_fqfn

AckMode = Literal["ATLEAST_ONCE", "ATMOST_ONCE", "EFFECTIVELY_ONCE", "MANUAL"]
SubscriptionKind = Literal["SHARED", "FAILOVER", "KEY_SHARED"]
PARTITION_SUFFIX = "-partition-"


class PlanError(ValueError):
    """The config asks for something this host cannot do; ``str()`` is one sentence."""


class InputPlan(msgspec.Struct, frozen=True, kw_only=True):
    """What to consume: topics as given, serde names by full topic name, and how."""

    topics: tuple[str, ...]
    serde_by_topic: dict[str, str | None]
    subscription: str
    subscription_type: SubscriptionKind
    position: Literal["Latest", "Earliest"]
    receiver_queue_size: int | None = None
    max_message_retries: int | None = None
    dead_letter_topic: str | None = None
    ack_timeout_ms: int | None = None


class OutputPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Where results go; ``topic`` None means results are dropped (never published)."""

    topic: str | None
    serde: str | None
    forward_properties: bool
    key_based_batching: bool = False
    compression: str = "LZ4"


class InstancePlan(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the host derives from the config before it touches the broker."""

    tenant: str
    namespace: str
    name: str
    fqfn: str
    class_name: str
    ack_mode: AckMode
    inputs: InputPlan
    output: OutputPlan


def full_topic_name(topic: str) -> str:
    """``t`` → ``persistent://public/default/t``; ``a/b/t`` → ``persistent://a/b/t``."""
    if "://" in topic:
        return topic
    if topic.count("/") == 2:
        return f"persistent://{topic}"
    return f"persistent://public/default/{topic}"


def base_topic_name(topic: str) -> str:
    """The full name of a topic without any ``-partition-N`` suffix."""
    full = full_topic_name(topic)
    head, sep, tail = full.rpartition(PARTITION_SUFFIX)
    return head if sep and tail.isdigit() else full


def ack_mode_of(config: FunctionConfig) -> AckMode:
    """The effective guarantee; ``autoAck: false`` means the user acknowledges (MANUAL)."""
    guarantee = config.processing_guarantees or "ATLEAST_ONCE"
    if config.auto_ack is False and guarantee != "ATMOST_ONCE":
        return "MANUAL"
    return guarantee


def subscription_type_of(config: FunctionConfig, ack_mode: AckMode) -> SubscriptionKind:
    """Failover for ordering or effectively-once, KeyShared for key order, else Shared."""
    if config.retain_ordering or ack_mode == "EFFECTIVELY_ONCE":
        return "FAILOVER"
    if config.retain_key_ordering:
        return "KEY_SHARED"
    return config.subscription_type or "SHARED"


def input_serdes(config: FunctionConfig) -> dict[str, tuple[str, str | None]]:
    """Every input topic (full name) with the name it was given and its serde."""
    found: dict[str, tuple[str, str | None]] = {}
    for topic in config.inputs:
        found.setdefault(full_topic_name(topic), (topic, None))
    for topic, serde in config.custom_serde_inputs.items():
        given = found.get(full_topic_name(topic), (topic, None))[0]
        found[full_topic_name(topic)] = (given, serde or None)
    for topic, spec in config.input_specs.items():
        if spec.is_regex_pattern:
            raise PlanError(
                f"input '{topic}' is a regex pattern, which the thread runtime does not support yet"
            )
        given = found.get(full_topic_name(topic), (topic, None))[0]
        found[full_topic_name(topic)] = (given, spec.serde_class_name or None)
    return found


def plan_inputs(config: FunctionConfig, fqfn: str, ack_mode: AckMode) -> InputPlan:
    """The consumer side of an instance."""
    if config.topics_pattern:
        raise PlanError("topicsPattern is not supported by the thread runtime yet")
    serdes = input_serdes(config)
    if not serdes:
        raise PlanError(f"function {fqfn} has no input topics")
    queue_sizes = [
        s.receiver_queue_size for s in config.input_specs.values() if s.receiver_queue_size
    ]
    return InputPlan(
        topics=tuple(given for given, _ in serdes.values()),
        serde_by_topic={full: serde for full, (_, serde) in serdes.items()},
        subscription=(config.sub_name or "").strip() or fqfn,
        subscription_type=subscription_type_of(config, ack_mode),
        position=config.subscription_position or "Latest",
        receiver_queue_size=min(queue_sizes) if queue_sizes else None,
        max_message_retries=config.max_message_retries
        if (config.max_message_retries or 0) > 0
        else None,
        dead_letter_topic=config.dead_letter_topic or None,
        ack_timeout_ms=config.timeout_ms if (config.timeout_ms or 0) > 0 else None,
    )


def plan_output(config: FunctionConfig) -> OutputPlan:
    """The producer side of an instance."""
    producer = config.producer_config or {}
    batch_builder = config.batch_builder or producer.get("batchBuilder") or ""
    return OutputPlan(
        topic=config.output or None,
        serde=config.output_serde_class_name or None,
        forward_properties=config.forward_source_message_property is not False,
        key_based_batching=str(batch_builder).upper() == "KEY_BASED",
        compression=str(producer.get("compressionType") or "LZ4").upper(),
    )


def plan_instance(record: FunctionRecord) -> InstancePlan:
    """Derive the instance plan; PlanError (one sentence) for what cannot run here."""
    config = record.config
    tenant, namespace, name = split_fqfn(record.fqfn)
    if not config.class_name:
        raise PlanError(f"function {record.fqfn} has no className")
    ack_mode = ack_mode_of(config)
    return InstancePlan(
        tenant=tenant,
        namespace=namespace,
        name=name,
        fqfn=record.fqfn,
        class_name=config.class_name,
        ack_mode=ack_mode,
        inputs=plan_inputs(config, record.fqfn, ack_mode),
        output=plan_output(config),
    )
