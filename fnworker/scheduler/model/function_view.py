"""The FunctionConfig a ``GET .../{function}`` answers: Pulsar's shape after its worker
rebuilds the config from the stored FunctionDetails (``convertFromDetails``), not the
config as submitted. Field order is Jackson's (Pulsar's declaration order); a field that
Pulsar leaves null is left out (``UNSET``), as Pulsar's mapper (NON_NULL) leaves it out.
Built by scheduler/decide/pulsar_function_view.py. No I/O."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from fnworker.scheduler.model.records import (
    ProcessingGuarantee,
    Runtime,
    SubscriptionPosition,
    SubscriptionType,
)


class ConsumerConfigView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One ``inputSpecs`` entry as Jackson writes Pulsar's ConsumerConfig (``regexPattern``
    last: the getter of the ``isRegexPattern`` field)."""

    schema_type: str | UnsetType = UNSET
    serde_class_name: str | UnsetType = UNSET
    schema_properties: dict[str, str] = {}
    consumer_properties: dict[str, str] = {}
    receiver_queue_size: int | UnsetType = UNSET
    crypto_config: dict[str, Any] | UnsetType = UNSET
    pool_messages: bool = False
    regex_pattern: bool = False


class ProducerConfigView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pulsar's ProducerConfig as rebuilt from the ProducerSpec (always present)."""

    max_pending_messages: int | UnsetType = UNSET
    max_pending_messages_across_partitions: int | UnsetType = UNSET
    use_thread_local_producers: bool = False
    crypto_config: dict[str, Any] | UnsetType = UNSET
    batch_builder: str = ""
    compression_type: str = "LZ4"
    batching_config: dict[str, Any] | UnsetType = UNSET


class ResourcesView(msgspec.Struct, frozen=True, kw_only=True):
    """The resources with Pulsar's defaults filled in (every field written)."""

    cpu: float
    ram: int
    disk: int


class FunctionConfigView(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pulsar's answer to GET a function. Fields marked *fnworker* are not in Pulsar's
    answer (its conversion loses them); fnworker writes them only when the user set
    them, so a function that does not use them answers exactly Pulsar's fields."""

    runtime_flags: str | UnsetType = UNSET
    tenant: str
    namespace: str
    name: str
    class_name: str
    custom_schema_outputs: dict[str, str] | UnsetType = UNSET
    """fnworker."""
    input_specs: dict[str, ConsumerConfigView]
    input_type_class_name: str | UnsetType = UNSET
    """fnworker."""
    output: str | UnsetType = UNSET
    producer_config: ProducerConfigView
    output_schema_type: str | UnsetType = UNSET
    output_type_class_name: str | UnsetType = UNSET
    """fnworker."""
    output_serde_class_name: str | UnsetType = UNSET
    log_topic: str | UnsetType = UNSET
    log_level: str | UnsetType = UNSET
    """fnworker."""
    processing_guarantees: ProcessingGuarantee
    retain_ordering: bool
    retain_key_ordering: bool
    forward_source_message_property: bool
    user_config: dict[str, Any]
    secrets: dict[str, Any] | UnsetType = UNSET
    runtime: Runtime
    auto_ack: bool
    max_message_retries: int | UnsetType = UNSET
    dead_letter_topic: str | UnsetType = UNSET
    sub_name: str | UnsetType = UNSET
    parallelism: int
    resources: ResourcesView
    timeout_ms: int | UnsetType = UNSET
    cleanup_subscription: bool
    custom_runtime_options: str | UnsetType = UNSET
    max_pending_async_requests: int | UnsetType = UNSET
    """fnworker."""
    expose_pulsar_admin_client_enabled: bool | UnsetType = UNSET
    """fnworker."""
    skip_to_latest: bool | UnsetType = UNSET
    """fnworker."""
    subscription_position: SubscriptionPosition
    subscription_type: SubscriptionType | UnsetType = UNSET
    """fnworker's own field (Pulsar derives the type from the ordering flags)."""
