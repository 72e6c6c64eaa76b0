"""What ``GET .../{tenant}/{namespace}/{function}`` answers: the stored config rebuilt as
Pulsar's worker rebuilds it from FunctionDetails (``FunctionConfigUtils.convert`` on
register, ``convertFromDetails`` on GET). The stored record is not changed; only the
answer is. Pure, no I/O.

What the rebuild does, as Pulsar:

- every input form (``inputs``, ``topicsPattern``, ``customSerdeInputs``,
  ``customSchemaInputs``, ``inputSpecs``) becomes one ``inputSpecs`` entry per topic, a
  later form replacing an earlier one for the same topic, in that order; a spec keeps
  ``schemaType`` or else ``serdeClassName`` (never both), and says ``regexPattern``;
- no ``inputs``, ``py`` (the client's local path), ``fqfn`` or top-level ``batchBuilder``
  (it is in ``producerConfig``); ``producerConfig`` is always there (``batchBuilder``
  ``""`` and ``compressionType`` ``LZ4`` unless set);
- defaults written out: ``resources`` (1 cpu, 1 GiB ram, 10 GiB disk), ``userConfig``
  ``{}``, ``retainOrdering``, ``retainKeyOrdering``, ``autoAck``, ``cleanupSubscription``,
  ``runtime``, ``processingGuarantees``, ``parallelism``, ``subscriptionPosition``, and
  ``forwardSourceMessageProperty`` (true unless set to false: Pulsar's worker default).

Where fnworker differs on purpose (docs/rest-api.md): ``userConfig`` numbers stay as
given (Pulsar's Gson turns ``1`` into ``1.0``), an input's ``consumerProperties`` are
shown (Pulsar's conversion drops them), ``forwardSourceMessageProperty: false`` is
written (Pulsar leaves it out), and fields Pulsar's conversion loses but fnworker applies
(``FunctionConfigView``'s *fnworker* fields) are shown when set.

The answer must lose nothing an instance runs on: a Kubernetes pod builds its function
record from this answer (runtimes/kubernetes/pod_main.py), so decoding it must plan the
same instance as the stored config (tests/unit/test_pulsar_function_view.py checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET, UnsetType

from fnworker.scheduler.model.function_view import (
    ConsumerConfigView,
    FunctionConfigView,
    ProducerConfigView,
    ResourcesView,
)
from fnworker.scheduler.model.records import (
    ConsumerConfig,
    FunctionConfig,
    FunctionRecord,
    Resources,
    split_fqfn,
)

T = TypeVar("T")


def pulsar_view(record: FunctionRecord) -> FunctionConfigView:
    """The FunctionConfig Pulsar would answer for this stored function."""
    config = record.config
    tenant, namespace, name = split_fqfn(record.fqfn)
    return FunctionConfigView(
        runtime_flags=_text(config.runtime_flags),
        tenant=tenant,
        namespace=namespace,
        name=name,
        class_name=config.class_name or "",
        custom_schema_outputs=config.custom_schema_outputs or UNSET,
        input_specs=input_specs(config),
        input_type_class_name=_text(config.input_type_class_name),
        output=_text(config.output),
        producer_config=producer_config(config),
        output_schema_type=_text(config.output_schema_type),
        output_type_class_name=_text(config.output_type_class_name),
        output_serde_class_name=_text(config.output_serde_class_name),
        log_topic=_text(config.log_topic),
        log_level=_text(config.log_level),
        processing_guarantees=config.processing_guarantees or "ATLEAST_ONCE",
        retain_ordering=bool(config.retain_ordering),
        retain_key_ordering=bool(config.retain_key_ordering),
        forward_source_message_property=config.forward_source_message_property is not False,
        user_config=dict(config.user_config),
        secrets=dict(config.secrets) or UNSET,
        runtime="PYTHON",
        auto_ack=config.auto_ack is not False,
        **_retries(config),
        sub_name=_text(config.sub_name),
        parallelism=config.parallelism or 1,
        resources=_resources(config.resources or Resources()),
        timeout_ms=config.timeout_ms or UNSET,
        cleanup_subscription=config.cleanup_subscription is not False,
        custom_runtime_options=_text(config.custom_runtime_options),
        max_pending_async_requests=_given(config.max_pending_async_requests),
        expose_pulsar_admin_client_enabled=_given(config.expose_pulsar_admin_client_enabled),
        skip_to_latest=_given(config.skip_to_latest),
        subscription_position=config.subscription_position or "Latest",
        subscription_type=_given(config.subscription_type),
    )


def input_specs(config: FunctionConfig) -> dict[str, ConsumerConfigView]:
    """One spec per input topic or pattern, later forms replacing earlier ones."""
    specs: dict[str, ConsumerConfigView] = {t: ConsumerConfigView() for t in config.inputs}
    if config.topics_pattern:
        specs[config.topics_pattern] = ConsumerConfigView(regex_pattern=True)
    for topic, serde in config.custom_serde_inputs.items():
        specs[topic] = ConsumerConfigView(serde_class_name=_text(serde))
    for topic, schema in config.custom_schema_inputs.items():
        specs[topic] = custom_schema_spec(schema)
    for topic, spec in config.input_specs.items():
        specs[topic] = spec_view(spec)
    return specs


def spec_view(spec: ConsumerConfig) -> ConsumerConfigView:
    """An ``inputSpecs`` entry as Pulsar rebuilds it (schemaType wins over a serde)."""
    schema_type = _text(spec.schema_type)
    return ConsumerConfigView(
        schema_type=schema_type,
        serde_class_name=_text(spec.serde_class_name) if schema_type is UNSET else UNSET,
        schema_properties=dict(spec.schema_properties),
        consumer_properties=dict(spec.consumer_properties),
        receiver_queue_size=_given(spec.receiver_queue_size),
        crypto_config=_given(spec.crypto_config),
        pool_messages=spec.pool_messages,
        regex_pattern=spec.is_regex_pattern,
    )


def custom_schema_spec(schema: str) -> ConsumerConfigView:
    """A ``customSchemaInputs`` value: a ConsumerConfig as JSON (what Pulsar reads), or
    a bare schema type (what older clients send)."""
    try:
        parsed = msgspec.json.decode(schema, type=ConsumerConfig)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return ConsumerConfigView(schema_type=_text(schema))
    return ConsumerConfigView(
        schema_type=_text(parsed.schema_type),
        schema_properties=dict(parsed.schema_properties),
        consumer_properties=dict(parsed.consumer_properties),
    )


def producer_config(config: FunctionConfig) -> ProducerConfigView:
    """Pulsar's ProducerConfig from the user's (free-form) one and the top-level
    ``batchBuilder``, with the ProducerSpec's defaults."""
    given: Mapping[str, Any] = config.producer_config or {}
    batch_builder = config.batch_builder or given.get("batchBuilder")
    return ProducerConfigView(
        max_pending_messages=_positive_int(given.get("maxPendingMessages")),
        max_pending_messages_across_partitions=_positive_int(
            given.get("maxPendingMessagesAcrossPartitions")
        ),
        use_thread_local_producers=given.get("useThreadLocalProducers") is True,
        crypto_config=_object(given.get("cryptoConfig")),
        batch_builder=batch_builder if isinstance(batch_builder, str) else "",
        compression_type=_compression(given.get("compressionType")),
        batching_config=_object(given.get("batchingConfig")),
    )


def _retries(config: FunctionConfig) -> dict[str, Any]:
    """``maxMessageRetries`` (and its dead letter topic) when set to 0 or more."""
    retries = config.max_message_retries
    if retries is None or retries < 0:
        return {}
    return {"max_message_retries": retries, "dead_letter_topic": _text(config.dead_letter_topic)}


def _resources(resources: Resources) -> ResourcesView:
    """Every resource written out (the record's defaults are Pulsar's)."""
    return ResourcesView(cpu=float(resources.cpu), ram=resources.ram, disk=resources.disk)


def _compression(value: Any) -> str:
    """The compression type as Pulsar's enum names it, LZ4 when unset."""
    names = ("NONE", "LZ4", "ZLIB", "ZSTD", "SNAPPY")
    return value.upper() if isinstance(value, str) and value.upper() in names else "LZ4"


def _text(value: str | None) -> str | UnsetType:
    """A string field Pulsar writes only when it is not empty."""
    return value if value else UNSET


def _given(value: T | None) -> T | UnsetType:
    """A field written only when set."""
    return UNSET if value is None else value


def _positive_int(value: Any) -> int | UnsetType:
    """A count Pulsar writes only when it is not 0."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value != 0
    return value if ok else UNSET


def _object(value: Any) -> dict[str, Any] | UnsetType:
    """A nested config object, when one was given."""
    return dict(value) if isinstance(value, dict) else UNSET
