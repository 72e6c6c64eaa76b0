"""The records every stage shares: function configs, stored functions, instances,
assignments, workers and status. Pure data, no I/O.

REST-facing records keep Pulsar's camelCase field names (``rename="camel"``) so
JSON written for ``pulsar-admin`` works unchanged; internal records use the same
convention so one decoder serves both.
"""

from __future__ import annotations

from typing import Any, Literal, NewType

import msgspec

Fqfn = NewType("Fqfn", str)
"""Fully qualified function name: ``tenant/namespace/name``."""

InstanceId = NewType("InstanceId", str)
"""One instance of a function, as Pulsar prints it: ``tenant/namespace/name:index``."""

WorkerId = NewType("WorkerId", str)

ProcessingGuarantee = Literal["ATLEAST_ONCE", "ATMOST_ONCE", "EFFECTIVELY_ONCE", "MANUAL"]
Runtime = Literal["PYTHON", "JAVA", "GO"]
InstanceState = Literal["RUNNING", "STOPPED"]
SubscriptionType = Literal["SHARED", "FAILOVER", "KEY_SHARED"]
SubscriptionPosition = Literal["Latest", "Earliest"]


class Resources(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """What one instance asks for: cpu cores, ram and disk in bytes (Pulsar's defaults)."""

    cpu: float = 1.0
    ram: int = 1_073_741_824
    disk: int = 10_737_418_240


class ConsumerConfig(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """Per-input-topic consumer settings (Pulsar's ConsumerConfig in ``inputSpecs``)."""

    schema_type: str | None = None
    serde_class_name: str | None = None
    is_regex_pattern: bool = False
    receiver_queue_size: int | None = None
    schema_properties: dict[str, str] = {}
    consumer_properties: dict[str, str] = {}
    crypto_config: dict[str, Any] | None = None
    pool_messages: bool = False


class FunctionConfig(msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True):
    """A function as a user submits it: Pulsar's FunctionConfig, field for field."""

    tenant: str | None = None
    namespace: str | None = None
    name: str | None = None
    class_name: str | None = None
    inputs: list[str] = []
    custom_serde_inputs: dict[str, str] = {}
    topics_pattern: str | None = None
    custom_schema_inputs: dict[str, str] = {}
    custom_schema_outputs: dict[str, str] = {}
    input_specs: dict[str, ConsumerConfig] = {}
    input_type_class_name: str | None = None
    output: str | None = None
    producer_config: dict[str, Any] | None = None
    output_schema_type: str | None = None
    output_serde_class_name: str | None = None
    output_type_class_name: str | None = None
    log_topic: str | None = None
    log_level: str | None = None
    processing_guarantees: ProcessingGuarantee | None = None
    retain_ordering: bool | None = None
    retain_key_ordering: bool | None = None
    batch_builder: str | None = None
    forward_source_message_property: bool | None = None
    user_config: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    runtime: Runtime | None = None
    auto_ack: bool | None = None
    max_message_retries: int | None = None
    dead_letter_topic: str | None = None
    sub_name: str | None = None
    subscription_type: SubscriptionType | None = None
    parallelism: int | None = None
    resources: Resources | None = None
    fqfn: str | None = None
    window_config: dict[str, Any] | None = None
    timeout_ms: int | None = None
    jar: str | None = None
    py: str | None = None
    go: str | None = None
    runtime_flags: str | None = None
    cleanup_subscription: bool | None = None
    custom_runtime_options: str | None = None
    max_pending_async_requests: int | None = None
    expose_pulsar_admin_client_enabled: bool | None = None
    subscription_position: SubscriptionPosition | None = None
    skip_to_latest: bool | None = None


class PackageRef(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Where a function's code lives in the package store and what it was called."""

    path: str
    original_file_name: str
    sha256: str
    size: int
    message_id: str | None = None
    """Where the first chunk lies on the packages topic (base64), when stored in Pulsar."""


class FunctionAuthSpec(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Where a function's credentials are kept (Pulsar's ``functionAuthSpec``): the
    name of the Kubernetes Secret holding the submitter's token, never the token."""

    secret_name: str
    with_ca: bool = False
    """True when the Secret also holds the cluster CA as ``ca.pem``."""


class FunctionRecord(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A registered function as stored on the metadata topic: config, code, version.

    ``config`` is complete (defaults filled in by validation). ``version`` grows by
    one on every change; ``instance_states`` holds instances stopped through the
    stop/start API (absent means RUNNING).
    """

    fqfn: Fqfn
    version: int
    config: FunctionConfig
    package: PackageRef | None = None
    instance_states: dict[int, InstanceState] = {}
    create_time_ms: int = 0
    update_time_ms: int = 0
    auth: FunctionAuthSpec | None = None

    def parallelism(self) -> int:
        """Number of instances the function asks for."""
        return self.config.parallelism or 1

    def state_of(self, index: int) -> InstanceState:
        """RUNNING unless the instance (or the whole function) was stopped."""
        return self.instance_states.get(index, "RUNNING")


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A member of the worker fleet, as ``/admin/v2/worker/cluster`` shows it."""

    worker_id: WorkerId
    worker_hostname: str
    port: int


class Assignment(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The leader's decision that ``worker`` runs ``instance`` at function ``version``.

    ``term`` is the leadership term that wrote it: readers ignore assignments of an
    older term than the newest they have seen.
    """

    instance: InstanceId
    worker: WorkerId
    version: int
    term: int


class ExceptionInformation(msgspec.Struct, kw_only=True, rename="camel"):
    """One recent exception of an instance, as Pulsar's status reports it."""

    exception_string: str
    timestamp_ms: int


class InstanceStatusData(msgspec.Struct, kw_only=True, rename="camel"):
    """The status of one instance (Pulsar's FunctionInstanceStatusData)."""

    running: bool = False
    error: str = ""
    num_restarts: int = 0
    num_received: int = 0
    num_successfully_processed: int = 0
    num_user_exceptions: int = 0
    latest_user_exceptions: list[ExceptionInformation] = []
    num_system_exceptions: int = 0
    latest_system_exceptions: list[ExceptionInformation] = []
    average_latency: float = 0.0
    last_invocation_time: int = 0
    worker_id: str = ""


class InstanceStatus(msgspec.Struct, kw_only=True, rename="camel"):
    """One entry of FunctionStatus.instances."""

    instance_id: int
    status: InstanceStatusData


class FunctionStatus(msgspec.Struct, kw_only=True, rename="camel"):
    """Status of every instance of a function (``.../status``)."""

    num_instances: int
    num_running: int
    instances: list[InstanceStatus]


def fqfn_of(tenant: str, namespace: str, name: str) -> Fqfn:
    """Join the three parts of a function name."""
    return Fqfn(f"{tenant}/{namespace}/{name}")


def split_fqfn(fqfn: str) -> tuple[str, str, str]:
    """Split ``tenant/namespace/name`` into its three parts."""
    tenant, namespace, name = fqfn.split("/", 2)
    return tenant, namespace, name


def instance_id_of(fqfn: str, index: int) -> InstanceId:
    """The id of instance ``index`` of a function: ``tenant/namespace/name:index``."""
    return InstanceId(f"{fqfn}:{index}")


def split_instance_id(instance: str) -> tuple[Fqfn, int]:
    """Split ``tenant/namespace/name:index`` into the function and the index."""
    fqfn, _, index = instance.rpartition(":")
    return Fqfn(fqfn), int(index)
